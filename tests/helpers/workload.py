"""A deterministic workload, so the test can compute the exact expected totals without reading the database."""

from __future__ import annotations

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
