"""Celery tasks: thin, idempotent callers of one service function each.

Only transient failures (a database or broker connection dropped, SMTP unreachable) are retried; anything else is a
bug that retrying would repeat. `expires` drops a queued run that waited longer than its schedule interval: the
next scheduled run does the same work.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError

from analytics.cau import refresh_cau_snapshots
from analytics.rollup import backfill_days, run_rollup
from usage.alerts import send_spend_alerts as send_alerts
from usage.langsmith_import import import_all_projects
from usage.repricing import sync_prices_and_reprice

TRANSIENT = (OperationalError, InterfaceError, ConnectionError)
RETRYING: dict[str, Any] = {
    "autoretry_for": TRANSIENT,
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "max_retries": 5,
}


@shared_task(name="tasks.rollup_usage", expires=10 * 60, **RETRYING)
def rollup_usage(start: str | None = None, end: str | None = None) -> dict[str, Any]:
    """Roll up what changed since the last run, or recompute reporting days start..end (ISO dates) when given."""
    if start is not None or end is not None:
        run = backfill_days(date.fromisoformat(start or end or ""), date.fromisoformat(end or start or ""))
    else:
        run = run_rollup()
    return {"run": run.pk, "outcome": run.outcome, "hours": run.hours, "days": run.days, "months": run.months}


@shared_task(name="tasks.compute_cau", expires=6 * 60 * 60, **RETRYING)
def compute_cau(days_back: int = 1) -> dict[str, int]:
    """Snapshots for today and the `days_back` days before it (the first start takes the demo data's days)."""
    return {"snapshots": refresh_cau_snapshots(days_back)}


@shared_task(name="tasks.sync_ai_pricing", expires=6 * 60 * 60, **RETRYING)
def sync_ai_pricing(source: str | None = None, trigger: str = "schedule") -> dict[str, int]:
    return sync_prices_and_reprice(source, trigger=trigger).as_dict()


@shared_task(name="tasks.send_spend_alerts", expires=5 * 60, **RETRYING)
def send_spend_alerts(user_ids: list[int] | None = None) -> dict[str, int]:
    """Alerts due for these users (everyone when None), and every unsent one. An email that could not be sent
    (SMTP down) stays unsent in the database, and the next run, a minute later by default, sends it."""
    return send_alerts(user_ids).as_dict()


@shared_task(name="tasks.import_langsmith_runs", expires=15 * 60, **RETRYING)
def import_langsmith_runs() -> dict[str, dict[str, int]]:
    """LLM runs from the LANGSMITH_IMPORT_PROJECTS since each project's cursor, as usage logs (never twice)."""
    return import_all_projects()
