"""What the staff dashboards show, computed from summaries and live counters (never a scan of the raw logs).

A window's figures come from one slice (reporting day x provider x model) answered by the daily summaries plus the
calls not yet rolled up, so the pages are current and cost the same at a thousand logs or a hundred million.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any

from django.db.models import Count, Max, Min

from analytics.models import RollupRun
from analytics.ranges import ReportRange, resolve
from analytics.slices import Measures, SliceQuery, SliceResult, SliceRow
from usage import periods
from usage.budgets import cost_per_active_user, window
from usage.models import AIUsageLog, PricingSync, UserDailySpend

WINDOWS = (7, 30, 90)
CAU_WINDOWS = (7, 30, 90)
ADDITIVE = [name for name in Measures.__dataclass_fields__ if name not in {"users", "latency_max_ms"}]


def add(into: Measures, more: Measures) -> None:
    """Add one group's measures into another (the latency maximum is a maximum, not a sum)."""
    for name in ADDITIVE:
        setattr(into, name, getattr(into, name) + getattr(more, name))
    if more.latency_max_ms is not None:
        into.latency_max_ms = max(into.latency_max_ms or 0, more.latency_max_ms)
    into.users |= more.users


def sum_by(rows: list[SliceRow], *keys: str) -> list[tuple[Any, Measures]]:
    """Measures summed per value of one key (or per tuple of values of several), costliest first (then by name,
    so ties have a stable order)."""
    groups: dict[Any, Measures] = defaultdict(Measures)
    for row in rows:
        value = row.key[keys[0]] if len(keys) == 1 else tuple(row.key[key] for key in keys)
        add(groups[value], row.measures)
    return sorted(groups.items(), key=lambda item: (-item[1].total_cost, -item[1].total_requests, str(item[0])))


def window_range(days: int) -> ReportRange:
    """The last `days` reporting days, today included."""
    return resolve(days=days)


@dataclass(frozen=True)
class WindowFigures:
    """A window's usage by reporting day, provider and model, with the views the pages draw from it."""

    range: ReportRange
    result: SliceResult

    @property
    def totals(self) -> Measures:
        return self.result.totals

    def by(self, key: str) -> list[tuple[Any, Measures]]:
        return sum_by(self.result.rows, key)

    def day(self, day: date) -> Measures:
        return dict(self.daily).get(day, Measures())

    @cached_property
    def daily(self) -> list[tuple[date, Measures]]:
        """Every day of the window, oldest first, days without calls included (a chart needs the gaps)."""
        found = {
            period.astimezone(self.range.zone).date(): measures for period, measures in self.by("period")
        }  # fmt: skip
        return [(day, found.get(day, Measures())) for day in _days(self.range.first, self.range.last)]


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def window_figures(days: int, group_by: tuple[str, ...] = ("provider", "model")) -> WindowFigures:
    span = window_range(days)
    result = SliceQuery(span.start, span.end, span.zone, group_by=group_by, granularity="day").run()
    return WindowFigures(span, result)


@dataclass(frozen=True)
class TopSpender:
    user_id: int
    username: str
    email: str
    spend: Decimal
    requests: int
    unpriced: int


def top_spenders_today(limit: int = 10) -> list[TopSpender]:
    """The users who spent most today, from the live per-day counters (exact to the last call)."""
    rows = (
        UserDailySpend.objects.filter(time_zone=periods.reporting_zone_name(), day=periods.today(), requests__gt=0)
        .order_by("-cost", "user_id")
        .values_list("user_id", "user__username", "user__email", "cost", "requests", "unpriced_requests")[:limit]
    )
    return [TopSpender(user_id, username, email or "", Decimal(cost), requests, unpriced)
            for user_id, username, email, cost, requests, unpriced in rows]  # fmt: skip


@dataclass(frozen=True)
class CauFigure:
    days: int
    cau: Decimal
    active_users: int
    total_cost: Decimal


def cau_figures() -> list[CauFigure]:
    """Cost per active user over the last 7, 30 and 90 days, from the live counters (as get_cau answers)."""
    figures = []
    for days in CAU_WINDOWS:
        found = cost_per_active_user(*window(days))
        figures.append(CauFigure(days, Decimal(found["cau"]), int(found["active_users"]), Decimal(found["total_cost"])))
    return figures


def recent_calls(limit: int = 10) -> list[AIUsageLog]:
    """The latest calls (read backwards along the time index: a few rows however large the table)."""
    return list(AIUsageLog.objects.select_related("user").order_by("-occurred_at")[:limit])


@dataclass(frozen=True)
class UnpricedModel:
    provider: str
    model: str
    calls: int
    first: Any
    last: Any


def unpriced_models() -> list[UnpricedModel]:
    """Models with calls still waiting for a price (the partial index on unpriced calls keeps this small)."""
    rows = (
        AIUsageLog.objects.filter(total_cost__isnull=True)
        .values("provider", "model")
        .annotate(calls=Count("id"), first=Min("occurred_at"), last=Max("occurred_at"))
        .order_by("-calls", "provider", "model")
    )
    return [UnpricedModel(**row) for row in rows]


@dataclass
class Dashboard:
    figures: WindowFigures
    today: Measures
    yesterday: Measures
    top_spenders: list[TopSpender]
    recent: list[AIUsageLog]
    cau: list[CauFigure]


def dashboard(days: int) -> Dashboard:
    figures = window_figures(days)
    today = figures.range.last
    return Dashboard(
        figures=figures,
        today=figures.day(today),
        yesterday=figures.day(today - timedelta(days=1)),
        top_spenders=top_spenders_today(),
        recent=recent_calls(),
        cau=cau_figures(),
    )


def recent_rollups(limit: int = 10) -> list[RollupRun]:
    return list(RollupRun.objects.order_by("-started_at")[:limit])


def recent_pricing_syncs(limit: int = 10) -> list[PricingSync]:
    return list(PricingSync.objects.order_by("-started_at")[:limit])
