"""Spend limit overrides and spend alerts as strawberry-django lists: filterable, orderable, paginated, each row
with its user."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import strawberry
import strawberry_django
from django.db.models import Q, QuerySet
from strawberry import auto
from strawberry_django.pagination import OffsetPaginated

from graphql_api.context import Info
from graphql_api.pages import PageBounds
from graphql_api.permissions import ReadsEveryone, SignedIn, current_user
from graphql_api.scalars import Money
from graphql_api.users import UserType, user_ids_q
from usage.models import SpendAlert, UserSpendLimit
from usage.visibility import spend_alerts_visible_to, spend_limits_visible_to


@strawberry_django.filter_type(UserSpendLimit, lookups=True)
class SpendLimitFilter:
    updated_at: auto

    @strawberry_django.filter_field(description="only these users' limits")
    def user_ids(self, info: Info, value: list[strawberry.ID], prefix: str) -> Q:
        return user_ids_q(info, value, prefix, "filters.userIds")


@strawberry_django.order_type(UserSpendLimit)
class SpendLimitOrdering:
    updated_at: auto
    daily_limit: auto
    monthly_limit: auto
    id: auto


@strawberry_django.type(UserSpendLimit, name="SpendLimit", filters=SpendLimitFilter, ordering=SpendLimitOrdering)
class SpendLimitType:
    id: strawberry.ID
    user: UserType
    daily_limit: Money | None = strawberry_django.field(description="USD; null keeps the default from settings")
    monthly_limit: Money | None = strawberry_django.field(description="USD; null keeps the default from settings")
    updated_at: datetime


@strawberry_django.filter_type(SpendAlert, lookups=True)
class SpendAlertFilter:
    period: auto
    period_start: auto
    threshold: auto
    created_at: auto
    sent_at: auto
    superseded: auto

    @strawberry_django.filter_field(description="only these users' alerts (others' need usage.view_ai_analytics)")
    def user_ids(self, info: Info, value: list[strawberry.ID], prefix: str) -> Q:
        return user_ids_q(info, value, prefix, "filters.userIds")


@strawberry_django.order_type(SpendAlert)
class SpendAlertOrdering:
    created_at: auto
    sent_at: auto
    period_start: auto
    threshold: auto
    id: auto


@strawberry_django.type(SpendAlert, name="SpendAlert", filters=SpendAlertFilter, ordering=SpendAlertOrdering)
class SpendAlertType:
    id: strawberry.ID
    user: UserType
    period: str = strawberry_django.field(description='"day" or "month"')
    period_start: date = strawberry_django.field(description="the reporting day, or the first day of the month")
    threshold: int = strawberry_django.field(description="percent of the limit: 80 or 100")
    spend: Money
    limit: Money
    created_at: datetime
    sent_at: datetime | None = strawberry_django.field(description="null until the email was delivered")
    superseded: bool = strawberry_django.field(description="a higher threshold was crossed at once: only it was sent")
    attempts: int
    last_error: str

    @strawberry_django.field(only=["sent_at"], description="whether the email was delivered")
    def sent(self, root: SpendAlert) -> bool:
        return root.sent_at is not None


@strawberry.type
class SpendListsQuery:
    @strawberry_django.offset_paginated(
        OffsetPaginated[SpendLimitType],
        permission_classes=[ReadsEveryone],
        extensions=[PageBounds()],
        description="Needs usage.view_ai_analytics: the users whose limits differ from the defaults, 100 a page.",
    )
    def spend_limits(self, info: Info) -> QuerySet[Any]:
        return spend_limits_visible_to(current_user(info)).order_by("-updated_at", "-id")

    @strawberry_django.offset_paginated(
        OffsetPaginated[SpendAlertType],
        permission_classes=[SignedIn],
        extensions=[PageBounds()],
        description="Spend alerts, latest first, 100 a page: the caller's own, all with usage.view_ai_analytics.",
    )
    def spend_alerts(self, info: Info) -> QuerySet[Any]:
        return spend_alerts_visible_to(current_user(info)).order_by("-created_at", "-id")
