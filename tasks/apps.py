from __future__ import annotations

import logging
from functools import partial
from typing import Any

from celery.signals import task_postrun, task_prerun
from django.apps import AppConfig
from django.db import transaction

logger = logging.getLogger(__name__)


def enqueue_alerts(user_id: int) -> None:
    """Queue the alert job for one user. Never fails the write that triggered it: if the broker is unreachable,
    the scheduled alert run finds the crossing a minute later."""
    from tasks.tasks import send_spend_alerts

    try:
        send_spend_alerts.apply_async(kwargs={"user_ids": [user_id]}, retry=False)
    except Exception:
        logger.warning("could not queue the spend alert job for user %s", user_id, exc_info=True)


def on_job_start(sender: Any = None, **_kwargs: Any) -> None:
    from analytics.job_runs import job_started

    if sender.name.startswith("tasks."):  # our jobs, not Celery's own housekeeping
        job_started(sender.name)


def on_job_end(sender: Any = None, state: str | None = None, **_kwargs: Any) -> None:
    from analytics.job_runs import job_finished

    if sender.name.startswith("tasks."):
        job_finished(sender.name, succeeded=state == "SUCCESS")


def on_threshold_crossed(user_id: int, **_kwargs: Any) -> None:
    transaction.on_commit(partial(enqueue_alerts, user_id))


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Background jobs"

    def ready(self) -> None:
        from usage.events import spend_threshold_crossed

        spend_threshold_crossed.connect(on_threshold_crossed, dispatch_uid="tasks.alerts_on_crossing")
        # Each job's latest run, recorded as it happens (a failure to record is logged by Celery, never raised).
        task_prerun.connect(on_job_start, dispatch_uid="tasks.job_started")
        task_postrun.connect(on_job_end, dispatch_uid="tasks.job_finished")
