"""The hours a slice must read from the logs: those of calls written since the last scheduled rollup began (less its
rescan overlap) and those marked for repricing; every hour while no scheduled rollup has run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

from analytics.models import RollupRun, RunOutcome
from analytics.rollup import HOUR
from analytics.slices import dirty_hours
from usage.models import AIUsageLog, StaleHour
from usage.tracker import record_usage

DAY_START = datetime(2026, 3, 2, tzinfo=UTC)
DAY_END = DAY_START + timedelta(days=1)


def call_at(alice: Any, occurred_at: datetime) -> AIUsageLog:
    result = record_usage(user=alice, feature="chat", provider="acme", model="acme-1", input_tokens=10,
                          occurred_at=occurred_at)  # fmt: skip
    assert result.log is not None
    return result.log


def written_at(log: AIUsageLog, recorded_at: datetime) -> None:
    AIUsageLog.objects.filter(pk=log.pk).update(recorded_at=recorded_at)


def test_it_reads_every_hour_while_no_scheduled_rollup_has_run(alice: Any) -> None:
    call_at(alice, DAY_START + timedelta(hours=3))
    RollupRun.objects.create(started_at=timezone.now(), outcome=RunOutcome.SUCCEEDED, trigger="backfill")
    RollupRun.objects.create(started_at=timezone.now(), outcome=RunOutcome.FAILED, trigger="schedule")
    assert dirty_hours(DAY_START, DAY_END) == {DAY_START + HOUR * n for n in range(24)}


def test_it_reads_the_hours_written_since_the_last_run_and_the_stale_hours(alice: Any) -> None:
    now = timezone.now()
    RollupRun.objects.create(started_at=now - timedelta(days=2), outcome=RunOutcome.SUCCEEDED, trigger="schedule")
    RollupRun.objects.create(started_at=now - timedelta(hours=1), outcome=RunOutcome.SUCCEEDED, trigger="schedule")
    RollupRun.objects.create(started_at=now, outcome=RunOutcome.FAILED, trigger="schedule")
    written_at(call_at(alice, DAY_START + timedelta(hours=1, minutes=5)), now - timedelta(hours=2))  # rolled up
    written_at(call_at(alice, DAY_START + timedelta(hours=2, minutes=59)), now - timedelta(hours=1, minutes=4))
    written_at(call_at(alice, DAY_START + timedelta(hours=2, minutes=1)), now)
    written_at(call_at(alice, DAY_START + timedelta(hours=7)), now)
    written_at(call_at(alice, DAY_END + timedelta(hours=1)), now)  # outside the range asked for
    StaleHour.objects.create(hour=DAY_START + timedelta(hours=20))
    StaleHour.objects.create(hour=DAY_START - timedelta(hours=1))
    expected = {DAY_START + timedelta(hours=h) for h in (2, 7, 20)}
    assert dirty_hours(DAY_START, DAY_END) == expected  # on PostgreSQL from the statement written out
