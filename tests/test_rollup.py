"""Rollups equal the same aggregates computed straight from the logs, in any reporting zone, run after run."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import F
from django.test.utils import override_settings

from analytics.models import (
    DailyUsageSummary,
    RollupRun,
    UsageHourlyBucket,
    UserAICostSummary,
    UserMonthlyAICostSummary,
)
from analytics.rollup import run_rollup
from usage.models import AIUsageLog
from usage.recording import record_usage

START = datetime(2026, 2, 26, tzinfo=UTC)  # spans a month end and the US DST change on 8 March
SPAN_HOURS = 16 * 24
STATUSES = ["success"] * 6 + ["error", "timeout", "rate_limited", "cancelled"]
METRICS = (
    "total_requests", "successful_requests", "failed_requests", "error_requests", "timeout_requests",
    "rate_limited_requests", "cancelled_requests", "unpriced_requests", "input_tokens", "output_tokens",
    "cached_input_tokens", "cache_write_tokens", "reasoning_tokens", "total_cost", "latency_sum_ms",
    "latency_count", "latency_max_ms",
)  # fmt: skip


def write_random_logs(users: list[Any], count: int, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(count):
        input_tokens = rng.randint(0, 5000)
        cached = rng.randint(0, input_tokens // 2)
        output = rng.randint(0, 900)
        record_usage(
            user=rng.choice(users),
            feature=rng.choice(["chat", "search"]),
            provider="acme",
            model=rng.choice(["acme-1", "acme-1", "mystery"]),  # mystery has no price
            input_tokens=input_tokens,
            cached_input_tokens=cached,
            cache_write_tokens=rng.randint(0, input_tokens - cached),
            output_tokens=output,
            reasoning_tokens=rng.randint(0, output),
            occurred_at=START + timedelta(minutes=rng.randint(0, SPAN_HOURS * 60 - 1), seconds=rng.randint(0, 59)),
            latency_ms=rng.choice([None, rng.randint(1, 9000)]),
            status=rng.choice(STATUSES),
        )


def expected(key_of: Any, users_only: bool) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """The summary measures computed in Python from every log, grouped by key_of(log)."""
    groups: dict[tuple[Any, ...], list[AIUsageLog]] = defaultdict(list)
    for log in AIUsageLog.objects.all():
        if not (users_only and log.user_id is None):
            groups[key_of(log)].append(log)
    result = {}
    for key, logs in groups.items():
        latencies = [log.latency_ms for log in logs if log.latency_ms is not None]
        result[key] = (
            len(logs),
            sum(log.status == "success" for log in logs),
            sum(log.status != "success" for log in logs),
            *(sum(log.status == s for log in logs) for s in ("error", "timeout", "rate_limited", "cancelled")),
            sum(log.total_cost is None for log in logs),
            *(sum(getattr(log, f) for log in logs) for f in METRICS[8:13]),
            sum((log.total_cost for log in logs if log.total_cost is not None), Decimal(0)),
            sum(latencies),
            len(latencies),
            max(latencies, default=None),
        )
    return result


def stored(model: Any, *key: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    return {row[: len(key)]: row[len(key) :] for row in model.objects.values_list(*key, *METRICS)}


def assert_rollup_matches_logs(zone_name: str) -> None:
    zone = ZoneInfo(zone_name)

    def hour_key(log: AIUsageLog) -> tuple[Any, ...]:
        return (
            log.occurred_at.replace(minute=0, second=0, microsecond=0),
            log.user_id,
            log.provider,
            log.model,
            log.feature,
        )

    hourly = expected(hour_key, users_only=False)
    assert stored(UsageHourlyBucket, "hour", "user_id", "provider", "model", "feature") == hourly
    daily = expected(lambda log: (log.occurred_at.astimezone(zone).date(), log.user_id), users_only=True)
    assert stored(UserAICostSummary, "date", "user_id") == daily
    by_model = expected(
        lambda log: (log.occurred_at.astimezone(zone).date(), log.provider, log.model, log.feature), users_only=False
    )
    assert stored(DailyUsageSummary, "date", "provider", "model", "feature") == by_model
    monthly = expected(
        lambda log: (log.occurred_at.astimezone(zone).date().replace(day=1), log.user_id), users_only=True
    )
    assert stored(UserMonthlyAICostSummary, "month", "user_id") == monthly


def age_logs_by_an_hour() -> None:
    """As if the logs were written an hour before the last run: outside the rescan overlap of the next one."""
    AIUsageLog.objects.update(recorded_at=F("recorded_at") - timedelta(hours=1))


@pytest.fixture
def users(db: None, make_price: Any) -> list[Any]:
    make_price(input_price=Decimal("2.5"), output_price=Decimal("10"), cached_input_price=Decimal("0.25"))
    return [get_user_model().objects.create_user(name) for name in ("ann", "ben", "cat")] + [None]


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_rollup_equals_raw_aggregation_in_each_zone(users: list[Any], zone: str) -> None:
    with override_settings(ANALYTICS_TIME_ZONE=zone):
        write_random_logs(users, 400, seed=11)
        run = run_rollup()
        assert run.outcome == "succeeded" and run.scanned_since is None
        assert_rollup_matches_logs(zone)
        assert UserAICostSummary.objects.values("date").distinct().count() >= 16


def test_a_second_run_changes_nothing_and_a_late_event_is_counted(users: list[Any]) -> None:
    with override_settings(ANALYTICS_TIME_ZONE="America/New_York"):
        write_random_logs(users, 200, seed=3)
        run_rollup()
        age_logs_by_an_hour()
        before = (
            stored(UsageHourlyBucket, "hour", "user_id", "provider", "model", "feature"),
            stored(UserAICostSummary, "date", "user_id"),
            stored(UserMonthlyAICostSummary, "month", "user_id"),
        )
        second = run_rollup()
        assert second.scanned_since is not None and second.hours == 0
        after = (
            stored(UsageHourlyBucket, "hour", "user_id", "provider", "model", "feature"),
            stored(UserAICostSummary, "date", "user_id"),
            stored(UserMonthlyAICostSummary, "month", "user_id"),
        )
        assert after == before
        # A call from ten days ago, reported only now: its day is recomputed by the next run.
        record_usage(
            user=users[0],
            feature="chat",
            provider="acme",
            model="acme-1",
            input_tokens=1_000_000,
            occurred_at=START + timedelta(days=2, hours=5),
        )
        third = run_rollup()
        assert (third.hours, third.days, third.months) == (1, 1, 1)
        assert_rollup_matches_logs("America/New_York")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_runs_at_once_give_the_same_tables_as_one(users: list[Any], django_db_blocker: Any) -> None:
    write_random_logs(users, 150, seed=5)
    outcomes: list[str] = []

    def run() -> None:
        with django_db_blocker.unblock():
            outcomes.append(run_rollup().outcome)
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) in (["skipped", "succeeded"], ["succeeded", "succeeded"])
    assert_rollup_matches_logs("UTC")
    assert RollupRun.objects.count() == 2
