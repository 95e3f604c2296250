"""Usage logs and prices for the API: a page of logs, the costliest calls, the price versions in force."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from django.db.models import F, Q

from graphql_api.context import Info
from graphql_api.errors import BadArgumentError
from graphql_api.scalars import BigInt, Money
from graphql_api.slices.inputs import TimeRange, UsageFilter
from graphql_api.slices.reading import MAX_ROWS, report_range, scoped_filter
from graphql_api.users import UserType, as_user_type
from usage.models import AIProviderPricing, AIUsageLog

MAX_LOG_PAGE = 100


@strawberry.enum
class LogOrder(Enum):
    COST = "cost"
    DATE = "date"


@strawberry.type
class UsageLogType:
    id: strawberry.ID
    occurred_at: datetime
    recorded_at: datetime
    user_id: strawberry.ID | None
    feature: str
    provider: str
    model: str
    session_id: str
    event_id: str | None
    status: str
    error_message: str
    input_tokens: BigInt
    output_tokens: BigInt
    cached_input_tokens: BigInt
    cache_write_tokens: BigInt
    reasoning_tokens: BigInt
    cost: Money | None = strawberry.field(description="null while the model has no price")
    user: UserType | None = strawberry.field(description="whose call it was; null for a call made on nobody's behalf")
    latency_ms: int | None

    @classmethod
    def of(cls, log: AIUsageLog) -> UsageLogType:
        return cls(
            id=strawberry.ID(str(log.pk)), occurred_at=log.occurred_at, recorded_at=log.recorded_at,
            user_id=None if log.user_id is None else strawberry.ID(str(log.user_id)), feature=log.feature,
            provider=log.provider, model=log.model, session_id=log.session_id, event_id=log.event_id,
            status=log.status, error_message=log.error_message, input_tokens=BigInt(log.input_tokens),
            output_tokens=BigInt(log.output_tokens), cached_input_tokens=BigInt(log.cached_input_tokens),
            cache_write_tokens=BigInt(log.cache_write_tokens), reasoning_tokens=BigInt(log.reasoning_tokens),
            cost=None if log.total_cost is None else Money(log.total_cost), latency_ms=log.latency_ms,
            user=None if log.user is None else as_user_type(log.user),
        )  # fmt: skip


@strawberry.type
class UsageLogPage:
    total_count: int
    items: list[UsageLogType]


def logs_in(info: Info, range: TimeRange | None, filter: UsageFilter | None) -> Any:
    window, filters = report_range(range, info), scoped_filter(info, filter)
    return AIUsageLog.objects.filter(filters.log_q(), occurred_at__gte=window.start, occurred_at__lt=window.end)


def _page_size(limit: int, offset: int = 0) -> None:
    if not 1 <= limit <= MAX_LOG_PAGE:
        raise BadArgumentError("limit", f"must be between 1 and {MAX_LOG_PAGE}, got {limit}")
    if offset < 0:
        raise BadArgumentError("offset", f"must not be negative, got {offset}")


def costliest_requests(info: Info, range: TimeRange | None, filter: UsageFilter | None, limit: int,
                       order: LogOrder) -> list[UsageLogType]:  # fmt: skip
    _page_size(limit)
    logs = logs_in(info, range, filter)
    by = [F("total_cost").desc(nulls_last=True), "-occurred_at"] if order is LogOrder.COST else ["-occurred_at", "-id"]
    return [UsageLogType.of(log) for log in logs.select_related("user").order_by(*by)[:limit]]


def usage_logs(info: Info, range: TimeRange | None, filter: UsageFilter | None, order: LogOrder,
               offset: int, limit: int) -> UsageLogPage:  # fmt: skip
    _page_size(limit, offset)
    logs = logs_in(info, range, filter)
    by = [F("total_cost").desc(nulls_last=True), "-id"] if order is LogOrder.COST else ["-occurred_at", "-id"]
    return UsageLogPage(
        total_count=logs.count(),
        items=[UsageLogType.of(log) for log in logs.select_related("user").order_by(*by)[offset : offset + limit]],
    )


@strawberry.type
class PriceVersion:
    provider: str
    model: str
    display_name: str
    input_price: Money = strawberry.field(description="USD per million tokens")
    output_price: Money
    cached_input_price: Money | None
    cache_write_price: Money | None
    request_price: Money | None
    effective_from: datetime
    effective_until: datetime | None
    source: str
    is_active: bool


def prices(provider: str | None, model: str | None, include_history: bool) -> list[PriceVersion]:
    rows = AIProviderPricing.objects.all().order_by("provider", "model", "-effective_from")
    if provider:
        rows = rows.filter(provider=provider)
    if model:
        rows = rows.filter(model=model)
    if not include_history:
        now = datetime.now().astimezone()
        rows = rows.filter(Q(effective_until__isnull=True) | Q(effective_until__gt=now), is_active=True,
                           effective_from__lte=now)  # fmt: skip
    fields = [f.name for f in PriceVersion.__strawberry_definition__.fields]  # type: ignore[attr-defined]
    return [PriceVersion(**{name: getattr(row, name) for name in fields}) for row in rows[:MAX_ROWS]]
