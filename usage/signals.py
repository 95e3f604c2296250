"""Keep this process's price cache honest: any change to a price version forgets what was cached."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from usage.models import AIProviderPricing
from usage.pricing import forget_cached_prices


@receiver(post_save, sender=AIProviderPricing)
@receiver(post_delete, sender=AIProviderPricing)
def price_changed(**_kwargs: Any) -> None:
    forget_cached_prices()
