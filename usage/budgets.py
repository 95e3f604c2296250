"""Spend limits and spend status, read from the live per-day counters (never from the user's whole history)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Context, Decimal
from enum import StrEnum
from typing import Any, NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, Q, Sum

from usage import periods
from usage.db import database_available, fetch_one
from usage.models import UserDailySpend, UserSpendLimit
from usage.validation import InvalidUsage

WARNING_PERCENT = Decimal(80)
EXCEEDED_PERCENT = Decimal(100)
ZERO = Decimal(0)
SQLITE_DIGITS = Context(prec=15)


class SpendStatus(StrEnum):
    OK = "OK"
    WARNING = "WARNING"
    EXCEEDED = "EXCEEDED"


def status_for(spend: Decimal, limit: Decimal) -> SpendStatus:
    """OK below 80% of the limit, WARNING from 80% to below 100%, EXCEEDED at 100% or more (a zero limit blocks)."""
    if spend >= limit:
        return SpendStatus.EXCEEDED
    if spend * 100 >= limit * WARNING_PERCENT:
        return SpendStatus.WARNING
    return SpendStatus.OK


ALERT_THRESHOLDS = (WARNING_PERCENT, EXCEEDED_PERCENT)


def thresholds_reached(spend: Decimal, limit: Decimal) -> list[int]:
    """The alert thresholds (percent of the limit) that this spend has reached, lowest first."""
    return [int(t) for t in ALERT_THRESHOLDS if spend * 100 >= limit * t and spend > 0]


def near_limit(spend: Decimal, limit: Decimal) -> bool:
    """Whether this spend has reached the lowest alert threshold (80% of the limit)."""
    return spend * 100 >= limit * WARNING_PERCENT


def crossed_threshold(before: Decimal, after: Decimal, limit: Decimal) -> bool:
    """Whether going from `before` to `after` reached an alert threshold not reached before."""
    return len(thresholds_reached(after, limit)) > len(thresholds_reached(before, limit))


def percent_of(spend: Decimal, limit: Decimal) -> Decimal | None:
    return None if limit == 0 else (spend * 100 / limit).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class PeriodSpend:
    spend: Decimal
    limit: Decimal

    @property
    def percent(self) -> Decimal | None:
        return percent_of(self.spend, self.limit)

    @property
    def status(self) -> SpendStatus:
        return status_for(self.spend, self.limit)

    @property
    def remaining(self) -> Decimal:
        return max(self.limit - self.spend, ZERO)


@dataclass(frozen=True)
class UserSpend:
    user_id: int
    day: date
    daily: PeriodSpend
    monthly: PeriodSpend
    unpriced_requests_this_month: int

    @property
    def status(self) -> SpendStatus:
        order = [SpendStatus.OK, SpendStatus.WARNING, SpendStatus.EXCEEDED]
        return max(self.daily.status, self.monthly.status, key=order.index)


class _LimitCache:
    """Per-user limit overrides, kept per process for AI_PRICING_CACHE_SECONDS (saves here clear it at once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded_at = -math.inf
        self._overrides: dict[int, tuple[Decimal | None, Decimal | None]] = {}

    def get(self, user_id: int) -> tuple[Decimal | None, Decimal | None]:
        if time.monotonic() - self._loaded_at >= settings.AI_PRICING_CACHE_SECONDS:
            rows = UserSpendLimit.objects.values_list("user_id", "daily_limit", "monthly_limit")
            overrides = {user: (daily, monthly) for user, daily, monthly in rows}
            with self._lock:
                self._overrides, self._loaded_at = overrides, time.monotonic()
        return self._overrides.get(user_id, (None, None))

    def clear(self) -> None:
        with self._lock:
            self._loaded_at = -math.inf


limit_cache = _LimitCache()
CENT = Decimal("0.01")
LARGEST_LIMIT = Decimal("1e12")  # limit columns hold 12 digits before the point


def set_spend_limits(user_id: int, changes: Mapping[str, Decimal | None]) -> Any:
    """Set a user's `daily_limit` and/or `monthly_limit` (None: back to the default from settings); a limit not
    named is left as it is. A value that cannot be stored exactly is refused (InvalidUsage naming it), never
    rounded into another amount."""
    for field, value in changes.items():
        _check_limit(field, value)
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        raise InvalidUsage("user_id", f"no user with id {user_id}")
    UserSpendLimit.objects.update_or_create(user=user, defaults=changes)
    limit_cache.clear()
    return user


def _check_limit(field: str, value: Decimal | None) -> None:
    if value is None:
        return
    if not value.is_finite() or value < 0 or value >= LARGEST_LIMIT:
        raise InvalidUsage(field, f"must be a non-negative amount below 1e12, got {value}")
    if value != value.quantize(CENT):
        raise InvalidUsage(field, f"{value} has more than 2 decimal places; limits are stored in whole cents")


def user_limits(user_id: int) -> tuple[Decimal, Decimal]:
    """(daily, monthly) limit for a user: their override where set, else the defaults from settings."""
    daily, monthly = limit_cache.get(user_id)
    return (
        settings.AI_DEFAULT_DAILY_LIMIT if daily is None else daily,
        settings.AI_DEFAULT_MONTHLY_LIMIT if monthly is None else monthly,
    )


# Hand-written because this runs before every enforced call: compiling the same ORM aggregate each time cost
# more than the query itself.
MONTH_SPEND_SQL = f"""
    SELECT COALESCE(SUM(CASE WHEN day = %s THEN cost END), 0), COALESCE(SUM(cost), 0),
           COALESCE(SUM(unpriced_requests), 0)
    FROM {UserDailySpend._meta.db_table}
    WHERE user_id = %s AND time_zone = %s AND day >= %s AND day < %s
"""


def _as_decimal(value: object) -> Decimal:
    """PostgreSQL returns numeric as Decimal; SQLite returns a float with 15 significant digits."""
    if isinstance(value, Decimal):
        return value
    return SQLITE_DIGITS.create_decimal_from_float(float(value))  # type: ignore[arg-type]


def spend_in_month(user_id: int, day: date) -> tuple[Decimal, Decimal, int]:
    """(spend on `day`, spend in its month, unpriced calls in its month) from at most 31 counter rows."""
    params: list[Any] = [
        day,
        user_id,
        periods.reporting_zone_name(),
        periods.month_start(day),
        periods.next_month_start(day),
    ]
    row = fetch_one(MONTH_SPEND_SQL, params)
    assert row is not None  # an aggregate always returns one row
    today, month, unpriced = row
    return _as_decimal(today), _as_decimal(month), int(unpriced)


class BudgetCheck(NamedTuple):
    """What an enforced call's check read before the call ran."""

    day: date  # the reporting day it was made on
    other_days_spend: Decimal  # the month's spend on its other days, which the call's own write need not read again
    refusal: UserSpend | None  # the user's spend status when they are over a limit, else None


def check_before_call(user_id: int) -> BudgetCheck:
    """The check an enforced call makes before it runs: one prepared statement, and status objects only for a
    refusal. Raises DatabaseUnavailable when the database is down."""
    day = periods.today()
    daily_limit, monthly_limit = user_limits(user_id)
    with database_available("the spend limit could not be checked"):
        today_spend, month_spend, unpriced = spend_in_month(user_id, day)
    refusal = None
    if today_spend >= daily_limit or month_spend >= monthly_limit:
        refusal = user_spend(user_id, day, (daily_limit, monthly_limit), (today_spend, month_spend, unpriced))
    return BudgetCheck(day, month_spend - today_spend, refusal)


def spend_status(user_id: int, day: date | None = None) -> UserSpend:
    """Daily and monthly spend, limits, percentages and status of one user for a reporting day (default today)."""
    day = day or periods.today()
    return user_spend(user_id, day, user_limits(user_id), spend_in_month(user_id, day))


def user_spend(
    user_id: int, day: date, limits: tuple[Decimal, Decimal], totals: tuple[Decimal, Decimal, int]
) -> UserSpend:
    """A user's spend status from their (daily, monthly) limits and (day, month, unpriced calls) totals."""
    (daily_limit, monthly_limit), (today_spend, month_spend, unpriced) = limits, totals
    return UserSpend(user_id, day, PeriodSpend(today_spend, daily_limit), PeriodSpend(month_spend, monthly_limit),
                     unpriced)  # fmt: skip


@dataclass(frozen=True)
class UserSpendRow:
    """One user's spend status with who they are, for the staff lists (admin page, GraphQL, CSV)."""

    user_id: int
    username: str
    email: str
    spend: UserSpend


SPEND_ORDERINGS = {
    "percent": lambda row: (-(row.spend.monthly.percent or 0), -(row.spend.daily.percent or 0), row.user_id),
    "daily": lambda row: (-row.spend.daily.spend, row.user_id),
    "monthly": lambda row: (-row.spend.monthly.spend, row.user_id),
    "username": lambda row: (row.username.lower(), row.user_id),
}


def _month_totals(day: date) -> dict[int, tuple[Decimal, Decimal, int]]:
    """Every user's (spend on `day`, spend this month, unpriced calls this month) in one grouped counter read."""
    first, end = periods.month_start(day), periods.next_month_start(day)
    month = UserDailySpend.objects.filter(time_zone=periods.reporting_zone_name(), day__gte=first, day__lt=end)
    rows = month.values("user_id").annotate(
        month=Sum("cost", default=ZERO),
        today=Sum("cost", filter=Q(day=day), default=ZERO),
        unpriced=Sum("unpriced_requests", default=0),
    )
    return {row["user_id"]: (_as_decimal(row["today"]), _as_decimal(row["month"]), row["unpriced"]) for row in rows}


def every_user_spend(
    statuses: Collection[str] = (), search: str | None = None, order: str = "percent"
) -> list[UserSpendRow]:
    """Every active user (no cap) with today's and this month's spend, filtered by statuses (any of OK, WARNING,
    EXCEEDED; none: all) and a username/email search, ordered by `order` (a key of SPEND_ORDERINGS; the default
    puts the users closest to or over their limits first)."""
    day = periods.today()
    totals = _month_totals(day)
    users = get_user_model().objects.filter(is_active=True).order_by("pk").values_list("pk", "username", "email")
    if search:
        users = users.filter(Q(username__icontains=search) | Q(email__icontains=search))
    rows = []
    for user_id, username, email in users.iterator(chunk_size=2000):
        spend = user_spend(user_id, day, user_limits(user_id), totals.get(user_id, (ZERO, ZERO, 0)))
        if not statuses or spend.status.value in statuses:
            rows.append(UserSpendRow(user_id, username, email or "", spend))
    rows.sort(key=SPEND_ORDERINGS[order])
    return rows


def cost_per_active_user(start: date, end: date) -> dict[str, Decimal | int]:
    """CAU over reporting days start..end inclusive: attributed cost divided by users with at least one call."""
    totals = UserDailySpend.objects.filter(
        time_zone=periods.reporting_zone_name(), day__gte=start, day__lte=end, requests__gt=0
    ).aggregate(total_cost=Sum("cost", default=ZERO), active_users=Count("user", distinct=True))
    active = totals["active_users"]
    total_cost = totals["total_cost"]
    return {"cau": total_cost / active if active else ZERO, "active_users": active, "total_cost": total_cost}


def window(days: int, end: date | None = None) -> tuple[date, date]:
    """The last `days` reporting days ending with `end` (today by default)."""
    end = end or periods.today()
    return end - timedelta(days=days - 1), end
