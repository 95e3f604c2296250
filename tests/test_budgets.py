"""Spend limits, status thresholds, reporting-zone days, enforcement and CAU."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from analytics.models import UserAICostSummary
from usage.budgets import SpendStatus, spend_status, status_for
from usage.models import AIUsageLog, UserSpendLimit
from usage.tracker import AIUsageTracker, BudgetExceeded, InvalidUsage, record_usage


def spend(user: Any, dollars: str, at: datetime | None = None) -> None:
    """Record a call costing exactly `dollars` (the acme-1 input price is 1 USD per million tokens)."""
    tokens = int(Decimal(dollars) * 1_000_000)
    record_usage(user=user, feature="f", provider="acme", model="acme-1", input_tokens=tokens, occurred_at=at)


@pytest.fixture
def dollar_price(make_price: Any) -> Any:
    return make_price(input_price=Decimal(1), output_price=Decimal(1))


@pytest.mark.parametrize(
    ("spent", "status"),
    [("0", "OK"), ("7.99", "OK"), ("8.00", "WARNING"), ("9.99", "WARNING"), ("10.00", "EXCEEDED"), ("12", "EXCEEDED")],
)
def test_status_thresholds(spent: str, status: str) -> None:
    assert status_for(Decimal(spent), Decimal("10.00")) == status


def test_zero_limit_blocks_everything() -> None:
    assert status_for(Decimal(0), Decimal(0)) == SpendStatus.EXCEEDED


@override_settings(AI_DEFAULT_DAILY_LIMIT=Decimal("5.00"), AI_DEFAULT_MONTHLY_LIMIT=Decimal("50.00"))
def test_spend_status_reports_both_periods_with_defaults_and_overrides(alice: Any, bob: Any, dollar_price: Any) -> None:
    spend(alice, "4.25")
    spend(alice, "0.000001")
    status = spend_status(alice.pk)
    assert (status.daily.spend, status.daily.limit, status.daily.percent) == (
        Decimal("4.250001"),
        Decimal("5.00"),
        Decimal("85.00"),
    )
    assert (status.daily.status, status.monthly.status, status.status) == ("WARNING", "OK", "WARNING")
    assert status.monthly.spend == Decimal("4.250001") and status.monthly.remaining == Decimal("45.749999")
    UserSpendLimit.objects.create(user=alice, daily_limit=Decimal("4.00"))
    assert spend_status(alice.pk).daily.status == "EXCEEDED"
    assert spend_status(alice.pk).monthly.limit == Decimal("50.00")
    assert spend_status(bob.pk).daily.spend == Decimal(0)


def test_status_read_does_not_depend_on_history_size(alice: Any, dollar_price: Any) -> None:
    """Two queries (limits, then one aggregate over at most 31 counter rows), however many logs exist."""
    for day in range(1, 28):
        spend(alice, "0.01", datetime(2026, 2, day, 12, tzinfo=UTC))
    with CaptureQueriesContext(connection) as queries:
        status = spend_status(alice.pk, date(2026, 2, 27))
    assert len(queries) == 2
    assert "usage_aiusagelog" not in " ".join(q["sql"] for q in queries.captured_queries)
    assert (status.daily.spend, status.monthly.spend) == (Decimal("0.01"), Decimal("0.27"))


@override_settings(ANALYTICS_TIME_ZONE="America/New_York")
def test_days_and_months_follow_the_reporting_time_zone(alice: Any, dollar_price: Any) -> None:
    # 03:30 UTC on 1 March is still 28 February in New York.
    spend(alice, "1", datetime(2026, 3, 1, 3, 30, tzinfo=UTC))
    spend(alice, "2", datetime(2026, 3, 1, 5, 30, tzinfo=UTC))
    feb = spend_status(alice.pk, date(2026, 2, 28))
    mar = spend_status(alice.pk, date(2026, 3, 1))
    assert (feb.daily.spend, feb.monthly.spend) == (Decimal(1), Decimal(1))
    assert (mar.daily.spend, mar.monthly.spend) == (Decimal(2), Decimal(2))


@override_settings(AI_DEFAULT_DAILY_LIMIT=Decimal("1.00"))
def test_enforcement_refuses_an_exceeded_user_before_the_block_runs(alice: Any, dollar_price: Any) -> None:
    spend(alice, "0.99")
    with AIUsageTracker.track_ai_request(
        user=alice, feature="f", provider="acme", model="acme-1", enforce_budget=True
    ) as t:
        t.set_tokens(input_tokens=10_000)  # takes the user to 1.00: EXCEEDED from now on
    ran = []
    with (
        pytest.raises(BudgetExceeded, match=r"exceeded the daily AI spend limit: 1\.00 of 1\.00 USD"),
        AIUsageTracker.track_ai_request(user=alice, feature="f", provider="acme", model="acme-1", enforce_budget=True),
    ):
        ran.append(True)
    assert ran == [] and AIUsageLog.objects.count() == 2
    with AIUsageTracker.track_ai_request(user=alice, feature="f", provider="acme", model="acme-1") as t:
        t.set_tokens(input_tokens=1)  # without enforcement the call goes ahead and is recorded
    assert AIUsageLog.objects.count() == 3


def test_seed_budget_api(alice: Any, dollar_price: Any) -> None:
    spend(alice, "30.5")
    assert AIUsageTracker.get_user_monthly_cost(alice) == Decimal("30.5")
    assert AIUsageTracker.check_user_budget(alice, monthly_budget=Decimal("50.00")) == (
        False,
        Decimal("30.5"),
        Decimal("19.5"),
    )
    assert AIUsageTracker.check_user_budget(alice, monthly_budget=Decimal("30.5")) == (
        True,
        Decimal("30.5"),
        Decimal(0),
    )
    with override_settings(AI_DEFAULT_MONTHLY_LIMIT=Decimal("25")):
        assert AIUsageTracker.check_user_budget(alice) == (True, Decimal("30.5"), Decimal(0))


def test_cau_over_days_and_date_ranges(alice: Any, bob: Any, dollar_price: Any) -> None:
    today = timezone.now()
    spend(alice, "3", today)
    spend(bob, "1.5", today)
    record_usage(user=bob, feature="f", provider="acme", model="unpriced-model", input_tokens=1, occurred_at=today)
    record_usage(user=None, feature="f", provider="acme", model="acme-1", input_tokens=5_000_000, occurred_at=today)
    assert AIUsageTracker.get_cau(days=30) == {"cau": Decimal("2.25"), "active_users": 2, "total_cost": Decimal("4.5")}
    spend(alice, "9", datetime(2025, 12, 15, tzinfo=UTC))
    december = AIUsageTracker.get_cau(start_date=date(2025, 12, 1), end_date=date(2025, 12, 31))
    assert december == {"cau": Decimal(9), "active_users": 1, "total_cost": Decimal(9)}
    assert AIUsageTracker.get_cau(start_date=date(2024, 1, 1), end_date=date(2024, 1, 31)) == {
        "cau": Decimal(0),
        "active_users": 0,
        "total_cost": Decimal(0),
    }
    with pytest.raises(InvalidUsage, match="end_date: 2025-11-01 is before start_date 2025-12-01"):
        AIUsageTracker.get_cau(start_date=date(2025, 12, 1), end_date=date(2025, 11, 1))
    with pytest.raises(InvalidUsage, match="days: must be a whole number of at least 1, got 0"):
        AIUsageTracker.get_cau(days=0)


def test_top_users_by_cost_from_daily_summaries(alice: Any, bob: Any) -> None:
    today = timezone.now().date()
    UserAICostSummary.objects.create(date=today, user=alice, total_cost=Decimal("1.25"), total_requests=3)
    UserAICostSummary.objects.create(date=today, user=bob, total_cost=Decimal("2.5"), total_requests=1)
    UserAICostSummary.objects.create(date=date(2000, 1, 1), user=alice, total_cost=Decimal("100"), total_requests=1)
    top = UserAICostSummary.get_top_users_by_cost(days=30, limit=10)
    assert [(u["user__username"], u["total_cost"], u["total_requests"]) for u in top] == [
        ("bob", Decimal("2.5"), 1),
        ("alice", Decimal("1.25"), 3),
    ]
    assert [u["user__email"] for u in UserAICostSummary.get_top_users_by_cost(days=30, limit=1)] == ["bob@example.com"]


def test_rebuilt_counters_equal_the_live_ones(alice: Any, bob: Any, dollar_price: Any) -> None:
    from io import StringIO

    from django.core.management import call_command

    from usage.models import UserDailySpend

    spend(alice, "1.5", datetime(2026, 1, 31, 23, 59, tzinfo=UTC))
    spend(alice, "0.25", datetime(2026, 2, 1, 0, 1, tzinfo=UTC))
    spend(bob, "2", datetime(2026, 2, 1, 0, 1, tzinfo=UTC))
    record_usage(
        user=bob,
        feature="f",
        provider="acme",
        model="nope",
        input_tokens=3,
        occurred_at=datetime(2026, 2, 1, tzinfo=UTC),
    )
    fields = ("user__username", "day", "cost", "requests", "unpriced_requests")
    live = list(UserDailySpend.objects.order_by("user__username", "day").values_list(*fields))
    call_command("rebuild_spend_counters", stdout=StringIO())
    assert list(UserDailySpend.objects.order_by("user__username", "day").values_list(*fields)) == live
    assert live == [
        ("alice", date(2026, 1, 31), Decimal("1.5"), 1, 0),
        ("alice", date(2026, 2, 1), Decimal("0.25"), 1, 0),
        ("bob", date(2026, 2, 1), Decimal("2"), 2, 1),
    ]
