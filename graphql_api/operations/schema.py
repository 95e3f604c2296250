"""Operations: health, the service's state, and queueing the batch jobs."""

from __future__ import annotations

from datetime import date
from typing import Any

import strawberry
import strawberry_django
from django.db.models import QuerySet
from strawberry_django.pagination import OffsetPaginated

from analytics.ranges import check_day
from analytics.rollup import recent_runs
from analytics.service_state import database_state
from graphql_api.errors import BadArgumentError
from graphql_api.operations.types import Health, QueuedTask, RollupRunType, SystemStatus, system_status
from graphql_api.pages import PageBounds
from graphql_api.permissions import QueuesJobs, ReadsEveryone
from tasks import rollup_usage, sync_ai_pricing
from usage.validation import InvalidUsage


@strawberry.type
class OperationsQuery:
    @strawberry.field(description="Whether the service can reach its database.")
    def health(self) -> Health:
        database = database_state()
        return Health(ok=database == "ok", database=database)

    @strawberry.field(
        permission_classes=[ReadsEveryone],
        description="Needs usage.view_ai_analytics: database, broker, last rollup run and LangSmith state.",
    )
    def system_status(self) -> SystemStatus:
        return system_status()

    @strawberry_django.offset_paginated(
        OffsetPaginated[RollupRunType],
        permission_classes=[ReadsEveryone],
        extensions=[PageBounds()],
        description="Needs usage.view_ai_analytics: the recorded rollup runs, latest first, 100 a page.",
    )
    def rollup_runs(self) -> QuerySet[Any]:
        return recent_runs()


@strawberry.type
class OperationsMutation:
    @strawberry.mutation(
        permission_classes=[QueuesJobs],
        description="Needs usage.queue_ai_jobs: queue a price catalog sync (and repricing); returns the task id.",
    )
    def sync_pricing(self) -> QueuedTask:
        return QueuedTask(task_id=sync_ai_pricing.delay(trigger="api").id)

    @strawberry.mutation(
        permission_classes=[QueuesJobs],
        description="Needs usage.queue_ai_jobs: queue a rollup (of reporting days start..end when given).",
    )
    def run_rollup(self, start: date | None = None, end: date | None = None) -> QueuedTask:
        return QueuedTask(task_id=rollup_usage.delay(**rollup_days(start, end)).id)


def rollup_days(start: date | None, end: date | None) -> dict[str, str | None]:
    """The task's arguments for reporting days start..end (both or neither), checked and named when wrong."""
    if (start is None) != (end is None):
        raise BadArgumentError("end" if end is None else "start", "start and end must be given together")
    try:
        check_day("start", start)
        check_day("end", end)
    except InvalidUsage as exc:
        raise BadArgumentError(exc.field, exc.problem) from exc
    if start is not None and end is not None and end < start:
        raise BadArgumentError("end", f"{end} is before start {start}")
    return {} if start is None or end is None else {"start": start.isoformat(), "end": end.isoformat()}
