"""GraphQL API: dashboard queries and batch ingestion over the whole HTTP stack (Django's test client, session
login, middleware, Strawberry validation and execution, JSON), each against bare SQL doing the same work.

- `costTimeline`, 90 days, daily, grouped by provider, against the sum of one GROUP BY over the daily summary table
  (its SQL floor) and Strawberry executing the same answer computed beforehand (no SQL, HTTP or JSON): the answer
  has a few thousand fields, which no SQL statement has to complete;
- `topUsers`, 30 days, against one GROUP BY … ORDER BY … LIMIT over the per-user daily summaries;
- `recordUsage` with 1,000 events, against a bare psycopg COPY of the same 1,000 rows.
Targets: `costTimeline` within 2.5x of its floor, `topUsers` within 1.8x of its floor, both flat from 1 million to
10 million logs. A query and its floors are timed in turn, run after run, so a shared machine's drift hits them alike.

    python -m bench.graphql [--logs 1000000] [--reuse]     (--logs 10000000 for the large run)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from bench.common import machine, setup_django, with_every_permission, write_section

USERS = 2000
DAYS = 365
QUERY_RUNS = 200
BATCHES = 20
TIMELINE = """{ costTimeline(range: {days: 90}, granularity: DAY, groupBy: [PROVIDER]) {
  source rows { period provider metrics { requests failedRequests cost inputTokens outputTokens } } } }"""
TIMELINE_FLOOR = """
SELECT date, provider, SUM(total_requests), SUM(failed_requests), SUM(total_cost), SUM(input_tokens),
       SUM(output_tokens)
