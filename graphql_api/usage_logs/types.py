"""Usage logs and prices for the API: strawberry-django types over the models, with their filters and ordering."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import strawberry
import strawberry_django
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from strawberry import auto
from strawberry_django import ComparisonFilterLookup
from strawberry_django.pagination import OffsetPaginated

from graphql_api.context import Info
from graphql_api.errors import BadArgumentError
from graphql_api.pages import MAX_PAGE
from graphql_api.permissions import current_user
from graphql_api.scalars import BigInt, Money
from graphql_api.slices.inputs import TimeRange, UsageFilter
from graphql_api.slices.reading import report_range, scoped_filter
from graphql_api.users import UserType, user_ids_q
from usage.models import AIProviderPricing, AIUsageLog
from usage.visibility import logs_visible_to, price_versions


@strawberry.enum
class LogOrder(Enum):
    COST = "cost"
    DATE = "date"


@strawberry_django.filter_type(AIUsageLog, lookups=True)
class UsageLogFilter:
    provider: auto
    model: auto
    feature: auto
    status: auto
    session_id: auto
    event_id: auto
    occurred_at: auto
    total_cost: ComparisonFilterLookup[Decimal] | None = strawberry_django.filter_field(
        name="cost", description="USD; unpriced calls (null cost) match isNull: true only"
    )

    @strawberry_django.filter_field(description="only these users' calls (others' need usage.view_ai_analytics)")
    def user_ids(self, info: Info, value: list[strawberry.ID], prefix: str) -> Q:
        return user_ids_q(info, value, prefix, "filters.userIds")


@strawberry_django.order_type(AIUsageLog)
class UsageLogOrdering:
    occurred_at: auto
    recorded_at: auto
    provider: auto
    model: auto
    feature: auto
    status: auto
    latency_ms: auto
    input_tokens: auto
    output_tokens: auto
    total_cost: auto = strawberry_django.order_field(name="cost")
    id: auto


@strawberry_django.type(AIUsageLog, filters=UsageLogFilter, ordering=UsageLogOrdering, pagination=True)
class UsageLogType:
    id: strawberry.ID
    occurred_at: datetime
    recorded_at: datetime
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
    cost: Money | None = strawberry_django.field(
        field_name="total_cost", description="null while the model has no price"
    )
    user: UserType | None = strawberry_django.field(
        description="whose call it was; null for a call made on nobody's behalf"
    )
    latency_ms: int | None

    @strawberry_django.field(only=["user_id"])
    def user_id(self, root: AIUsageLog) -> strawberry.ID | None:
        return None if root.user_id is None else strawberry.ID(str(root.user_id))


@strawberry.type
class UsageLogPage(OffsetPaginated[UsageLogType]):
    """The page type keeps its name and its `items` field from before it was strawberry-django's."""

    @strawberry_django.field(deprecation_reason="Use `results`.")
    def items(self) -> list[UsageLogType]:
        page = self.get_paginated_queryset()
        # The optimizer plans the `results` selection only; `items` loads the users in the same query.
        return [] if page is None else list(page.select_related("user"))


# The optimizer reads the node type of a page from its generic parameter, which a named subclass does not carry.
UsageLogPage.__strawberry_definition__.type_var_map = {"NodeType": UsageLogType}  # type: ignore[attr-defined]


def logs_in(info: Info, range: TimeRange | None, filter: UsageFilter | None) -> QuerySet[AIUsageLog]:
    """The caller's logs in a range (by default the last 7 reporting days), narrowed by the older `filter` input."""
    window, filters = report_range(range, info), scoped_filter(info, filter)
    logs = logs_visible_to(current_user(info))
    return logs.filter(filters.log_q(), occurred_at__gte=window.start, occurred_at__lt=window.end)


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise BadArgumentError("limit", f"must be between 1 and {MAX_PAGE}, got {limit}")


def costliest_requests(info: Info, range: TimeRange | None, filter: UsageFilter | None, limit: int,
                       order: LogOrder) -> QuerySet[AIUsageLog]:  # fmt: skip
    """The first `limit` logs in this order; the optimizer then loads only the fields asked for (and the users)."""
    check_limit(limit)
    by = [F("total_cost").desc(nulls_last=True), "-occurred_at"] if order is LogOrder.COST else ["-occurred_at", "-id"]
    return logs_in(info, range, filter).order_by(*by)[:limit]


def usage_logs(info: Info, range: TimeRange | None, filter: UsageFilter | None) -> QuerySet[AIUsageLog]:
    """Latest first unless `ordering` says otherwise (strawberry-django replaces this order when it is given)."""
    return logs_in(info, range, filter).order_by("-occurred_at", "-id")


@strawberry_django.filter_type(AIProviderPricing, lookups=True)
class PriceVersionFilter:
    provider: auto
    model: auto
    source: auto
    is_active: auto
    effective_from: auto
    effective_until: auto


@strawberry_django.order_type(AIProviderPricing)
class PriceVersionOrdering:
    provider: auto
    model: auto
    effective_from: auto
    effective_until: auto
    input_price: auto
    output_price: auto


@strawberry_django.type(AIProviderPricing, filters=PriceVersionFilter, ordering=PriceVersionOrdering)
class PriceVersion:
    provider: str
    model: str
    display_name: str
    input_price: Money = strawberry_django.field(description="USD per million tokens")
    output_price: Money
    cached_input_price: Money | None
    cache_write_price: Money | None
    request_price: Money | None
    effective_from: datetime
    effective_until: datetime | None
    source: str
    is_active: bool


def prices(provider: str | None, model: str | None, include_history: bool) -> Any:
    return price_versions(provider, model, include_history, timezone.now())
