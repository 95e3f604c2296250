"""Spend status types and the staff list of every active user's spend."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import Enum
from typing import Any

import strawberry
from django.contrib.auth import get_user_model
from django.db.models import Q, Sum

from usage import periods
from usage.budgets import PeriodSpend, UserSpend, user_limits
from usage.models import UserDailySpend


@strawberry.enum
class SpendStatusEnum(Enum):
    OK = "OK"
    WARNING = "WARNING"
    EXCEEDED = "EXCEEDED"


@strawberry.type
class PeriodSpendType:
    spend: Decimal
    limit: Decimal
    remaining: Decimal
    percent: Decimal | None = strawberry.field(description="spend as a percentage of the limit; null for a 0 limit")
    status: SpendStatusEnum


@strawberry.type
class UserSpendType:
    user_id: strawberry.ID
    username: str
    email: str
    day: date
    daily: PeriodSpendType
    monthly: PeriodSpendType
    status: SpendStatusEnum
    unpriced_requests_this_month: int


@strawberry.type
class UserSpendPage:
    total_count: int
    rows: list[UserSpendType]


def period_type(period: PeriodSpend) -> PeriodSpendType:
    return PeriodSpendType(
        spend=period.spend, limit=period.limit, remaining=period.remaining, percent=period.percent,
        status=SpendStatusEnum(period.status.value),
    )  # fmt: skip


def spend_type(user: Any, spend: UserSpend) -> UserSpendType:
    return UserSpendType(
        user_id=strawberry.ID(str(user.pk)),
        username=user.get_username(),
        email=getattr(user, "email", "") or "",
        day=spend.day,
        daily=period_type(spend.daily),
        monthly=period_type(spend.monthly),
        status=SpendStatusEnum(spend.status.value),
        unpriced_requests_this_month=spend.unpriced_requests_this_month,
    )


@dataclass(frozen=True)
class _MonthTotals:
    day: Decimal
    month: Decimal
    unpriced: int


def _month_totals(day: date) -> dict[int, _MonthTotals]:
    """Every user's spend today and this month, in one grouped read of the live counters."""
    rows = (
        UserDailySpend.objects.filter(
            time_zone=periods.reporting_zone_name(),
            day__gte=periods.month_start(day),
            day__lt=periods.next_month_start(day),
        )
        .values("user_id")
        .annotate(
            month=Sum("cost", default=Decimal(0)),
            today=Sum("cost", filter=Q(day=day), default=Decimal(0)),
            unpriced=Sum("unpriced_requests", default=0),
        )
    )
    return {row["user_id"]: _MonthTotals(row["today"], row["month"], row["unpriced"]) for row in rows}


def all_user_spend(status: str | None, search: str | None) -> list[UserSpendType]:
    """Every active user (no cap), most exceeded first, filtered by status and by a username/email search."""
    day = periods.today()
    totals = _month_totals(day)
    users = get_user_model().objects.filter(is_active=True).order_by("pk")
    if search:
        users = users.filter(Q(username__icontains=search) | Q(email__icontains=search))
    zero = _MonthTotals(Decimal(0), Decimal(0), 0)
    rows = []
    for user in users.iterator(chunk_size=2000):
        found = totals.get(user.pk, zero)
        daily_limit, monthly_limit = user_limits(user.pk)
        spend = UserSpend(user.pk, day, PeriodSpend(found.day, daily_limit), PeriodSpend(found.month, monthly_limit),
                          found.unpriced)  # fmt: skip
        if status is None or spend.status.value == status:
            rows.append(spend_type(user, spend))
    rows.sort(key=lambda row: (-(row.monthly.percent or 0), -(row.daily.percent or 0), int(row.user_id)))
    return rows
