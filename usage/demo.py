"""Demo data for a fresh install: a few users and a month of calls through the real write path."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone

from usage.budgets import limit_cache, spend_status
from usage.models import CallStatus, UserSpendLimit
from usage.recording import record_usage

DEMO_USERS = ["alice", "bob", "charlie", "dana", "erin"]
DEMO_MODELS = [
    ("openai", "gpt-4o-2024-08-06"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-3-5-sonnet-20241022"),
    ("google", "gemini-1.5-flash"),
    ("acme", "in-house-model-v1"),  # deliberately unpriced: shows how unpriced calls are reported
]
DEMO_FEATURES = ["chat", "summarise", "code_review", "search"]


def load_demo_data(calls: int = 600, days: int = 30, seed: int = 7) -> int:
    """Create demo users and `calls` calls spread over the last `days` days; returns how many were recorded."""
    rng = random.Random(seed)
    user_model = get_user_model()
    users = [
        user_model.objects.get_or_create(username=name, defaults={"email": f"{name}@example.com"})[0]
        for name in DEMO_USERS
    ]
    now = timezone.now()
    recorded = 0
    for index in range(calls):
        provider, model = rng.choice(DEMO_MODELS)
        input_tokens = rng.randint(50, 4000)
        failed = rng.random() < 0.05
        result = record_usage(
            user=rng.choice(users),
            feature=rng.choice(DEMO_FEATURES),
            provider=provider,
            model=model,
            input_tokens=input_tokens,
            cached_input_tokens=rng.choice([0, 0, input_tokens // 2]),
            output_tokens=0 if failed else rng.randint(20, 1500),
            occurred_at=now - timedelta(seconds=rng.randint(0, days * 86400)),
            latency_ms=rng.randint(150, 6000),
            status=CallStatus.ERROR if failed else CallStatus.SUCCESS,
            error_message="upstream 500" if failed else "",
            session_id=f"demo-session-{rng.randint(1, 40)}",
            event_id=f"demo-{seed}-{index}",
        )
        recorded += not result.duplicate
    _limits_showing_every_status(users)
    return recorded


def _limits_showing_every_status(users: list[Any]) -> None:
    """Lower two demo users' monthly limits so the spend pages show a WARNING (90% used) and an EXCEEDED user."""
    for user, share in ((users[3], Decimal("0.9")), (users[4], Decimal("1.25"))):
        spent = spend_status(user.pk).monthly.spend
        if spent > 0:
            limit = (spent / share).quantize(Decimal("0.01"))
            UserSpendLimit.objects.update_or_create(user=user, defaults={"monthly_limit": limit})
    limit_cache.clear()
