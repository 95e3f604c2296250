"""One money format for people on every staff page: `usage.money.for_people`, the exact value on hover, and
unpriced calls shown as unpriced with their count (never $0.00)."""

from __future__ import annotations

import re
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from analytics.cau import refresh_cau_snapshots
from analytics.models import CAUSnapshot, DailyUsageSummary, UserAICostSummary
from analytics.rollup import run_rollup
from usage.alerts import record_due_alerts
from usage.models import AIProviderPricing, AIUsageLog, SpendAlert, UserSpendLimit
from usage.money import cost_with_unpriced, for_people, on_page
from usage.recording import record_usage


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("0", "$0.00"), ("1234.5678", "$1,234.57"), ("1", "$1.00"), ("0.999999", "$1.00"), ("0.1", "$0.10"),
        ("0.084697118750000000", "$0.0847"), ("0.09776", "$0.09776"), ("0.114227", "$0.1142"),
        ("0.00000123456", "$0.000001235"), ("-0.5", "-$0.50"), ("10", "$10.00"),
    ],
)  # fmt: skip
def test_for_people_is_cents_from_a_dollar_and_four_significant_digits_below(amount: str, shown: str) -> None:
    assert for_people(Decimal(amount)) == shown


def test_on_page_carries_the_exact_value_on_hover() -> None:
    assert on_page(Decimal("0.084697118750000000")) == '<span class="ai-money" title="0.08469711875 USD">$0.0847</span>'
    assert on_page(None) == '<span class="ai-unpriced" title="no price yet">unpriced</span>'


def test_a_group_of_unpriced_calls_is_unpriced_with_its_count() -> None:
    assert (
        cost_with_unpriced(Decimal(0), 3, 3)
        == '<span class="ai-unpriced" title="no price yet">unpriced (3 calls)</span>'
    )
    assert (
        cost_with_unpriced(Decimal(0), 1, 1)
        == '<span class="ai-unpriced" title="no price yet">unpriced (1 call)</span>'
    )
    assert cost_with_unpriced(Decimal("1.2"), 2, 5) == (
        '<span class="ai-money" title="1.2 USD">$1.20</span> <span class="ai-unpriced">+ 2 unpriced</span>'
    )
    assert cost_with_unpriced(Decimal("1.2"), 0, 5) == '<span class="ai-money" title="1.2 USD">$1.20</span>'


class VisibleText(HTMLParser):
    """The text a person reads on a page: no attributes, no script or style, no form field values."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.hidden += tag in {"script", "style", "textarea"}

    def handle_endtag(self, tag: str) -> None:
        self.hidden -= tag in {"script", "style", "textarea"}

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


# A stored amount shown as it is (0.084697118750000000, 10.000000): more than four significant digits below the
# point, or three trailing zeros. The rule's forms ($0.02901, $0.000001235, $1,234.57) never match.
RAW_DECIMAL = re.compile(r"\d\.(?:0*[1-9]\d{4,}|\d*000)")
SHORT_DOLLARS = re.compile(r"\$\d[\d,]*\.\d(?!\d)")  # "$0.1": not the rule's form


def visible_text(html: str) -> str:
    """A chart's tip is the exact value shown on hover or focus, like a title: left out."""
    parser = VisibleText()
    parser.feed(re.sub(r'<span class="ai-tip">[^<]*</span>', "", html))
    return " ".join(parser.parts)


