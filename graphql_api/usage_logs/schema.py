"""Usage and logs: recording calls, reading log pages and the costliest calls, and the prices they were priced by."""

from __future__ import annotations

import strawberry

from graphql_api.context import Info
from graphql_api.permissions import SignedIn, current_user
from graphql_api.slices.inputs import TimeRange, UsageFilter
from graphql_api.usage_logs.ingest import EventResult, UsageEventInput, record_events
from graphql_api.usage_logs.types import (
    LogOrder,
    PriceVersion,
    UsageLogPage,
    UsageLogType,
    costliest_requests,
    prices,
    usage_logs,
)


@strawberry.type
class UsageLogsQuery:
    @strawberry.field(
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
        return costliest_requests(info, range, filter, limit, order)

    @strawberry.field(
        permission_classes=[SignedIn], description="A page of usage logs (at most 100) with the total count."
    )
    def usage_logs(
        self,
        info: Info,
        range: TimeRange | None = None,
        filter: UsageFilter | None = None,
        order: LogOrder = LogOrder.DATE,
        offset: int = 0,
        limit: int = 50,
    ) -> UsageLogPage:
        return usage_logs(info, range, filter, order, offset, limit)

    @strawberry.field(
        permission_classes=[SignedIn],
        description="Price versions: those in force now, or every version with includeHistory.",
    )
    def pricing(
        self, provider: str | None = None, model: str | None = None, include_history: bool = False
    ) -> list[PriceVersion]:
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
