"""Flexible analytics slices: any combination of dimensions and a time granularity, over any reporting zone.

Answers come from the coarsest summary that can give them, wherever it is known to be complete:
- the daily summaries (per provider/model/feature, or per user) for whole reporting days in ANALYTICS_TIME_ZONE
  at day, week or month granularity, so a 90-day chart reads a few thousand rows however many calls there were;
- the hourly buckets for other zones, hourly granularity, and the clean hours of days not yet fully rolled up;
- the raw logs for the hours written or repriced since the last rollup (so numbers are current, not as of the
  last run), and for whole queries no summary can answer (a session or status filter, a status dimension, a
  zone with a half-hour offset).
All sources give the same measures, merged per group in Python.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import EmptyResultSet
from django.db import connection, models
from django.db.models import F, Q, QuerySet
from django.db.models.functions import TruncDay, TruncHour, TruncMonth, TruncWeek

from analytics.models import DailyUsageSummary, RollupRun, RunOutcome, UsageHourlyBucket, UserAICostSummary
from analytics.rollup import (
    HOUR,
    RESCAN_OVERLAP,
    SUMMED,
    WIDE_SUMS,
    local_days,
    log_metrics,
    merge_ranges,
    summary_metrics,
    zone_start,
)
from usage import periods
from usage.models import AIUsageLog, StaleHour

DIMENSIONS = {"provider": "provider", "model": "model", "feature": "feature", "user": "user_id", "status": "status"}
TRUNCATE = {"hour": TruncHour, "day": TruncDay, "week": TruncWeek, "month": TruncMonth}
DATE_TRUNCATE = {"week": TruncWeek, "month": TruncMonth}  # a day is the date itself
ZERO = Decimal(0)
RATE = Decimal("0.0001")
TENTH = Decimal("0.1")
DAY = timedelta(days=1)
Ranges = list[tuple[datetime, datetime]]
Days = list[tuple[date, date]]
ALWAYS_MEASURED = frozenset({"total_requests", "total_cost"})  # comparisons and active users rely on them
UNBOUNDED_SUMS = frozenset({*WIDE_SUMS, "total_cost"})  # sums a raw statement must not cast to bigint


@dataclass(frozen=True)
class SliceFilter:
    providers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    user_ids: tuple[int, ...] = ()
    statuses: tuple[str, ...] = ()
    session_id: str | None = None
    named_users_only: bool = False  # leave out calls made on nobody's behalf (top users, say)

    def needs_logs(self) -> bool:
        return bool(self.statuses) or self.session_id is not None

    def q(self) -> Q:
        condition = Q()
        for name, values in (("provider", self.providers), ("model", self.models), ("feature", self.features),
                             ("user_id", self.user_ids)):  # fmt: skip
            if values:
                condition &= Q(**{f"{name}__in": values})
        if self.named_users_only:
            condition &= Q(user_id__isnull=False)
        return condition

    def only_users(self) -> bool:
        """Whether the filter names nothing but users (what the per-user daily summaries can answer)."""
        return not (self.providers or self.models or self.features or self.needs_logs())

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

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens  # cached and reasoning tokens are parts of these

    @property
    def success_rate(self) -> Decimal | None:
        """Successful calls as a fraction of all calls (4 decimals); None when there were none."""
        return _fraction(self.successful_requests, self.total_requests)

    @property
    def error_rate(self) -> Decimal | None:
        return _fraction(self.failed_requests, self.total_requests)

    @property
    def avg_cost_per_request(self) -> Decimal | None:
        return self.total_cost / self.total_requests if self.total_requests else None

    @property
    def avg_latency_ms(self) -> Decimal | None:
        return (Decimal(self.latency_sum_ms) / self.latency_count).quantize(TENTH) if self.latency_count else None


def _fraction(part: int, whole: int) -> Decimal | None:
    return (Decimal(part) / whole).quantize(RATE) if whole else None


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
    runs = RollupRun.objects.filter(outcome=RunOutcome.SUCCEEDED, trigger="schedule").order_by("-started_at")
    last = runs.values_list("started_at", flat=True).first()
    if last is None:
        return {start + HOUR * n for n in range(int((end - start) / HOUR))}
    # The run's start is sent as a value, not a subquery: PostgreSQL then knows how few logs were written since
    # and finds them through the index on write time.
    if connection.vendor == "postgresql":
        return _dirty_hours_postgresql(last - RESCAN_OVERLAP, start, end)
    recent = AIUsageLog.objects.filter(
        recorded_at__gte=last - RESCAN_OVERLAP, occurred_at__gte=start, occurred_at__lt=end
    ).annotate(h=TruncHour("occurred_at", tzinfo=UTC))
    hours = set(recent.order_by().values_list("h", flat=True).distinct())  # no ordering: DISTINCT hours
    hours |= set(StaleHour.objects.filter(hour__gte=start, hour__lt=end).values_list("hour", flat=True))
    return hours


# The same hours in one statement, written out: composing it takes Django longer than PostgreSQL takes to run it.
DIRTY_HOURS = f"""
SELECT DISTINCT date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' FROM {AIUsageLog._meta.db_table}
WHERE recorded_at >= %s AND occurred_at >= %s AND occurred_at < %s
UNION SELECT hour FROM {StaleHour._meta.db_table} WHERE hour >= %s AND hour < %s
"""


def _dirty_hours_postgresql(since: datetime, start: datetime, end: datetime) -> set[datetime]:
    with connection.cursor() as cursor:
        cursor.execute(DIRTY_HOURS, [since, start, end, start, end])
        return {hour for (hour,) in cursor.fetchall()}


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
    return _grouped_rows(queryset, names, metrics)


def _grouped_rows(queryset: QuerySet[Any], names: list[str], metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per group; with no group, one row of totals (an empty values() would mean every column, ungrouped:
    a row per summary row)."""
    if not names:
        totals = queryset.order_by().aggregate(**metrics)
        return [totals] if totals["total_requests"] else []  # no calls: no row, as a grouped query gives
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
    # The measures to compute (None: all). Summing only what the caller reads keeps wide slices cheap.
    measures: frozenset[str] | None = None
    # Per-user slices read for a ranking only (no totals): the n users to keep, ranked by the sum of these
    # measures. Lets the database rank the settled days instead of returning every user to be sorted here.
    top: tuple[tuple[str, ...], int] | None = None

    def _wanted(self, aggregates: dict[str, Any]) -> dict[str, Any]:
        if self.measures is None:
            return aggregates
        return {name: value for name, value in aggregates.items() if name in self.measures | ALWAYS_MEASURED}

    def run(self) -> SliceResult:
        keys = [key for key in DIMENSIONS if key in self.group_by]
        from_logs = (
            self.filters.needs_logs() or "status" in keys or not _whole_hour_zone(self.zone, self.start, self.end)
        )
        if from_logs:
            return _merge([self._logs(keys, [(self.start, self.end)])], keys, self.granularity, "logs")
        dirty = dirty_hours(self.start, self.end)
        daily = self._daily_table(keys)
        parts: list[list[dict[str, Any]]] = []
        if daily is None:
            hourly = [(self.start, self.end)]
        else:
            # Whole days from the daily table; days with unrolled hours from their clean hours and their logs.
            unsettled = merge_ranges({day for hour in dirty for day in local_days(hour, self.zone)}, DAY)
            hourly = [(zone_start(first, self.zone), zone_start(end, self.zone)) for first, end in unsettled]
        dirty_ranges = merge_ranges(dirty, HOUR)
        source = "summaries+logs" if dirty else "summaries"
        if self._ranks_in_database(keys, daily):
            ranked = self._top_users_across_sources(hourly, dirty_ranges, unsettled)
            return _merge([ranked], keys, self.granularity, source)
        if daily is not None and self._sums_in_database(keys):
            summed = self._sum_across_sources(daily, keys, hourly, dirty_ranges, unsettled)
            return _merge([summed], keys, self.granularity, source)
        if hourly:
            parts.append(self._buckets(keys, hourly, dirty_ranges))
        if dirty_ranges:
            parts.append(self._logs(keys, dirty_ranges))
        if daily is not None:
            also = {row["user_id"] for rows in parts for row in rows if row.get("user_id") is not None}
            parts.append(self._days(daily, keys, unsettled, also))
        return _merge(parts, keys, self.granularity, source)

    def _daily_table(self, keys: list[str]) -> type[UserAICostSummary] | type[DailyUsageSummary] | None:
        """The daily summary that holds this slice's answer, if any: days of the reporting zone, whole days,
        no hourly detail; per user when the slice is about users only, else per provider/model/feature."""
        if self.zone.key != periods.reporting_zone_name() or self.granularity == "hour":
            return None
        if self.start != zone_start(self.start.astimezone(self.zone).date(), self.zone):
            return None
        if self.end != zone_start(self.end.astimezone(self.zone).date(), self.zone):
            return None
        # The per-user table leaves out calls made on nobody's behalf, so it answers only slices that do too.
        users_only = self.filters.user_ids or self.filters.named_users_only
        if set(keys) <= {"user"} and self.filters.only_users() and users_only:
            return UserAICostSummary
        if "user" not in keys and not users_only and not self.with_users:
            return DailyUsageSummary
        return None

    def _days(
        self, table: type[models.Model], keys: list[str], unsettled: Days, also: set[int]
    ) -> list[dict[str, Any]]:
        """Grouped rows of the settled days. For a top-n ranking, only the n best users of those days and the
        users `also` found elsewhere (the unsettled hours): no other user can rank among the n best overall."""
        rows = self._day_periods(self._settled_days(table, unsettled))
        names = self._group_names(keys)
        if self.top is not None and names == ["user_id"]:
            grouped = rows.order_by().values(*names).annotate(**self._wanted(summary_metrics()))
            return _top_rows(grouped, self.top, also)
        found = _grouped_rows(rows, names, self._wanted(summary_metrics()))
        for row in found:
            if "period" in row:
                row["period"] = zone_start(row["period"], self.zone)
        return found

    def _day_periods(self, rows: QuerySet[Any]) -> QuerySet[Any]:
        """Daily summary rows with the first day of their period (a day is the date itself)."""
        if not self.granularity:
            return rows
        return rows.annotate(period=F("date") if self.granularity == "day" else DATE_TRUNCATE[self.granularity]("date"))

    def _settled_days(self, table: type[models.Model], unsettled: Days) -> QuerySet[Any]:
        first, end = self.start.astimezone(self.zone).date(), self.end.astimezone(self.zone).date()
        rows = table._default_manager.filter(date__gte=first, date__lt=end).filter(self.filters.q())
        for low, high in unsettled:
            rows = rows.exclude(date__gte=low, date__lt=high)
        return rows

    def _log_rows(self, ranges: Ranges) -> QuerySet[Any]:
        return AIUsageLog.objects.filter(_within("occurred_at", ranges), self.filters.log_q())

    def _bucket_rows(self, ranges: Ranges, dirty: Ranges) -> QuerySet[Any]:
        buckets = UsageHourlyBucket.objects.filter(_within("hour", ranges)).filter(self.filters.q())
        return buckets.exclude(_within("hour", dirty)) if dirty else buckets

    def _logs(self, keys: list[str], ranges: Ranges) -> list[dict[str, Any]]:
        return _grouped(
            self._log_rows(ranges), "occurred_at", keys, self.granularity, self.zone, self._wanted(log_metrics()),
            self.with_users,
        )  # fmt: skip

    def _buckets(self, keys: list[str], ranges: Ranges, dirty: Ranges) -> list[dict[str, Any]]:
        return _grouped(
            self._bucket_rows(ranges, dirty), "hour", keys, self.granularity, self.zone,
            self._wanted(summary_metrics()), self.with_users,
        )  # fmt: skip

    def _group_names(self, keys: list[str]) -> list[str]:
        names = [DIMENSIONS[key] for key in keys]
        names = ["period", *names] if self.granularity else names
        return [*names, "user_id"] if self.with_users and "user_id" not in names else names

    def _sums_in_database(self, keys: list[str]) -> bool:
        """Grouped rows (not one row of totals) on PostgreSQL: the database can sum every source in one statement."""
        return connection.vendor == "postgresql" and bool(self._group_names(keys))

    def _sum_across_sources(
        self,
        daily: type[models.Model],
        keys: list[str],
        hourly: Ranges,
        dirty: Ranges,
        unsettled: Days,
    ) -> list[dict[str, Any]]:
        """The settled days, the clean hours of unsettled days and the unrolled logs, summed per group by the
        database in one statement: one round trip instead of three, and each group comes back once."""
        names = self._group_names(keys)
        sources, less = self._sources(daily, names, hourly, dirty, unsettled)
        rows = _sum_in_database(sources, names, less=less)
        for row in rows:
            if "period" in row:
                row["period"] = zone_start(row["period"], self.zone)
        return rows

    def _sources(
        self, daily: type[models.Model], names: list[str], hourly: Ranges, dirty: Ranges, unsettled: Days
    ) -> tuple[list[QuerySet[Any, Any]], list[QuerySet[Any, Any]]]:
        """The grouped sources to add up, and those to subtract: the settled days, the clean hours of unsettled days
        and the unrolled logs."""
        summed = self._wanted(summary_metrics())
        if "latency_max_ms" in summed or self.with_users:  # a maximum or a set of users cannot be subtracted
            sources = [self._day_periods(self._settled_days(daily, unsettled)).values(*names).annotate(**summed)]
            if hourly:
                buckets = self._bucket_rows(hourly, dirty)
                sources.append(self._in_periods(buckets, "hour").values(*names).annotate(**summed))
            less = []
        else:
            # A day's daily rows are the sum of its buckets (a rollup rebuilds both in one transaction), so the clean
            # hours of an unsettled day are its daily rows less the buckets of its dirty hours: a few hours' buckets
            # read instead of a whole busy day's.
            sources = [self._day_periods(self._settled_days(daily, [])).values(*names).annotate(**summed)]
            buckets = UsageHourlyBucket.objects.filter(_within("hour", dirty)).filter(self.filters.q())
            less = [self._in_periods(buckets, "hour").values(*names).annotate(**summed)] if dirty else []
        if dirty:
            logs = self._in_periods(self._log_rows(dirty), "occurred_at")
            sources.append(logs.values(*names).annotate(**self._wanted(log_metrics())))
        return sources, less

    def _in_periods(self, rows: QuerySet[Any], time_field: str) -> QuerySet[Any]:
        """Rows with the start of their period in the zone; as the daily tables' periods, a date (see _union)."""
        if not self.granularity:
            return rows
        return rows.annotate(period=TRUNCATE[self.granularity](time_field, tzinfo=self.zone))

    def _ranks_in_database(self, keys: list[str], daily: type[models.Model] | None) -> bool:
        """A top-n of users with no time grain: PostgreSQL can sum every source and rank in one statement."""
        return (
            self.top is not None and keys == ["user"] and not self.granularity and daily is UserAICostSummary
            and connection.vendor == "postgresql"
        )  # fmt: skip

    def _top_users_across_sources(self, hourly: Ranges, dirty: Ranges, unsettled: Days) -> list[dict[str, Any]]:
        """The n best users over the settled days, the clean hours of unsettled days and the unrolled logs, summed
        and ranked by the database in one statement: only n rows come back, however many users were active."""
        assert self.top is not None
        sources, less = self._sources(UserAICostSummary, ["user_id"], hourly, dirty, unsettled)
        return _sum_in_database(sources, ["user_id"], self.top, less)


