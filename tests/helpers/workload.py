"""A deterministic workload, so the test can compute the exact expected totals without reading the database."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

INPUT_PRICE = Decimal("2.5")  # USD per million tokens
OUTPUT_PRICE = Decimal("10")


def calls_for_worker(worker: int, count: int, user_ids: list[int]) -> list[dict[str, Any]]:
    return [
        {
            "user": user_ids[(worker + i) % len(user_ids)],
            "feature": f"feature-{i % 3}",
            "provider": "acme",
            "model": "acme-1",
            "input_tokens": 1000 + 7 * i + worker,
            "output_tokens": 3 * i + 1,
            "event_id": f"w{worker}-{i}",
        }
        for i in range(count)
    ]


def expected_cost(call: dict[str, Any]) -> Decimal:
    return (call["input_tokens"] * INPUT_PRICE + call["output_tokens"] * OUTPUT_PRICE) / 1_000_000


def storm_events(count: int, user_ids: list[int], latest: datetime) -> list[dict[str, Any]]:
    """`count` unique finished calls, one a second back from `latest`, spread over the users."""
    return [
        {
            "user": user_ids[i % len(user_ids)],
            "feature": f"feature-{i % 4}",
            "provider": "acme",
            "model": "acme-1",
            "input_tokens": 100 + (i * 37) % 5000,
            "output_tokens": (i * 11) % 700,
            "occurred_at": latest - timedelta(seconds=i),
            "event_id": f"storm-{i}",
        }
        for i in range(count)
    ]


def storm_share(events: list[dict[str, Any]], process: int, processes: int, repeats: int) -> list[dict[str, Any]]:
    """This process's sends: event i goes to processes i, i+1, ... (mod processes), `repeats` of them, so every
    event is sent `repeats` times by different processes; each process sends in its own shuffled order."""
    mine = [e for i, e in enumerate(events) if any((i + r) % processes == process for r in range(repeats))]
    random.Random(process).shuffle(mine)
    return mine


TINY_PRICE = Decimal("0.15")  # USD per million tokens: 1.5e-7 a token


def tiny_call(i: int, user_ids: list[int], now: datetime) -> dict[str, Any]:
    """1, 2 or 3 tokens: (1 in), (1 in, 1 out), (2 in, 1 out)."""
    return {
        "user": user_ids[i % len(user_ids)],
        "feature": "tiny",
        "provider": "tiny",
        "model": "tiny-1",
        "input_tokens": 2 if i % 3 == 2 else 1,
        "output_tokens": 0 if i % 3 == 0 else 1,
        "occurred_at": now - timedelta(seconds=i // 2),  # about six days back
        "event_id": f"tiny-{i}",
    }
