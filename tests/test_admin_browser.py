"""The staff pages in a real headless browser (Debian's chromium and chromedriver, driven by Selenium).

The figures on each page are checked against aggregates the test computes from the logs itself. Screenshots go
to tests/artifacts/screenshots (SCREENSHOT_DIR overrides; docs/screenshots holds the committed ones). Without
chromium these tests are skipped with a notice, unless REQUIRE_BROWSER is set (CI sets it): then they fail.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db.models import Count, Q, Sum

from analytics.rollup import run_rollup
from tests.helpers.browser import chromium
from usage import periods
from usage.demo import load_demo_data
from usage.models import AIUsageLog, UserSpendLimit
from usage.money import canonical
from usage.repricing import sync_prices_and_reprice

SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR") or Path(__file__).parent / "artifacts" / "screenshots")
PASSWORD = "a-staff-password"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


# The live server reads the database from its own thread, so each test commits; serialized_rollback restores what
# the migrations wrote (content types, default schedules) afterwards, as the other transactional tests expect.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def demo(db: None) -> Any:
    """The prices and demo data `make run` loads, rolled up, and a staff login."""
    sync_prices_and_reprice(source="", trigger="command")
    load_demo_data()
    run_rollup()
    return get_user_model().objects.create_superuser("staff", "staff@example.com", PASSWORD)


class Page:
    """The browser on the live server, with the checks every page gets."""

    def __init__(self, driver: Any, base: str) -> None:
        self.driver, self.base = driver, base

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def log_in(self, username: str, password: str) -> None:
        from selenium.webdriver.common.by import By

        self.driver.delete_all_cookies()
        self.open("/admin/login/")
        self.driver.find_element(By.NAME, "username").send_keys(username)
        self.driver.find_element(By.NAME, "password").send_keys(password)
        button = self.driver.find_element(By.CSS_SELECTOR, "input[type=submit]")
        button.click()
        self.wait_for_new_page(button)

    def wait_for_new_page(self, old_element: Any) -> None:
        """Wait until `old_element`'s page was replaced and the new one has loaded. Chromium reports a node of the
        old page as stale or, mid-navigation, as "not belonging to the document": either means it is gone."""
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait

        def replaced(driver: Any) -> bool:
            try:
                old_element.is_enabled()
            except WebDriverException:
                return bool(driver.execute_script("return document.readyState") == "complete")
            return False

        WebDriverWait(self.driver, 15).until(replaced)

    def css(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, selector))

    def click(self, selector: str) -> None:
        """Follow a link and wait until the next page has replaced this one."""
        element = self.css(selector)[0]
        element.click()
        self.wait_for_new_page(element)

    def value(self, selector: str) -> str:
        return str(self.css(selector)[0].get_attribute("data-value"))

    def console_errors(self) -> list[str]:
        return [entry["message"] for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]

    def screenshot(self, name: str, width: int = 1440) -> None:
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(width, min(int(height) + 120, 6000))
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        assert self.driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
        self.driver.set_window_size(1280, 900)

    def fetch_text(self, href: str) -> str:
        """Download a link with the browser's own session (what clicking "Export CSV" fetches)."""
        script = "const done = arguments[1]; fetch(arguments[0]).then(r => r.text()).then(done);"
        return str(self.driver.execute_async_script(script, href))


@pytest.fixture
def page(browser: Any, live_server: Any, demo: Any, settings: Any) -> Iterator[Page]:
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost", "127.0.0.1"]
    browser.get_log("browser")  # start each test with an empty console
    yield Page(browser, live_server.url)


def reporting_window(days: int) -> tuple[datetime, datetime]:
    zone, today = periods.reporting_zone(), periods.today()
    start = datetime.combine(today - timedelta(days=days - 1), time.min, tzinfo=zone)
    return start, datetime.combine(today + timedelta(days=1), time.min, tzinfo=zone)


def logs_between(start: datetime, end: datetime) -> Any:
    return AIUsageLog.objects.filter(occurred_at__gte=start, occurred_at__lt=end)


