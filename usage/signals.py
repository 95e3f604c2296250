"""Keep this process's caches honest: a change to a price version or a limit forgets what was cached."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from usage.budgets import limit_cache
from usage.models import AIProviderPricing, UserSpendLimit
from usage.pricing import forget_cached_prices


@receiver(post_save, sender=UserSpendLimit)
@receiver(post_delete, sender=UserSpendLimit)
def limit_changed(**_kwargs: Any) -> None:
    limit_cache.clear()


@receiver(post_save, sender=AIProviderPricing)
@receiver(post_delete, sender=AIProviderPricing)
def price_changed(**_kwargs: Any) -> None:
    forget_cached_prices()
