"""Display helpers for the analytics pages: money, token counts, rates, spend bars and admin links."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import template
from django.conf import settings
from django.contrib.auth import get_user_model
from django.urls import NoReverseMatch, reverse
from django.utils.safestring import SafeString

from analytics import charts
from usage.budgets import EXCEEDED_PERCENT, WARNING_PERCENT
from usage.money import cost_with_unpriced, on_page

register = template.Library()
NOTHING = "\u2013"  # an en dash: no value (no calls to divide by)


@register.filter
def money(value: Decimal | int | None) -> SafeString:
    """The one format for people (usage.money.for_people), the exact value on hover; "unpriced" for no price."""
    return on_page(value)


@register.simple_tag
def cost(amount: Decimal | int | None, unpriced: int, calls: int) -> SafeString:
    """A group's cost with its unpriced calls counted beside it, never shown as $0.00."""
    return cost_with_unpriced(amount, unpriced, calls)


@register.filter
def tokens(value: int | None) -> str:
    return "0" if value is None else charts.tokens(value)


@register.filter
def rate(value: Decimal | None) -> str:
    """A fraction (0.0123) as a percentage (1.23%); a dash when there was nothing to divide."""
    return NOTHING if value is None else f"{value * 100:.2f}%"


@register.filter
def latency(value: Decimal | int | None) -> str:
    return NOTHING if value is None else f"{Decimal(value):,.0f} ms"


@register.filter
def spend_level(percent: Decimal | None) -> str:
    """The bar colour: green below 80% of the limit, yellow from 80% to 99%, red from 100% (and for a 0 limit)."""
    if percent is None or percent >= EXCEEDED_PERCENT:
        return "over"
    return "warn" if percent >= WARNING_PERCENT else "ok"


@register.filter
def bar_width(percent: Decimal | None) -> str:
    return "100" if percent is None else f"{min(percent, Decimal(100)):.1f}"


@register.simple_tag
def user_admin_url(user_id: int | None) -> str:
    if user_id is None:
        return ""
    opts = get_user_model()._meta
    try:
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[user_id])
    except NoReverseMatch:  # the user model has no admin page
        return ""


@register.simple_tag
def langsmith_home() -> str:
    """LangSmith's web address when an API key is configured, else nothing (no link is shown)."""
    return settings.LANGSMITH_WEB_URL if settings.LANGSMITH_API_KEY else ""


@register.filter
def get(mapping: dict[str, Any], key: str) -> Any:
    return mapping.get(key)