def _sum_in_database(
    parts: list[QuerySet[Any, Any]],
    names: list[str],
    top: tuple[tuple[str, ...], int] | None = None,
    less: list[QuerySet[Any, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Rows of several sources grouped by `names`, summed per group in one UNION ALL statement, the rows of `less`
    subtracted (a group whose calls sum to none is left out, as when no source has it); with `top`, only the best
    `count` users by the sum of the ranking measures (ties by user id)."""
    union = _union(parts, names, less or [])
    if union is None:
        return []
    sql, params, columns = union
    totals = [
        f"MAX({name})::bigint" if name == "latency_max_ms" else f"SUM({name})" if name in UNBOUNDED_SUMS
        else f"SUM({name})::bigint"  # counts of calls, which fit a bigint as the calls' ids do
        for name in columns
    ]  # fmt: skip
    group = ", ".join(f'"{name}"' for name in names)
    statement = f"SELECT {group}, {', '.join(totals)} FROM ({sql}) AS sources"
    having = " HAVING SUM(total_requests) <> 0" if less else ""
    if top is None:
        statement += f" GROUP BY {group}{having}"
    else:
        rank = " + ".join(f"SUM({name})" for name in top[0])
        statement += f" WHERE user_id IS NOT NULL GROUP BY user_id{having} ORDER BY {rank} DESC, user_id LIMIT %s"
        params.append(top[1])
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        rows = [dict(zip([*names, *columns], row, strict=True)) for row in cursor.fetchall()]
    for row in rows:  # token and latency sums come back as numeric: ints, as the ORM reads them
        row.update({name: int(row[name]) for name in columns if name in WIDE_SUMS and row[name] is not None})
    return rows


def _union(
    parts: list[QuerySet[Any, Any]], names: list[str], less: list[QuerySet[Any, Any]]
) -> tuple[str, list[Any], list[str]] | None:
    """The sources' group names and measures as one UNION ALL (negated for the sources in `less`), with the
    measures' names; None when no source can have rows. A period is a local date: the daily tables' own, and a
    truncated local time at midnight otherwise."""
    columns = [name for name in [*SUMMED, "latency_max_ms"] if name in parts[0].query.annotations]
    keys = ['"period"::date AS "period"' if name == "period" else f'"{name}"' for name in names]
    selects: list[str] = []
    params: list[Any] = []
    for part, sign in [(part, "") for part in parts] + [(part, "-") for part in less]:
        try:
            sql, part_params = part.order_by().query.sql_with_params()
        except EmptyResultSet:  # a filter no row can match (an empty list of user ids)
            continue
        measures = [f"{sign}{name} AS {name}" for name in columns]
        selects.append(f"SELECT {', '.join([*keys, *measures])} FROM ({sql}) AS part")
        params.extend(part_params)
    return (" UNION ALL ".join(selects), params, columns) if selects else None


def _top_rows(grouped: QuerySet[Any, Any], top: tuple[tuple[str, ...], int], also: set[int]) -> list[dict[str, Any]]:
    measures, count = top
    rank = sum((F(name) for name in measures[1:]), F(measures[0]))
    best = list(grouped.annotate(rank=rank).order_by("-rank", "user_id")[:count])
    shown = {row["user_id"] for row in best}
    return best + [row for row in grouped.filter(user_id__in=also - shown)] if also - shown else best


def _merge(parts: list[list[dict[str, Any]]], keys: list[str], granularity: str | None, source: str) -> SliceResult:
    """Sum the sources' rows per group. Plain dicts and only the measures present: this loop runs once per row
    read, thousands of times for a per-user slice."""
    names = ([("period", "period")] if granularity else []) + [(key, DIMENSIONS[key]) for key in keys]
    columns = [column for _name, column in names]
    present = {name for rows in parts for name in (rows[0] if rows else ())}
    summed = [name for name in SUMMED if name in present]
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    users: dict[tuple[Any, ...], set[int]] = defaultdict(set)
    for rows in parts:
        for row in rows:
            key = tuple(row[column] for column in columns)
            group = groups.get(key)
            if group is None:
                groups[key] = {name: row[name] or 0 for name in summed} | {"latency_max_ms": row.get("latency_max_ms")}
            else:
                for name in summed:
                    group[name] += row[name] or 0
                if row.get("latency_max_ms") is not None:
                    group["latency_max_ms"] = max(group["latency_max_ms"] or 0, row["latency_max_ms"])
            if row.get("user_id") is not None and row["total_requests"]:
                users[key].add(row["user_id"])
    key_names = [name for name, _ in names]
    result = [
        SliceRow(dict(zip(key_names, key, strict=True)), Measures(**group, users=users.get(key) or set()))
        for key, group in groups.items()
    ]
    maxima = [group["latency_max_ms"] for group in groups.values() if group["latency_max_ms"] is not None]
    totals = Measures(
        **{name: sum(group[name] for group in groups.values()) for name in summed},
        latency_max_ms=max(maxima, default=None), users=set().union(*users.values()),
    )  # fmt: skip
    return SliceResult(totals=totals, rows=result, source=source)
