"""Named queries for dashboards: summaries with comparisons, token breakdowns, costliest calls, CAU, prices,
log pages and system status. Each reads through the slice engine or one indexed query."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, localcontext
from enum import Enum
from typing import Any

import strawberry
from django.db import connection
from django.db.models import F, Q
from strawberry.types import Info

from analytics.cau import cau_trend
from analytics.models import RollupRun
from analytics.ranges import ReportRange
from analytics.slices import SliceFilter, SliceQuery, SliceResult
from graphql_api.analytics import (
    MAX_ROWS,
    Granularity,
    MetricOrder,
    Metrics,
    TimeRange,
    UsageFilter,
    UsageRow,
    metrics,
    ordered,
    report_range,
    scoped_filter,
    selects,
    usage_row,
    wanted_measures,
)
from graphql_api.permissions import BadArgumentError
from graphql_api.scalars import BigInt
from usage.budgets import cost_per_active_user
from usage.langsmith import langsmith_status
from usage.models import AIProviderPricing, AIUsageLog

MAX_LOG_PAGE = 100


def run_slice(info: Info[Any, Any], window: ReportRange, filters: SliceFilter, group_by: tuple[str, ...] = (),
              granularity: str | None = None, order: MetricOrder | None = None) -> SliceResult:  # fmt: skip
    return SliceQuery(
        start=window.start, end=window.end, zone=window.zone, group_by=group_by, granularity=granularity,
        filters=filters, with_users=selects(info, "activeUsers"), measures=wanted_measures(info, order),
    ).run()  # fmt: skip


def change(now: Decimal | int, before: Decimal | int) -> Decimal | None:
    """Percentage change from the previous period; null when there was nothing before."""
    if not before:
        return None
    with localcontext(prec=80):  # a tiny previous period and a huge one now must not overflow the default 28 digits
        return ((Decimal(now) - Decimal(before)) * 100 / Decimal(before)).quantize(Decimal("0.01"))


@strawberry.type
class UsageSummary:
    start: datetime
    end: datetime
    totals: Metrics
    previous: Metrics = strawberry.field(description="the period of equal length just before")
    cost_change_percent: Decimal | None
    requests_change_percent: Decimal | None
    by_provider: list[UsageRow]
    by_model: list[UsageRow] = strawberry.field(description="the 10 costliest models")


def usage_summary(info: Info[Any, Any], range: TimeRange | None, filter: UsageFilter | None) -> UsageSummary:
    window, filters = report_range(range, info), scoped_filter(info, filter)
    providers = run_slice(info, window, filters, ("provider",))
    models = run_slice(info, window, filters, ("model",))
    before = run_slice(info, window.previous(), filters)
    return UsageSummary(
        start=window.start, end=window.end, totals=metrics(providers.totals), previous=metrics(before.totals),
        cost_change_percent=change(providers.totals.total_cost, before.totals.total_cost),
        requests_change_percent=change(providers.totals.total_requests, before.totals.total_requests),
        by_provider=[usage_row(r) for r in ordered(providers, MetricOrder.COST, None)],
        by_model=[usage_row(r) for r in ordered(models, MetricOrder.COST, None)[:10]],
    )  # fmt: skip


@strawberry.type
class TokenUsage:
    totals: Metrics
    by_provider: list[UsageRow]
    by_model: list[UsageRow]
    daily: list[UsageRow]


def token_usage(info: Info[Any, Any], range: TimeRange | None, filter: UsageFilter | None) -> TokenUsage:
    window, filters = report_range(range, info), scoped_filter(info, filter)
    providers = run_slice(info, window, filters, ("provider",), order=MetricOrder.TOKENS)
    models = run_slice(info, window, filters, ("model",), order=MetricOrder.TOKENS)
    days = run_slice(info, window, filters, (), "day")
    return TokenUsage(
        totals=metrics(providers.totals),
        by_provider=[usage_row(r) for r in ordered(providers, MetricOrder.TOKENS, None)],
        by_model=[usage_row(r) for r in ordered(models, MetricOrder.TOKENS, None)],
        daily=[usage_row(r) for r in ordered(days, MetricOrder.PERIOD, Granularity.DAY)],
    )


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
    cost: Decimal | None = strawberry.field(description="null while the model has no price")
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
            cost=log.total_cost, latency_ms=log.latency_ms,
        )  # fmt: skip


@strawberry.type
class UsageLogPage:
    total_count: int
    items: list[UsageLogType]


def logs_in(info: Info[Any, Any], range: TimeRange | None, filter: UsageFilter | None) -> Any:
    window, filters = report_range(range, info), scoped_filter(info, filter)
    return AIUsageLog.objects.filter(filters.log_q(), occurred_at__gte=window.start, occurred_at__lt=window.end)


def _page_size(limit: int, offset: int = 0) -> None:
    if not 1 <= limit <= MAX_LOG_PAGE:
        raise BadArgumentError("limit", f"must be between 1 and {MAX_LOG_PAGE}, got {limit}")
    if offset < 0:
        raise BadArgumentError("offset", f"must not be negative, got {offset}")


def costliest_requests(info: Info[Any, Any], range: TimeRange | None, filter: UsageFilter | None, limit: int,
                       order: LogOrder) -> list[UsageLogType]:  # fmt: skip
    _page_size(limit)
    logs = logs_in(info, range, filter)
    by = [F("total_cost").desc(nulls_last=True), "-occurred_at"] if order is LogOrder.COST else ["-occurred_at", "-id"]
    return [UsageLogType.of(log) for log in logs.order_by(*by)[:limit]]


def usage_logs(info: Info[Any, Any], range: TimeRange | None, filter: UsageFilter | None, order: LogOrder,
               offset: int, limit: int) -> UsageLogPage:  # fmt: skip
    _page_size(limit, offset)
    logs = logs_in(info, range, filter)
    by = [F("total_cost").desc(nulls_last=True), "-id"] if order is LogOrder.COST else ["-occurred_at", "-id"]
    return UsageLogPage(
        total_count=logs.count(), items=[UsageLogType.of(log) for log in logs.order_by(*by)[offset : offset + limit]]
    )


@strawberry.type
class CostPerActiveUser:
    start: date
    end: date
    cau: Decimal
    active_users: int
    total_cost: Decimal


def cau(info: Info[Any, Any], days: int | None, start: date | None, end: date | None) -> CostPerActiveUser:
    chosen = None if days is None and start is None and end is None else TimeRange(days=days, start=start, end=end)
    window = report_range(chosen or TimeRange(days=30), info, argument=None)  # top-level arguments: named alone
    figures = cost_per_active_user(window.first, window.last)
    return CostPerActiveUser(
        start=window.first, end=window.last, cau=Decimal(figures["cau"]), active_users=int(figures["active_users"]),
        total_cost=Decimal(figures["total_cost"]),
    )  # fmt: skip


@strawberry.type
class CauPoint:
    date: date
    window_days: int
    cau: Decimal
    active_users: int
    total_cost: Decimal


def cau_points(info: Info[Any, Any], window_days: int, range: TimeRange | None) -> list[CauPoint]:
    if window_days not in (7, 30, 90):
        raise BadArgumentError("windowDays", f"must be 7, 30 or 90, got {window_days}")
    window = report_range(range or TimeRange(days=90), info)
    return [CauPoint(date=s.date, window_days=s.window_days, cau=s.cau, active_users=s.active_users,
                     total_cost=s.total_cost) for s in cau_trend(window_days, window.first, window.last)]  # fmt: skip


@strawberry.type
class PriceVersion:
    provider: str
    model: str
    display_name: str
    input_price: Decimal = strawberry.field(description="USD per million tokens")
    output_price: Decimal
    cached_input_price: Decimal | None
    cache_write_price: Decimal | None
    request_price: Decimal | None
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


def system_status(info: Info[Any, Any]) -> SystemStatus:
    from project.celery import app

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database = "ok"
    except Exception as exc:  # reported, not raised: a status page must always answer
        database = f"error: {type(exc).__name__}"
    try:
        with app.connection_for_write() as broker_connection:
            broker_connection.ensure_connection(max_retries=1, timeout=2)
        broker = "ok"
    except Exception as exc:  # as above
        broker = f"error: {type(exc).__name__}"
    run = RollupRun.objects.order_by("-started_at").first()
    last = None if run is None else RollupState(started_at=run.started_at, finished_at=run.finished_at,
                                                outcome=run.outcome, hours=run.hours, error=run.error)  # fmt: skip
    return SystemStatus(database=database, broker=broker, last_rollup=last, langsmith=langsmith_status().label)
