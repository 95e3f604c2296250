"""Timelines for charts: one row per period of a range (per group), the periods without calls included as zeros,
so no client has to fill the gaps itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from analytics.rollup import zone_start
from analytics.slices import Measures, SliceResult, SliceRow

HOUR = timedelta(hours=1)


def period_starts(first_day: Any, last_day: Any, zone: ZoneInfo, granularity: str) -> list[datetime]:
    """The start of every period touching the reporting days first_day..last_day, keyed as the slice engine keys
    them (local midnight, Monday for weeks, the 1st for months; local hours for hours)."""
    if granularity == "hour":
        start = zone_start(first_day, zone).astimezone(UTC)
        end = zone_start(last_day + timedelta(days=1), zone).astimezone(UTC)
        return [(start + HOUR * n).astimezone(zone) for n in range(int((end - start) / HOUR))]
    if granularity == "week":
        first_day -= timedelta(days=first_day.weekday())
    elif granularity == "month":
        first_day = first_day.replace(day=1)
    days, day = [], first_day
    while day <= last_day:
        days.append(day)
        day = _next(day, granularity)
    return [zone_start(day, zone) for day in days]


def _next(day: Any, granularity: str) -> Any:
    if granularity == "day":
        return day + timedelta(days=1)
    if granularity == "week":
        return day + timedelta(days=7)
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def row_count(result: SliceResult, periods: list[datetime], dimensions: tuple[str, ...]) -> int:
    return len(periods) * max(1, len(_groups(result, dimensions)))


def filled(result: SliceResult, periods: list[datetime], dimensions: tuple[str, ...]) -> list[SliceRow]:
    """Every period for every group the result has (one group without dimensions), in period order and then by
    group; a period without calls is a row of zeros."""
    found = {(row.key.get("period"), *(row.key.get(d) for d in dimensions)): row for row in result.rows}
    groups = _groups(result, dimensions)  # once: each period has the same groups
    rows = []
    for period in periods:
        for group in groups:
            key = {"period": period, **dict(zip(dimensions, group, strict=True))}
            rows.append(found.get((period, *group)) or SliceRow(key, Measures()))
    return rows


def _groups(result: SliceResult, dimensions: tuple[str, ...]) -> list[tuple[Any, ...]]:
    if not dimensions:
        return [()]
    groups = {tuple(row.key.get(d) for d in dimensions) for row in result.rows}
    return sorted(groups, key=lambda group: tuple((value is None, str(value)) for value in group))
