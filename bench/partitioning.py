"""Scale: the same logs in a plain and in a monthly-partitioned log table (AI_USAGE_LOG_PARTITIONED).

Two databases, migrated with the setting off and on, get the same N logs over a year. Measured on each: the size
of the time index, a tracked call (the write path), an hour's aggregate (what the rollup reads), and removing
the oldest month (a DELETE against dropping its partition).

    python -m bench.partitioning [--logs 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import psycopg

from bench.common import DEFAULT_URL, ROOT, _create_database, machine, write_section
from bench.rollup import GENERATE_LOGS

CALLS = 500
HOUR_QUERY = """SELECT user_id, provider, model, feature, COUNT(*), SUM(total_cost), SUM(input_tokens)
FROM usage_aiusagelog WHERE occurred_at >= %s::timestamptz AND occurred_at < %s::timestamptz + interval '1 hour'
GROUP BY 1, 2, 3, 4"""


def database(name: str, partitioned: bool) -> str:
    url = DEFAULT_URL.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(DEFAULT_URL.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    _create_database(url)
    env = {**os.environ, "DATABASE_URL": url, "AI_USAGE_LOG_PARTITIONED": "1" if partitioned else "0"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    if partitioned:  # the year of logs about to be loaded gets its months' partitions, as a live system has them
        create = "from datetime import date; from usage.partitioning import ensure_partitions; "
        create += "ensure_partitions(date(2025, 11, 1))"
        subprocess.run([sys.executable, "manage.py", "shell", "-c", create], cwd=ROOT, env=env, check=True)
    return url


def fill(url: str, logs: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO auth_user (username, password, is_superuser, first_name, last_name, email, "
                     "is_staff, is_active, date_joined) SELECT 'bench' || n, '', false, '', '', '', false, true, "
                     "now() FROM generate_series(0, 1999) n")  # fmt: skip
        first_user = conn.execute("SELECT MIN(id) FROM auth_user").fetchone()[0]  # type: ignore[index]
        params = {"count": logs, "recorded": "now()", "end": "2026-11-01", "span": 365 * 86400, "users": 2000,
                  "first_user": first_user}  # fmt: skip
        conn.execute(GENERATE_LOGS.replace("%(recorded)s", "now()"), params)
        conn.execute("VACUUM ANALYZE usage_aiusagelog")


def index_size(url: str, name: str) -> int:
    """Bytes of an index, summed over its partitions' indexes when the table is partitioned."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT COALESCE(SUM(pg_relation_size(i.indexrelid)), 0) FROM pg_index i "
            "WHERE i.indexrelid = to_regclass(%s) OR i.indexrelid IN "
            "(SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass(%s))",
            [name, name],
        ).fetchone()
        return int(row[0])  # type: ignore[index]


def hour_query_ms(url: str) -> float:
    samples = []
    with psycopg.connect(url) as conn:
        for day in range(1, 29):
            started = time.perf_counter()
            conn.execute(HOUR_QUERY, [f"2026-06-{day:02d} 12:00+00"] * 2, prepare=True).fetchall()
            samples.append(time.perf_counter() - started)
    return statistics.median(samples[3:]) * 1000


def write_path_us(url: str, partitioned: bool) -> float:
    """Median microseconds per tracked call, in a child process on that database."""
    code = (
        "import time, statistics, uuid, django; django.setup()\n"
        "from usage.tracker import record_usage\n"
        "from django.contrib.auth import get_user_model\n"
        "user = get_user_model().objects.order_by('id').first()\n"
        "samples = []\n"
        f"for n in range({CALLS}):\n"
        "    started = time.perf_counter()\n"
        "    record_usage(user=user, feature='chat', provider='openai', model='gpt-4o', input_tokens=900,\n"
        "                 output_tokens=100, event_id=str(uuid.uuid4()))\n"
        "    samples.append(time.perf_counter() - started)\n"
        "print(statistics.median(samples[50:]) * 1e6)\n"
    )
    env = {**os.environ, "DATABASE_URL": url, "AI_USAGE_LOG_PARTITIONED": "1" if partitioned else "0",
           "DJANGO_SETTINGS_MODULE": "project.settings"}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


