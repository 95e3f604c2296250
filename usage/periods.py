"""Reporting days and months: the calendar of ANALYTICS_TIME_ZONE, not of UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings

MAX_REPORT_DAYS = 3660  # ten years: the longest span of a report, a CAU window or a cost estimate


def reporting_zone_name() -> str:
    return str(settings.ANALYTICS_TIME_ZONE)


def reporting_zone() -> ZoneInfo:
    return ZoneInfo(reporting_zone_name())


def reporting_day(at: datetime) -> date:
    """The reporting-zone calendar day of an aware instant."""
    return at.astimezone(reporting_zone()).date()


def today() -> date:
    return reporting_day(datetime.now(UTC))  # aware UTC, as timezone.now() is with USE_TZ (always on here)


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month_start(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)
