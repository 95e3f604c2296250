"""Model-backed GraphQL lists: usage logs, price versions, spend limits, spend alerts and rollup runs, with their
filters, ordering, pagination, permissions and a constant number of queries however many rows they answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analytics.models import RollupRun
from graphql_api.limits.cost import query_cost
from tests.helpers.people import user_with
from tests.test_graphql_api import error_messages, gql, logged_in
from usage.models import AIProviderPricing, AIUsageLog, SpendAlert, UserSpendLimit

DENIED_VIEW = "needs the usage.view_ai_analytics permission (to read every user's usage)"


def log(user: Any, minutes_ago: int, cost: str | None, **fields: Any) -> AIUsageLog:
    values: dict[str, Any] = {"feature": "chat", "provider": "acme", "model": "acme-1", "input_tokens": 100}
    values.update(fields)
    return AIUsageLog.objects.create(
        user=user, occurred_at=timezone.now() - timedelta(minutes=minutes_ago),
        total_cost=None if cost is None else Decimal(cost), **values,
    )  # fmt: skip


def test_pricing_filters(alice: Any, make_price: Any) -> None:
    make_price("acme", "acme-1")
    make_price("acme", "acme-2", input_price=Decimal("3.5"))
    make_price("zeta", "z-1")
    answer = gql(
        logged_in(alice),
        '{ pricing(filters: {provider: {exact: "acme"}}, ordering: [{inputPrice: DESC}]) { model inputPrice } }',
    )
    assert answer == {
        "data": {"pricing": [{"model": "acme-2", "inputPrice": "3.5"}, {"model": "acme-1", "inputPrice": "2"}]}
    }


LOGS = """{ usageLogs(range: {days: 2}%s) { totalCount pageInfo { offset limit }
  results { id model cost inputTokens userId user { id username email } } } }"""


def test_usage_logs_pages_with_exact_values_and_users(alice: Any, bob: Any) -> None:
    analyst = user_with("ana", "view_ai_analytics")
    older = log(alice, 30, "0.000123456789012345")
    newer = log(bob, 10, None, model="acme-2")
    answer = gql(logged_in(analyst), LOGS % ", pagination: {offset: 0, limit: 1}")
    assert answer == {"data": {"usageLogs": {"totalCount": 2, "pageInfo": {"offset": 0, "limit": 1}, "results": [
        {"id": str(newer.pk), "model": "acme-2", "cost": None, "inputTokens": "100", "userId": str(bob.pk),
         "user": {"id": str(bob.pk), "username": "bob", "email": "bob@example.com"}},
    ]}}}  # fmt: skip
    second = gql(logged_in(analyst), LOGS % ", pagination: {offset: 1, limit: 1}")["data"]["usageLogs"]["results"]
    assert [(row["id"], row["cost"]) for row in second] == [(str(older.pk), "0.000123456789012345")]


def test_usage_logs_are_the_callers_own_and_hide_other_emails(alice: Any, bob: Any) -> None:
    mine = log(alice, 5, "1")
    log(bob, 5, "2")
    rows = gql(logged_in(alice), LOGS % "")["data"]["usageLogs"]
    assert rows["totalCount"] == 1
    assert rows["results"][0]["id"] == str(mine.pk)
    assert rows["results"][0]["user"] == {"id": str(alice.pk), "username": "alice", "email": "alice@example.com"}
    analyst = user_with("ana", "view_ai_analytics")
    bobs = gql(logged_in(bob), LOGS % "")["data"]["usageLogs"]["results"]
    assert [row["user"]["email"] for row in bobs] == ["bob@example.com"]
    assert gql(logged_in(analyst), LOGS % "")["data"]["usageLogs"]["totalCount"] == 2


def test_usage_logs_filter_naming_another_user_is_refused(alice: Any, bob: Any) -> None:
    log(bob, 5, "2")
    query = LOGS % ', filters: {userIds: ["%s"]}' % bob.pk
    answer = gql(logged_in(alice), query)
    assert error_messages(answer) == [f"filters.userIds: reading other users {DENIED_VIEW}"]
    assert answer["data"] is None
    own = gql(logged_in(alice), LOGS % ', filters: {userIds: ["%s"]}' % alice.pk)["data"]["usageLogs"]
    assert own["totalCount"] == 0
    bad = gql(logged_in(alice), LOGS % ', filters: {userIds: ["x"]}')
    assert error_messages(bad) == ["filters.userIds: must be user ids"]


def test_usage_logs_filters_and_ordering(alice: Any) -> None:
    cheap = log(alice, 30, "0.5", provider="acme")
    dear = log(alice, 20, "3", provider="acme", model="acme-2")
    log(alice, 10, "9", provider="zeta")
    unpriced = log(alice, 5, None, provider="acme")
    query = """{ usageLogs(range: {days: 2}, filters: {provider: {exact: "acme"}, cost: {gte: "0.5"}},
                 ordering: [{cost: DESC}]) { totalCount results { id } } }"""
    answer = gql(logged_in(alice), query)["data"]["usageLogs"]
    assert answer == {"totalCount": 2, "results": [{"id": str(dear.pk)}, {"id": str(cheap.pk)}]}
    nulls = gql(logged_in(alice), "{ usageLogs(filters: {cost: {isNull: true}}) { results { id } } }")
    assert nulls["data"]["usageLogs"]["results"] == [{"id": str(unpriced.pk)}]
    old_filter = gql(logged_in(alice), '{ usageLogs(filter: {models: ["acme-2"]}) { totalCount items { id } } }')
    assert old_filter["data"]["usageLogs"] == {"totalCount": 1, "items": [{"id": str(dear.pk)}]}


@pytest.mark.parametrize(
    ("pagination", "message"),
    [
        ("{limit: 101}", "pagination.limit: must be between 1 and 100, got 101"),
        ("{limit: 0}", "pagination.limit: must be between 1 and 100, got 0"),
        ("{limit: -1}", "pagination.limit: must be between 1 and 100, got -1"),
        ("{offset: -1, limit: 5}", "pagination.offset: must not be negative, got -1"),
    ],
)
def test_page_bounds_are_errors_not_silent_caps(alice: Any, pagination: str, message: str) -> None:
    for field in ("usageLogs", "spendAlerts"):
        answer = gql(logged_in(alice), f"{{ {field}(pagination: {pagination}) {{ totalCount }} }}")
        assert error_messages(answer) == [message]


def test_costliest_requests_return_the_log_type_with_users(alice: Any, bob: Any) -> None:
    analyst = user_with("ana", "view_ai_analytics")
    log(alice, 5, "1")
    dear = log(bob, 5, "4")
    answer = gql(logged_in(analyst), "{ costliestRequests(limit: 1) { id cost user { username email } } }")
    assert answer == {"data": {"costliestRequests": [
        {"id": str(dear.pk), "cost": "4", "user": {"username": "bob", "email": "bob@example.com"}}
    ]}}  # fmt: skip
    assert error_messages(gql(logged_in(analyst), "{ costliestRequests(limit: 101) { id } }")) == [
        "limit: must be between 1 and 100, got 101"
    ]


def count_queries(client: Any, query: str) -> tuple[int, dict[str, Any]]:
    with CaptureQueriesContext(connection) as captured:
        answer = gql(client, query)
    assert "errors" not in answer, answer
    return len(captured), answer


LISTS = {
    "usageLogs": "{ usageLogs(range: {days: 2}) { totalCount results { id cost user { id username email } } } }",
    "costliestRequests": "{ costliestRequests(range: {days: 2}, limit: 100) { id user { username email } } }",
    "spendLimits": "{ spendLimits { totalCount results { id dailyLimit user { id username email } } } }",
    "spendAlerts": "{ spendAlerts { totalCount results { id sent threshold user { id username email } } } }",
    "rollupRuns": "{ rollupRuns { totalCount results { id outcome hours } } }",
    "pricing": "{ pricing(includeHistory: true) { model inputPrice } }",
}


def make_rows(n: int, offset: int) -> None:
    for i in range(offset, offset + n):
        user = user_with(f"u{i}", "view_ai_analytics")
        log(user, 5, "1")
        UserSpendLimit.objects.create(user=user, daily_limit=Decimal("5"), monthly_limit=None)
        SpendAlert.objects.create(user=user, period="day", period_start=datetime(2026, 1, 1, tzinfo=UTC).date(),
                                  threshold=80, spend=Decimal("4"), limit=Decimal("5"))  # fmt: skip
        RollupRun.objects.create(started_at=timezone.now(), outcome="succeeded")
        AIProviderPricing.objects.create(provider="acme", model=f"m{i}", input_price=Decimal("1"),
                                         output_price=Decimal("2"), effective_from=timezone.now())  # fmt: skip


@pytest.mark.parametrize("field", sorted(LISTS))
def test_each_list_answers_in_a_constant_number_of_queries(db: None, field: str) -> None:
    analyst = user_with("ana", "view_ai_analytics")
    client = logged_in(analyst)
    make_rows(2, 0)
    few, answer = count_queries(client, LISTS[field])
    make_rows(20, 2)
    many, answer = count_queries(client, LISTS[field])
    timeout = 2 if connection.vendor == "postgresql" else 0  # the statement timeout's SET and RESET
    expected = {"usageLogs": 6, "costliestRequests": 5, "spendLimits": 6, "spendAlerts": 6, "rollupRuns": 6,
                "pricing": 3}  # fmt: skip
    assert (few, many) == (expected[field] + timeout, expected[field] + timeout)
    rows = answer["data"][field]
    assert len(rows if isinstance(rows, list) else rows["results"]) == 22


@pytest.mark.parametrize("field", ["spendLimits", "rollupRuns"])
def test_lists_for_analysts_refuse_others_with_the_permission(alice: Any, field: str) -> None:
    answer = gql(logged_in(alice), f"{{ {field} {{ totalCount }} }}")
    assert error_messages(answer) == [f"{field} {DENIED_VIEW}"]
    assert answer["data"] is None


def test_spend_alerts_are_the_callers_own_and_naming_others_is_refused(alice: Any, bob: Any) -> None:
    day = datetime(2026, 3, 1, tzinfo=UTC).date()
    mine = SpendAlert.objects.create(user=alice, period="month", period_start=day, threshold=100,
                                     spend=Decimal("10.25"), limit=Decimal("10"),
                                     sent_at=timezone.now())  # fmt: skip
    SpendAlert.objects.create(user=bob, period="day", period_start=day, threshold=80, spend=Decimal("4"),
                              limit=Decimal("5"))  # fmt: skip
    query = (
        "{ spendAlerts { totalCount results { id period periodStart threshold spend limit sent user { username } } } }"
    )
    answer = gql(logged_in(alice), query)
    assert answer == {"data": {"spendAlerts": {"totalCount": 1, "results": [
        {"id": str(mine.pk), "period": "month", "periodStart": "2026-03-01", "threshold": 100,
         "spend": "10.25", "limit": "10", "sent": True, "user": {"username": "alice"}},
    ]}}}  # fmt: skip
    refused = gql(logged_in(alice), f'{{ spendAlerts(filters: {{userIds: ["{bob.pk}"]}}) {{ totalCount }} }}')
    assert error_messages(refused) == [f"filters.userIds: reading other users {DENIED_VIEW}"]
    analyst = user_with("ana", "view_ai_analytics")
    unsent = gql(
        logged_in(analyst), "{ spendAlerts(filters: {sentAt: {isNull: true}}) { results { user { username } } } }"
    )
    assert unsent["data"]["spendAlerts"]["results"] == [{"user": {"username": "bob"}}]


def test_spend_limits_and_rollup_runs_for_an_analyst(alice: Any, bob: Any) -> None:
    UserSpendLimit.objects.create(user=alice, daily_limit=Decimal("2.50"), monthly_limit=None)
    UserSpendLimit.objects.create(user=bob, daily_limit=None, monthly_limit=Decimal("100"))
    first = RollupRun.objects.create(started_at=datetime(2026, 3, 1, tzinfo=UTC), outcome="succeeded", hours=3)
    RollupRun.objects.create(started_at=datetime(2026, 3, 2, tzinfo=UTC), outcome="failed", error="boom")
    analyst = user_with("ana", "view_ai_analytics")
    limits = gql(
        logged_in(analyst),
        """{ spendLimits(ordering: [{dailyLimit: ASC_NULLS_LAST}])
        { totalCount results { dailyLimit monthlyLimit user { username email } } } }""",
    )
    assert limits["data"]["spendLimits"] == {"totalCount": 2, "results": [
        {"dailyLimit": "2.5", "monthlyLimit": None, "user": {"username": "alice", "email": "alice@example.com"}},
        {"dailyLimit": None, "monthlyLimit": "100", "user": {"username": "bob", "email": "bob@example.com"}},
    ]}  # fmt: skip
    runs = gql(logged_in(analyst), '{ rollupRuns(filters: {outcome: {exact: "succeeded"}}) { results { id hours } } }')
    assert runs["data"]["rollupRuns"]["results"] == [{"id": str(first.pk), "hours": 3}]
    latest = gql(logged_in(analyst), "{ rollupRuns(pagination: {limit: 1}) { totalCount results { error } } }")
    assert latest["data"]["rollupRuns"] == {"totalCount": 2, "results": [{"error": "boom"}]}


def test_each_page_of_a_list_costs_ten_units() -> None:
    assert [query_cost(f"{{ {name} {{ totalCount }} }}") for name in ("spendLimits", "spendAlerts", "rollupRuns")] == [
        10,
        10,
        10,
    ]
    assert query_cost("{ a: rollupRuns { totalCount } b: spendAlerts { totalCount } }") == 20
