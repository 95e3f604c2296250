"""Price lookup and exact cost.

A call is priced with the version of its model that was in force when the call happened. Manual versions win
over catalog versions. A dated or aliased model name ("gpt-4o-2024-08-06", "claude-3-5-sonnet-20241022") resolves
to the catalog's canonical model id with the catalog's own match rules, so it finds the same price the catalog
would. Versions are cached per process for AI_PRICING_CACHE_SECONDS; a save or delete in this process clears it.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext
from functools import lru_cache

from django.conf import settings
from genai_prices import data_snapshot
from genai_prices.data_snapshot import find_provider_by_id

from usage.models import AIProviderPricing, PriceSource

ONE_MILLION = Decimal(1_000_000)
COST_QUANTUM = Decimal(1).scaleb(-18)
_DATE_SUFFIX = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8}|-\d{4})$")


@dataclass(frozen=True)
class TokenCounts:
    """Token counts by the project's rule: input includes cached reads and cache writes; output includes reasoning."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


def normalise_provider(provider: str) -> str:
    """The catalog's id for a provider name ("OpenAI", "gemini" -> "openai", "google"); else the name lower-cased."""
    return _catalog_provider_id(provider.strip().lower())


@lru_cache(maxsize=1024)
def _catalog_provider_id(name: str) -> str:
    """Cached: the catalog lookup walks every provider's patterns, which cost more than a call's insert."""
    found = find_provider_by_id(data_snapshot.get_snapshot().providers, name) if name else None
    return found.id if found else name


@lru_cache(maxsize=4096)
def candidate_model_ids(provider_id: str, model: str) -> tuple[str, ...]:
    """Model ids to try, best first: the name itself, the catalog's match for it, the name without a date."""
    name = model.strip().lower()
    candidates = [name]
    snapshot = data_snapshot.get_snapshot()
    try:
        _, info = snapshot.find_provider_model(name, None, provider_id, None)
        candidates.append(info.id)
    except LookupError:
        pass
    candidates.append(_DATE_SUFFIX.sub("", name))
    return tuple(dict.fromkeys(candidates))


class _VersionCache:
    """(provider, model id) -> versions, newest first; expires so other processes' edits are seen too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], tuple[float, list[AIProviderPricing]]] = {}

    def versions(self, provider_id: str, model_id: str) -> list[AIProviderPricing]:
        key = (provider_id, model_id)
        now = time.monotonic()
        hit = self._entries.get(key)  # a single dict read is atomic; the lock guards the writes
        if hit and now - hit[0] < settings.AI_PRICING_CACHE_SECONDS:
            return hit[1]
        rows = list(
            AIProviderPricing.objects.filter(provider=provider_id, model=model_id, is_active=True).order_by(
                "-effective_from"
            )
        )
        with self._lock:
            self._entries[key] = (now, rows)
        return rows

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_cache = _VersionCache()


def forget_cached_prices() -> None:
    _cache.clear()


def _precedence(version: AIProviderPricing) -> tuple[bool, bool, datetime]:
    """Manual beats catalog; a version whose daily window applies beats an all-day one; then the newest start."""
    return version.source == PriceSource.MANUAL, version.daily_from_time is not None, version.effective_from


def find_price(provider: str, model: str, at: datetime) -> AIProviderPricing | None:
    """The price version in force at `at` for this provider and model name, or None when it has no price."""
    provider_id = normalise_provider(provider)
    for model_id in candidate_model_ids(provider_id, model):
        versions = [v for v in _cache.versions(provider_id, model_id) if v.applies_at(at)]
        if versions:
            return max(versions, key=_precedence)
    return None


def _tiered(version: AIProviderPricing, kind: str, base: Decimal, total_input_tokens: int) -> Decimal:
    """The price for `kind` at this many input tokens: the highest tier whose start is exceeded, else the base."""
    if not version.tiers:
        return base  # most models: one price whatever the size of the call
    for tier in sorted(version.tiers.get(kind, []), key=lambda t: t["start"], reverse=True):
        if total_input_tokens > tier["start"]:
            return Decimal(tier["price"])
    return base


def compute_cost(version: AIProviderPricing, tokens: TokenCounts) -> Decimal:
    """Exact USD cost of one call. Cached reads and cache writes without a price of their own bill as input."""
    with localcontext(prec=80):  # wide enough that no product of counts and prices is ever rounded
        return _exact_cost(version, tokens)


def _exact_cost(version: AIProviderPricing, tokens: TokenCounts) -> Decimal:
    total_input = tokens.input_tokens
    input_price = _tiered(version, "input", version.input_price, total_input)
    output_price = _tiered(version, "output", version.output_price, total_input)
    plain_input = tokens.input_tokens
    amount = Decimal(0)
    if version.cached_input_price is not None:
        plain_input -= tokens.cached_input_tokens
        cached_price = _tiered(version, "cached_input", version.cached_input_price, total_input)
        amount += cached_price * tokens.cached_input_tokens
    if version.cache_write_price is not None:
        plain_input -= tokens.cache_write_tokens
        write_price = _tiered(version, "cache_write", version.cache_write_price, total_input)
        amount += write_price * tokens.cache_write_tokens
    amount += input_price * plain_input + output_price * tokens.output_tokens
    cost = amount / ONE_MILLION + (version.request_price or 0)
    # Prices carry at most 18 decimals, so this only trims digits beyond what any real price produces.
    return cost.quantize(COST_QUANTUM) if cost.as_tuple().exponent < -18 else cost  # type: ignore[operator]


def price_call(
    provider: str, model: str, at: datetime, tokens: TokenCounts
) -> tuple[AIProviderPricing | None, Decimal | None]:
    """(version, cost) for a call; (None, None) when the model has no price, so the call is logged as unpriced."""
    version = find_price(provider, model, at)
    if version is None:
        return None, None
    return version, compute_cost(version, tokens)
