"""Each background job's latest run, for the pages: one row per task name, replaced at every start and end."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from analytics.models import JobRun, RunOutcome


def job_started(task: str) -> None:
    JobRun.objects.update_or_create(
        task=task, defaults={"started_at": timezone.now(), "finished_at": None, "outcome": RunOutcome.RUNNING}
    )


def job_finished(task: str, succeeded: bool) -> None:
    outcome = RunOutcome.SUCCEEDED if succeeded else RunOutcome.FAILED
    JobRun.objects.filter(task=task).update(finished_at=timezone.now(), outcome=outcome)


def schedules_with_last_run() -> QuerySet[PeriodicTask]:
    """The schedules by name, each with `last_ran` (its job's latest end, or beat's own record) and
    `last_outcome`."""
    latest = JobRun.objects.filter(task=OuterRef("task"))
    return PeriodicTask.objects.annotate(
        last_finished=Subquery(latest.values("finished_at")[:1]),
        last_outcome=Subquery(latest.values("outcome")[:1]),
    ).order_by("name")
