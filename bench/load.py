"""Load: recordUsage writers and dashboard readers at once against a real server (gunicorn) on loopback.

A small asyncio HTTP client runs `--writers` tasks posting recordUsage batches and `--readers` tasks cycling
through the dashboard's GraphQL queries for `--seconds`. Reported: throughput, p50/p95/p99 latency per operation,
errors, and whether the rows in the database at the end equal the events the server said it recorded. The floor
for the writes is bare SQL doing the same inserts: the same batches from as many connections at once, as one
INSERT ... SELECT FROM unnest each.

Then the same run again beside an abusive client: a user with `--abuse-logs` logs of their own (attack 3: three
requests at a time, each 30 aliased 10-year `tokenUsage` queries with a status filter, in a loop). Reported: the
normal clients' p95 with and without the abuser (target: within 1.5x), and a `health` probe's latency throughout
both runs (target: every probe within 1 s).

    python -m bench.load [--seconds 30] [--writers 8] [--readers 4] [--batch 50] [--workers 4]
                         [--abuse-logs 680000] [--port P]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench.common import ROOT, machine, setup_django, with_every_permission, write_section

RECORD = "mutation($events: [UsageEventInput!]!) { recordUsage(events: $events) { outcome } }"
READS = {
    "costTimeline 30d": "{ costTimeline(range: {days: 30}, granularity: DAY, groupBy: [PROVIDER]) "
    "{ rows { period provider metrics { cost requests } } } }",
    "topUsers 30d": "{ topUsers(range: {days: 30}, limit: 10) { rows { userId metrics { cost requests } } } }",
    "usage today by model": "{ usage(range: {days: 1}, groupBy: [MODEL]) { rows { model metrics { cost } } } }",
}
USERS = 200
# Attack 3: 30 aliased 10-year token breakdowns, each with a status filter (which makes a slice read raw logs).
ATTACK_FIELD = 'tokenUsage(range: {days: 3660}, filter: {statuses: ["error"]}) { totals { requests } }'
ATTACK = "{ " + " ".join(f"t{n}: {ATTACK_FIELD}" for n in range(30)) + " }"


HEALTH = "{ health { ok database } }"
HEALTH_EVERY_SECONDS = 0.2
ABUSERS = 3
ABUSE_SPAN_DAYS = 300
# The closed-loop clients below send as fast as they are answered, all with one key: far above the default rate
# limits, which would refuse them. The run raises the limits, so the abuser is stopped by the cost budget alone.
SERVER_LIMITS = {
    "API_RATE_LIMIT_READS": "1000000000",
    "API_RATE_LIMIT_WRITES": "1000000000",
    "API_RATE_LIMIT_COST": "1000000000000",
}


@dataclass
class Samples:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    events: int = 0


@dataclass
class Phase:
    """One timed run: the normal clients' samples, the health probes and the abuser's answers."""

    elapsed: float = 0.0
    writes: Samples = field(default_factory=Samples)
    reads: dict[str, Samples] = field(default_factory=lambda: {name: Samples() for name in READS})
    health: Samples = field(default_factory=Samples)
    abuse: Samples = field(default_factory=Samples)
    abuse_answers: Counter[str] = field(default_factory=Counter)


async def post(port: int, body: bytes, key: str) -> tuple[int, bytes]:
    """One HTTP/1.1 POST on a fresh connection (gunicorn's sync workers close after each response)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (f"POST /graphql/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")  # fmt: skip
    writer.write(head.encode() + body)
    await writer.drain()
    response = await reader.read()
    writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    _headers, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), payload


def batch_events(run: str, writer: int, n: int, size: int, user_ids: list[int]) -> list[dict[str, Any]]:
    return [
        {"userId": str(user_ids[(writer * 7 + n * size + i) % len(user_ids)]), "feature": f"load-{i % 4}",
         "provider": "openai", "model": "gpt-4o-mini", "inputTokens": 500 + i, "outputTokens": 50 + i % 90,
         "eventId": f"load-{run}-{writer}-{n}-{i}"}
        for i in range(size)
    ]  # fmt: skip


