"""What a caller may read of the usage tables: everything with usage.view_ai_analytics, otherwise their own rows.
The API's lists start from these querysets, so a list can never show a row its caller may not see."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from usage.models import AIProviderPricing, AIUsageLog, SpendAlert, UserSpendLimit
from usage.permissions import Action, NotPermitted, may, refusal


def _own_unless_everyone(user: Any, rows: QuerySet[Any]) -> QuerySet[Any]:
    return rows if may(user, Action.READ_EVERYONE) else rows.filter(user_id=user.pk)


def logs_visible_to(user: Any) -> QuerySet[AIUsageLog]:
    return _own_unless_everyone(user, AIUsageLog.objects.all())


def spend_limits_visible_to(user: Any) -> QuerySet[UserSpendLimit]:
    return _own_unless_everyone(user, UserSpendLimit.objects.all())


def spend_alerts_visible_to(user: Any) -> QuerySet[SpendAlert]:
    return _own_unless_everyone(user, SpendAlert.objects.all())


def check_user_ids(user: Any, user_ids: list[int], what: str) -> None:
    """A caller who may not see everyone names only themself: another user's id is refused, never answered empty."""
    if not may(user, Action.READ_EVERYONE) and any(user_id != user.pk for user_id in user_ids):
        raise NotPermitted(f"{what}: {refusal(user, Action.READ_EVERYONE, 'reading other users')}")


def price_versions(
    provider: str | None, model: str | None, include_history: bool, now: datetime
) -> QuerySet[AIProviderPricing]:
    """Price versions of a provider and model (any when None): those in force at `now`, or every version."""
    rows = AIProviderPricing.objects.order_by("provider", "model", "-effective_from")
    if provider:
        rows = rows.filter(provider=provider)
    if model:
        rows = rows.filter(model=model)
    if include_history:
        return rows
    in_force = rows.filter(is_active=True, effective_from__lte=now)
    return in_force.exclude(effective_until__lte=now)
