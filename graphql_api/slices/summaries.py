"""The named analytics queries for dashboards: a summary with its comparisons, token breakdowns and CAU. Each reads
through the slice engine."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, localcontext

from analytics.cau import cau_trend
from analytics.ranges import ReportRange
from analytics.slices import Measures, SliceFilter, SliceQuery, SliceResult
from graphql_api.context import Info
from graphql_api.errors import BadArgumentError
from graphql_api.scalars import Money
from graphql_api.slices.inputs import Granularity, MetricOrder, Period, TimeRange, UsageFilter
from graphql_api.slices.reading import (
    filled_timeline,
    metrics,
    ordered,
    report_range,
    scoped_filter,
    selects,
    usage_rows,
    wanted_measures,
)
from graphql_api.slices.types import CauPoint, Comparison, CostPerActiveUser, TokenUsage, UsageSummary
from usage.budgets import cost_per_active_user


def run_slice(info: Info, window: ReportRange, filters: SliceFilter, group_by: tuple[str, ...] = (),
              granularity: str | None = None, order: MetricOrder | None = None) -> SliceResult:  # fmt: skip
    return SliceQuery(
        start=window.start, end=window.end, zone=window.zone, group_by=group_by, granularity=granularity,
        filters=filters, with_users=selects(info, "activeUsers"), measures=wanted_measures(info, order),
    ).run()  # fmt: skip


def change(now: Decimal | int, before: Decimal | int) -> Decimal | None:
    """Percentage change from the compared period; null when there was nothing then."""
    if not before:
        return None
    with localcontext(prec=80):  # a tiny previous period and a huge one now must not overflow the default 28 digits
        return ((Decimal(now) - Decimal(before)) * 100 / Decimal(before)).quantize(Decimal("0.01"))


def comparison(info: Info, window: ReportRange, filters: SliceFilter, now: Measures) -> Comparison:
    before = run_slice(info, window, filters).totals
    return Comparison(
        start=window.first, end=window.last, label=window.label, totals=metrics(before),
        cost_change_percent=change(now.total_cost, before.total_cost),
        requests_change_percent=change(now.total_requests, before.total_requests),
    )  # fmt: skip


def usage_summary(info: Info, range: TimeRange | None, filter: UsageFilter | None) -> UsageSummary:
    window, filters = report_range(range, info), scoped_filter(info, filter)
    providers = run_slice(info, window, filters, ("provider",))
    models = run_slice(info, window, filters, ("model",))
    totals = providers.totals
    previous = comparison(info, window.previous(), filters, totals)
    yearly = range is not None and range.period is Period.YEAR
    return UsageSummary(
        start=window.start, end=window.end, totals=metrics(totals), previous_window=previous,
        previous_calendar_period=comparison(info, window.previous_calendar_period(yearly), filters, totals),
        previous=previous.totals, cost_change_percent=previous.cost_change_percent,
        requests_change_percent=previous.requests_change_percent,
        by_provider=usage_rows(info, ordered(providers, MetricOrder.COST, None)),
        by_model=usage_rows(info, ordered(models, MetricOrder.COST, None)[:10]),
    )  # fmt: skip


def token_usage(info: Info, range: TimeRange | None, filter: UsageFilter | None) -> TokenUsage:
    window, filters = report_range(range, info), scoped_filter(info, filter)
    providers = run_slice(info, window, filters, ("provider",), order=MetricOrder.TOKENS)
    models = run_slice(info, window, filters, ("model",), order=MetricOrder.TOKENS)
    days = run_slice(info, window, filters, (), "day")
    return TokenUsage(
        totals=metrics(providers.totals),
        by_provider=usage_rows(info, ordered(providers, MetricOrder.TOKENS, None)),
        by_model=usage_rows(info, ordered(models, MetricOrder.TOKENS, None)),
        daily=usage_rows(info, filled_timeline(days, window, Granularity.DAY, ())),
    )


def cau(info: Info, days: int | None, start: date | None, end: date | None) -> CostPerActiveUser:
    chosen = None if days is None and start is None and end is None else TimeRange(days=days, start=start, end=end)
    window = report_range(chosen or TimeRange(days=30), info, argument=None)  # top-level arguments: named alone
    figures = cost_per_active_user(window.first, window.last)
    return CostPerActiveUser(
        start=window.first, end=window.last, cau=Money(Decimal(figures["cau"])),
        active_users=int(figures["active_users"]), total_cost=Money(Decimal(figures["total_cost"])),
    )  # fmt: skip


def cau_points(info: Info, window_days: int, range: TimeRange | None) -> list[CauPoint]:
    if window_days not in (7, 30, 90):
        raise BadArgumentError("windowDays", f"must be 7, 30 or 90, got {window_days}")
    window = report_range(range or TimeRange(days=90), info)
    snapshots = cau_trend(window_days, window.first, window.last)
    return [CauPoint(date=s.date, window_days=s.window_days, cau=Money(s.cau), active_users=s.active_users,
                     total_cost=Money(s.total_cost)) for s in snapshots]  # fmt: skip
