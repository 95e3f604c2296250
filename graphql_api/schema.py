"""The GraphQL schema. The exported SDL is committed as schema.graphql: it is the contract for frontends.

Resolvers are thin: they check who is asking, then call the domain code in `usage` and `analytics`.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import cache
from typing import Annotated, Any

import strawberry
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import Info

from analytics.ranges import check_day
from graphql_api.analytics import (
    MAX_ROWS,
    Dimension,
    Granularity,
    MetricOrder,
    TimeRange,
    UsageFilter,
    UsageSlice,
    usage_slice,
)
from graphql_api.client_errors import ClientMistakes, Schema
from graphql_api.cost import QueryCostBudget
from graphql_api.ingest import EventResult, UsageEventInput, record_events
from graphql_api.named import (
    CauPoint,
    CostPerActiveUser,
    LogOrder,
    PriceVersion,
    SystemStatus,
    TokenUsage,
    UsageLogPage,
    UsageLogType,
    UsageSummary,
    cau,
    cau_points,
    costliest_requests,
    prices,
    system_status,
    token_usage,
    usage_logs,
    usage_summary,
)
from graphql_api.permissions import (
    BadArgumentError,
    ChangesLimits,
    QueuesJobs,
    ReadsEveryone,
    SignedIn,
    current_user,
    should_mask_error,
)
from graphql_api.ratelimit import RateLimits
from graphql_api.scalars import SCALAR_MAP
from graphql_api.spend import SpendStatusEnum, UserSpendPage, UserSpendType, all_user_spend, spend_type
from graphql_api.timeout import StatementTimeout
from tasks import rollup_usage, sync_ai_pricing
from usage.budgets import limit_cache, spend_status
from usage.models import UserSpendLimit
from usage.validation import parse_id

MAX_PAGE = 1000


@strawberry.type
class Health:
    ok: bool
    database: str


@strawberry.type
class QueuedTask:
    task_id: str


@strawberry.type
class Query:
    @strawberry.field(description="Whether the service can reach its database.")
    def health(self) -> Health:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            return Health(ok=True, database="ok")
        except Exception as exc:  # reported, not raised: a health probe must always answer
            return Health(ok=False, database=f"error: {type(exc).__name__}")

    @strawberry.field(
        permission_classes=[SignedIn],
        description=(
            "Any slice of usage: dimensions, time granularity, filters. Callers without usage.view_ai_analytics "
            "see only their own."
        ),
    )
    def usage(
        self,
        info: Info[Any, Any],
        range: TimeRange | None = None,
        filter: UsageFilter | None = None,
        group_by: list[Dimension] | None = None,
        granularity: Granularity | None = None,
        order_by: MetricOrder | None = None,
        limit: int = 1000,
    ) -> UsageSlice:
        return usage_slice(info, range, filter, group_by, granularity, order_by, limit)

    @strawberry.field(
        permission_classes=[SignedIn],
        description="Cost and usage over time (default daily), optionally split by dimensions.",
    )
    def cost_timeline(
        self,
        info: Info[Any, Any],
        range: TimeRange | None = None,
        filter: UsageFilter | None = None,
        granularity: Granularity = Granularity.DAY,
        group_by: list[Dimension] | None = None,
    ) -> UsageSlice:
        return usage_slice(info, range, filter, group_by, granularity, MetricOrder.PERIOD, MAX_ROWS)

    @strawberry.field(
        permission_classes=[ReadsEveryone],
        description="Needs usage.view_ai_analytics: the users who spent most (or made most calls) in the range.",
    )
    def top_users(
        self,
        info: Info[Any, Any],
        range: TimeRange | None = None,
        limit: int = 10,
        order_by: MetricOrder = MetricOrder.COST,
    ) -> UsageSlice:
        return usage_slice(info, range, None, [Dimension.USER], None, order_by, limit, named_users_only=True)

    @strawberry.field(
        permission_classes=[SignedIn],
        description="Totals, by provider, top 10 models, and the change from the previous period.",
    )
    def usage_summary(
        self, info: Info[Any, Any], range: TimeRange | None = None, filter: UsageFilter | None = None
    ) -> UsageSummary:
        return usage_summary(info, range, filter)

    @strawberry.field(
        permission_classes=[SignedIn],
        description="Tokens by provider, by model and by day (a sessionId filter reads the logs).",
    )
    def token_usage(
        self, info: Info[Any, Any], range: TimeRange | None = None, filter: UsageFilter | None = None
    ) -> TokenUsage:
        return token_usage(info, range, filter)

    @strawberry.field(
        permission_classes=[SignedIn], description="The most expensive (or the latest) calls, at most 100."
    )
    def costliest_requests(
        self,
        info: Info[Any, Any],
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
        info: Info[Any, Any],
        range: TimeRange | None = None,
        filter: UsageFilter | None = None,
        order: LogOrder = LogOrder.DATE,
        offset: int = 0,
        limit: int = 50,
    ) -> UsageLogPage:
        return usage_logs(info, range, filter, order, offset, limit)

    @strawberry.field(
        permission_classes=[ReadsEveryone],
        description="Needs usage.view_ai_analytics: cost per active user over the last `days` days or start..end.",
    )
    def cau(
        self, info: Info[Any, Any], days: int | None = None, start: date | None = None, end: date | None = None
    ) -> CostPerActiveUser:
        return cau(info, days, start, end)

    @strawberry.field(
        permission_classes=[ReadsEveryone],
        description="Needs usage.view_ai_analytics: daily CAU snapshots of a 7-, 30- or 90-day window.",
    )
    def cau_trend(self, info: Info[Any, Any], window_days: int = 30, range: TimeRange | None = None) -> list[CauPoint]:
        return cau_points(info, window_days, range)

    @strawberry.field(
        permission_classes=[SignedIn],
        description="Price versions: those in force now, or every version with includeHistory.",
    )
    def pricing(
        self, info: Info[Any, Any], provider: str | None = None, model: str | None = None, include_history: bool = False
    ) -> list[PriceVersion]:
        return prices(provider, model, include_history)

    @strawberry.field(
        permission_classes=[ReadsEveryone],
        description="Needs usage.view_ai_analytics: database, broker, last rollup run and LangSmith state.",
    )
    def system_status(self, info: Info[Any, Any]) -> SystemStatus:
        return system_status(info)

    @strawberry.field(
        permission_classes=[SignedIn],
        description="The caller's own spend today and this month, with limits and status.",
    )
    def my_spend(self, info: Info[Any, Any]) -> UserSpendType:
        user = current_user(info)
        return spend_type(user, spend_status(user.pk))

    @strawberry.field(
        permission_classes=[ReadsEveryone],
        description=(
            "Needs usage.view_ai_analytics: every active user's spend, most used limit first (no cap; paginate)."
        ),
    )
    def user_spend(
        self,
        info: Info[Any, Any],
        status: SpendStatusEnum | None = None,
        search: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> UserSpendPage:
        if not 1 <= limit <= MAX_PAGE:
            raise BadArgumentError("limit", f"must be between 1 and {MAX_PAGE}, got {limit}")
        if offset < 0:
            raise BadArgumentError("offset", f"must not be negative, got {offset}")
        rows = all_user_spend(None if status is None else status.value, search)
        return UserSpendPage(total_count=len(rows), rows=rows[offset : offset + limit])


CENT = Decimal("0.01")
LIMIT_ARGUMENT = "USD, at most 2 decimal places; null: the default limit; omitted: left as it is"


def _limit(argument: str, value: Decimal | None) -> Decimal | None:
    """A limit as stored (whole cents), or refused naming the argument: never rounded into another amount."""
    if value is None:
        return None
    if not value.is_finite() or value < 0 or value >= Decimal("1e12"):
        raise BadArgumentError(argument, f"must be a non-negative amount below 1e12, got {value}")
    if value != value.quantize(CENT):
        raise BadArgumentError(argument, f"{value} has more than 2 decimal places; limits are stored in whole cents")
    return value


def _limit_changes(daily: Decimal | None, monthly: Decimal | None) -> dict[str, Decimal | None]:
    """The limits to write: an omitted argument leaves its limit as it is, null sets the default."""
    given = {"daily_limit": ("dailyLimit", daily), "monthly_limit": ("monthlyLimit", monthly)}
    return {field: _limit(name, value) for field, (name, value) in given.items() if value is not strawberry.UNSET}


def _user_named(user_id: str) -> Any:
    number = parse_id(user_id)
    if number is None:
        raise BadArgumentError("userId", f"must be a user id such as 42, got {str(user_id)!r}")
    user = get_user_model().objects.filter(pk=number).first()
    if user is None:
        raise BadArgumentError("userId", f"no user with id {number}")
    return user


@strawberry.type
class Mutation:
    @strawberry.mutation(
        permission_classes=[SignedIn],
        description=(
            "Record up to 1,000 finished calls; each is recorded, a duplicate or rejected. Calls for other users "
            "need usage.record_ai_usage_for_others."
        ),
    )
    def record_usage(self, info: Info[Any, Any], events: list[UsageEventInput]) -> list[EventResult]:
        return record_events(events, current_user(info))

    @strawberry.mutation(
        permission_classes=[ChangesLimits],
        description=(
            "Needs usage.change_userspendlimit: set a user's daily and monthly limits (null: the default; an omitted "
            "limit is unchanged)."
        ),
    )
    def set_spend_limit(
        self,
        info: Info[Any, Any],
        user_id: strawberry.ID,
        daily_limit: Annotated[Decimal | None, strawberry.argument(description=LIMIT_ARGUMENT)] = strawberry.UNSET,
        monthly_limit: Annotated[Decimal | None, strawberry.argument(description=LIMIT_ARGUMENT)] = strawberry.UNSET,
    ) -> UserSpendType:
        user = _user_named(user_id)
        UserSpendLimit.objects.update_or_create(user=user, defaults=_limit_changes(daily_limit, monthly_limit))
        limit_cache.clear()
        return spend_type(user, spend_status(user.pk))

    @strawberry.mutation(
        permission_classes=[QueuesJobs],
        description="Needs usage.queue_ai_jobs: queue a price catalog sync (and repricing); returns the task id.",
    )
    def sync_pricing(self, info: Info[Any, Any]) -> QueuedTask:
        return QueuedTask(task_id=sync_ai_pricing.delay(trigger="api").id)

    @strawberry.mutation(
        permission_classes=[QueuesJobs],
        description="Needs usage.queue_ai_jobs: queue a rollup (of reporting days start..end when given).",
    )
    def run_rollup(self, info: Info[Any, Any], start: date | None = None, end: date | None = None) -> QueuedTask:
        if (start is None) != (end is None):
            raise BadArgumentError("end" if end is None else "start", "start and end must be given together")
        check_day("start", start)
        check_day("end", end)
        if start is not None and end is not None and end < start:
            raise BadArgumentError("end", f"{end} is before start {start}")
        dates = {} if start is None else {"start": start.isoformat(), "end": end.isoformat() if end else None}
        return QueuedTask(task_id=rollup_usage.delay(**dates).id)


@cache
def _limit_rules(max_depth: int, max_aliases: int) -> tuple[Any, ...]:
    """The depth and alias rules for these limits. Strawberry's limiters make a new rule class per instance; made
    once per value, the rules are the same on every request, so a validated query can be served from the cache."""
    depth = QueryDepthLimiter(max_depth=max_depth).validation_rules
    aliases = MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules
    return (*depth, *aliases)


class RequestLimits(AddValidationRules):
    """Query depth and alias limits, read from settings on each request."""

    def __init__(self) -> None:
        super().__init__(list(_limit_rules(settings.GRAPHQL_MAX_DEPTH, settings.GRAPHQL_MAX_ALIASES)))


def extensions() -> list[Any]:
    chosen: list[Any] = [
        RequestLimits,
        lambda: MaxTokensLimiter(max_token_count=settings.GRAPHQL_MAX_TOKENS),
        lambda: MaskErrors(should_mask_error=should_mask_error),
        # Dashboards send the same few query texts again and again: parse and validate each once per process.
        # Both caches are keyed by everything that decides the outcome (text, token limit, rules), and bounded.
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
        ClientMistakes,  # after ValidationCache: it reads and replaces the errors that one sets
        # Before anything runs, in this order: the caller's rate limits, the query's cost; then a time limit.
        RateLimits,
        QueryCostBudget,
        StatementTimeout,
    ]
    if not settings.GRAPHQL_INTROSPECTION:
        chosen.append(DisableIntrospection)
    return chosen


CONFIG = StrawberryConfig(scalar_map=SCALAR_MAP, disable_field_suggestions=not settings.DEBUG)
schema = Schema(query=Query, mutation=Mutation, config=CONFIG, extensions=extensions())
