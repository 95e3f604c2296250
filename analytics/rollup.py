"""Rollups: logs -> hourly buckets (UTC) -> daily and monthly user summaries (reporting time zone).

Every run replaces the summaries it touches by recomputing them from their source with INSERT ... SELECT ...
GROUP BY, so reruns, late events and repricing converge on the same tables. A run recomputes only the hours
that logs written (or repriced) since the previous successful run fall in, found by write time rather than by
occurred_at, so a late event for an old day is caught. The whole run is one transaction under a lock: a run
killed half-way leaves the tables as they were, and two runs at once cannot interleave.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, models, transaction
from django.db.models import Count, Max, Q, QuerySet, Sum
from django.db.models.functions import TruncDate, TruncHour, TruncMonth
from django.utils import timezone

from analytics.models import (
    DailyUsageSummary,
    RollupRun,
    RunOutcome,
    SumField,
    UsageHourlyBucket,
    UserAICostSummary,
    UserMonthlyAICostSummary,
)
from usage import periods
from usage.models import AIUsageLog, CallStatus, StaleHour

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
# Logs written this long before the previous run started are scanned again: a write still in flight when that run
# looked (a large batch committing late) is caught by the next one. Rescanning costs little; replacing is idempotent.
RESCAN_OVERLAP = timedelta(minutes=5)
ROLLUP_LOCK_KEY = 7_240_001  # the PostgreSQL advisory lock id of the rollup
ABANDONED_AFTER = timedelta(hours=1)
ROLLUP_WORK_MEM = "256MB"
ABANDONED = "abandoned: the process stopped before it finished; nothing of it was kept"

SUMMED = [
    "total_requests", "successful_requests", "failed_requests", "error_requests", "timeout_requests",
    "rate_limited_requests", "cancelled_requests", "unpriced_requests", "input_tokens", "output_tokens",
    "cached_input_tokens", "cache_write_tokens", "reasoning_tokens", "total_cost", "latency_sum_ms", "latency_count",
]  # fmt: skip


class WideSum(Sum):
    """The sum of a token or latency figure, which may pass 2^63 (see analytics.models). PostgreSQL sums bigint and
    numeric into numeric, exactly; SQLite's integer SUM raises "integer overflow" there, so SQLite adds in floating
    point (TOTAL), exact below 2^53 (9e15), as its decimals are to 15 digits."""

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return super().as_sqlite(compiler, connection, function="TOTAL", **extra_context)


WIDE_SUMS = frozenset(f.name for f in UsageHourlyBucket._meta.concrete_fields if isinstance(f, SumField))


def log_metrics() -> dict[str, Any]:
    """The summary measures as aggregates over raw logs."""

    def calls(condition: Q | None = None) -> Count:
        return Count("id", filter=condition)

    return {
        "total_requests": calls(),
        "successful_requests": calls(Q(status=CallStatus.SUCCESS)),
        "failed_requests": calls(~Q(status=CallStatus.SUCCESS)),
        "error_requests": calls(Q(status=CallStatus.ERROR)),
        "timeout_requests": calls(Q(status=CallStatus.TIMEOUT)),
        "rate_limited_requests": calls(Q(status=CallStatus.RATE_LIMITED)),
        "cancelled_requests": calls(Q(status=CallStatus.CANCELLED)),
        "unpriced_requests": calls(Q(total_cost__isnull=True)),
        "input_tokens": WideSum("input_tokens"),
        "output_tokens": WideSum("output_tokens"),
        "cached_input_tokens": WideSum("cached_input_tokens"),
        "cache_write_tokens": WideSum("cache_write_tokens"),
        "reasoning_tokens": WideSum("reasoning_tokens"),
        "total_cost": Sum("total_cost", default=0),
        "latency_sum_ms": WideSum("latency_ms", default=0),
        "latency_count": Count("latency_ms"),
        "latency_max_ms": Max("latency_ms"),
    }


def summary_metrics() -> dict[str, Any]:
    """The same measures re-aggregated from a finer summary."""
    sums = {name: WideSum(name) if name in WIDE_SUMS else Sum(name) for name in SUMMED}
    return sums | {"latency_max_ms": Max("latency_max_ms")}


def insert_select(target: type[models.Model], queryset: QuerySet[Any], *order: str) -> int:
    """INSERT INTO target (...) SELECT ...: the grouped queryset's columns, named as target's columns.

    Rows go in sorted by the target's unique key: inserting into its index in order touches each index page once
    instead of at random, which measured twice as fast for large backfills.
    """
    compiler = queryset.order_by(*order).query.get_compiler(connection=connection)
    sql, params = compiler.as_sql()
    columns = [alias or expression.target.column for expression, _sql, alias in compiler.select]
    statement = f"INSERT INTO {target._meta.db_table} ({', '.join(columns)}) {sql}"
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return int(cursor.rowcount)


def merge_ranges(points: Iterable[Any], step: Any) -> list[tuple[Any, Any]]:
    """Sorted points as half-open [start, end) ranges of consecutive steps: few statements for many points."""
    ranges: list[tuple[Any, Any]] = []
    for point in sorted(set(points)):
        if ranges and ranges[-1][1] == point:
            ranges[-1] = (ranges[-1][0], point + step)
        else:
            ranges.append((point, point + step))
    return ranges


def zone_start(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone)


def whole_hour_zone(zone: ZoneInfo, days: Iterable[date]) -> bool:
    """Whether every UTC hour of these days falls inside one local day, so days can be summed from hours."""
    return all(
        zone_start(day, zone).utcoffset() % HOUR == timedelta(0)  # type: ignore[operator]
        and zone_start(day + timedelta(days=1), zone).utcoffset() % HOUR == timedelta(0)  # type: ignore[operator]
        for day in days
    )


def rebuild_hours(start: datetime, end: datetime) -> None:
    UsageHourlyBucket.objects.filter(hour__gte=start, hour__lt=end).delete()
    logs = (
        AIUsageLog.objects.filter(occurred_at__gte=start, occurred_at__lt=end)
        .annotate(hour=TruncHour("occurred_at", tzinfo=UTC))
        .values("hour", "user_id", "provider", "model", "feature")
        .annotate(**log_metrics())
    )
    insert_select(UsageHourlyBucket, logs, "hour", "user_id")


def rebuild_days(first: date, end: date, zone: ZoneInfo) -> None:
    """Replace the daily summaries (per user, and per provider/model/feature) of [first, end) in `zone`."""
    UserAICostSummary.objects.filter(date__gte=first, date__lt=end).delete()
    DailyUsageSummary.objects.filter(date__gte=first, date__lt=end).delete()
    source = _day_source(first, end, zone)
    per_user = source.filter(user__isnull=False).values("date", "user_id").annotate(**source_metrics(source))
    insert_select(UserAICostSummary, per_user, "user_id", "date")
    per_model = source.values("date", "provider", "model", "feature").annotate(**source_metrics(source))
    insert_select(DailyUsageSummary, per_model, "date", "provider", "model", "feature")


def _day_source(first: date, end: date, zone: ZoneInfo) -> QuerySet[Any, Any]:
    """The rows days are summed from: hourly buckets when the zone allows it, else the logs."""
    since, until = zone_start(first, zone), zone_start(end, zone)
    days = [first + timedelta(days=n) for n in range((end - first).days)]
    if whole_hour_zone(zone, days):
        buckets = UsageHourlyBucket.objects.filter(hour__gte=since, hour__lt=until)
        return buckets.annotate(date=TruncDate("hour", tzinfo=zone))
    # Half-hour zones (Asia/Kolkata): UTC hours straddle local midnight, so days come from the logs.
    logs = AIUsageLog.objects.filter(occurred_at__gte=since, occurred_at__lt=until)
    return logs.annotate(date=TruncDate("occurred_at", tzinfo=zone))


def source_metrics(source: QuerySet[Any, Any]) -> dict[str, Any]:
    return summary_metrics() if source.model is UsageHourlyBucket else log_metrics()


def rebuild_months(first: date, end: date) -> None:
    UserMonthlyAICostSummary.objects.filter(month__gte=first, month__lt=end).delete()
    days = (
        UserAICostSummary.objects.filter(date__gte=first, date__lt=end)
        .annotate(month=TruncMonth("date"))
        .values("month", "user_id")
        .annotate(**summary_metrics())
    )
    insert_select(UserMonthlyAICostSummary, days, "user_id", "month")


def local_days(hour: datetime, zone: ZoneInfo) -> set[date]:
    """The reporting days a UTC hour overlaps (two when the zone's offset is not a whole hour)."""
    return {hour.astimezone(zone).date(), (hour + HOUR - timedelta(microseconds=1)).astimezone(zone).date()}


@dataclass
class RollupResult:
    hours: int = 0
    days: int = 0
    months: int = 0


def recompute(hours: set[datetime]) -> RollupResult:
    """Recompute these UTC hours and every reporting day and month they fall in."""
    zone = periods.reporting_zone()
    for start, end in merge_ranges(hours, HOUR):
        rebuild_hours(start, end)
    days = {day for hour in hours for day in local_days(hour, zone)}
    for first, end in merge_ranges(days, timedelta(days=1)):
        rebuild_days(first, end, zone)
    months = {periods.month_start(day) for day in days}
    for first, end in _month_ranges(months):
        rebuild_months(first, end)
    return RollupResult(hours=len(hours), days=len(days), months=len(months))


def _month_ranges(months: set[date]) -> list[tuple[date, date]]:
    ranges: list[tuple[date, date]] = []
    for month in sorted(months):
        if ranges and ranges[-1][1] == month:
            ranges[-1] = (ranges[-1][0], periods.next_month_start(month))
        else:
            ranges.append((month, periods.next_month_start(month)))
    return ranges


def touched_hours(since: datetime | None) -> set[datetime]:
    """UTC hours of logs written since `since` (all logs when None) and hours marked stale by repricing."""
    if since is None:
        hours = all_hours()
    else:
        logs = AIUsageLog.objects.filter(recorded_at__gte=since).annotate(h=TruncHour("occurred_at", tzinfo=UTC))
        hours = set(logs.order_by().values_list("h", flat=True).distinct())  # no ordering: DISTINCT hours
    stale = list(StaleHour.objects.values_list("hour", "marked_at"))
    # Only the marks as read: an hour marked again meanwhile (repriced after this run read its logs) stays marked.
    for hour, marked_at in stale:
        StaleHour.objects.filter(hour=hour, marked_at=marked_at).delete()
    return hours | {hour for hour, _marked_at in stale}


def all_hours() -> set[datetime]:
    """Every UTC hour from the first log to the last (read from the occurred_at index, not by scanning logs)."""
    bounds = AIUsageLog.objects.aggregate(first=models.Min("occurred_at"), last=models.Max("occurred_at"))
    if bounds["first"] is None:
        return set()
    first = bounds["first"].astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return {first + HOUR * n for n in range(int((bounds["last"] - first) / HOUR) + 1)}


def hours_of_days(first: date, last: date) -> set[datetime]:
    """Every UTC hour overlapping reporting days first..last inclusive (for backfills)."""
    zone = periods.reporting_zone()
    start = zone_start(first, zone).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    end = zone_start(last + timedelta(days=1), zone).astimezone(UTC)
    return {start + HOUR * n for n in range(int((end - start) / HOUR) + (end.minute > 0))}


def backfill_days(first: date, last: date) -> RollupRun:
    """Recompute reporting days first..last inclusive, whatever was recorded before."""
    return run_rollup(hours_of_days(first, last), trigger="backfill")


def _acquire_lock() -> bool:
    """PostgreSQL: a transaction-level advisory lock, skipped (not waited for) when another run holds it.
    SQLite: the write transaction itself excludes other writers, so a second run waits and then finds no work."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [ROLLUP_LOCK_KEY])
        acquired = bool(cursor.fetchone()[0])
        if acquired:
            # Grouping a backfill's million rows spills to disk at the default 4 MB; this run alone gets more.
            cursor.execute(f"SET LOCAL work_mem = '{ROLLUP_WORK_MEM}'")
        return acquired


def _scan_from() -> datetime | None:
    last = RollupRun.objects.filter(outcome=RunOutcome.SUCCEEDED, trigger="schedule").order_by("-started_at").first()
    return None if last is None else last.started_at - RESCAN_OVERLAP


def _close_abandoned_runs(current: RollupRun) -> None:
    """Holding the lock proves no other run is in progress: one still marked running was stopped (its worker was
    killed) and its transaction rolled back, so it is closed as abandoned now rather than after an hour."""
    RollupRun.objects.filter(outcome=RunOutcome.RUNNING, started_at__lte=current.started_at).exclude(
        pk=current.pk
    ).update(outcome=RunOutcome.FAILED, error=ABANDONED, finished_at=timezone.now())


def run_rollup(hours: set[datetime] | None = None, trigger: str = "schedule") -> RollupRun:
    """One recorded run: the hours given (a backfill), or everything changed since the last scheduled run."""
    RollupRun.objects.filter(outcome=RunOutcome.RUNNING, started_at__lt=timezone.now() - ABANDONED_AFTER).update(
        outcome=RunOutcome.FAILED, error=ABANDONED, finished_at=timezone.now()
    )
    run = RollupRun.objects.create(started_at=timezone.now(), trigger=trigger)
    try:
        with transaction.atomic():
            if not _acquire_lock():
                run.outcome = RunOutcome.SKIPPED
            else:
                _close_abandoned_runs(run)
                if hours is None:
                    run.scanned_since = _scan_from()
                    hours = touched_hours(run.scanned_since)
                result = recompute(hours)
                run.hours, run.days, run.months = result.hours, result.days, result.months
                run.outcome = RunOutcome.SUCCEEDED
    except Exception as exc:
        run.outcome, run.error = RunOutcome.FAILED, f"{type(exc).__name__}: {exc}"
        logger.exception("rollup failed")
        raise
    finally:
        run.finished_at = timezone.now()
        run.save()
    return run


def recent_runs() -> QuerySet[RollupRun]:
    """Every recorded rollup run, the latest first."""
    return RollupRun.objects.order_by("-started_at", "-id")