def test_staff_dashboard_shows_the_logs_figures(page: Page) -> None:
    page.log_in("staff", PASSWORD)
    page.open("/admin/")
    link = page.css("#ai-gateway-analytics a[href='/admin/ai-analytics/']")[0]
    link.click()
    page.wait_for_new_page(link)
    assert page.driver.title.startswith("AI Analytics Dashboard")
    week = logs_between(*reporting_window(7)).aggregate(
        cost=Sum("total_cost", default=Decimal(0)), calls=Count("id"), tokens=Sum("input_tokens") + Sum("output_tokens")
    )
    assert Decimal(page.value("[data-metric=total_cost]")) == week["cost"]
    assert int(page.value("[data-metric=requests]")) == week["calls"]
    assert int(page.value("[data-metric=total_tokens]")) == week["tokens"]
    shown = {row.get_attribute("data-provider"): Decimal(row.find_elements("css selector", "[data-value]")[0]
             .get_attribute("data-value")) for row in page.css("#provider-breakdown tbody tr")}  # fmt: skip
    by_provider = logs_between(*reporting_window(7)).values("provider").annotate(cost=Sum("total_cost", default=0))
    assert shown == {row["provider"]: Decimal(row["cost"]) for row in by_provider}
    assert len(page.css(".ai-columns .ai-bar")) == 7
    assert len(page.css("#recent-activity tbody tr")) == 10
    assert page.console_errors() == []
    page.screenshot("dashboard")


def test_dashboard_window_selector_switches_to_30_days(page: Page) -> None:
    from selenium.webdriver.support.ui import Select

    page.log_in("staff", PASSWORD)
    page.open("/admin/ai-analytics/")
    chooser = page.css("#ai-days")[0]
    Select(chooser).select_by_value("30")
    page.wait_for_new_page(chooser)
    assert page.driver.current_url.endswith("/admin/ai-analytics/?days=30")
    month = logs_between(*reporting_window(30)).aggregate(cost=Sum("total_cost", default=Decimal(0)))
    assert Decimal(page.value("[data-metric=total_cost]")) == month["cost"]
    assert len(page.css(".ai-columns .ai-bar")) == 30
    assert page.console_errors() == []


def expected_statuses() -> dict[str, str]:
    """Each active user's status, worked out here from the logs and the limits."""
    today = periods.today()
    zone = periods.reporting_zone()
    day_start = datetime.combine(today, time.min, tzinfo=zone)
    month_start = datetime.combine(today.replace(day=1), time.min, tzinfo=zone)
    overrides = {limit.user_id: limit for limit in UserSpendLimit.objects.all()}
    statuses = {}
    for user in get_user_model().objects.filter(is_active=True):
        spend = AIUsageLog.objects.filter(user=user, occurred_at__gte=month_start).aggregate(
            month=Sum("total_cost", default=Decimal(0)),
            day=Sum("total_cost", default=Decimal(0), filter=Q(occurred_at__gte=day_start)),
        )
        limit = overrides.get(user.pk)
        daily = limit.daily_limit if limit and limit.daily_limit is not None else django_settings.AI_DEFAULT_DAILY_LIMIT
        monthly = (
            limit.monthly_limit
            if limit and limit.monthly_limit is not None
            else django_settings.AI_DEFAULT_MONTHLY_LIMIT
        )
        shares = [spend["day"] / daily if daily else 1, spend["month"] / monthly if monthly else 1]
        statuses[user.username] = "EXCEEDED" if max(shares) >= 1 else "WARNING" if max(shares) >= 0.8 else "OK"
    return statuses


def test_user_spend_page_filters_searches_and_exports(page: Page) -> None:
    page.log_in("staff", PASSWORD)
    page.open("/admin/ai-analytics/users/")
    expected = expected_statuses()
    shown = {
        row.get_attribute("data-user"): row.get_attribute("data-status") for row in page.css("#user-spend tbody tr")
    }
    assert shown == expected
    assert sorted(expected.values()).count("EXCEEDED") >= 1  # the demo data has one user over a limit
    page.screenshot("user-spend")
    page.click("a[data-status=exceeded]")
    exceeded = sorted(name for name, status in expected.items() if status == "EXCEEDED")
    assert sorted(row.get_attribute("data-user") for row in page.css("#user-spend tbody tr")) == exceeded
    assert all("ai-over" in bar.get_attribute("class") for bar in page.css("#user-spend .ai-bar-fill.ai-over"))
    exported = page.fetch_text(page.css("#export-csv")[0].get_attribute("href"))
    assert sorted(row["username"] for row in csv.DictReader(io.StringIO(exported))) == exceeded
    page.click("a[data-status=all]")
    search = page.css("input[name=q]")[0]
    search.send_keys("ali")
    search.submit()
    page.wait_for_new_page(search)
    assert [row.get_attribute("data-user") for row in page.css("#user-spend tbody tr")] == ["alice"]
    assert page.console_errors() == []


