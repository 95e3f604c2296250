"""Staff pages: each admin analytics page rendered through Django's whole stack (session, admin permission checks,
queries, template) against the bare SQL that reads the same figures, at 1 million logs (10 million with a flag).

Target: every page renders in well under a second at 1 million logs on PostgreSQL.

    python -m bench.admin_pages [--logs 1000000] [--reuse]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bench.common import machine, setup_django, write_section
from bench.graphql import DAYS, USERS, prepare_data, timings

RUNS = 30
WINDOW_FLOOR = """
SELECT date, provider, model, SUM(total_requests), SUM(failed_requests), SUM(total_cost), SUM(input_tokens),
       SUM(output_tokens), SUM(latency_sum_ms), SUM(latency_count), SUM(unpriced_requests)
FROM analytics_dailyusagesummary WHERE date >= %(first)s AND date < %(end)s GROUP BY date, provider, model
"""
USERS_FLOOR = """
SELECT u.id, u.username, u.email, COALESCE(SUM(s.cost), 0), COALESCE(SUM(s.cost) FILTER (WHERE s.day = %(today)s), 0)
FROM auth_user u LEFT JOIN usage_userdailyspend s ON s.user_id = u.id AND s.day >= %(month)s AND s.day <= %(today)s
WHERE u.is_active GROUP BY u.id
"""
LOGS_FLOOR = """
SELECT COUNT(*), SUM(total_cost), SUM(input_tokens), SUM(output_tokens), AVG(latency_ms), MAX(latency_ms)
FROM usage_aiusagelog WHERE occurred_at >= %(today_start)s;
"""
PAGES: list[tuple[str, str, str]] = [
    ("usage logs list, unfiltered", "/admin/usage/aiusagelog/", WINDOW_FLOOR),
    ("dashboard, 7 days", "/admin/ai-analytics/", WINDOW_FLOOR),
    ("dashboard, 90 days", "/admin/ai-analytics/?days=90", WINDOW_FLOOR),
    ("user spend (2,000 users, first page)", "/admin/ai-analytics/users/", USERS_FLOOR),
    ("user spend CSV (every user)", "/admin/ai-analytics/users/?format=csv", USERS_FLOOR),
    ("system metrics, 30 days", "/admin/ai-analytics/system/?days=30", WINDOW_FLOOR),
    (
        "usage logs list, today",
        "/admin/usage/aiusagelog/?occurred_at__gte={today}+00%3A00%3A00%2B00%3A00&occurred_at__lt={tomorrow}+00%3A00%3A00%2B00%3A00",
        LOGS_FLOOR,
    ),
]


def staff_client() -> Any:
    from django.contrib.auth import get_user_model
    from django.test import Client

    staff = get_user_model().objects.filter(username="bench-admin").first()
    if staff is None:
        staff = get_user_model().objects.create_superuser("bench-admin", "bench@example.com", "unused")
    client = Client(HTTP_HOST="localhost")
    client.force_login(staff)
    return client


def floor_runner(url: str, sql: str, days: int) -> Callable[[], Any]:
    import psycopg

    from analytics.rollup import zone_start
    from usage import periods

    conn = psycopg.connect(url, autocommit=True)
    today = periods.today()
    params = {
        "first": today - timedelta(days=days - 1), "end": today + timedelta(days=1), "today": today,
        "month": today.replace(day=1), "today_start": zone_start(today, periods.reporting_zone()),
    }  # fmt: skip
    return lambda: conn.execute(sql, params, prepare=True).fetchall()


def window_days(path: str) -> int:
    return int(path.split("days=")[1]) if "days=" in path else 7


def page_figures(url: str) -> list[dict[str, Any]]:
    from usage import periods

    client = staff_client()
    today = periods.today()
    figures = []
    for name, path, floor_sql in PAGES:
        path = path.format(today=today, tomorrow=today + timedelta(days=1))

        def get(path: str = path) -> None:
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)
            if response.streaming:
                b"".join(response.streaming_content)

        ours = timings(get, RUNS)
        floor = timings(floor_runner(url, floor_sql, window_days(path)), RUNS)
        figures.append({"page": name, "path": path, **ours, "floor_median_ms": floor["median_ms"]})
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--logs", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep the logs when their count already matches")
    args = parser.parse_args()
    url = setup_django()
    from django.test.utils import setup_test_environment

    setup_test_environment()
    tail = prepare_data(args.logs, args.reuse)
    result = {"logs": args.logs, "tail": tail, "pages": page_figures(url)}
    print(json.dumps(result, indent=1))
    report(result)


def report(r: dict[str, Any]) -> None:
    logs = f"{r['logs']:,}"
    rows = "\n".join(
        f"| {p['page']} | {p['median_ms']} ms | {p['p95_ms']} ms | {p['floor_median_ms']} ms | "
        f"{p['median_ms'] / p['floor_median_ms']:.1f}x | well under 1 s |"
        for p in r["pages"]
    )
    write_section(
        f"admin-pages-{r['logs']}",
        f"""
## Admin analytics pages, {logs} logs over a year (issue: Django admin dashboard)

{logs} synthetic logs over {DAYS} days for {USERS:,} users, rolled up, plus {r["tail"]:,} logs written in the last ten
minutes and not yet rolled up; machine: {machine()}. Each page is a GET through Django's test client as a logged-in
superuser (session, admin permission checks, every query, the template), {RUNS} runs after 5 warm-up runs. The floor
is the bare SQL reading the page's main figures over one prepared psycopg connection: the window's daily summary rows
for the dashboard and system pages, every active user's counters for the spend pages, and the statistics aggregate
over today's logs for the log list.

| page | median | p95 | floor median | ratio | target |
|---|---|---|---|---|---|
{rows}
""",
    )


if __name__ == "__main__":
    main()
