"""The GraphQL endpoint's HTTP answers, with a real HTTP client against a live server: every combination of method
(GET, POST), credentials (none, a session, a stale session, an API key, a bad key) and CSRF token (sent or not).

A request without valid credentials gets a JSON 401, whatever its CSRF token; a session request without its token
gets a JSON 403 naming the token; a key needs no token. Anonymous `{ health { ok } }` stays 200. Expected errors are
logged as one line without a traceback; unexpected ones keep it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import strawberry
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client
from strawberry.extensions import MaskErrors

from graphql_api.auth import BAD_KEY
from graphql_api.client_errors import Schema
from graphql_api.errors import should_mask_error
from project.middleware import CSRF_MISSING
from usage.apikeys import create_api_key
from usage.permissions import AUTHENTICATION_REQUIRED

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

MY_SPEND = "{ mySpend { status } }"
HEALTH = "{ health { ok } }"
CREDENTIALS = ["none", "session", "stale session", "key", "bad key"]
CSRF_SECRET = "a" * 32  # a CSRF secret sent unmasked in the header matches the same secret in the cookie


@dataclass(frozen=True)
class Expected:
    status: int
    message: str | None  # None: the caller's spend is answered


def expected(method: str, credentials: str, csrf: bool) -> Expected:
    if credentials in ("none", "stale session"):
        return Expected(401, AUTHENTICATION_REQUIRED)
    if credentials == "bad key":
        return Expected(401, BAD_KEY)
    if credentials == "session" and method == "POST" and not csrf:
        return Expected(403, CSRF_MISSING)
    return Expected(200, None)


def session_cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


@pytest.fixture
def callers(db: None) -> dict[str, requests.Session]:
    """An HTTP session per kind of credentials (none of them with a CSRF token yet)."""
    user = get_user_model().objects.create_user("alice", "alice@example.com", "pw")
    stale = session_cookie(user)
    Session.objects.filter(session_key=stale).delete()  # signed out elsewhere, or expired and cleared
    sessions = {name: requests.Session() for name in CREDENTIALS}
    sessions["session"].cookies.set(django_settings.SESSION_COOKIE_NAME, session_cookie(user))
    sessions["stale session"].cookies.set(django_settings.SESSION_COOKIE_NAME, stale)
    sessions["key"].headers["Authorization"] = f"Bearer {create_api_key(user, 'http')[1]}"
    sessions["bad key"].headers["Authorization"] = "Bearer aik_not-a-key"
    return sessions


def send(base: str, caller: requests.Session, method: str, query: str, csrf: bool) -> requests.Response:
    headers = {"Accept": "application/json"}
    if csrf:
        caller.cookies.set(django_settings.CSRF_COOKIE_NAME, CSRF_SECRET)
        headers["X-CSRFToken"] = CSRF_SECRET
    else:
        caller.cookies.pop(django_settings.CSRF_COOKIE_NAME, None)
    url = f"{base}/graphql/"
    if method == "GET":
        return caller.get(url, params={"query": query}, headers=headers, timeout=30)
    return caller.post(url, json={"query": query}, headers=headers, timeout=30)


@pytest.mark.parametrize("debug", [False, True])
def test_every_method_credential_and_csrf_combination(
    live_server: Any, callers: dict[str, requests.Session], settings: Any, debug: bool
) -> None:
    settings.DEBUG = debug  # the live server's thread reads the same settings
    for method in ("GET", "POST"):
        for credentials in CREDENTIALS:
            for csrf in (False, True):
                case = (method, credentials, csrf)
                response = send(live_server.url, callers[credentials], method, MY_SPEND, csrf)
                want = expected(method, credentials, csrf)
                assert response.status_code == want.status, (case, response.text)
                assert response.headers["Content-Type"] == "application/json", case
                if want.message is None:
                    assert response.json() == {"data": {"mySpend": {"status": "OK"}}}, case
                else:
                    errors = response.json()["errors"]
                    assert [e["message"] for e in errors] == [want.message], case
                    assert response.json().get("data") is None, case


def test_anonymous_health_stays_200(live_server: Any, callers: dict[str, requests.Session]) -> None:
    for method in ("GET", "POST"):
        for csrf in (False, True):
            response = send(live_server.url, callers["none"], method, HEALTH, csrf)
            assert (response.status_code, response.json()) == (200, {"data": {"health": {"ok": True}}})


def test_a_session_post_with_a_wrong_token_is_refused_naming_the_token(
    live_server: Any, callers: dict[str, requests.Session]
) -> None:
    caller = callers["session"]
    caller.cookies.set(django_settings.CSRF_COOKIE_NAME, CSRF_SECRET)
    response = caller.post(
        f"{live_server.url}/graphql/", json={"query": MY_SPEND}, headers={"X-CSRFToken": "b" * 32}, timeout=30
    )
    assert (response.status_code, response.headers["Content-Type"]) == (403, "application/json")
    assert response.json() == {"data": None, "errors": [{"message": CSRF_MISSING}]}


def test_a_key_wins_over_a_session_and_a_bad_key_is_refused_with_one(
    live_server: Any, callers: dict[str, requests.Session]
) -> None:
    both = callers["session"]
    for key, want in ((callers["key"], (200, None)), (callers["bad key"], (401, BAD_KEY))):
        both.headers["Authorization"] = key.headers["Authorization"]
        response = send(live_server.url, both, "POST", MY_SPEND, csrf=False)
        messages = [e["message"] for e in response.json().get("errors", [])]
        assert (response.status_code, messages[0] if messages else None) == want


# -- logging ------------------------------------------------------------------------------------------------------


def test_expected_errors_are_one_line_without_a_traceback(caplog: pytest.LogCaptureFixture, alice: Any) -> None:
    client = Client()
    client.force_login(alice)
    queries = [
        "{ userSpend { totalCount } }",  # permission
        "{ userSpend(limit: 0) { totalCount } }",  # permission first, still
        "{ usag { start } }",  # validation
        'mutation { setSpendLimit(userId: "1", dailyLimit: "abc") { status } }',  # permission
    ]
    with caplog.at_level(logging.INFO, logger="graphql_api"):
        for query in queries:
            client.post("/graphql/", {"query": query}, content_type="application/json")
    records = [r for r in caplog.records if r.name.startswith("graphql_api") or r.name.startswith("strawberry")]
    assert [r.getMessage() for r in records] == [
        "GraphQL request refused at userSpend: userSpend needs the usage.view_ai_analytics permission (to read "
        "every user's usage)",
        "GraphQL request refused at userSpend: userSpend needs the usage.view_ai_analytics permission (to read "
        "every user's usage)",
        "GraphQL request refused: Cannot query field 'usag' on type 'Query'.",
        "GraphQL request refused at setSpendLimit: setSpendLimit needs the usage.change_userspendlimit "
        "permission (to change spend limits)",
    ]
    assert [(r.levelno, r.exc_info) for r in records] == [(logging.INFO, None)] * 4
    assert len(caplog.text.splitlines()) == 4  # one line each, no traceback


def test_an_argument_error_is_one_line(caplog: pytest.LogCaptureFixture, db: None) -> None:
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(root)
    with caplog.at_level(logging.INFO, logger="graphql_api"):
        client.post("/graphql/", {"query": "{ userSpend(limit: 0) { totalCount } }"}, content_type="application/json")
    assert [(r.levelno, r.getMessage(), r.exc_info) for r in caplog.records] == [
        (logging.INFO, "GraphQL request refused at userSpend: limit: must be between 1 and 1000, got 0", None)
    ]


@strawberry.type
class Failing:
    @strawberry.field
    def broken(self) -> int:
        raise RuntimeError("the disk is full")


def test_an_unexpected_error_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    failing = Schema(query=Failing, extensions=[lambda: MaskErrors(should_mask_error=should_mask_error)])
    with caplog.at_level(logging.INFO):
        result = failing.execute_sync("{ broken }")
    assert [error.message for error in result.errors or []] == ["Unexpected error."]
    (record,) = caplog.records
    assert (record.name, record.levelno) == ("strawberry.execution", logging.ERROR)
    assert record.getMessage().startswith("the disk is full\n")
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)
    assert "Traceback" in caplog.text