async def writer_task(port: int, key: str, run: str, writer: int, size: int, user_ids: list[int], stop: float,
                      out: Samples) -> None:  # fmt: skip
    n = 0
    while time.monotonic() < stop:
        body = json.dumps({"query": RECORD, "variables": {"events": batch_events(run, writer, n, size, user_ids)}})
        started = time.perf_counter()
        status, payload = await post(port, body.encode(), key)
        out.latencies.append(time.perf_counter() - started)
        answer = json.loads(payload) if status == 200 else {"errors": [{"message": f"HTTP {status}"}]}
        if "errors" in answer:
            out.errors.append(answer["errors"][0]["message"])
        else:
            out.events += sum(r["outcome"] == "RECORDED" for r in answer["data"]["recordUsage"])
        n += 1


async def reader_task(port: int, key: str, reader: int, stop: float, out: dict[str, Samples]) -> None:
    names = list(READS)
    n = reader
    while time.monotonic() < stop:
        name = names[n % len(names)]
        started = time.perf_counter()
        status, payload = await post(port, json.dumps({"query": READS[name]}).encode(), key)
        out[name].latencies.append(time.perf_counter() - started)
        if status != 200 or "errors" in json.loads(payload):
            out[name].errors.append(payload.decode()[:200])
        n += 1


async def health_task(port: int, key: str, stop: float, out: Samples) -> None:
    """A probe from its own connection every HEALTH_EVERY_SECONDS: how long another client waits for an answer."""
    body = json.dumps({"query": HEALTH}).encode()
    while time.monotonic() < stop:
        started = time.perf_counter()
        status, payload = await post(port, body, key)
        out.latencies.append(time.perf_counter() - started)
        if status != 200 or not json.loads(payload)["data"]["health"]["ok"]:
            out.errors.append(payload.decode()[:200])
        await asyncio.sleep(HEALTH_EVERY_SECONDS)


async def abuser_task(port: int, key: str, stop: float, out: Samples, answers: Counter[str]) -> None:
    """Attack 3 in a loop; each answer is counted by its error code (or HTTP status)."""
    body = json.dumps({"query": ATTACK}).encode()
    while time.monotonic() < stop:
        started = time.perf_counter()
        status, payload = await post(port, body, key)
        out.latencies.append(time.perf_counter() - started)
        errors = json.loads(payload).get("errors") if payload.startswith(b"{") else None
        code = (errors[0].get("extensions") or {}).get("code", errors[0]["message"][:60]) if errors else "answered"
        answers[f"HTTP {status} {code}"] += 1


async def warm_up(port: int, key: str, workers: int, user_ids: list[int]) -> None:
    """Every worker process loads the app, prices and statement plans before the clock starts."""
    requests = [json.dumps({"query": query}) for query in READS.values()]
    requests += [json.dumps({"query": RECORD, "variables": {"events": batch_events("warm", w, 0, 5, user_ids)}})
                 for w in range(workers)]  # fmt: skip
    for _ in range(2):
        await asyncio.gather(*(post(port, body.encode(), key) for body in requests * workers))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, workers: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "gunicorn", "project.wsgi", "-w", str(workers), "-b", f"127.0.0.1:{port}",
               "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "DEBUG": "0", **SERVER_LIMITS})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.2)
    server.kill()
    raise RuntimeError("gunicorn did not start")


def prepare() -> tuple[str, list[int]]:
    """A staff API key, the load users and the catalog prices."""
    from django.contrib.auth import get_user_model

    from usage.apikeys import create_api_key
    from usage.catalog import load_catalog, sync_catalog
    from usage.models import AIProviderPricing

    if not AIProviderPricing.objects.filter(provider="openai", model="gpt-4o-mini").exists():
        sync_catalog(load_catalog())
    users = get_user_model()
    staff, _ = users.objects.get_or_create(username="load-staff", defaults={"is_staff": True})
    with_every_permission(staff)
    have = users.objects.filter(username__startswith="load-user").count()
    users.objects.bulk_create([users(username=f"load-user{n}") for n in range(have, USERS)])
    user_ids = list(users.objects.filter(username__startswith="load-user").values_list("pk", flat=True))
    _key, raw = create_api_key(staff, "load benchmark")
    return raw, user_ids


