"""Pricing calls that were logged without a price, once a price for their model appears."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from usage import periods
from usage.catalog import SyncReport, load_catalog, sync_catalog
from usage.models import AIUsageLog, PricingSync, StaleHour, UserDailySpend
from usage.pricing import TokenCounts, forget_cached_prices, price_call

BATCH_SIZE = 500


@dataclass(frozen=True)
class PricingSyncResult:
    sync: SyncReport
    repriced: int

    def as_dict(self) -> dict[str, int]:
        return {
            "added": len(self.sync.added),
            "changed": len(self.sync.changed),
            "unchanged": self.sync.unchanged,
            "repriced": self.repriced,
        }


Progress = Callable[[Iterable[Any]], Iterable[Any]]


def sync_prices_and_reprice(
    source: str | None = None, trigger: str = "schedule", progress: Progress | None = None
) -> PricingSyncResult:
    """Import the price catalog, then price every log that was unpriced and now has a price. The run is recorded
    (PricingSync), failed ones with their error, so the admin shows when prices last changed and why not."""
    source = settings.AI_PRICING_SOURCE_URL if source is None else source
    run = PricingSync.objects.create(started_at=timezone.now(), trigger=trigger, source=source)
    try:
        providers = load_catalog(source)
        report = sync_catalog(providers, progress) if progress else sync_catalog(providers)
        forget_cached_prices()
        result = PricingSyncResult(report, reprice_unpriced())
    except Exception as exc:
        _finish(run, succeeded=False, error=f"{type(exc).__name__}: {exc}")
        raise
    _finish(run, succeeded=True, added=len(report.added), changed=len(report.changed), unchanged=report.unchanged,
            skipped=len(report.skipped), repriced=result.repriced)  # fmt: skip
    return result


def _finish(run: PricingSync, **fields: Any) -> None:
    PricingSync.objects.filter(pk=run.pk).update(finished_at=timezone.now(), **fields)


def _tokens(log: AIUsageLog) -> TokenCounts:
    return TokenCounts(
        input_tokens=log.input_tokens,
        output_tokens=log.output_tokens,
        cached_input_tokens=log.cached_input_tokens,
        cache_write_tokens=log.cache_write_tokens,
        reasoning_tokens=log.reasoning_tokens,
    )


def _price(log: AIUsageLog) -> bool:
    """Price one unpriced log in memory; False when its model still has no price."""
    log.pricing, log.total_cost = price_call(log.provider, log.model, log.occurred_at, _tokens(log))
    return log.total_cost is not None


def _move_counters(logs: list[AIUsageLog]) -> None:
    """The live spend counters gain the new costs and lose the unpriced calls, per user and day."""
    zone_name = periods.reporting_zone_name()
    changes: dict[tuple[int, date], tuple[Decimal, int]] = defaultdict(lambda: (Decimal(0), 0))
    for log in logs:
        if log.user_id is not None and log.total_cost is not None:
            key = (log.user_id, periods.reporting_day(log.occurred_at))
            cost, count = changes[key]
            changes[key] = (cost + log.total_cost, count + 1)
    for (user_id, day), (cost, count) in changes.items():
        UserDailySpend.objects.filter(user_id=user_id, time_zone=zone_name, day=day).update(
            cost=F("cost") + cost, unpriced_requests=F("unpriced_requests") - count
        )


def _mark_stale(logs: list[AIUsageLog]) -> None:
    """The hours of these logs changed after they were written: the next rollup recomputes them."""
    now = timezone.now()
    hours = {log.occurred_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0) for log in logs}
    StaleHour.objects.bulk_create(
        [StaleHour(hour=hour, marked_at=now) for hour in hours],
        update_conflicts=True,
        unique_fields=["hour"],
        update_fields=["marked_at"],
    )


def reprice_unpriced(batch_size: int = BATCH_SIZE) -> int:
    """Price the unpriced logs that now have a price, batch by batch; returns how many were priced.

    Each batch is one transaction holding its rows locked, so two runs at once never price (and count) a log twice.
    """
    repriced, after_id = 0, 0
    while True:
        with transaction.atomic():
            batch = list(
                AIUsageLog.objects.select_for_update(skip_locked=True)
                .filter(total_cost__isnull=True, id__gt=after_id)
                .order_by("id")[:batch_size]
            )
            if not batch:
                return repriced
            after_id = batch[-1].id
            priced = [log for log in batch if _price(log)]
            if priced:
                AIUsageLog.objects.bulk_update(priced, ["pricing", "total_cost"])
                _move_counters(priced)
                _mark_stale(priced)
            repriced += len(priced)
