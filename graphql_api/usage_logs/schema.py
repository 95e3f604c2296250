"""Usage and logs: recording calls, reading log pages and the costliest calls, and the prices they were priced by."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
import strawberry_django

from graphql_api.context import Info
from graphql_api.pages import PageBounds
from graphql_api.permissions import SignedIn, current_user
from graphql_api.slices.inputs import TimeRange, UsageFilter
from graphql_api.usage_logs.ingest import EventResult, UsageEventInput, record_events
from graphql_api.usage_logs.types import (
    LogOrder,
    PriceVersion,
    PriceVersionFilter,
    PriceVersionOrdering,
    UsageLogPage,
    UsageLogType,
    costliest_requests,
    prices,
    usage_logs,
)


@strawberry.type
class UsageLogsQuery:
    @strawberry_django.field(
        permission_classes=[SignedIn], description="The most expensive (or the latest) calls, at most 100."
    )
    def costliest_requests(
        self,
        info: Info,
        range: TimeRange | None = None,
        filter: UsageFilter | None = None,
        limit: int = 20,
        order: LogOrder = LogOrder.COST,
    ) -> list[UsageLogType]:
        return costliest_requests(info, range, filter, limit, order)  # type: ignore[return-value]

    @strawberry_django.offset_paginated(
        UsageLogPage,
        permission_classes=[SignedIn],
        extensions=[PageBounds()],
        description=(
            "A page of the caller's usage logs (everyone's with usage.view_ai_analytics) in `range` (by default "
            "the last 7 days), latest first, at most 100 per page, with the total count."
        ),
    )
    def usage_logs(
        self,
        info: Info,
        range: TimeRange | None = None,
        filter: Annotated[
            UsageFilter | None, strawberry.argument(deprecation_reason="Use `filters` (the same fields, and more).")
        ] = None,
    ) -> Any:
        return usage_logs(info, range, filter)

    @strawberry_django.field(
        permission_classes=[SignedIn],
        filters=PriceVersionFilter,
        ordering=PriceVersionOrdering,
        description="Price versions: those in force now, or every version with includeHistory.",
    )
    def pricing(
        self,
        provider: str | None = None,
        model: str | None = None,
        include_history: bool = False,
        filters: PriceVersionFilter | None = None,
        ordering: list[PriceVersionOrdering] | None = None,
    ) -> list[PriceVersion]:
        # strawberry-django applies `filters` and `ordering` to the queryset this returns.
        return prices(provider, model, include_history)


@strawberry.type
class UsageLogsMutation:
    @strawberry.mutation(
        permission_classes=[SignedIn],
        description=(
            "Record up to 1,000 finished calls; each is recorded, a duplicate or rejected. Calls for other users "
            "need usage.record_ai_usage_for_others."
        ),
    )
    def record_usage(self, info: Info, events: list[UsageEventInput]) -> list[EventResult]:
        return record_events(events, current_user(info))