def test_system_page_lists_unpriced_models_and_jobs(page: Page) -> None:
    page.log_in("staff", PASSWORD)
    page.open("/admin/ai-analytics/system/?days=30")
    unpriced = AIUsageLog.objects.filter(total_cost__isnull=True).values("model").annotate(calls=Count("id"))
    shown = {row.get_attribute("data-model"): int(row.find_elements("css selector", "td.num")[0].text)
             for row in page.css("#unpriced tbody tr")}  # fmt: skip
    assert shown == {row["model"]: row["calls"] for row in unpriced}
    assert len(page.css("#schedules tbody tr")) == 5
    assert [cell.text for cell in page.css("#rollups tbody tr td:nth-child(2)")] == ["succeeded"]
    assert page.console_errors() == []
    page.screenshot("system-metrics")


def test_usage_log_list_statistics_and_export(page: Page) -> None:
    page.log_in("staff", PASSWORD)
    page.open("/admin/usage/aiusagelog/?status__exact=error")
    errors = AIUsageLog.objects.filter(status="error")
    assert int(page.css("[data-stat=calls]")[0].text) == errors.count()
    cost = errors.aggregate(cost=Sum("total_cost", default=Decimal(0)))["cost"]
    assert Decimal(page.css("[data-stat=cost]")[0].get_attribute("data-value")) == cost
    exported = page.fetch_text(page.css("#export-logs-csv")[0].get_attribute("href"))
    assert len(list(csv.DictReader(io.StringIO(exported)))) == errors.count()
    assert page.console_errors() == []
    page.screenshot("usage-logs")


OVERFLOWING = """
const width = document.documentElement.clientWidth;
const insideScrollBox = el => { for (let p = el.parentElement; p; p = p.parentElement) {
  if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(p).overflowX)) return true; } return false; };
return [...document.querySelectorAll('body *')]
  .filter(el => el.getBoundingClientRect().right > width + 0.5 && !insideScrollBox(el))
  .map(el => `${el.tagName.toLowerCase()}#${el.id}.${el.className}`);
"""
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}


