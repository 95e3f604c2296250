"""Named dashboard queries over GraphQL: exact figures, scoping, paging, staff-only fields and pinned query counts."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analytics.cau import refresh_cau_snapshots
from analytics.rollup import run_rollup
from tests.helpers.people import user_with
from tests.test_graphql_api import error_messages, gql, logged_in
from usage import periods
from usage.models import AIUsageLog
from usage.recording import record_usage
from usage.tracker import AIUsageTracker


@pytest.fixture
def staff(db: None) -> Any:
    return user_with("sam", "view_ai_analytics")


@pytest.fixture
def calls(alice: Any, bob: Any, make_price: Any) -> None:
    """This week and the week before, for two users, two providers and three models."""
    make_price(input_price=Decimal("1"))
    make_price(provider="beta", model="beta-big", input_price=Decimal("10"))
    make_price(provider="beta", model="beta-small", input_price=Decimal("0.5"))
    now = timezone.now()
    for days_ago, user, provider, model, tokens, session in [
        (0, alice, "acme", "acme-1", 1_000_000, "s1"), (1, alice, "beta", "beta-big", 100_000, "s1"),
        (2, bob, "beta", "beta-small", 2_000_000, "s2"), (3, bob, "acme", "acme-1", 500_000, None),
        (8, alice, "acme", "acme-1", 1_500_000, None), (9, bob, "beta", "beta-big", 50_000, None),
    ]:  # fmt: skip
        record_usage(user=user, feature="chat", provider=provider, model=model, input_tokens=tokens,
                     occurred_at=now - timedelta(days=days_ago, minutes=1), session_id=session)  # fmt: skip
    run_rollup()


SUMMARY = """{ usageSummary(range: {days: 7}) {
  totals { cost requests activeUsers } previous { cost requests }
  costChangePercent requestsChangePercent
  byProvider { provider metrics { cost } } byModel { model metrics { cost } } } }"""


def money(value: str) -> Decimal:
    return Decimal(value)


def test_usage_summary_compares_with_the_previous_period(staff: Any, calls: None) -> None:
    answer = gql(logged_in(staff), SUMMARY)["data"]["usageSummary"]
    assert (money(answer["totals"]["cost"]), answer["totals"]["requests"], answer["totals"]["activeUsers"]) == (
        Decimal("3.5"), 4, 2
    )  # fmt: skip
    assert (money(answer["previous"]["cost"]), answer["previous"]["requests"]) == (Decimal("2"), 2)
    assert (answer["costChangePercent"], answer["requestsChangePercent"]) == ("75", "100")
    assert [(p["provider"], money(p["metrics"]["cost"])) for p in answer["byProvider"]] == [
        ("beta", Decimal("2")), ("acme", Decimal("1.5"))
    ]  # fmt: skip
    assert [(m["model"], money(m["metrics"]["cost"])) for m in answer["byModel"]] == [
        ("acme-1", Decimal("1.5")), ("beta-big", Decimal("1")), ("beta-small", Decimal("1"))
    ]  # fmt: skip


def test_a_user_sees_only_their_own_summary(alice: Any, calls: None) -> None:
    answer = gql(logged_in(alice), SUMMARY)["data"]["usageSummary"]
    assert (money(answer["totals"]["cost"]), answer["totals"]["requests"], answer["totals"]["activeUsers"]) == (
        Decimal("2"), 2, 1
    )  # fmt: skip


def test_token_usage_with_a_session_filter(alice: Any, calls: None) -> None:
    query = """{ tokenUsage(range: {days: 7}, filter: {sessionId: "s1"}) {
      totals { inputTokens } byModel { model metrics { inputTokens } } daily { period metrics { inputTokens } } } }"""
    answer = gql(logged_in(alice), query)["data"]["tokenUsage"]
    assert answer["totals"] == {"inputTokens": "1100000"}
    assert answer["byModel"] == [
        {"model": "acme-1", "metrics": {"inputTokens": "1000000"}},
        {"model": "beta-big", "metrics": {"inputTokens": "100000"}},
    ]
    assert len(answer["daily"]) == 7  # one row per day, the days without calls as zeros
    assert sorted(int(d["metrics"]["inputTokens"]) for d in answer["daily"]) == [0, 0, 0, 0, 0, 100000, 1000000]


def test_costliest_requests_and_log_pages(alice: Any, staff: Any, calls: None) -> None:
    costliest = "{ costliestRequests(range: {days: 30}, limit: 3) { model userId cost } }"
    rows = gql(logged_in(staff), costliest)["data"]["costliestRequests"]
    assert [(r["model"], money(r["cost"])) for r in rows] == [
        ("acme-1", Decimal("1.5")), ("acme-1", Decimal("1")), ("beta-big", Decimal("1"))
    ]  # fmt: skip
    mine = gql(logged_in(alice), costliest)["data"]["costliestRequests"]
    assert {r["userId"] for r in mine} == {str(alice.pk)} and len(mine) == 3
    page_query = "{ usageLogs(range: {days: 30}, pagination: {offset: 4, limit: 5}) { totalCount results { model } } }"
    page = gql(logged_in(staff), page_query)
    assert page["data"]["usageLogs"] == {"totalCount": 6, "results": [{"model": "acme-1"}, {"model": "beta-big"}]}
    refused = gql(logged_in(staff), "{ usageLogs(pagination: {limit: 101}) { totalCount } }")
    assert error_messages(refused) == ["pagination.limit: must be between 1 and 100, got 101"]


def test_cau_and_its_trend_are_for_staff_and_agree_with_the_tracker(alice: Any, staff: Any, calls: None) -> None:
    answer = gql(logged_in(staff), "{ cau(days: 30) { cau activeUsers totalCost } }")["data"]["cau"]
    live = AIUsageTracker.get_cau(days=30)
    assert (money(answer["cau"]), answer["activeUsers"], money(answer["totalCost"])) == (
        live["cau"], live["active_users"], live["total_cost"]
    )  # fmt: skip
    refresh_cau_snapshots()
    trend = gql(logged_in(staff), "{ cauTrend(windowDays: 7, range: {days: 2}) { windowDays cau activeUsers } }")
    assert [p["activeUsers"] for p in trend["data"]["cauTrend"]] == [2, 2]
    assert error_messages(gql(logged_in(staff), "{ cauTrend(windowDays: 5) { cau } }")) == [
        "windowDays: must be 7, 30 or 90, got 5"
    ]
    assert error_messages(gql(logged_in(alice), "{ cau { cau } }")) == [
        "cau needs the usage.view_ai_analytics permission (to read every user's usage)"
    ]


def test_pricing_lists_versions_in_force_or_all(alice: Any, make_price: Any) -> None:
    old = make_price(model="acme-9", input_price=Decimal("3"), effective_until=timezone.now() - timedelta(days=1))
    make_price(model="acme-9", input_price=Decimal("2.5"), effective_from=old.effective_until)
    query = '{ pricing(model: "acme-9"%s) { inputPrice effectiveUntil } }'
    now = gql(logged_in(alice), query % "")["data"]["pricing"]
    assert [money(p["inputPrice"]) for p in now] == [Decimal("2.5")]
    history = gql(logged_in(alice), query % ", includeHistory: true")["data"]["pricing"]
    assert [money(p["inputPrice"]) for p in history] == [Decimal("2.5"), Decimal("3")]


def test_system_status_reports_database_broker_and_last_rollup(staff: Any, calls: None) -> None:
    answer = gql(logged_in(staff), "{ systemStatus { database broker langsmith lastRollup { outcome } } }")
    assert answer["data"]["systemStatus"] == {
        "database": "ok",
        "broker": "ok",
        "langsmith": "not configured: LANGSMITH_API_KEY is not set",
        "lastRollup": {"outcome": "succeeded"},
    }


def test_query_counts_do_not_grow_with_the_data(staff: Any, calls: None, alice: Any) -> None:
    client = logged_in(staff)
    queries = {
        SUMMARY: None,
        "{ usageLogs(range: {days: 30}, pagination: {limit: 100}) { totalCount results { model userId } } }": None,
        "{ usage(groupBy: [USER, MODEL], granularity: DAY) { rows { userId metrics { cost activeUsers } } } }": None,
        "{ costTimeline(range: {days: 90}, groupBy: [PROVIDER]) { rows { period provider metrics { cost } } } }": None,
    }
    for query in queries:
        with CaptureQueriesContext(connection) as before:
            gql(client, query)
        queries[query] = len(before)
    for n in range(30):
        record_usage(user=alice, feature=f"f{n}", provider="acme", model="acme-1", input_tokens=n)
    for query, count in queries.items():
        with CaptureQueriesContext(connection) as after:
            gql(client, query)
        assert len(after) == count, query
    postgresql = connection.vendor == "postgresql"
    timeout = 2 if postgresql else 0  # the statement timeout's SET and RESET
    # session, user and permission lookups included. PostgreSQL reads the unrolled and stale hours in one statement
    # (elsewhere two) and sums a timeline's days, hours and logs in one statement (elsewhere three).
    expected = [19, 6, 8, 7] if postgresql else [23, 6, 9, 10]
    assert list(queries.values()) == [count + timeout for count in expected]


def test_the_readme_example_query_answers_for_alice(alice: Any, calls: None) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    query = re.search(r"```graphql\n(.*?)```", readme, re.S)
    assert query is not None
    answer = gql(logged_in(alice), query.group(1))
    assert "errors" not in answer
    assert answer["data"]["mySpend"]["status"] == "OK"
    assert {row["userId"] for row in answer["data"]["usage"]["rows"]} <= {str(alice.pk)}


def test_top_users_rank_the_unrolled_tail_too(staff: Any, calls: None, alice: Any, bob: Any) -> None:
    AIUsageLog.objects.update(recorded_at=timezone.now() - timedelta(days=1))  # all rolled up long ago
    # Settled days: alice 2.00 (2 calls), bob 1.50 (2 calls). A call just now puts bob ahead.
    record_usage(user=bob, feature="chat", provider="acme", model="acme-1", input_tokens=1_000_000)
    query = "{ topUsers(range: {days: 7}, limit: %d, orderBy: %s) { rows { userId metrics { cost requests } } } }"
    rows = gql(logged_in(staff), query % (1, "COST"))["data"]["topUsers"]["rows"]
    assert [(r["userId"], money(r["metrics"]["cost"]), r["metrics"]["requests"]) for r in rows] == [
        (str(bob.pk), Decimal("2.5"), 3)
    ]
    rows = gql(logged_in(staff), query % (2, "REQUESTS"))["data"]["topUsers"]["rows"]
    assert [(r["userId"], r["metrics"]["requests"]) for r in rows] == [(str(bob.pk), 3), (str(alice.pk), 2)]
    with_totals = "{ topUsers(range: {days: 7}, limit: 1) { totals { cost requests } rows { userId } } }"
    answer = gql(logged_in(staff), with_totals)["data"]["topUsers"]
    assert (money(answer["totals"]["cost"]), answer["totals"]["requests"]) == (Decimal("4.5"), 5)
    assert answer["rows"] == [{"userId": str(bob.pk)}]


def test_top_users_sum_settled_days_clean_hours_and_the_tail_per_user(staff: Any, alice: Any, bob: Any,
                                                                        make_price: Any) -> None:  # fmt: skip
    """Each user's rank comes from all three sources at once: alice's settled day alone, bob's rolled-up hour of a
    day that is unsettled again (a late event) plus his late event, and carol's late event alone."""
    carol = get_user_model().objects.create_user("carol", "carol@example.com", "pw")
    make_price(input_price=Decimal("1"))  # 1 USD a million input tokens
    zone = periods.reporting_zone()
    yesterday = datetime.combine(periods.today() - timedelta(days=1), time(0), tzinfo=zone)
    record_usage(user=alice, feature="chat", provider="acme", model="acme-1", input_tokens=3_000_000,
                 occurred_at=yesterday - timedelta(days=2, hours=-12))  # fmt: skip
    record_usage(user=bob, feature="chat", provider="acme", model="acme-1", input_tokens=2_000_000,
                 occurred_at=yesterday + timedelta(hours=10))  # fmt: skip
    run_rollup()
    AIUsageLog.objects.update(recorded_at=timezone.now() - timedelta(days=1))  # all rolled up long ago
    for user, tokens in [(bob, 1_500_000), (carol, 2_500_000)]:  # late events for yesterday evening
        record_usage(user=user, feature="chat", provider="acme", model="acme-1", input_tokens=tokens,
                     occurred_at=yesterday + timedelta(hours=20))  # fmt: skip
    query = (
        "{ topUsers(range: {days: 7}, limit: %d, orderBy: COST) { source rows { userId metrics { cost requests } } } }"
    )
    answer = gql(logged_in(staff), query % 3)["data"]["topUsers"]
    assert answer["source"] == "summaries+logs"
    assert [(r["userId"], money(r["metrics"]["cost"]), r["metrics"]["requests"]) for r in answer["rows"]] == [
        (str(bob.pk), Decimal("3.5"), 2), (str(alice.pk), Decimal("3"), 1), (str(carol.pk), Decimal("2.5"), 1)
    ]  # fmt: skip
    # Neither of bob's parts alone (2.00 in the bucket, 1.50 in the tail) beats alice's 3.00: only their sum does.
    rows = gql(logged_in(staff), query % 1)["data"]["topUsers"]["rows"]
    assert [(r["userId"], money(r["metrics"]["cost"])) for r in rows] == [(str(bob.pk), Decimal("3.5"))]