def seed_abuser(logs: int) -> str:
    """A user with `logs` logs of their own over ABUSE_SPAN_DAYS (one INSERT ... SELECT, about 2.5% errors),
    recorded now so the next rollup takes them in; returns their API key."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from bench.rollup import GENERATE_LOGS
    from usage.apikeys import create_api_key
    from usage.models import AIUsageLog

    abuser, _ = get_user_model().objects.get_or_create(username="load-abuser")
    missing = logs - AIUsageLog.objects.filter(user=abuser).count()
    if missing > 0:
        now = timezone.now()
        params = {"count": missing, "recorded": now, "end": now, "span": ABUSE_SPAN_DAYS * 86400, "users": 1,
                  "first_user": abuser.pk}  # fmt: skip
        with connection.cursor() as cursor:
            cursor.execute(GENERATE_LOGS, params)
            cursor.execute("ANALYZE usage_aiusagelog")
    return create_api_key(abuser, "abuse benchmark")[1]


def run_phase(port: int, key: str, run: str, args: Any, user_ids: list[int], abuser_key: str | None) -> Phase:
    """The writers and readers for `args.seconds`, with the health probe, and the abuser when given a key."""
    phase = Phase()

    async def drive() -> None:
        stop = time.monotonic() + args.seconds
        abuse = [] if abuser_key is None else [
            abuser_task(port, abuser_key, stop, phase.abuse, phase.abuse_answers) for _ in range(ABUSERS)
        ]  # fmt: skip
        await asyncio.gather(
            *(writer_task(port, key, run, w, args.batch, user_ids, stop, phase.writes) for w in range(args.writers)),
            *(reader_task(port, key, r, stop, phase.reads) for r in range(args.readers)),
            health_task(port, key, stop, phase.health),
            *abuse,
        )

    started = time.perf_counter()
    asyncio.run(drive())
    phase.elapsed = time.perf_counter() - started
    return phase


def floor_writes(url: str, writers: int, size: int, batches_per_writer: int, user_ids: list[int]) -> float:
    """Events per second for bare INSERT ... SELECT FROM unnest of the same batches, `writers` connections."""
    import psycopg

    insert = """INSERT INTO usage_aiusagelog (occurred_at, recorded_at, user_id, feature, provider, model, session_id,
        input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, reasoning_tokens, total_cost,
        status, error_message, event_id)
        SELECT now(), now(), u, f, 'openai', 'gpt-4o-mini', '', i, o, 0, 0, 0, i * 0.00000015 + o * 0.0000006,
               'success', '', e
        FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::bigint[], %s::text[]) AS t(u, f, i, o, e)"""

    async def one_writer(writer: int) -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            for n in range(batches_per_writer):
                events = batch_events("floor", writer, n, size, user_ids)
                columns = [[int(e["userId"]) for e in events], [e["feature"] for e in events],
                           [e["inputTokens"] for e in events], [e["outputTokens"] for e in events],
                           [e["eventId"] + str(uuid.uuid4()) for e in events]]  # fmt: skip
                await conn.execute(insert, columns)

    async def all_writers() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(one_writer(w) for w in range(writers)))
        return time.perf_counter() - started

    elapsed = asyncio.run(all_writers())
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM usage_aiusagelog WHERE provider = 'openai' AND event_id LIKE 'load-floor-%%'")
    return writers * batches_per_writer * size / elapsed


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000 if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--abuse-logs", type=int, default=680_000, help="the abuser's own logs; 0: no abuse run")
    parser.add_argument("--port", type=int, default=0, help="the server's port on 127.0.0.1 (default: any free one)")
    args = parser.parse_args()
    url = setup_django()
    from analytics.rollup import run_rollup
    from usage.models import AIUsageLog

    key, user_ids = prepare()
    abuser_key = seed_abuser(args.abuse_logs) if args.abuse_logs else None
    run_rollup()
    run = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    port = args.port or free_port()
    server = start_server(port, args.workers)
    try:
        asyncio.run(warm_up(port, key, args.workers, user_ids))
        alone = run_phase(port, key, run, args, user_ids, None)
        attacked = None if abuser_key is None else run_phase(port, key, f"{run}a", args, user_ids, abuser_key)
    finally:
        server.terminate()
        server.wait(30)
    stored = AIUsageLog.objects.filter(event_id__startswith=f"load-{run}-").count()
    sent = len(alone.writes.latencies) * args.batch
    floor = floor_writes(url, args.writers, args.batch, max(1, len(alone.writes.latencies) // args.writers), user_ids)
    report(args, alone.elapsed, alone.writes, alone.reads, stored, sent, floor, AIUsageLog.objects.count())
    if attacked is not None:
        report_abuse(args, alone, attacked)


def report(args: Any, elapsed: float, writes: Samples, reads: dict[str, Samples], stored: int, sent: int,
           floor: float, total_logs: int) -> None:  # fmt: skip
    events_per_second = writes.events / elapsed
    rows = [
        f"| recordUsage ({args.batch} events) | {len(writes.latencies) / elapsed:.1f} req/s, "
        f"{events_per_second:,.0f} events/s | {percentile(writes.latencies, 50):.0f} | "
        f"{percentile(writes.latencies, 95):.0f} | {percentile(writes.latencies, 99):.0f} | {len(writes.errors)} |"
    ]
    for name, samples in reads.items():
        rows.append(
            f"| {name} | {len(samples.latencies) / elapsed:.1f} req/s | {percentile(samples.latencies, 50):.0f} | "
            f"{percentile(samples.latencies, 95):.0f} | {percentile(samples.latencies, 99):.0f} | "
            f"{len(samples.errors)} |"
        )
    body = f"""## Load: writers and dashboard readers together (issue: proof under load and faults)

