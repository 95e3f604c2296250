"""Limits on hostile callers: the query cost budget, the statement timeout and the rate limits."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bench.graphql import TIMELINE, TOP_USERS
from bench.load import ATTACK, READS
from graphql_api.limits.cost import query_cost
from graphql_api.limits.ratelimit import local_counts
from tests.conftest import requires_postgres
from tests.helpers.people import user_with
from tests.test_graphql_analytics import SLICE, whole_range
from tests.test_graphql_named import SUMMARY
from usage.apikeys import create_api_key
from usage.models import AIUsageLog
from usage.tracker import record_usage

BUDGET = 100_000
ATTACK_REFUSAL = (
    "this query would cost 32,940,000 units, over the budget of 100,000: the costliest field, t0: tokenUsage, "
    "reads 3,660 days of raw logs 3 times (1,098,000 units). Narrow the range, remove the status/session filter "
    "(it makes a query read raw logs), filter prices by provider or model, or ask for fewer fields per request."
)
USAGE = "{ usage(range: {days: 7}) { totals { requests } } }"
FRAGMENTED = "{ a: usage(range: {days: 2}) { source } ...F } fragment F on Query { b: usage(range: {days: 3}) { end } }"
RECORD = "mutation($events: [UsageEventInput!]!) { recordUsage(events: $events) { outcome } }"


def post(client: Client, query: str, variables: dict[str, Any] | None = None, key: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post(
        "/graphql/", {"query": query, "variables": variables or {}}, content_type="application/json", headers=headers
    )


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_key(user: Any) -> str:
    return create_api_key(user, "tests")[1]


def events(n: int) -> list[dict[str, Any]]:
    return [{"feature": "chat", "provider": "acme", "model": "acme-1", "inputTokens": 10} for _ in range(n)]


# --- the query cost budget ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "variables", "cost"),
    [
        ("{ costTimeline(range: {days: 90}, granularity: DAY, groupBy: [PROVIDER]) { source } }", None, 95),
        ("{ usageSummary { totals { cost } } }", None, 36),
        ("{ usage(range: {days: 30}, granularity: HOUR) { source } }", None, 725),
        ("{ usage(range: {days: 30}, groupBy: [USER]) { source } }", None, 725),
        ("{ usage(range: {period: ALL}) { source } }", None, 3665),
        ('{ usage(range: {start: "2020-01-01", end: "2020-01-31"}) { source } }', None, 31),
        ('{ usage(range: {days: 1, timeZone: "Asia/Kolkata"}) { source } }', None, 100),
        ('{ tokenUsage(range: {days: 3660}, filter: {statuses: ["error"]}) { daily { period } } }', None, 1_098_000),
        ("query($f: UsageFilter) { usage(filter: $f) { source } }", {"f": {"sessionId": "s1"}}, 700),
        ("query($r: TimeRange = {days: 10}) { usageLogs(range: $r) { totalCount } }", None, 100),
        (FRAGMENTED, None, 15),
        ("{ cauTrend(windowDays: 7) { cau } topUsers { rows { userId } } }", None, 95 + 12),
        ("{ health { ok } mySpend { status } }", None, 0),
        (
            '{ a: pricing { model } b: pricing(includeHistory: true) { model } c: pricing(provider: "x") { model } }',
            None,
            3000 + 6000 + 10,
        ),
    ],
)
def test_the_cost_of_a_query_is_days_times_slices_times_the_source_read(
    query: str, variables: dict[str, Any] | None, cost: int
) -> None:
    assert query_cost(query, variables) == cost


def test_attack_3_is_refused_before_any_sql_runs(alice: Any) -> None:
    record_usage(user=alice, feature="chat", provider="acme", model="acme-1", input_tokens=5, status="error")
    key = api_key(alice)
    with CaptureQueriesContext(connection) as queries:
        response = post(Client(), ATTACK, key=key)
    assert response.status_code == 200
    assert response.json() == {
        "data": None,
        "errors": [{"message": ATTACK_REFUSAL, "extensions": {"code": "QUERY_TOO_COSTLY", "budget": BUDGET}}],
    }
    touched = [q["sql"] for q in queries if re.search(r"usage_aiusagelog|analytics_|statement_timeout", q["sql"])]
    assert touched == []


def test_the_normal_dashboard_queries_stay_well_within_the_budget(staff_user: Any) -> None:
    readme = (Path(settings.BASE_DIR) / "README.md").read_text()
    readme_query = re.search(r"```graphql\n(.*?)```", readme, re.S)
    assert readme_query is not None
    dashboards = [
        (TIMELINE, None), (TOP_USERS, None), *((query, None) for query in READS.values()), (SUMMARY, None),
        (readme_query.group(1), None),
        (SLICE, {"range": whole_range("UTC"), "granularity": "DAY", "filter": {"statuses": ["error", "timeout"]}}),
    ]  # fmt: skip
    client = logged_in(staff_user)
    for query, variables in dashboards:
        assert query_cost(query, variables) <= BUDGET // 20, query
        answer = post(client, query, variables).json()
        assert "errors" not in answer, (query, answer)


@pytest.fixture
def staff_user(db: None) -> Any:

    return user_with("sam", "view_ai_analytics", is_staff=True)


# --- the statement timeout ---------------------------------------------------------------------------------------


def statement_timeout() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        return str(cursor.fetchone()[0])


@requires_postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # restores what migrate left, for the tests after it
def test_the_statement_timeout_stops_a_slow_query_and_the_next_request_works(alice: Any, settings: Any) -> None:
    settings.API_STATEMENT_TIMEOUT_MS = 300
    for status in ("success", "success", "error"):
        record_usage(user=alice, feature="chat", provider="acme", model="acme-1", input_tokens=5, status=status)
    client = logged_in(alice)
    query = """{ a: usage(filter: {statuses: ["success"]}) { totals { requests } }
                 b: usage(filter: {statuses: ["error"]}) { totals { requests } } }"""
    before = statement_timeout()
    message = "the query took longer than 0.3 s and was stopped; narrow the range or remove the status/session filter"
    db = connection.settings_dict
    # Another session holds the log table: the status-filtered slices wait on it until the timeout stops them.
    with psycopg.connect(host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"]) as holder:
        holder.execute("LOCK TABLE usage_aiusagelog IN ACCESS EXCLUSIVE MODE")
        stopped = post(client, query).json()
        holder.rollback()
    # The fields are non-null, so the first stopped field ends the whole request: `b` never runs.
    assert stopped["data"] is None
    assert [(e["message"], e["path"], e["extensions"]) for e in stopped["errors"]] == [
        (message, ["a"], {"code": "QUERY_TIMEOUT"})
    ]
    assert statement_timeout() == before  # reset: the connection goes back to its default for the next user
    answered = post(client, query).json()
    assert answered == {"data": {"a": {"totals": {"requests": 2}}, "b": {"totals": {"requests": 1}}}}
    assert statement_timeout() == before


@requires_postgres
def test_a_request_runs_under_the_statement_timeout(alice: Any, settings: Any) -> None:
    settings.API_STATEMENT_TIMEOUT_MS = 1234
    with CaptureQueriesContext(connection) as queries:
        post(logged_in(alice), USAGE)
    seen = [q["sql"] for q in queries if "statement_timeout" in q["sql"]]
    assert seen == ["SET statement_timeout = 1234", "RESET statement_timeout"]


# --- rate limits --------------------------------------------------------------------------------------------------


@pytest.fixture(params=["redis", "local"])
def backend(request: Any, settings: Any) -> str:
    """Counting in Redis (when the run has one) or in this process's memory."""
    if request.param == "redis" and not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL (the CI's second pass sets it)")
    if request.param == "local":
        settings.REDIS_URL = ""
    settings.API_RATE_LIMIT_WINDOW_SECONDS = 60
    settings.API_RATE_LIMIT_READS = 3
    settings.API_RATE_LIMIT_WRITES = 5
    settings.API_RATE_LIMIT_ANONYMOUS = 2
    return str(request.param)


def assert_refused(response: Any, message: str) -> None:
    """A 429 with Retry-After, and the GraphQL error saying which limit and when to retry."""
    assert response.status_code == 429
    retry = int(response["Retry-After"])
    assert 1 <= retry <= 60
    assert response.json() == {
        "data": None,
        "errors": [{"message": f"{message}; retry in {retry} s", "extensions": {"code": "RATE_LIMITED",
                                                                                "retryAfter": retry}}],
    }  # fmt: skip


def test_reads_are_limited_per_api_key_and_per_user_independently(backend: str, alice: Any, bob: Any) -> None:
    first, second = api_key(alice), api_key(alice)
    alice_session, bob_session = logged_in(alice), logged_in(bob)
    for _ in range(3):
        assert post(Client(), USAGE, key=first).status_code == 200
    if backend == "redis":
        local_counts.clear()  # the counts are in Redis: forgetting this process's memory changes nothing
    assert_refused(post(Client(), USAGE, key=first), "rate limit: at most 3 requests per 60 s for this API key")
    respaced = post(Client(), USAGE, key=f"  {first}")  # the same key however the header is spaced
    assert_refused(respaced, "rate limit: at most 3 requests per 60 s for this API key")
    for _ in range(3):
        assert post(Client(), USAGE, key=second).json() == {"data": {"usage": {"totals": {"requests": 0}}}}
        assert post(alice_session, USAGE).status_code == 200
    assert_refused(post(alice_session, USAGE), "rate limit: at most 3 requests per 60 s for this user")
    assert post(bob_session, USAGE).status_code == 200


def test_writes_count_events_and_a_refused_batch_records_nothing(backend: str, alice: Any, make_price: Any) -> None:
    make_price()
    key = api_key(alice)
    assert post(Client(), RECORD, {"events": events(3)}, key=key).status_code == 200
    assert_refused(
        post(Client(), RECORD, {"events": events(3)}, key=key),
        "rate limit: at most 5 recorded events per 60 s for this API key (this request: 3)",
    )
    assert AIUsageLog.objects.count() == 3
    answer = post(Client(), RECORD, {"events": events(2)}, key=key).json()
    assert answer == {"data": {"recordUsage": [{"outcome": "RECORDED"}, {"outcome": "RECORDED"}]}}
    assert AIUsageLog.objects.count() == 5
    for _ in range(3):  # reads have their own allowance
        assert post(Client(), USAGE, key=key).json() == {"data": {"usage": {"totals": {"requests": 5}}}}


def test_anonymous_requests_are_limited_per_address(backend: str, db: None) -> None:
    for _ in range(2):
        assert post(Client(), USAGE).status_code == 401  # answered with the authentication error
    assert_refused(post(Client(), USAGE), "rate limit: at most 2 requests per 60 s from this address")
    assert post(Client(REMOTE_ADDR="10.0.0.2"), USAGE).status_code == 401


def test_with_redis_down_requests_are_served_and_counted_in_the_process(
    alice: Any, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    settings.API_RATE_LIMIT_READS = 2
    key = api_key(alice)
    with caplog.at_level(logging.WARNING, logger="graphql_api.limits.ratelimit"):
        answers = [post(Client(), USAGE, key=key) for _ in range(2)]
    assert [a.json() for a in answers] == [{"data": {"usage": {"totals": {"requests": 0}}}}] * 2
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == ["rate limits: Redis unavailable"]
    assert_refused(post(Client(), USAGE, key=key), "rate limit: at most 2 requests per 60 s for this API key")


# --- what a first round of attacks still got through ------------------------------------------------------------


def test_thirty_aliased_price_lists_are_over_the_budget(alice: Any) -> None:
    query = "{ " + " ".join(f"p{n}: pricing(includeHistory: true) {{ model }}" for n in range(30)) + " }"
    answer = post(Client(), query, key=api_key(alice)).json()
    assert answer["data"] is None
    assert answer["errors"][0]["message"] == (
        "this query would cost 180,000 units, over the budget of 100,000: the costliest field, p0: pricing, reads "
        "every model's prices (6,000 units). Narrow the range, remove the status/session filter (it makes a query "
        "read raw logs), filter prices by provider or model, or ask for fewer fields per request."
    )


def test_aliased_record_usage_carries_at_most_a_thousand_events_in_all(alice: Any, make_price: Any) -> None:
    make_price()
    aliases = " ".join(f"r{n}: recordUsage(events: $e{n}) {{ outcome }}" for n in range(3))
    declared = ", ".join(f"$e{n}: [UsageEventInput!]!" for n in range(3))
    query = f"mutation({declared}) {{ {aliases} }}"
    answer = post(Client(), query, {f"e{n}": events(400) for n in range(3)}, key=api_key(alice)).json()
    assert answer == {"data": None, "errors": [{"message": (
        "recordUsage: at most 1,000 events per request (over all aliases), got 1,200")}]}  # fmt: skip
    assert AIUsageLog.objects.count() == 0


def test_query_cost_units_are_rationed_per_window(alice: Any, settings: Any) -> None:
    settings.API_RATE_LIMIT_COST = 250
    key = api_key(alice)
    year = "{ usage(range: {days: 100}) { source } }"  # 100 days of summaries and the tail: 105 units
    assert [post(Client(), year, key=key).status_code for _ in range(3)] == [200, 200, 429]
    refused = post(Client(), year, key=key)
    assert refused.json()["errors"][0]["message"].startswith(
        "rate limit: at most 250 query cost units per 60 s for this API key (this request: 105); retry in "
    )
