"""The batch jobs' services and tasks: repricing flows into summaries, CAU snapshots, schedules, backfills."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks
from django_celery_beat.schedulers import DatabaseScheduler

import tasks
from analytics.models import CAUSnapshot, RollupRun, UserAICostSummary
from project.celery import app
from tasks.schedules import DEFAULT_SCHEDULES, ensure_default_schedules
from tests.test_rollup import assert_rollup_matches_logs
from usage import periods
from usage.models import StaleHour, UserDailySpend
from usage.recording import record_usage
from usage.tracker import AIUsageTracker

DAY = datetime(2026, 3, 7, tzinfo=UTC)


def catalog_with(tmp_path: Path, model: str, input_mtok: str) -> str:
    provider = {
        "id": "acme",
        "name": "Acme",
        "api_pattern": "https://api\\.acme\\.test",
        "models": [{"id": model, "match": {"equals": model}, "prices": {"input_mtok": input_mtok}}],
    }
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps([provider]))
    return str(path)


def test_the_tasks_are_importable_from_tasks_and_registered() -> None:
    names = ["rollup_usage", "compute_cau", "sync_ai_pricing", "send_spend_alerts"]
    assert [getattr(tasks, name).name for name in names] == [f"tasks.{name}" for name in names]
    assert {f"tasks.{name}" for name in names} <= set(app.tasks)
    assert all(getattr(tasks, name).expires for name in names)


def test_repricing_updates_the_summaries(alice: Any, bob: Any, tmp_path: Path) -> None:
    for hours, user, tokens in [(1, alice, 1_000_000), (2, alice, 3), (30, bob, 250_000)]:
        record_usage(user=user, feature="chat", provider="acme", model="mystery", input_tokens=tokens,
                     occurred_at=DAY + timedelta(hours=hours))  # fmt: skip
    assert tasks.rollup_usage.delay().get()["outcome"] == "succeeded"
    before = UserAICostSummary.objects.get(user=alice)
    assert (before.total_cost, before.unpriced_requests) == (Decimal(0), 2)

    result = tasks.sync_ai_pricing.delay(catalog_with(tmp_path, "mystery", "4")).get()
    assert result == {"added": 1, "changed": 0, "unchanged": 0, "repriced": 3}
    assert sorted(StaleHour.objects.values_list("hour", flat=True)) == [
        DAY + timedelta(hours=1), DAY + timedelta(hours=2), DAY + timedelta(hours=30)
    ]  # fmt: skip
    assert tasks.rollup_usage.delay().get()["hours"] == 3
    assert StaleHour.objects.count() == 0
    after = UserAICostSummary.objects.get(user=alice)
    assert (after.total_cost, after.unpriced_requests) == (Decimal("4.000012"), 0)
    assert UserAICostSummary.objects.get(user=bob).total_cost == Decimal("1")
    assert_rollup_matches_logs("UTC")
    counters = sorted(UserDailySpend.objects.values_list("user__username", "cost", "unpriced_requests"))
    assert counters == [("alice", Decimal("4.000012"), 0), ("bob", Decimal("1"), 0)]


def test_cau_snapshots_agree_with_get_cau_to_the_cent(alice: Any, bob: Any, make_price: Any) -> None:
    make_price(input_price=Decimal("3.3"))
    now = timezone.now()
    for days_ago, user, tokens in [(0, alice, 1_000_001), (1, bob, 7), (6, alice, 333_333), (20, bob, 90_000),
                                   (45, alice, 123_457), (200, bob, 1_000_000)]:  # fmt: skip
        record_usage(user=user, feature="chat", provider="acme", model="acme-1", input_tokens=tokens,
                     occurred_at=now - timedelta(days=days_ago))  # fmt: skip
    assert tasks.compute_cau.delay().get() == {"snapshots": 6}
    today = periods.today()
    for day in (today, today - timedelta(days=1)):
        for window in (7, 30, 90):
            snapshot = CAUSnapshot.objects.get(date=day, window_days=window)
            live = AIUsageTracker.get_cau(start_date=day - timedelta(days=window - 1), end_date=day)
            assert (snapshot.total_cost, snapshot.active_users) == (live["total_cost"], live["active_users"])
            assert snapshot.cau.quantize(Decimal("0.01")) == live["cau"].quantize(Decimal("0.01"))
    assert CAUSnapshot.objects.get(date=today, window_days=90).total_cost == Decimal(
        "5.1044334"
    )  # 1,546,798 tokens at 3.3 USD per million
    assert AIUsageTracker.get_cau(days=7)["active_users"] == 2


# A transaction=True test empties the tables when it ends; serialized_rollback (used by every such test here)
# restores what `migrate` left before the next one.
after_migrate = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@after_migrate
def test_default_schedules_exist_and_admin_edits_survive() -> None:
    rows = PeriodicTask.objects.filter(name__in=[d.name for d in DEFAULT_SCHEDULES]).order_by("name")
    assert sorted((t.task, t.interval.every, t.interval.period, t.enabled) for t in rows) == [
        ("tasks.compute_cau", 1, "days", True),
        ("tasks.import_langsmith_runs", 15, "minutes", True),
        ("tasks.rollup_usage", 5, "minutes", True),
        ("tasks.send_spend_alerts", 1, "minutes", True),
        ("tasks.sync_ai_pricing", 1, "days", True),
    ]
    rollup = PeriodicTask.objects.get(task="tasks.rollup_usage")
    rollup.interval, _ = IntervalSchedule.objects.get_or_create(every=15, period="minutes")
    rollup.save()
    assert ensure_default_schedules(IntervalSchedule, PeriodicTask, PeriodicTasks) == 0
    rollup.refresh_from_db()
    assert (rollup.interval.every, rollup.interval.period) == (15, "minutes")


@after_migrate
def test_a_later_migration_adds_its_schedule_without_restoring_deleted_ones() -> None:
    PeriodicTask.objects.filter(task__in=["tasks.compute_cau", "tasks.import_langsmith_runs"]).delete()
    created = ensure_default_schedules(IntervalSchedule, PeriodicTask, PeriodicTasks, names=("LangSmith run import",))
    assert created == 1
    assert sorted(PeriodicTask.objects.filter(name__in=[d.name for d in DEFAULT_SCHEDULES]).values_list(
        "task", flat=True)) == ["tasks.import_langsmith_runs", "tasks.rollup_usage", "tasks.send_spend_alerts",
                                "tasks.sync_ai_pricing"]  # fmt: skip


@after_migrate
def test_a_changed_schedule_reaches_a_running_beat_without_restart() -> None:
    beat = DatabaseScheduler(app=app)
    assert beat.schedule["AI usage rollup"].schedule.run_every == timedelta(minutes=5)
    rollup = PeriodicTask.objects.get(task="tasks.rollup_usage")
    rollup.interval, _ = IntervalSchedule.objects.get_or_create(every=2, period="minutes")
    rollup.save()  # as the admin does: the save bumps the change marker beat polls
    assert beat.schedule["AI usage rollup"].schedule.run_every == timedelta(minutes=2)


def test_backfill_command_recomputes_a_date_range(alice: Any, make_price: Any) -> None:
    make_price()
    for day in range(3):
        record_usage(user=alice, feature="chat", provider="acme", model="acme-1", input_tokens=500_000,
                     occurred_at=DAY + timedelta(days=day, hours=12))  # fmt: skip
    out = StringIO()
    call_command("rollup_usage", "--start", "2026-03-07", "--end", "2026-03-08", "--chunk-days", "1", stdout=out)
    assert out.getvalue() == "Backfilled 2 days (2026-03-07 to 2026-03-08)\n"
    assert sorted(UserAICostSummary.objects.values_list("date", "total_cost")) == [
        (DAY.date(), Decimal("1")), (DAY.date() + timedelta(days=1), Decimal("1"))
    ]  # fmt: skip
    assert list(RollupRun.objects.values_list("trigger", "outcome", "days")) == [("backfill", "succeeded", 1)] * 2
    with pytest.raises(CommandError, match=r"^--end 2026-03-06 is before --start 2026-03-07$"):
        call_command("rollup_usage", "--start", "2026-03-07", "--end", "2026-03-06")
    with pytest.raises(CommandError, match=r"^'07/03/2026' is not a date \(YYYY-MM-DD\)$"):
        call_command("rollup_usage", "--start", "07/03/2026")
    assert RollupRun.objects.count() == 2
