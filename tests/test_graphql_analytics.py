"""The usage slice over GraphQL equals the same aggregate computed straight from the logs, in any zone, with the
not-yet-rolled-up tail included, and scoped to the caller."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from analytics.rollup import run_rollup
from tests.helpers.people import user_with
from tests.test_graphql_api import error_messages, gql, logged_in
from tests.test_rollup import START, users, write_random_logs  # noqa: F401 (users is a fixture)
from usage.models import AIUsageLog

SLICE = """query($range: TimeRange, $filter: UsageFilter, $groupBy: [Dimension!], $granularity: Granularity) {
  usage(range: $range, filter: $filter, groupBy: $groupBy, granularity: $granularity, limit: 10000) {
    source totals { requests cost inputTokens activeUsers unpricedRequests }
    rows { period provider model feature userId status
           metrics { requests failedRequests cost inputTokens outputTokens activeUsers unpricedRequests } }
  }
}"""


def raw_slice(zone: str, keys: list[str], logs: Any = None) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """The answer computed in Python from every log: per (local day, *keys)."""
    groups: dict[tuple[Any, ...], list[AIUsageLog]] = defaultdict(list)
    for log in logs if logs is not None else AIUsageLog.objects.all():
        day = log.occurred_at.astimezone(ZoneInfo(zone)).date().isoformat()
        groups[(day, *(str(getattr(log, k)) if getattr(log, k) is not None else None for k in keys))].append(log)
    return {
        key: (
            len(rows),
            sum(r.status != "success" for r in rows),
            sum((r.total_cost for r in rows if r.total_cost is not None), Decimal(0)),
            sum(r.input_tokens for r in rows),
            sum(r.output_tokens for r in rows),
            len({r.user_id for r in rows if r.user_id is not None}),
            sum(r.total_cost is None for r in rows),
        )
        for key, rows in groups.items()
    }


def answered(answer: dict[str, Any], keys: list[str]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    names = {"user_id": "userId"}
    result = {}
    for row in answer["rows"]:
        m = row["metrics"]
        key = (row["period"][:10], *(row[names.get(k, k)] for k in keys))
        result[key] = (m["requests"], m["failedRequests"], Decimal(m["cost"]), int(m["inputTokens"]),
                       int(m["outputTokens"]), m["activeUsers"], m["unpricedRequests"])  # fmt: skip
    return result


def whole_range(zone: str) -> dict[str, Any]:
    first, last = (START - timedelta(days=1)).date(), (START + timedelta(days=17)).date()
    return {"start": first.isoformat(), "end": last.isoformat(), "timeZone": zone}


@pytest.mark.parametrize(("zone", "source"), [("America/New_York", "summaries+logs"), ("Asia/Kolkata", "logs")])
def test_slices_equal_raw_aggregates_with_the_tail_included(users: list[Any], zone: str, source: str) -> None:  # noqa: F811
    staff = user_with("root", "view_ai_analytics")
    write_random_logs(users, 300, seed=21)
    run_rollup()
    AIUsageLog.objects.update(recorded_at=START)  # long rolled up: only the calls below form the tail
    write_random_logs(users, 25, seed=22)
    keys = ["provider", "model", "feature", "user_id"]
    variables = {"range": whole_range(zone), "groupBy": ["PROVIDER", "MODEL", "FEATURE", "USER"], "granularity": "DAY"}
    answer = gql(logged_in(staff), SLICE, variables)["data"]["usage"]
    assert answer["source"] == source
    assert answered(answer, keys) == raw_slice(zone, keys)
    logs = list(AIUsageLog.objects.all())
    totals = answer["totals"]
    assert Decimal(totals.pop("cost")) == sum((log.total_cost for log in logs if log.total_cost), Decimal(0))
    assert totals == {
        "requests": len(logs),
        "inputTokens": str(sum(log.input_tokens for log in logs)),
        "activeUsers": 3,
        "unpricedRequests": sum(log.total_cost is None for log in logs),
    }


def test_a_status_filter_reads_the_logs_and_a_user_sees_only_their_own(users: list[Any]) -> None:  # noqa: F811
    write_random_logs(users, 200, seed=23)
    run_rollup()
    ann = users[0]
    variables = {"range": whole_range("UTC"), "granularity": "DAY", "filter": {"statuses": ["error", "timeout"]}}
    answer = gql(logged_in(ann), SLICE, variables)["data"]["usage"]
    mine = AIUsageLog.objects.filter(user=ann, status__in=["error", "timeout"])
    assert answer["source"] == "logs"
    assert answered(answer, []) == raw_slice("UTC", [], mine)
    others = {**variables, "filter": {"userIds": [str(users[1].pk)]}}
    refused = gql(logged_in(ann), SLICE, others)
    assert (refused["data"], error_messages(refused)) == (None, [
        "filter.userIds: reading other users needs the usage.view_ai_analytics permission (to read every user's usage)"
    ])  # fmt: skip


def test_bad_arguments_get_clear_errors(alice: Any) -> None:
    client = logged_in(alice)
    cases = {
        '{ usage(range: {timeZone: "Mars/Base"}) { source } }':
            "range.timeZone: 'Mars/Base' is not an IANA time zone such as Europe/Berlin",
        '{ usage(range: {start: "2026-03-02", end: "2026-03-01"}) { source } }':
            "range.end: 2026-03-01 is before start 2026-03-02",
        "{ usage(limit: 0) { source } }": "limit: must be between 1 and 10000, got 0",
        "{ usage(range: {days: 0}) { source } }": "range.days: must be between 1 and 3660, got 0",
        "{ topUsers { source } }": "topUsers needs the usage.view_ai_analytics permission (to read every user's usage)",
    }  # fmt: skip
    for query, message in cases.items():
        assert error_messages(gql(client, query)) == [message], query
    assert error_messages(gql(Client(), "{ usage { source } }")) == [
        "authentication required: log in, or send 'Authorization: Bearer <api key>'"
    ]


TIMELINE = """query($range: TimeRange, $granularity: Granularity!) {
  costTimeline(range: $range, granularity: $granularity, groupBy: [PROVIDER]) {
    source rows { period provider metrics { requests failedRequests cost inputTokens unpricedRequests } }
  }
}"""
TOP_USERS = """query($range: TimeRange) {
  topUsers(range: $range, limit: 10) { source rows { userId metrics { requests cost activeUsers } } }
}"""


def read_tables(queries: CaptureQueriesContext) -> set[str]:
    return {table for query in queries for table in re.findall(r'FROM "(\w+)"', query["sql"])}


def local_period(log: AIUsageLog, zone: ZoneInfo, granularity: str) -> str:
    day = log.occurred_at.astimezone(zone).date()
    start = {"DAY": day, "WEEK": day - timedelta(days=day.weekday()), "MONTH": day.replace(day=1)}[granularity]
    return start.isoformat()


def raw_timeline(zone: ZoneInfo, granularity: str) -> dict[tuple[str, str], tuple[Any, ...]]:
    groups: dict[tuple[str, str], list[AIUsageLog]] = defaultdict(list)
    for log in AIUsageLog.objects.all():
        groups[(local_period(log, zone, granularity), log.provider)].append(log)
    return {
        key: (len(rows), sum(r.status != "success" for r in rows),
              sum((r.total_cost for r in rows if r.total_cost is not None), Decimal(0)),
              sum(r.input_tokens for r in rows), sum(r.total_cost is None for r in rows))
        for key, rows in groups.items()
    }  # fmt: skip


def timeline_answer(answer: dict[str, Any]) -> dict[tuple[str, str], tuple[Any, ...]]:
    """The rows with calls (the zero rows that fill the gaps are checked by `periods_shown`)."""
    return {
        (row["period"][:10], row["provider"]): (
            row["metrics"]["requests"], row["metrics"]["failedRequests"], Decimal(row["metrics"]["cost"]),
            int(row["metrics"]["inputTokens"]), row["metrics"]["unpricedRequests"])
        for row in answer["rows"] if row["metrics"]["requests"]
    }  # fmt: skip


def periods_shown(answer: dict[str, Any]) -> dict[str, list[str]]:
    """Each provider's periods, in the order shown."""
    shown: dict[str, list[str]] = defaultdict(list)
    for row in answer["rows"]:
        shown[row["provider"]].append(row["period"][:10])
    return dict(shown)


