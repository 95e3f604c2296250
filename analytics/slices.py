"""Flexible analytics slices: any combination of dimensions and a time granularity, over any reporting zone.

Answers come from the hourly buckets wherever they are known to be complete, and from the raw logs for the rest:
the hours written or repriced since the last rollup (so numbers are current, not as of the last run), and whole
queries the buckets cannot answer (a session or status filter, a status dimension, a zone with a half-hour
offset). Both sources give the same measures, merged per group in Python.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Q, QuerySet
from django.db.models.functions import TruncDay, TruncHour, TruncMonth, TruncWeek

from analytics.models import RollupRun, RunOutcome, UsageHourlyBucket
from analytics.rollup import HOUR, RESCAN_OVERLAP, SUMMED, log_metrics, merge_ranges, summary_metrics
from usage.models import AIUsageLog, StaleHour

DIMENSIONS = {"provider": "provider", "model": "model", "feature": "feature", "user": "user_id", "status": "status"}
TRUNCATE = {"hour": TruncHour, "day": TruncDay, "week": TruncWeek, "month": TruncMonth}
ZERO = Decimal(0)


@dataclass(frozen=True)
class SliceFilter:
    providers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    user_ids: tuple[int, ...] = ()
    statuses: tuple[str, ...] = ()
    session_id: str | None = None

    def needs_logs(self) -> bool:
        return bool(self.statuses) or self.session_id is not None

    def q(self) -> Q:
        condition = Q()
        for name, values in (("provider", self.providers), ("model", self.models), ("feature", self.features),
                             ("user_id", self.user_ids)):  # fmt: skip
            if values:
                condition &= Q(**{f"{name}__in": values})
        return condition

    def log_q(self) -> Q:
        condition = self.q()
        if self.statuses:
            condition &= Q(status__in=self.statuses)
        if self.session_id is not None:
            condition &= Q(session_id=self.session_id)
        return condition


@dataclass
class Measures:
    """Additive measures of one group; the ratios are derived when read."""

    total_requests: int = 0
    successful_requests: int = 0
    failed_requests: int = 0
    error_requests: int = 0
    timeout_requests: int = 0
    rate_limited_requests: int = 0
    cancelled_requests: int = 0
    unpriced_requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    total_cost: Decimal = ZERO
    latency_sum_ms: int = 0
    latency_count: int = 0
    latency_max_ms: int | None = None
    users: set[int] = field(default_factory=set)

    def add(self, row: dict[str, Any]) -> None:
        for name in SUMMED:
            setattr(self, name, getattr(self, name) + (row[name] or 0))
        if row["latency_max_ms"] is not None:
            self.latency_max_ms = max(self.latency_max_ms or 0, row["latency_max_ms"])

    def merge(self, other: Measures) -> None:
        self.add({name: getattr(other, name) for name in [*SUMMED, "latency_max_ms"]})
        self.users |= other.users


@dataclass(frozen=True)
class SliceRow:
    key: dict[str, Any]
    measures: Measures


@dataclass(frozen=True)
class SliceResult:
    totals: Measures
    rows: list[SliceRow]
    source: str  # "summaries", "summaries+logs" or "logs": where the answer came from


def _whole_hour_zone(zone: ZoneInfo, start: datetime, end: datetime) -> bool:
    """Whether every local-time boundary in [start, end) falls on a UTC hour (no half-hour offsets)."""
    probe = start
    while probe <= end:
        offset = probe.astimezone(zone).utcoffset()
        if offset is None or offset % HOUR:
            return False
        probe += timedelta(days=1)
    offset = end.astimezone(zone).utcoffset()
    return offset is not None and not offset % HOUR


def dirty_hours(start: datetime, end: datetime) -> set[datetime]:
    """UTC hours in [start, end) whose buckets may not include every log yet: hours of logs written since the
    last scheduled rollup began (less its rescan overlap), and hours marked for repricing."""
    last = RollupRun.objects.filter(outcome=RunOutcome.SUCCEEDED, trigger="schedule").order_by("-started_at").first()
    if last is None:
        return {start + HOUR * n for n in range(int((end - start) / HOUR))}
    recent = AIUsageLog.objects.filter(
        recorded_at__gte=last.started_at - RESCAN_OVERLAP, occurred_at__gte=start, occurred_at__lt=end
    ).annotate(h=TruncHour("occurred_at", tzinfo=UTC))
    hours = set(recent.values_list("h", flat=True).distinct())
    hours |= set(StaleHour.objects.filter(hour__gte=start, hour__lt=end).values_list("hour", flat=True))
    return hours


def _within(field_name: str, ranges: Iterable[tuple[datetime, datetime]]) -> Q:
    condition = Q(pk__in=[])
    for low, high in ranges:
        condition |= Q(**{f"{field_name}__gte": low, f"{field_name}__lt": high})
    return condition


def _grouped(queryset: QuerySet[Any], time_field: str, keys: list[str], granularity: str | None,
             zone: ZoneInfo, metrics: dict[str, Any], with_users: bool) -> list[dict[str, Any]]:  # fmt: skip
    names = [DIMENSIONS[key] for key in keys]
    if granularity:
        queryset = queryset.annotate(period=TRUNCATE[granularity](time_field, tzinfo=zone))
        names = ["period", *names]
    if with_users and "user_id" not in names:
        names = [*names, "user_id"]
    return list(queryset.order_by().values(*names).annotate(**metrics))


@dataclass(frozen=True)
class SliceQuery:
    start: datetime
    end: datetime
    zone: ZoneInfo
    group_by: tuple[str, ...] = ()
    granularity: str | None = None
    filters: SliceFilter = SliceFilter()
    with_users: bool = False  # distinct active users, which need user-level rows from each source

    def run(self) -> SliceResult:
        keys = [key for key in DIMENSIONS if key in self.group_by]
        from_logs = (
            self.filters.needs_logs() or "status" in keys or not _whole_hour_zone(self.zone, self.start, self.end)
        )
        if from_logs:
            parts = [self._logs(keys, [(self.start, self.end)])]
            source = "logs"
        else:
            dirty = merge_ranges(dirty_hours(self.start, self.end), HOUR)
            parts = [self._buckets(keys, dirty)]
            if dirty:
                parts.append(self._logs(keys, dirty))
            source = "summaries+logs" if dirty else "summaries"
        return _merge(parts, keys, self.granularity, source)

    def _logs(self, keys: list[str], ranges: list[tuple[datetime, datetime]]) -> list[dict[str, Any]]:
        logs = AIUsageLog.objects.filter(_within("occurred_at", ranges), self.filters.log_q())
        return _grouped(logs, "occurred_at", keys, self.granularity, self.zone, log_metrics(), self.with_users)

    def _buckets(self, keys: list[str], dirty: list[tuple[datetime, datetime]]) -> list[dict[str, Any]]:
        buckets = UsageHourlyBucket.objects.filter(hour__gte=self.start, hour__lt=self.end).filter(self.filters.q())
        if dirty:
            buckets = buckets.exclude(_within("hour", dirty))
        return _grouped(buckets, "hour", keys, self.granularity, self.zone, summary_metrics(), self.with_users)


def _merge(parts: list[list[dict[str, Any]]], keys: list[str], granularity: str | None, source: str) -> SliceResult:
    names = ([("period", "period")] if granularity else []) + [(key, DIMENSIONS[key]) for key in keys]
    groups: dict[tuple[Any, ...], Measures] = defaultdict(Measures)
    totals = Measures()
    for rows in parts:
        for row in rows:
            measures = groups[tuple(row[column] for _name, column in names)]
            measures.add(row)
            totals.add(row)
            if "user_id" in row and row["user_id"] is not None and row["total_requests"]:
                measures.users.add(row["user_id"])
                totals.users.add(row["user_id"])
    result = [SliceRow(dict(zip([name for name, _ in names], key, strict=True)), m) for key, m in groups.items()]
    return SliceResult(totals=totals, rows=result, source=source)
