"""What forwarding to LangSmith adds to the write path: one recorded call (record_usage on PostgreSQL) with
forwarding off, on to a healthy LangSmith, to one that is down (connection refused), and to one that hangs (answers
after 5 s, beyond the client's timeout). LangSmith is the local stand-in server the tests use.

    python -m bench.langsmith_forward [--calls 2000]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import time
from typing import Any

from bench.common import machine, setup_django, write_section


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def measure(calls: int, label: str, user_id: int) -> dict[str, Any]:
    from usage.langsmith_forward import sender
    from usage.recording import record_usage

    samples = []
    for index in range(calls):
        started = time.perf_counter()
        record_usage(user=user_id, feature="bench", provider="acme", model="acme-1", input_tokens=100,
                     output_tokens=20, event_id=f"ls-bench-{label}-{time.time_ns()}-{index}")  # fmt: skip
        samples.append(time.perf_counter() - started)
    ordered = sorted(samples)
    stats = sender().stats
    return {
        "case": label, "median_us": round(statistics.median(samples) * 1e6, 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99)] * 1e6, 1), "max_ms": round(ordered[-1] * 1e3, 2),
        "sent": stats.sent, "failed": stats.failed, "dropped": stats.dropped,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    setup_django()
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from tests.helpers.fake_langsmith import API_KEY, FakeLangSmith
    from usage.models import AIProviderPricing, PriceSource

    AIProviderPricing.objects.get_or_create(provider="acme", model="acme-1", source=PriceSource.MANUAL, defaults={
        "input_price": 2, "output_price": 8, "effective_from": "2020-01-01T00:00:00Z"})  # fmt: skip
    user, _ = get_user_model().objects.get_or_create(username="ls-bench")
    healthy, hanging = FakeLangSmith(), FakeLangSmith()
    hanging.hang_seconds = 5
    settings.LANGSMITH_API_KEY, settings.LANGSMITH_TIMEOUT_SECONDS = API_KEY, 1
    results = []
    for label, tracing, endpoint in [("forwarding off", False, healthy.url), ("LangSmith healthy", True, healthy.url),
                                     ("LangSmith down", True, closed_port_url()),
                                     ("LangSmith hanging", True, hanging.url)]:  # fmt: skip
        settings.LANGSMITH_TRACING, settings.LANGSMITH_ENDPOINT = tracing, endpoint
        measure(200, f"warm-{label}", user.pk)
        results.append(measure(args.calls, label, user.pk))
    healthy.stop()
    print(json.dumps(results, indent=1))
    report(results, args.calls)


def report(results: list[dict[str, Any]], calls: int) -> None:
    base = results[0]["median_us"]
    rows = "\n".join(
        f"| {r['case']} | {r['median_us']} µs | {r['p99_us']} µs | {r['max_ms']} ms | {r['median_us'] - base:+.1f} µs |"
        for r in results
    )
    write_section(
        "langsmith-forward",
        f"""
## LangSmith forwarding and the write path (issue: LangSmith)

{calls:,} calls of `record_usage` (one log, one counter upsert, on PostgreSQL) per case, after 200 warm-up calls;
machine: {machine()}. LangSmith is the local stand-in server of the tests; "down" is a port nobody listens on,
"hanging" answers after 5 s (the client gives up after 1 s). The write path only queues the saved log after commit;
a background thread sends it, so what LangSmith does shows up in the sender's counters, not in the call.

| case | median per call | p99 | slowest | median added to the call |
|---|---|---|---|---|
{rows}

Bound: forwarding adds the queueing of one object to a call (the difference in the last column, within run-to-run
noise), whether LangSmith answers, refuses or hangs. A LangSmith that stays down fills the queue (10,000 runs);
further runs are dropped and counted, never waited for.
""",
    )


if __name__ == "__main__":
    main()