def every_period(first: date, last: date, granularity: str) -> list[str]:
    starts = {
        "DAY": lambda d: d,
        "WEEK": lambda d: d - timedelta(days=d.weekday()),
        "MONTH": lambda d: d.replace(day=1),
    }
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return sorted({starts[granularity](day).isoformat() for day in days})


def raw_top_users() -> list[tuple[str, int, Decimal]]:
    spent: dict[int, list[AIUsageLog]] = defaultdict(list)
    for log in AIUsageLog.objects.filter(user__isnull=False):
        spent[log.user_id].append(log)
    rows = [(str(user), len(logs), sum((g.total_cost or Decimal(0) for g in logs), Decimal(0)))
            for user, logs in spent.items()]  # fmt: skip
    return sorted(rows, key=lambda row: row[2], reverse=True)


@pytest.mark.parametrize("granularity", ["DAY", "WEEK", "MONTH"])
def test_reporting_zone_slices_read_the_daily_summaries_and_equal_the_logs(
    users: list[Any],  # noqa: F811
    granularity: str,
    settings: Any,
) -> None:
    settings.ANALYTICS_TIME_ZONE = "America/New_York"
    zone = ZoneInfo("America/New_York")
    staff = user_with("root", "view_ai_analytics")
    write_random_logs(users, 300, seed=31)
    run_rollup()
    AIUsageLog.objects.update(recorded_at=START)  # long rolled up: only the calls below form the tail
    write_random_logs(users, 25, seed=32)
    client = logged_in(staff)
    variables = {"range": whole_range("America/New_York"), "granularity": granularity}
    with CaptureQueriesContext(connection) as timeline_queries:
        answer = gql(client, TIMELINE, variables)["data"]["costTimeline"]
    assert answer["source"] == "summaries+logs"  # daily rows for settled days, hours and logs for the rest
    assert timeline_answer(answer) == raw_timeline(zone, granularity)
    days = whole_range("America/New_York")
    periods = every_period(date.fromisoformat(days["start"]), date.fromisoformat(days["end"]), granularity)
    assert periods_shown(answer) == {provider: periods for provider in {p for _, p in raw_timeline(zone, granularity)}}
    assert read_tables(timeline_queries) >= {"analytics_dailyusagesummary", "analytics_usagehourlybucket"}
    with CaptureQueriesContext(connection) as top_queries:
        top = gql(client, TOP_USERS, {"range": whole_range("America/New_York")})["data"]["topUsers"]
    assert "analytics_useraicostsummary" in read_tables(top_queries)
    shown = [(r["userId"], r["metrics"]["requests"], Decimal(r["metrics"]["cost"])) for r in top["rows"]]
    assert shown == raw_top_users()  # calls on nobody's behalf are nobody's: no null user among the top
    assert [r["metrics"]["activeUsers"] for r in top["rows"]] == [1, 1, 1]
    run_rollup()
    AIUsageLog.objects.update(recorded_at=START)  # the tail rolled up and out of the next run's rescan window
    settled = gql(client, TIMELINE, variables)["data"]["costTimeline"]
    assert settled["source"] == "summaries"
    assert timeline_answer(settled) == raw_timeline(zone, granularity)