def remove_oldest_month_ms(url: str, partitioned: bool) -> float:
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        if partitioned:
            conn.execute("ALTER TABLE usage_aiusagelog DETACH PARTITION usage_aiusagelog_y2025m11")
            conn.execute("DROP TABLE usage_aiusagelog_y2025m11")
        else:
            conn.execute(
                "DELETE FROM usage_aiusagelog WHERE occurred_at >= '2025-11-01' AND occurred_at < '2025-12-01'"
            )
        return (time.perf_counter() - started) * 1000


def measure(logs: int) -> dict[str, Any]:
    result: dict[str, Any] = {"logs": logs}
    for label, partitioned in (("plain", False), ("partitioned", True)):
        url = database(f"bench_{label}", partitioned)
        fill(url, logs)
        result[label] = {
            "time_index_bytes": index_size(url, "usage_time_brin" if partitioned else "usage_time"),
            "hour_query_ms": round(hour_query_ms(url), 2),
            "write_path_us": round(write_path_us(url, partitioned)),
            "remove_month_ms": round(remove_oldest_month_ms(url, partitioned), 1),
        }
    return result


def report(r: dict[str, Any]) -> None:
    plain, part = r["plain"], r["partitioned"]

    def row(label: str, key: str, unit: str, scale: float = 1) -> str:
        a, b = plain[key] / scale, part[key] / scale
        return f"| {label} | {a:,.1f} {unit} | {b:,.1f} {unit} | {b / a:.2f}x |"

    write_section(
        "scale",
        f"""
## Scale: monthly partitions (`AI_USAGE_LOG_PARTITIONED`), {r["logs"]:,} logs

The same {r["logs"]:,} logs over a year (2,000 users) in a plain log table and in one partitioned by month
(`python -m bench.partitioning`); machine: {machine()}. The floor here is the plain table: the ratio is what
partitioning costs (above 1) or saves (below 1).

| measure | plain table | partitioned | ratio |
|---|---|---|---|
{row("time index (b-tree on the plain table, BRIN on the partitions)", "time_index_bytes", "kB", 1024)}
{row("an hour's aggregate (what a rollup reads), median", "hour_query_ms", "ms")}
{row("a tracked call (event id claimed in its own table when partitioned), median", "write_path_us", "µs")}
{row("removing the oldest month (DELETE against DETACH and DROP)", "remove_month_ms", "ms")}

What changes at 100 million logs and more:

- **Partitions.** With the setting on, `migrate` (or `manage.py partition_usage_logs` on a live database, in one
  transaction that holds writers) makes the log table a range-partitioned table with one partition per month, a
  default partition for anything outside them, and the coming three months created ahead by the rollup job. Old
  months are archived or dropped whole, without a huge DELETE, VACUUM works month by month, and a query over a time
  range touches only its months.
- **BRIN on time.** Logs arrive in time order, so a BRIN index on `occurred_at` (a few kB per month) replaces the
  b-tree that grows with every row; the per-user `(user_id, occurred_at)` b-tree stays for user queries.
- **Event ids.** PostgreSQL allows unique indexes on a partitioned table only when they include the partition key,
  so "each event_id once" moves to its own table (`usage_usageeventkey`), claimed in the same statement as the
  insert: the write path stays one statement and one round trip. Ids of deleted logs stay claimed.
- **Unchanged.** Summaries, counters and the GraphQL and admin reads do not grow with the log table; they read
  the summaries and only today's raw logs. CI runs the whole test suite a third time on a database migrated with
  partitioning on.
""",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--logs", type=int, default=1_000_000)
    args = parser.parse_args()
    result = measure(args.logs)
    print(json.dumps(result))
    report(result)


if __name__ == "__main__":
    main()