def test_pages_fit_a_phone_screen_and_dark_mode(page: Page) -> None:
    page.log_in("staff", PASSWORD)
    page.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    try:
        for path in ("/admin/ai-analytics/", "/admin/ai-analytics/users/", "/admin/ai-analytics/system/"):
            page.open(path)
            assert page.driver.execute_script("return document.documentElement.clientWidth") == 390
            assert page.driver.execute_script(OVERFLOWING) == [], f"{path} is wider than a phone screen"
        page.open("/admin/ai-analytics/users/")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        assert page.driver.save_screenshot(str(SCREENSHOTS / "user-spend-phone.png"))
    finally:
        page.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    page.driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
    )
    page.open("/admin/ai-analytics/")
    background = page.driver.execute_script("return getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(18, 18, 18)"  # the admin's dark theme, which the pages follow
    page.screenshot("dashboard-dark")
    page.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    assert page.console_errors() == []


# What does not fit, as "path of the element: problem": an element reaching past its card (a .module or a card),
# a box that scrolls sideways, chart text under 11 px.
MISFITS = """
const name = el => `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}.${String(el.className).split(' ')[0]}`;
const shown = el => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
const found = [];
const root = document.documentElement;
if (root.scrollWidth > root.clientWidth) found.push(`page: ${root.scrollWidth} > ${root.clientWidth}`);
for (const card of document.querySelectorAll('#content .module, #content .ai-card, #content .results')) {
  const edge = card.getBoundingClientRect().right + 0.5;
  for (const el of card.querySelectorAll('*')) {
    if (shown(el) && el.getBoundingClientRect().right > edge && !el.closest('.actions'))  // the admin's action bar
      found.push(`${name(el)}: wider than ${name(card)}`);  // reaches to the page edge by design
  }
}
for (const el of document.querySelectorAll('#content *')) {
  if (!shown(el)) continue;
  if (['auto', 'scroll'].includes(getComputedStyle(el).overflowX) && el.scrollWidth > el.clientWidth + 1)
    found.push(`${name(el)}: scrolls (${el.scrollWidth} > ${el.clientWidth})`);
  const size = parseFloat(getComputedStyle(el).fontSize);
  if (el.closest('.ai-chart') && [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()) && size < 11)
    found.push(`${name(el)}: text ${size}px`);
}
return [...new Set(found)];
"""
WIDTHS = (1280, 1440, 1920)


def wide_pages() -> list[str]:
    log = AIUsageLog.objects.filter(total_cost__isnull=False).order_by("-occurred_at").first()
    assert log is not None
    return [
        "/admin/ai-analytics/", "/admin/ai-analytics/?days=90", "/admin/ai-analytics/users/",
        "/admin/ai-analytics/system/", "/admin/usage/aiusagelog/", f"/admin/usage/aiusagelog/{log.pk}/change/",
        "/admin/usage/spendalert/", "/admin/usage/userspendlimit/",
    ]  # fmt: skip


def test_every_page_fits_each_desktop_width_without_clipping(page: Page) -> None:
    page.log_in("staff", PASSWORD)
    for width in WIDTHS:
        page.driver.set_window_size(width, 1000)
        for path in wide_pages():
            page.open(path)
            misfits = page.driver.execute_script(MISFITS)
            assert misfits == [], f"{path} at {width} px: {misfits}"
    page.driver.set_window_size(1280, 900)
    assert page.console_errors() == []


def test_on_a_phone_the_columns_that_matter_are_on_screen(page: Page) -> None:
    page.log_in("staff", PASSWORD)
    page.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    try:
        for path in ("/admin/ai-analytics/", "/admin/ai-analytics/users/", "/admin/ai-analytics/system/"):
            page.open(path)
            misfits = page.driver.execute_script(MISFITS)
            assert misfits == [], f"{path} on a phone: {misfits}"
        page.open("/admin/ai-analytics/users/")
        on_screen = "return arguments[0].getBoundingClientRect().right <= 390 && arguments[0].offsetWidth > 0"
        for cell in page.css("#user-spend tbody td.ai-monthly, #user-spend tbody td.ai-state"):
            assert page.driver.execute_script(on_screen, cell), cell.get_attribute("class")
        page.open("/admin/ai-analytics/")
        for cell in page.css("#recent-activity td.num, #provider-breakdown td.num:not(.ai-opt)"):
            assert page.driver.execute_script(on_screen, cell)
        height = int(page.driver.execute_script("return document.documentElement.scrollHeight"))
        page.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE | {"height": min(height, 4000)})
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        assert page.driver.save_screenshot(str(SCREENSHOTS / "dashboard-phone.png"))  # the whole page
    finally:
        page.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert page.console_errors() == []


def test_each_bar_shows_its_exact_value_on_focus(page: Page) -> None:
    page.log_in("staff", PASSWORD)
    page.open("/admin/ai-analytics/")
    bar = page.css(".ai-columns .ai-bar")[-1]
    tip = bar.find_elements("css selector", ".ai-tip")[0]
    assert not tip.is_displayed()
    page.driver.execute_script("arguments[0].focus()", bar)
    exact = f"${canonical(Decimal(bar.get_attribute('data-value')))}"
    assert tip.is_displayed() and tip.text == f"{bar.get_attribute('data-label')}: {exact}"
    assert bar.get_attribute("title") == tip.text


def test_a_non_staff_login_is_refused(page: Page) -> None:
    user = get_user_model().objects.get(username="alice")
    user.set_password("alice-pw")
    user.save()
    page.log_in("alice", "alice-pw")
    assert "Please enter the correct username and password for a staff account" in page.driver.page_source
    page.open("/admin/ai-analytics/")
    assert page.driver.current_url.endswith("/admin/login/?next=/admin/ai-analytics/")
    assert page.css("[data-metric]") == []