FROM analytics_dailyusagesummary WHERE date >= %s AND date < %s GROUP BY date, provider ORDER BY date, provider
"""
TOP_USERS = """{ topUsers(range: {days: 30}, limit: 10) {
  source rows { userId metrics { requests cost inputTokens outputTokens } } } }"""
TOP_USERS_FLOOR = """
SELECT user_id, SUM(total_requests), SUM(total_cost), SUM(input_tokens), SUM(output_tokens)
FROM analytics_useraicostsummary WHERE date >= %s AND date < %s
GROUP BY user_id ORDER BY SUM(total_cost) DESC, user_id LIMIT 10
"""
RECORD = """mutation($events: [UsageEventInput!]!) { recordUsage(events: $events) { outcome } }"""
COPY = """COPY usage_aiusagelog (occurred_at, recorded_at, user_id, feature, provider, model, session_id,
    input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, reasoning_tokens, total_cost, pricing_id,
    latency_ms, status, error_message, event_id) FROM STDIN"""


def prepare_data(logs: int, reuse: bool) -> int:
    """Logs over a year, rolled up, then a tail of ten minutes' logs written since the last rollup (what the
    queries must add from the raw logs, as they do between scheduled runs). Returns the tail's size."""
    from django.db import connection
    from django.utils import timezone

    from analytics.models import RollupRun
    from analytics.rollup import run_rollup
    from bench.rollup import ensure_users, generate, reset
    from usage.catalog import load_catalog, sync_catalog
    from usage.models import AIProviderPricing, AIUsageLog

    if not AIProviderPricing.objects.exists():
        sync_catalog(load_catalog())
    now = timezone.now()
    ensure_users(USERS)
    last = RollupRun.objects.filter(outcome="succeeded").order_by("-started_at").first()
    settled = AIUsageLog.objects.filter(recorded_at__lt=last.started_at) if last else AIUsageLog.objects.none()
    with connection.cursor() as cursor:
        if reuse and last and settled.count() == logs:
            AIUsageLog.objects.filter(recorded_at__gte=last.started_at).delete()  # earlier tails and batches
            # Their dead rows and index entries would slow the tail's reads (a plain VACUUM skips the indexes when
            # few pages have dead rows).
            cursor.execute("VACUUM (ANALYZE, INDEX_CLEANUP ON) usage_aiusagelog")
        else:
            reset(cursor)
            generate(cursor, logs, now - timedelta(hours=2), now - timedelta(hours=1), DAYS * 86400, USERS)
            run_rollup()
            cursor.execute("ANALYZE")
        tail = max(1, logs // (DAYS * 24 * 6))
        generate(cursor, tail, timezone.now(), timezone.now(), 600, USERS)
    return tail


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def timings(action: Callable[[], Any], runs: int) -> dict[str, float]:
    return summary(samples_in_turn({"action": action}, runs)["action"])


def samples_in_turn(actions: dict[str, Callable[[], Any]], runs: int) -> dict[str, list[float]]:
    """Each action's times, the actions taken in turn within each run (after 5 warm-up runs)."""
    samples: dict[str, list[float]] = {name: [] for name in actions}
    for run in range(5 + runs):
        for name, action in actions.items():
            started = time.perf_counter()
            action()
            if run >= 5:
                samples[name].append(time.perf_counter() - started)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    median, p95 = statistics.median(samples), percentile(samples, 0.95)
    return {"median_ms": round(median * 1000, 2), "p95_ms": round(p95 * 1000, 2)}


def graphql_client() -> Any:
    from django.contrib.auth import get_user_model
    from django.test import Client

    staff, _ = get_user_model().objects.get_or_create(username="bench-staff", defaults={"is_staff": True})
    with_every_permission(staff)
    client = Client(HTTP_HOST="localhost")
    client.force_login(staff)
    return client


def post(client: Any, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = client.post("/graphql/", {"query": query, "variables": variables or {}}, content_type="application/json")
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body["data"]


def floor_query(url: str, sql: str, days: int) -> Callable[[], Any]:
    import psycopg

    from usage import periods

    conn = psycopg.connect(url, autocommit=True)
    today = periods.today()
    params = (today - timedelta(days=days - 1), today + timedelta(days=1))
    return lambda: conn.execute(sql, params, prepare=True).fetchall()


def query_figures(url: str) -> dict[str, Any]:
    from django.contrib.auth import get_user_model

    client = graphql_client()
    timeline = post(client, TIMELINE)["costTimeline"]
    top = post(client, TOP_USERS)["topUsers"]
    floor_top = floor_query(url, TOP_USERS_FLOOR, 30)()
    # The same answer as the floor: the ten users and their cost, to the last digit.
    assert [(int(r["userId"]), Decimal(r["metrics"]["cost"])) for r in top["rows"]] == [
        (row[0], row[2]) for row in floor_top
    ]
    assert len(timeline["rows"]) == len(floor_query(url, TIMELINE_FLOOR, 90)())
    figures: dict[str, Any] = {"timeline_source": timeline["source"], "top_users_source": top["source"]}
    from bench.graphql_execution import executor

    staff = get_user_model().objects.get(username="bench-staff")
    timeline_runs = samples_in_turn(
        {
            "timeline": lambda: post(client, TIMELINE),
            "timeline_execution": executor(TIMELINE, staff),
            "timeline_floor": floor_query(url, TIMELINE_FLOOR, 90),
        },
        QUERY_RUNS,
    )
    # costTimeline's floor: in each run, its SQL floor plus Strawberry executing its answer.
    timeline_runs["timeline_sum_floor"] = [
        sql + execution
        for sql, execution in zip(timeline_runs["timeline_floor"], timeline_runs["timeline_execution"], strict=True)
    ]
    top_runs = samples_in_turn(
        {"top_users": lambda: post(client, TOP_USERS), "top_users_floor": floor_query(url, TOP_USERS_FLOOR, 30)},
        QUERY_RUNS,
    )
    return figures | {name: summary(samples) for name, samples in (timeline_runs | top_runs).items()}


def batch_events(user_ids: list[int]) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    return [
        {"eventId": uuid.uuid4().hex, "userId": str(user_ids[n % len(user_ids)]), "feature": "chat",
         "provider": "openai", "model": "gpt-4o-2024-08-06", "inputTokens": 1200, "outputTokens": 300,
         "cachedInputTokens": 200, "latencyMs": 850, "occurredAt": now}
        for n in range(1000)
    ]  # fmt: skip


def copy_rows(events: list[dict[str, Any]], pricing_id: int) -> list[tuple[Any, ...]]:
    """The rows recordUsage writes for these events, priced as it prices them."""
    now = datetime.now(UTC)
    return [
        (datetime.fromisoformat(e["occurredAt"]), now, int(e["userId"]), "chat", "openai", "gpt-4o-2024-08-06", "",
         1200, 300, 200, 0, 0, Decimal("0.0052500"), pricing_id, 850, "success", "", e["eventId"])
        for e in events
    ]  # fmt: skip


def ingest_figures(url: str) -> dict[str, Any]:
    import psycopg
    from django.contrib.auth import get_user_model

    from usage.pricing import find_price

    client = graphql_client()
    user_ids = list(get_user_model().objects.filter(username__startswith="bench").values_list("pk", flat=True)[:200])
    price = find_price("openai", "gpt-4o", datetime.now(UTC))
    assert price is not None
    ours, floor = [], []
    with psycopg.connect(url, autocommit=True) as conn:
        post(client, RECORD, {"events": batch_events(user_ids)})  # warm
        for _ in range(BATCHES):  # interleaved so drift on a shared machine hits both sides alike
            events = batch_events(user_ids)
            started = time.perf_counter()
            outcomes = post(client, RECORD, {"events": events})["recordUsage"]
            ours.append(time.perf_counter() - started)
            assert [o["outcome"] for o in outcomes] == ["RECORDED"] * 1000
            rows = copy_rows(batch_events(user_ids), price.pk)
            started = time.perf_counter()
            with conn.cursor() as cursor, cursor.copy(COPY) as copy:
                for row in rows:
                    copy.write_row(row)
            floor.append(time.perf_counter() - started)
    return {"record_ms": round(statistics.median(ours) * 1000, 1), "copy_ms": round(statistics.median(floor) * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--logs", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep the logs when their count already matches")
    args = parser.parse_args()
    url = setup_django()
    from django.test.utils import setup_test_environment

    setup_test_environment()  # the test client, with outgoing mail kept in memory
    tail = prepare_data(args.logs, args.reuse)
    result = {"logs": args.logs, "tail": tail, **query_figures(url), **ingest_figures(url)}
    print(json.dumps(result))
    report(result)


def ratio(ours: float, floor: float) -> str:
    return f"{ours / floor:.2f}x"


def row(label: str, ours: dict[str, float], floor: dict[str, float] | None, target: str = "") -> str:
    compared = (
        f"{floor['median_ms']} ms | {floor['p95_ms']} ms | {ratio(ours['median_ms'], floor['median_ms'])}"
        if floor
        else " | | "
    )
    return f"| {label} | {ours['median_ms']} ms | {ours['p95_ms']} ms | {compared} | {target} |"


def report(r: dict[str, Any]) -> None:
    logs = f"{r['logs']:,}"
    rows = "\n".join([
        row("`costTimeline` 90 days, daily, by provider", r["timeline"], r["timeline_sum_floor"], "at most 2.5x"),
        row("its SQL floor (one GROUP BY over the daily summary)", r["timeline_floor"], None),
        row("Strawberry executing its answer computed beforehand (no SQL or HTTP)", r["timeline_execution"], None),
        row("`topUsers` 30 days", r["top_users"], r["top_users_floor"], "at most 1.8x"),
        f"| `recordUsage`, 1,000 events | {r['record_ms']} ms | | {r['copy_ms']} ms (COPY) | | "
        f"{ratio(r['record_ms'], r['copy_ms'])} | reported |",
    ])  # fmt: skip
    write_section(
        f"graphql-{r['logs']}",
        f"""
## GraphQL API, {logs} logs over a year (issue: GraphQL analytics API)

{logs} synthetic logs over {DAYS} days for {USERS:,} users, rolled up, plus {r["tail"]:,} logs written in the last ten
minutes and not yet rolled up (the tail every query adds from the raw logs); measured on
{datetime.now(UTC):%Y-%m-%d}, machine: {machine()}. Each query is a POST to `/graphql/` through Django's test client
as a logged-in staff user (middleware, Strawberry parsing, validation, limits, execution, JSON), {QUERY_RUNS} runs
after 5 warm-up runs, taken in turn with its floors. The floor of `topUsers` is the bare SQL that reads the same
answer from the summary tables over one prepared psycopg connection; the floor of `costTimeline` is, run by run,
the sum of that SQL floor and Strawberry executing the same answer computed beforehand (the two rows under it).
Sources: costTimeline `{r["timeline_source"]}`, topUsers `{r["top_users_source"]}`. Flat from 1 million to 10 million
logs: see "Reading the GraphQL figures".

| measure | median | p95 | floor median | floor p95 | ratio (median) | target |
|---|---|---|---|---|---|---|
{rows}
""",
    )


if __name__ == "__main__":
    main()
