"""Reporting ranges: a named period, the last N days, or start..end dates, as UTC instants of a time zone."""

from __future__ import annotations

import calendar
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import Min
from django.utils import timezone

from usage import periods
from usage.models import AIUsageLog
from usage.validation import EARLIEST_INSTANT, LATEST_INSTANT, InvalidUsage

PERIODS = ("today", "yesterday", "week", "month", "year", "all")
# The reporting days that can hold a stored call in some time zone (calls outside usage.validation's instants are
# refused). Dates beyond them hold nothing, and near year 1 or 9999 a zone's midnight is not even a datetime.
FIRST_DAY = (EARLIEST_INSTANT - timedelta(days=1)).date()
LAST_DAY = LATEST_INSTANT.date()


@dataclass(frozen=True)
class ReportRange:
    first: date  # reporting days first..last, inclusive
    last: date
    zone: ZoneInfo

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time.min, tzinfo=self.zone).astimezone(UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=self.zone).astimezone(UTC)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def previous(self) -> ReportRange:
        """The range of equal length just before this one (for comparisons)."""
        return ReportRange(self.first - timedelta(days=self.days), self.first - timedelta(days=1), self.zone)

    def previous_calendar_period(self, yearly: bool = False) -> ReportRange:
        """The same days one calendar period earlier: a year when `yearly` or for ranges longer than a month,
        otherwise a month (Dec 1-4 against Nov 1-4). A day the earlier month lacks becomes its last day."""
        months = 12 if yearly or self.days > 31 else 1
        return ReportRange(_months_before(self.first, months), _months_before(self.last, months), self.zone)

    @property
    def label(self) -> str:
        """The days for people: "Nov 27 - Nov 30, 2026", "Dec 28, 2025 - Jan 3, 2026" or "Dec 4, 2026" (with an en
        dash)."""
        last = f"{self.last:%b} {self.last.day}, {self.last.year}"
        if self.first == self.last:
            return last
        first = f"{self.first:%b} {self.first.day}" + (
            "" if self.first.year == self.last.year else f", {self.first.year}"
        )
        return f"{first} \u2013 {last}"


def _months_before(day: date, months: int) -> date:
    month_index = day.year * 12 + day.month - 1 - months
    year, month = divmod(month_index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def zone_named(name: str | None) -> ZoneInfo:
    if name is None:
        return periods.reporting_zone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: a tzdata folder such as "Europe"
        raise InvalidUsage("timeZone", f"{name!r} is not an IANA time zone such as Europe/Berlin") from exc


def resolve(
    period: str | None = None,
    days: int | None = None,
    start: date | None = None,
    end: date | None = None,
    time_zone: str | None = None,
    user_ids: Collection[int] | None = None,
) -> ReportRange:
    """Dates win over days, days over a period; with nothing given, the last 7 days. `user_ids` are the users the
    caller may see (None: everyone); the period "all" starts at the first call among them."""
    zone = zone_named(time_zone)
    today = timezone.now().astimezone(zone).date()
    check_day("start", start)
    check_day("end", end)
    if start is not None or end is not None:
        first, last = start or today, end or today
        if last < first:
            raise InvalidUsage("end", f"{last} is before start {first}")
        if (last - first).days >= periods.MAX_REPORT_DAYS:
            raise InvalidUsage("start", f"a range may span at most {periods.MAX_REPORT_DAYS} days")
        return ReportRange(first, last, zone)
    if days is not None:
        if not 1 <= days <= periods.MAX_REPORT_DAYS:
            raise InvalidUsage("days", f"must be between 1 and {periods.MAX_REPORT_DAYS}, got {days}")
        return ReportRange(today - timedelta(days=days - 1), today, zone)
    return _named(period or "week", today, zone, user_ids)


def check_day(name: str, day: date | None) -> None:
    """A day a call can be stored on (the bounds of usage.validation), else InvalidUsage naming it."""
    if day is not None and not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidUsage(name, f"{day} is outside {FIRST_DAY} to {LAST_DAY}")


def _named(period: str, today: date, zone: ZoneInfo, user_ids: Collection[int] | None) -> ReportRange:
    if period == "today":
        return ReportRange(today, today, zone)
    if period == "yesterday":
        return ReportRange(today - timedelta(days=1), today - timedelta(days=1), zone)
    if period == "week":
        return ReportRange(today - timedelta(days=6), today, zone)
    if period == "month":
        return ReportRange(today.replace(day=1), today, zone)
    if period == "year":
        return ReportRange(today.replace(month=1, day=1), today, zone)
    if period == "all":
        logs = AIUsageLog.objects.all() if user_ids is None else AIUsageLog.objects.filter(user_id__in=user_ids)
        first = logs.aggregate(first=Min("occurred_at"))["first"]
        return ReportRange(first.astimezone(zone).date() if first else today, today, zone)
    raise InvalidUsage("period", f"{period!r} is not one of {', '.join(PERIODS)}")
