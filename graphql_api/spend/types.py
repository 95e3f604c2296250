"""Spend against limits: a user's day and month, and the list of every active user's spend."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import Enum
from typing import Any

import strawberry
from django.contrib.auth import get_user_model

from graphql_api.scalars import Money
from graphql_api.users import UserType, as_user_type
from usage.budgets import PeriodSpend, UserSpend, UserSpendRow, every_user_spend


@strawberry.enum
class SpendStatusEnum(Enum):
    OK = "OK"
    WARNING = "WARNING"
    EXCEEDED = "EXCEEDED"


@strawberry.type
class PeriodSpendType:
    spend: Money
    limit: Money
    remaining: Money
    percent: Decimal | None = strawberry.field(description="spend as a percentage of the limit; null for a 0 limit")
    status: SpendStatusEnum


@strawberry.type
class UserSpendType:
    user_id: strawberry.ID
    user: UserType
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
        spend=Money(period.spend), limit=Money(period.limit), remaining=Money(period.remaining), percent=period.percent,
        status=SpendStatusEnum(period.status.value),
    )  # fmt: skip


def spend_type(user: Any, spend: UserSpend) -> UserSpendType:
    return UserSpendType(
        user_id=strawberry.ID(str(user.pk)),
        user=as_user_type(user),
        username=user.get_username(),
        email=getattr(user, "email", "") or "",
        day=spend.day,
        daily=period_type(spend.daily),
        monthly=period_type(spend.monthly),
        status=SpendStatusEnum(spend.status.value),
        unpriced_requests_this_month=spend.unpriced_requests_this_month,
    )


def all_user_spend(statuses: list[SpendStatusEnum], search: str | None) -> list[UserSpendType]:
    """Every active user (no cap), most exceeded first, filtered by statuses and by a username/email search."""
    return [_row_type(row) for row in every_user_spend({status.value for status in statuses}, search)]


def _row_type(row: UserSpendRow) -> UserSpendType:
    return UserSpendType(
        user_id=strawberry.ID(str(row.user_id)), user=_unsaved_user(row), username=row.username, email=row.email,
        day=row.spend.day,
        daily=period_type(row.spend.daily), monthly=period_type(row.spend.monthly),
        status=SpendStatusEnum(row.spend.status.value),
        unpriced_requests_this_month=row.spend.unpriced_requests_this_month,
    )  # fmt: skip


def _unsaved_user(row: UserSpendRow) -> UserType:
    """The row's user as the User type, from what the row already read (no query per row)."""
    return as_user_type(get_user_model()(pk=row.user_id, username=row.username, email=row.email))