@pytest.fixture
def priced_oddly(db: None, make_price: Any) -> dict[str, Any]:
    """Calls whose costs have many decimal places, an unpriced provider, a limit of $0.1 and an alert."""
    make_price(input_price=Decimal("2.123456789"), output_price=Decimal("8.987654321"))
    make_price(provider="other", model="other-1", input_price=Decimal("0.3"), output_price=Decimal("1.1"))
    people = {name: get_user_model().objects.create_user(name, f"{name}@example.com", "pw") for name in ("ann", "ben")}
    UserSpendLimit.objects.create(user=people["ann"], daily_limit=Decimal("0.1"), monthly_limit=Decimal("0.2"))
    for index, (name, provider, model, tokens) in enumerate([
        ("ann", "acme", "acme-1", 20_123), ("ann", "acme", "acme-1", 7_777), ("ben", "other", "other-1", 3_333),
        ("ben", "nowhere", "unknown-model", 1_000), ("ann", "nowhere", "unknown-model", 2_000),
    ]):  # fmt: skip
        feature = "drafts" if provider == "nowhere" else "chat"  # a feature whose calls are all unpriced
        record_usage(user=people[name], feature=feature, provider=provider, model=model, input_tokens=tokens,
                     output_tokens=tokens // 3, event_id=f"odd-{index}")  # fmt: skip
    run_rollup()
    refresh_cau_snapshots(days_back=1)
    record_due_alerts()
    return people


def page_paths() -> list[str]:
    log = AIUsageLog.objects.filter(total_cost__isnull=False).first()
    unpriced = AIUsageLog.objects.filter(total_cost__isnull=True).first()
    alert = SpendAlert.objects.first()
    assert log and unpriced and alert and CAUSnapshot.objects.exists()
    return [
        "/admin/ai-analytics/", "/admin/ai-analytics/?days=30", "/admin/ai-analytics/users/",
        "/admin/ai-analytics/system/", "/admin/usage/aiusagelog/", "/admin/usage/aiusagelog/?provider=acme",
        f"/admin/usage/aiusagelog/{log.pk}/change/", f"/admin/usage/aiusagelog/{unpriced.pk}/change/",
        "/admin/usage/spendalert/", f"/admin/usage/spendalert/{alert.pk}/change/", "/admin/usage/userspendlimit/",
        "/admin/usage/aiproviderpricing/", "/admin/analytics/causnapshot/",
        f"/admin/analytics/causnapshot/{CAUSnapshot.objects.first().pk}/change/",  # type: ignore[union-attr]
        "/admin/analytics/useraicostsummary/",
        f"/admin/analytics/useraicostsummary/{UserAICostSummary.objects.first().pk}/change/",  # type: ignore[union-attr]
        "/admin/analytics/useraicostsummary/", "/admin/analytics/usermonthlyaicostsummary/",
        "/admin/analytics/dailyusagesummary/", "/admin/analytics/usagehourlybucket/",
    ]  # fmt: skip


def test_no_page_shows_an_unformatted_amount(priced_oddly: dict[str, Any]) -> None:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    for path in page_paths():
        response = client.get(path)
        assert response.status_code == 200, path
        text = visible_text(response.content.decode())
        assert RAW_DECIMAL.findall(text) == [], (path, text)
        assert SHORT_DOLLARS.findall(text) == [], path


def test_the_log_page_shows_its_cost_by_the_rule_with_the_exact_value_on_hover(priced_oddly: dict[str, Any]) -> None:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    log = AIUsageLog.objects.filter(total_cost__isnull=False).order_by("id").first()
    assert log is not None and log.total_cost == Decimal("0.103010518495994")
    html = client.get(f"/admin/usage/aiusagelog/{log.pk}/change/").content.decode()
    assert '<span class="ai-money" title="0.103010518495994 USD">$0.103</span>' in html
    listing = client.get("/admin/usage/aiusagelog/").content.decode()
    assert '<span class="ai-money" title="0.103010518495994 USD">$0.103</span>' in listing


def test_a_limit_is_formatted_like_spend(priced_oddly: dict[str, Any]) -> None:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    html = client.get("/admin/ai-analytics/users/?q=ann").content.decode()
    assert 'of <span class="ai-money" title="0.1 USD">$0.10</span>' in html
    assert 'of <span class="ai-money" title="0.2 USD">$0.20</span>' in html


def test_unpriced_calls_are_shown_as_unpriced_in_every_breakdown(priced_oddly: dict[str, Any]) -> None:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    unpriced = '<span class="ai-unpriced" title="no price yet">unpriced (2 calls)</span>'
    dashboard = client.get("/admin/ai-analytics/").content.decode()
    row = re.search(r'<tr data-provider="nowhere">.*?</tr>', dashboard)
    assert row and unpriced in row.group(0) and "$0.00" not in row.group(0)
    assert re.search(r'data-label="nowhere" data-value="0"[^>]*>.*?<span class="ai-chart-value">unpriced \(2 calls\)'
                     r"</span>", dashboard)  # fmt: skip
    ben = re.search(r'<tr data-user="ben">.*?</tr>', dashboard)
    assert ben and '<span class="ai-unpriced">+ 1 unpriced</span>' in ben.group(0)
    system = client.get("/admin/ai-analytics/system/").content.decode()
    model = re.search(r'<tr data-model="unknown-model">.*?</tr>', system)
    assert model and unpriced in model.group(0) and "$0.00" not in model.group(0)
    feature = re.search(r'<tr data-feature="drafts">.*?</tr>', system)
    assert feature and unpriced in feature.group(0) and "$0.00" not in feature.group(0)
    assert '<td class="ai-opt num"><span class="ai-unpriced">unpriced</span></td>' in feature.group(0)  # average
    assert DailyUsageSummary.objects.filter(provider="nowhere").exists()
    assert AIProviderPricing.objects.count() == 2
