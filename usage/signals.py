"""Keep this process's caches honest (a change to a price version or a limit forgets what was cached), and let a
deleted user's event ids go with them."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models.signals import post_delete, post_save, pre_delete
from django.dispatch import receiver

from usage.budgets import limit_cache
from usage.models import AIProviderPricing, AIUsageLog, UserSpendLimit
from usage.pricing import forget_cached_prices


@receiver(post_save, sender=UserSpendLimit)
@receiver(post_delete, sender=UserSpendLimit)
def limit_changed(**_kwargs: Any) -> None:
    limit_cache.clear()


@receiver(post_save, sender=AIProviderPricing)
@receiver(post_delete, sender=AIProviderPricing)
def price_changed(**_kwargs: Any) -> None:
    forget_cached_prices()


@receiver(pre_delete, sender=settings.AUTH_USER_MODEL)
def release_event_ids(instance: Any, **_kwargs: Any) -> None:
    """A deleted user's logs stay, without a user, but their event ids go: kept, they would land in the no-user
    scope, where two deleted users' equal ids would collide (and refuse the deletion) or swallow calls recorded on
    nobody's behalf. Nobody can record for a deleted user again, so the ids guard nothing any more."""
    AIUsageLog.objects.filter(user=instance, event_id__isnull=False).update(event_id=None)
