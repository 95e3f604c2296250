"""Analytics slices: any slice of usage, timelines, top users, summaries, token breakdowns and CAU."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import strawberry

from graphql_api.context import Info
from graphql_api.permissions import ReadsEveryone, SignedIn
from graphql_api.slices.inputs import Dimension, Granularity, MetricOrder, TimeRange, UsageFilter
from graphql_api.slices.reading import MAX_ROWS, usage_slice
from graphql_api.slices.summaries import cau, cau_points, token_usage, usage_summary
from graphql_api.slices.types import CauPoint, CostPerActiveUser, TokenUsage, UsageSlice, UsageSummary


@strawberry.type
class SlicesQuery:
    @strawberry.field(
        permission_classes=[SignedIn],
        description=(
            "Any slice of usage: dimensions, time granularity, filters. Callers without usage.view_ai_analytics "
            "see only their own."
        ),
    )
    def usage(
        self,
        info: Info,
        range: TimeRange | None = None,
        filter: UsageFilter | None = None,
        group_by: list[Dimension] | None = None,
        granularity: Granularity | None = None,
        order_by: MetricOrder | None = None,
        limit: int = 1000,
        fill_gaps: Annotated[
            bool,
            strawberry.argument(
                description="with a granularity: one row per period and group seen, zeros included (as costTimeline)"
            ),
        ] = False,
    ) -> UsageSlice:
        return usage_slice(info, range, filter, group_by, granularity, order_by, limit, fill_gaps=fill_gaps)

    @strawberry.field(
        permission_classes=[SignedIn],
        description=(
            "Cost and usage over time (default daily), optionally split by dimensions: one row per period of the "
            "range for each group, zeros included."
        ),
    )
    def cost_timeline(
        self,
        info: Info,
        range: TimeRange | None = None,
        filter: UsageFilter | None = None,
        granularity: Granularity = Granularity.DAY,
        group_by: list[Dimension] | None = None,
    ) -> UsageSlice:
        return usage_slice(info, range, filter, group_by, granularity, MetricOrder.PERIOD, MAX_ROWS, fill_gaps=True)

    @strawberry.field(
        permission_classes=[ReadsEveryone],
        description="Needs usage.view_ai_analytics: the users who spent most (or made most calls) in the range.",
    )
    def top_users(
        self, info: Info, range: TimeRange | None = None, limit: int = 10, order_by: MetricOrder = MetricOrder.COST
    ) -> UsageSlice:
        return usage_slice(info, range, None, [Dimension.USER], None, order_by, limit, named_users_only=True)

    @strawberry.field(
        permission_classes=[SignedIn],
        description=(
            "Totals, by provider, top 10 models, and two labelled comparisons: the window just before and the same "
            "days a calendar period earlier."
        ),
    )
    def usage_summary(
        self, info: Info, range: TimeRange | None = None, filter: UsageFilter | None = None
    ) -> UsageSummary:
        return usage_summary(info, range, filter)

    @strawberry.field(
        permission_classes=[SignedIn],
        description="Tokens by provider, by model and by day (a sessionId filter reads the logs).",
    )
    def token_usage(self, info: Info, range: TimeRange | None = None, filter: UsageFilter | None = None) -> TokenUsage:
        return token_usage(info, range, filter)

    @strawberry.field(
        permission_classes=[ReadsEveryone],
        description="Needs usage.view_ai_analytics: cost per active user over the last `days` days or start..end.",
    )
    def cau(
        self, info: Info, days: int | None = None, start: date | None = None, end: date | None = None
    ) -> CostPerActiveUser:
        return cau(info, days, start, end)

    @strawberry.field(
        permission_classes=[ReadsEveryone],
        description="Needs usage.view_ai_analytics: daily CAU snapshots of a 7-, 30- or 90-day window.",
    )
    def cau_trend(self, info: Info, window_days: int = 30, range: TimeRange | None = None) -> list[CauPoint]:
        return cau_points(info, window_days, range)
