"""Rollup: a full rollup of N logs (hourly buckets, then daily and monthly summaries) against the single SQL
statement that computes and stores the same daily aggregate straight from the logs (target: at most 1.5x), and an
incremental run after 10,000 new logs on top of them (target: under 1 second, flat as history grows).

    python -m bench.rollup [--logs 1000000] [--new 10000]      (--logs 10000000 for the large run)
"""

from __future__ import annotations

import argparse
import json
import time

from bench.common import machine, setup_django, write_section

USERS = 2000
DAYS = 90
# Synthetic logs with realistic locality: each user mostly uses one provider, model and feature, with some variety.
GENERATE_LOGS = """
INSERT INTO usage_aiusagelog (occurred_at, recorded_at, user_id, feature, provider, model, session_id,
    input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, reasoning_tokens, total_cost, pricing_id,
    latency_ms, status, error_message, request_meta, response_meta, event_id)
SELECT %(end)s::timestamptz - ((g * 0.6180339887) %% 1) * %(span)s * interval '1 second', %(recorded)s, u.id,
       (ARRAY['chat','search','summary','agent'])[1 + (u.id + (g %% 7 = 0)::int) %% 4],
       (ARRAY['openai','anthropic','google'])[1 + u.id %% 3],
       (ARRAY['gpt-4o','gpt-4o-mini','claude-sonnet-4','claude-haiku','gemini-2.5-pro','gemini-flash'])
           [1 + (u.id + (g %% 5 = 0)::int) %% 6],
       '', 1000 + g %% 3000, 100 + g %% 700, (g %% 3000) / 4, 0, (g %% 700) / 5,
       CASE WHEN g %% 50 = 0 THEN NULL ELSE ((1000 + g %% 3000) * 0.0000025 + (100 + g %% 700) * 0.00001) END,
       NULL, 200 + g %% 4000,
       CASE WHEN g %% 40 = 0 THEN 'error' WHEN g %% 97 = 0 THEN 'timeout' ELSE 'success' END,
       '', NULL, NULL, NULL
FROM generate_series(1, %(count)s) AS g
CROSS JOIN LATERAL (SELECT %(first_user)s + (g::bigint * 7919) %% %(users)s AS id) u
"""
# Every summary measure as an aggregate over the logs, in the summary tables' column order.
LOG_MEASURES = """COUNT(*), COUNT(*) FILTER (WHERE status = 'success'),
       COUNT(*) FILTER (WHERE status <> 'success'), COUNT(*) FILTER (WHERE status = 'error'),
       COUNT(*) FILTER (WHERE status = 'timeout'), COUNT(*) FILTER (WHERE status = 'rate_limited'),
       COUNT(*) FILTER (WHERE status = 'cancelled'), COUNT(*) FILTER (WHERE total_cost IS NULL),
       SUM(input_tokens), SUM(output_tokens), SUM(cached_input_tokens), SUM(cache_write_tokens),
       SUM(reasoning_tokens), COALESCE(SUM(total_cost), 0), COALESCE(SUM(latency_ms), 0), COUNT(latency_ms),
       MAX(latency_ms)"""
FLOOR = f"""
INSERT INTO bench_daily_floor
SELECT (occurred_at AT TIME ZONE 'UTC')::date, user_id, {LOG_MEASURES}
FROM usage_aiusagelog WHERE user_id IS NOT NULL GROUP BY 1, 2
"""

# The hourly grain alone, as bare as it gets: the same GROUP BY the rollup's first step runs, stored in a table with
# no index, key or id. Not a floor the target names; it shows what the required grain costs before any summary.
HOURLY_GRAIN = f"""
INSERT INTO bench_hourly_floor
SELECT date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', user_id, provider, model, feature,
       {LOG_MEASURES}
FROM usage_aiusagelog GROUP BY 1, 2, 3, 4, 5
"""
HOURLY_COLUMNS = (
    "hour, user_id, provider, model, feature, total_requests, successful_requests, failed_requests, error_requests, "
    "timeout_requests, rate_limited_requests, cancelled_requests, unpriced_requests, input_tokens, output_tokens, "
    "cached_input_tokens, cache_write_tokens, reasoning_tokens, total_cost, latency_sum_ms, latency_count, "
    "latency_max_ms"
)


def reset(cursor) -> None:  # type: ignore[no-untyped-def]
    cursor.execute(
        "TRUNCATE usage_aiusagelog, usage_userdailyspend, usage_stalehour, analytics_usagehourlybucket, "
        "analytics_dailyusagesummary, "
        "analytics_useraicostsummary, analytics_usermonthlyaicostsummary, analytics_rolluprun"
    )
    cursor.execute("DROP TABLE IF EXISTS bench_daily_floor")
    cursor.execute("CREATE TABLE bench_daily_floor (LIKE analytics_useraicostsummary)")
    cursor.execute("ALTER TABLE bench_daily_floor DROP COLUMN id")
    cursor.execute("DROP TABLE IF EXISTS bench_hourly_floor")
    columns_only = f"SELECT {HOURLY_COLUMNS} FROM analytics_usagehourlybucket LIMIT 0"
    cursor.execute(f"CREATE TABLE bench_hourly_floor AS {columns_only}")


