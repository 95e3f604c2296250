"""A real headless browser for the page tests: Debian's chromium and chromedriver, driven by Selenium. Without
them a test is skipped with a notice, unless REQUIRE_BROWSER is set (CI sets it): then it fails."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROME_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1280,900",
]  # fmt: skip


def _browser_missing() -> str | None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    return f"{' and '.join(missing)} not installed (apt-get install chromium chromium-driver)" if missing else None


def chromium(extra_flags: list[str] = [], logs: dict[str, str] | None = None) -> Iterator[Any]:  # noqa: B006
    """A started browser (for a fixture to yield), quit afterwards; `logs` picks the logs it keeps."""
    missing = _browser_missing()
    if missing and os.environ.get("REQUIRE_BROWSER"):
        pytest.fail(f"browser tests required here, but {missing}")
    if missing:
        pytest.skip(f"BROWSER TESTS SKIPPED: {missing}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROME_FLAGS, *extra_flags]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", logs or {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(0)
    yield driver
    driver.quit()
