"""The default schedules of the background jobs, stored in django-celery-beat's tables so admins edit them.

They are created once with get_or_create (by name): an admin's later edit, or deletion, is never overwritten by a
restart, a deploy or a migration. Intervals rather than crontabs: django-celery-beat 2.8+ loads a crontab task
only within about two hours of its hour, and every job here is safe to run at any time of day.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils import timezone


@dataclass(frozen=True)
class DefaultSchedule:
    name: str
    task: str
    every: int
    period: str  # an IntervalSchedule period: "minutes", "hours", "days"
    expire_seconds: int
    description: str


DEFAULT_SCHEDULES = (
    DefaultSchedule(
        "AI usage rollup", "tasks.rollup_usage", 5, "minutes", 5 * 60,
        "Recompute hourly buckets and daily/monthly summaries touched by new or repriced logs.",
    ),
    DefaultSchedule(
        "AI spend alerts", "tasks.send_spend_alerts", 1, "minutes", 60,
        "Email users and staff who reached 80% or 100% of a daily or monthly limit; retry unsent alerts.",
    ),
    DefaultSchedule(
        "CAU snapshots", "tasks.compute_cau", 1, "days", 6 * 60 * 60,
        "Cost per active user for 7, 30 and 90 days, for today and yesterday.",
    ),
    DefaultSchedule(
        "AI price catalog sync", "tasks.sync_ai_pricing", 1, "days", 6 * 60 * 60,
        "Import the genai-prices catalog into price versions, then price logs that were unpriced.",
    ),
    DefaultSchedule(
        "LangSmith run import", "tasks.import_langsmith_runs", 15, "minutes", 15 * 60,
        "Import LLM runs from LANGSMITH_IMPORT_PROJECTS as usage logs (does nothing without LangSmith settings).",
    ),
)  # fmt: skip


def ensure_default_schedules(
    interval_model: Any, task_model: Any, changes_model: Any, names: tuple[str, ...] | None = None
) -> int:
    """Create the default schedules (those named, or all) that do not exist yet; returns how many were created.
    Takes the models as arguments so a data migration can pass its historical ones. A later migration names only
    the schedules it adds, so one an admin deleted is not brought back."""
    created = 0
    for default in DEFAULT_SCHEDULES:
        if names is not None and default.name not in names:
            continue
        interval, _ = interval_model.objects.get_or_create(every=default.every, period=default.period)
        _task, was_created = task_model.objects.get_or_create(
            name=default.name,
            defaults={
                "task": default.task,
                "interval": interval,
                "expire_seconds": default.expire_seconds,
                "description": default.description,
                "enabled": True,
            },
        )
        created += was_created
    if created:
        # Historical models send no signals: tell a running beat that its schedule changed.
        changes_model.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})
    return created