def ensure_users(count: int) -> None:
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    have = user_model.objects.filter(username__startswith="bench").count()
    # Contiguous ids, so the generator can pick a user by arithmetic.
    user_model.objects.bulk_create([user_model(username=f"bench{n}") for n in range(have, count)], batch_size=1000)


def generate(cursor, count: int, recorded, end, span_seconds: float, users: int) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    cursor.execute("SELECT MIN(id) FROM auth_user WHERE username LIKE 'bench%%'")
    first_user = cursor.fetchone()[0]
    params = {"count": count, "recorded": recorded, "end": end, "span": span_seconds, "users": users,
              "first_user": first_user}  # fmt: skip
    cursor.execute(GENERATE_LOGS, params)
    cursor.execute("ANALYZE usage_aiusagelog")
    return time.perf_counter() - started


def floor_statement(cursor, statement: str = FLOOR) -> None:  # type: ignore[no-untyped-def]
    """The floor in a transaction with the same work_mem the rollup gives itself."""
    from analytics.rollup import ROLLUP_WORK_MEM

    cursor.execute("BEGIN")
    cursor.execute(f"SET LOCAL work_mem = '{ROLLUP_WORK_MEM}'")
    cursor.execute(statement)
    cursor.execute("COMMIT")


def timed(action) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--logs", type=int, default=1_000_000)
    parser.add_argument("--new", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=USERS, help="fewer users make denser hourly buckets")
    args = parser.parse_args()
    setup_django()
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from analytics.rollup import run_rollup

    now = timezone.now()
    ensure_users(args.users)
    with connection.cursor() as cursor:
        reset(cursor)
        made = generate(cursor, args.logs, now - timedelta(hours=2), now - timedelta(hours=1), DAYS * 86400, args.users)
        floor = timed(lambda: floor_statement(cursor))
        cursor.execute("SELECT COUNT(*) FROM bench_daily_floor")
        floor_rows = cursor.fetchone()[0]
        hourly_grain = timed(lambda: floor_statement(cursor, HOURLY_GRAIN))
        cursor.execute("DROP TABLE bench_hourly_floor")
    full_run = None

    def full() -> None:
        nonlocal full_run
        full_run = run_rollup()

    full_seconds = timed(full)
    with connection.cursor() as cursor:
        generate(
            cursor, args.new, timezone.now(), timezone.now(), 3600, args.users
        )  # the newest hour, written just now
    incremental_run = None

    def incremental() -> None:
        nonlocal incremental_run
        incremental_run = run_rollup()

    incremental_seconds = timed(incremental)
    assert full_run is not None and incremental_run is not None
    from analytics.models import UsageHourlyBucket, UserAICostSummary

    assert full_run.days and UserAICostSummary.objects.count() >= floor_rows
    result = {
        "logs": args.logs,
        "generate_s": round(made, 1),
        "floor_s": round(floor, 2),
        "full_s": round(full_seconds, 2),
        "hourly_grain_s": round(hourly_grain, 2),
        "hourly_grain_ratio": round(hourly_grain / floor, 2),
        "ratio": round(full_seconds / floor, 2),
        "daily_rows": floor_rows,
        "incremental_s": round(incremental_seconds, 3),
        "incremental_hours": incremental_run.hours,
        "users": args.users,
        "buckets": UsageHourlyBucket.objects.count(),
    }
    print(json.dumps(result))
    report(result, args.new)


def report(result: dict[str, float], new: int) -> None:
    logs = f"{result['logs']:,}"
    write_section(
        f"rollup-{result['logs']}-{result['users']}",
        f"""
## Rollup, {logs} logs, {result["users"]:,} users (issue: Celery batch jobs)

{logs} synthetic logs over {DAYS} days for {result["users"]:,} users on PostgreSQL, giving {result["buckets"]:,}
hourly buckets; machine: {machine()}.
The floor is one `INSERT INTO … SELECT … GROUP BY day, user` computing and storing the same daily aggregate
({result["daily_rows"]:,} rows) straight from the logs. The full rollup builds the hourly buckets (UTC hour, user,
provider, model, feature) from the logs, the daily summaries from the buckets and the monthly ones from the days,
in one transaction.

| measure | time | floor | ratio | target |
|---|---|---|---|---|
| full rollup of {logs} logs | {result["full_s"]} s | {result["floor_s"]} s | {result["ratio"]}x | at most 1.5x |
| the hourly grain alone, bare (one `INSERT … SELECT … GROUP BY hour, user, provider, model, feature` into a table \
with no index) | {result["hourly_grain_s"]} s | {result["floor_s"]} s | {result["hourly_grain_ratio"]}x | |
| incremental run after {new:,} new logs | {result["incremental_s"]} s | | | under 1 s |

The incremental run recomputed {result["incremental_hours"]} hour(s): it finds the logs written since the previous
run through the index on write time, so its cost follows the new logs, not the {logs} already rolled up.
""",
    )


if __name__ == "__main__":
    main()