gunicorn with {args.workers} sync workers on loopback, {args.writers} writer and {args.readers} reader tasks of
an asyncio client on the same machine for {elapsed:.0f} s, over {total_logs:,} logs. Machine: {machine()}.

| operation | throughput | p50 ms | p95 ms | p99 ms | errors |
|---|---|---|---|---|---|
{chr(10).join(rows)}

Rows at the end: **{stored:,}** stored for **{writes.events:,}** reported recorded ({sent:,} sent, all unique):
{"equal" if stored == writes.events == sent else "NOT EQUAL"}.
Write floor (bare `INSERT ... SELECT FROM unnest` of the same batches from {args.writers} connections at once):
{floor:,.0f} events/s, so the API's {events_per_second:,.0f} events/s under mixed load is
**{floor / max(events_per_second, 1):.1f}x** below the floor.
"""
    write_section("load", body)
    print(body)
    print(json.dumps({"errors": writes.errors[:3] + [e for s in reads.values() for e in s.errors[:3]]}))


def p95_row(name: str, alone: Samples, attacked: Samples) -> str:
    before, during = percentile(alone.latencies, 95), percentile(attacked.latencies, 95)
    ratio = during / before if before else 0.0
    return (
        f"| {name} | {before:.0f} | {during:.0f} | **{ratio:.2f}x** | at most 1.5x | "
        f"{len(alone.errors)} / {len(attacked.errors)} |"
    )


def health_row(name: str, probes: Samples) -> str:
    slowest = max(probes.latencies, default=0.0) * 1000
    late = sum(latency > 1 for latency in probes.latencies)
    return (
        f"| {name} | {len(probes.latencies)} | {percentile(probes.latencies, 50):.0f} | "
        f"{percentile(probes.latencies, 95):.0f} | {slowest:.0f} | **{slowest / 1000:.2f}x** | {late} |"
    )


def report_abuse(args: Any, alone: Phase, attacked: Phase) -> None:
    rows = [p95_row(f"recordUsage ({args.batch} events)", alone.writes, attacked.writes)]
    rows += [p95_row(name, alone.reads[name], attacked.reads[name]) for name in READS]
    answers = ", ".join(f"{count:,} x {answer}" for answer, count in attacked.abuse_answers.most_common())
    body = f"""## Load with an abusive client (issue: hostile callers)

The writers and readers of the load run, twice over the same database: alone, then beside an abuser, a user
with {args.abuse_logs:,} logs of their own over {ABUSE_SPAN_DAYS} days sending attack 3 ({ABUSERS} requests at a
time, each 30 aliased 10-year `tokenUsage` queries with a status filter) in a loop; a `health` probe every
{HEALTH_EVERY_SECONDS:g} s from its own connection in both runs. {args.seconds:g} s each, gunicorn with
{args.workers} sync workers; machine: {machine()}. Rate limits are raised for both runs (the closed-loop clients
share one key), so the cost budget alone stops the abuser.

| operation | p95 ms alone | p95 ms with the abuser | ratio | target | errors (alone / with) |
|---|---|---|---|---|---|
{chr(10).join(rows)}

| `health` probes | probes | p50 ms | p95 ms | slowest ms | slowest / 1 s target | over 1 s |
|---|---|---|---|---|---|---|
{health_row("normal clients alone", alone.health)}
{health_row("with the abuser", attacked.health)}

The abuser sent {len(attacked.abuse.latencies):,} requests (median answer
{percentile(attacked.abuse.latencies, 50):.0f} ms): {answers}.
"""
    write_section("load-abuse", body)
    print(body)


if __name__ == "__main__":
    main()
