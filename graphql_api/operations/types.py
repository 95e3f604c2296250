"""The service's own state for operators: database, broker, the last rollup run, LangSmith."""

from __future__ import annotations

from datetime import datetime

import strawberry
import strawberry_django
from strawberry import auto

from analytics.models import RollupRun
from analytics.service_state import broker_state, database_state
from usage.langsmith import langsmith_status


@strawberry.type
class Health:
    ok: bool
    database: str


@strawberry.type
class QueuedTask:
    task_id: str


@strawberry.type
class RollupState:
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    hours: int
    error: str


@strawberry.type
class SystemStatus:
    database: str
    broker: str
    last_rollup: RollupState | None
    langsmith: str


def system_status() -> SystemStatus:
    run = RollupRun.objects.order_by("-started_at").first()
    last = None if run is None else RollupState(started_at=run.started_at, finished_at=run.finished_at,
                                                outcome=run.outcome, hours=run.hours, error=run.error)  # fmt: skip
    return SystemStatus(
        database=database_state(), broker=broker_state(), last_rollup=last, langsmith=langsmith_status().label
    )


@strawberry_django.filter_type(RollupRun, lookups=True)
class RollupRunFilter:
    outcome: auto
    trigger: auto
    started_at: auto
    finished_at: auto


@strawberry_django.order_type(RollupRun)
class RollupRunOrdering:
    started_at: auto
    finished_at: auto
    hours: auto
    id: auto


@strawberry_django.type(RollupRun, name="RollupRun", filters=RollupRunFilter, ordering=RollupRunOrdering)
class RollupRunType:
    id: strawberry.ID
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    trigger: str
    scanned_since: datetime | None = strawberry_django.field(description="logs written from here were scanned")
    hours: int = strawberry_django.field(description="hourly buckets recomputed")
    days: int
    months: int
    error: str
