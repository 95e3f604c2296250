"""What analytics queries answer: measures, slices of rows, summaries with their comparisons, CAU."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import strawberry

from graphql_api.scalars import BigInt, Money
from graphql_api.users import UserType


@strawberry.type
class Metrics:
    requests: int
    successful_requests: int
    failed_requests: int
    success_rate: Decimal | None = strawberry.field(description="0..1, null without requests")
    error_rate: Decimal | None
    input_tokens: BigInt
    output_tokens: BigInt
    cached_input_tokens: BigInt
    reasoning_tokens: BigInt
    total_tokens: BigInt
    cost: Money
    avg_cost_per_request: Money | None
    avg_latency_ms: Decimal | None
    active_users: int | None = strawberry.field(description="users with at least one call")
    unpriced_requests: int


@strawberry.type
class UsageRow:
    period: datetime | None
    provider: str | None
    model: str | None
    feature: str | None
    user_id: strawberry.ID | None
    user: UserType | None = strawberry.field(description="the user, when the slice is grouped by user")
    status: str | None
    metrics: Metrics


@strawberry.type
class UsageSlice:
    start: datetime
    end: datetime
    time_zone: str
    source: str = strawberry.field(description="summaries, summaries+logs or logs")
    totals: Metrics
    rows: list[UsageRow]


@strawberry.type
class Comparison:
    start: date = strawberry.field(description="first reporting day compared with")
    end: date = strawberry.field(description="last reporting day compared with (inclusive)")
    label: str = strawberry.field(description='the compared days for people, such as "Nov 27 \u2013 Nov 30, 2026"')
    totals: Metrics
    cost_change_percent: Decimal | None = strawberry.field(description="null when the compared days cost nothing")
    requests_change_percent: Decimal | None = strawberry.field(description="null without compared requests")


@strawberry.type
class UsageSummary:
    start: datetime
    end: datetime
    totals: Metrics
    previous_window: Comparison = strawberry.field(description="the days of equal length just before the range")
    previous_calendar_period: Comparison = strawberry.field(
        description=(
            "the same days one calendar period earlier: a year for period YEAR, a week for WEEK, otherwise a month "
            "(Dec 1-4 compares with Nov 1-4; a day past the end of a shorter month is its last day)"
        )
    )
    previous: Metrics = strawberry.field(deprecation_reason="use previousWindow.totals")
    cost_change_percent: Decimal | None = strawberry.field(deprecation_reason="use previousWindow.costChangePercent")
    requests_change_percent: Decimal | None = strawberry.field(
        deprecation_reason="use previousWindow.requestsChangePercent"
    )
    by_provider: list[UsageRow]
    by_model: list[UsageRow] = strawberry.field(description="the 10 costliest models")


@strawberry.type
class TokenUsage:
    totals: Metrics
    by_provider: list[UsageRow]
    by_model: list[UsageRow]
    daily: list[UsageRow] = strawberry.field(description="one row per day of the range, zeros included")


@strawberry.type
class CostPerActiveUser:
    start: date
    end: date
    cau: Money
    active_users: int
    total_cost: Money


@strawberry.type
class CauPoint:
    date: date
    window_days: int
    cau: Money
    active_users: int
    total_cost: Money
