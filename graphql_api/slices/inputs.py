"""The arguments of analytics queries: which time range, which calls, how to slice and order them."""

from __future__ import annotations

from datetime import date
from enum import Enum

import strawberry


@strawberry.enum
class Period(Enum):
    TODAY = "today"
    YESTERDAY = "yesterday"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"
    ALL = "all"


@strawberry.enum
class Dimension(Enum):
    PROVIDER = "provider"
    MODEL = "model"
    FEATURE = "feature"
    USER = "user"
    STATUS = "status"


@strawberry.enum
class Granularity(Enum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@strawberry.enum
class MetricOrder(Enum):
    PERIOD = "period"
    COST = "cost"
    REQUESTS = "requests"
    TOKENS = "tokens"
    ERRORS = "errors"


@strawberry.input(description="Dates win over days, days over a period; nothing given means the last 7 days.")
class TimeRange:
    period: Period | None = None
    days: int | None = None
    start: date | None = None
    end: date | None = strawberry.field(default=None, description="inclusive")
    time_zone: str | None = strawberry.field(default=None, description="IANA name; default ANALYTICS_TIME_ZONE")


@strawberry.input
class UsageFilter:
    providers: list[str] | None = None
    models: list[str] | None = None
    features: list[str] | None = None
    user_ids: list[strawberry.ID] | None = None
    statuses: list[str] | None = None
    session_id: str | None = None
