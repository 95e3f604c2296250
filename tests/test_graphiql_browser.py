"""GraphiQL works offline: a headless Chromium that can reach nothing but the loopback host loads /graphql/ with
DEBUG on, the editor renders and runs a query, and every request the page made went to the live server.

Skipped without chromium unless REQUIRE_BROWSER is set, like tests/test_admin_browser.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from tests.helpers.browser import chromium

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

# No name resolves except the loopback host's, and nothing goes through a proxy: the page has no network but us.
OFFLINE_FLAGS = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost", "--no-proxy-server"]
LOOPBACK = {"127.0.0.1", "localhost"}


@pytest.fixture(scope="module")
def offline_browser() -> Iterator[Any]:
    yield from chromium(OFFLINE_FLAGS, {"browser": "ALL", "performance": "ALL"})


def requested_urls(driver: Any) -> list[str]:
    """Every URL the page asked for since the last call (Chromium's network log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def test_graphiql_renders_and_runs_a_query_offline(offline_browser: Any, live_server: Any, settings: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    settings.DEBUG = True  # the live server's thread reads the same settings
    driver = offline_browser
    driver.get(f"{live_server.url}/graphql/?q={quote('{ health { ok } }')}")
    wait = WebDriverWait(driver, 20)
    button = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "button.graphiql-execute-button"))[0]
    assert "{ health { ok } }" in driver.find_element(By.CSS_SELECTOR, ".graphiql-query-editor").text
    button.click()
    response = wait.until(lambda d: '"ok": true' in d.find_element(By.CSS_SELECTOR, ".graphiql-response").text)
    assert response

    urls = requested_urls(driver)
    static = sorted(urlsplit(url).path for url in urls if "/static/" in url)
    assert static == [
        "/static/graphql_api/graphiql/graphiql-3.8.3/graphiql.min.css",
        "/static/graphql_api/graphiql/graphiql-3.8.3/graphiql.min.js",
        "/static/graphql_api/graphiql/js-cookie-3.0.5/js.cookie.min.js",
        "/static/graphql_api/graphiql/plugin-explorer-1.0.2/index.umd.js",
        "/static/graphql_api/graphiql/plugin-explorer-1.0.2/style.css",
        "/static/graphql_api/graphiql/react-18.2.0/react.production.min.js",
        "/static/graphql_api/graphiql/react-dom-18.2.0/react-dom.production.min.js",
    ]
    off_host = [
        url for url in urls if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).hostname not in LOOPBACK
    ]
    assert off_host == []
    # Integrity checks passed and nothing failed to load (a blocked or missing script is a SEVERE console entry).
    assert [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []


def test_the_page_refers_to_no_other_host(client: Any, settings: Any) -> None:
    settings.DEBUG = True
    response = client.get("/graphql/", HTTP_ACCEPT="text/html")
    page = response.content.decode()
    assert response.status_code == 200
    assert "unpkg.com" not in page and "https://" not in page
    assert page.count('integrity="sha384-') == 7
    assert settings.CSRF_COOKIE_NAME in response.cookies  # the page sends it back as a session's CSRF token
