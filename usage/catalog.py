"""Import the genai-prices catalog into price versions.

The catalog's own history (prices with a start date) becomes consecutive versions. On later runs a changed price
closes the open version and opens a new one; an unchanged catalog writes nothing; manual versions are never
touched. Models billed only per audio hour, page or search (not per token) are skipped and counted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from decimal import Context, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.db import connection, transaction
from django.utils import timezone
from genai_prices import types as gp
from genai_prices.data_snapshot import get_snapshot
from genai_prices.update_prices import UpdatePrices

from usage.models import AIProviderPricing, PriceSource

CATALOG_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PRICE_KEYS = {
    "input_price": "input_mtok",
    "output_price": "output_mtok",
    "cached_input_price": "cache_read_mtok",
    "cache_write_price": "cache_write_mtok",
}
TIER_NAMES = {
    "input_mtok": "input",
    "output_mtok": "output",
    "cache_read_mtok": "cached_input",
    "cache_write_mtok": "cache_write",
}
COMPARED_FIELDS = (*PRICE_KEYS, "request_price", "tiers")
SQLITE_DIGITS = Context(prec=15)


class CatalogError(Exception):
    """The catalog could not be read (bad URL, unreachable server, malformed file)."""


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.changed)} changed, {self.unchanged} unchanged, "
            f"{len(self.skipped)} skipped (not priced per token)"
        )


@dataclass(frozen=True)
class CatalogVersion:
    effective_from: datetime
    window: tuple[time, time] | None
    prices: dict[str, Any]
    effective_until: datetime | None = None


def load_catalog(source: str = "") -> list[gp.Provider]:
    """Providers from `source` (http(s) URL, file:// URL or path), or the catalog bundled with genai-prices."""
    if not source:
        return list(get_snapshot().providers)
    try:
        if urlsplit(source).scheme in {"http", "https"}:
            snapshot = UpdatePrices(url=source).fetch()
            return list(snapshot.providers) if snapshot else []
        path = Path(urlsplit(source).path if source.startswith("file://") else source)
        from genai_prices.types import _providers_from_raw  # the parser the package itself uses for fetched data

        return list(_providers_from_raw(json.loads(path.read_text())))
    except Exception as exc:  # any failure to read the catalog is reported as one clear error
        raise CatalogError(f"could not read the price catalog from {source}: {exc}") from exc


def _plain(value: Decimal | gp.TieredPrices | None) -> Decimal | None:
    return value.base if isinstance(value, gp.TieredPrices) else value


def _price_fields(price: gp.ModelPrice) -> dict[str, Any] | None:
    """Our columns for one catalog price, or None when it prices no tokens."""
    values = {ours: getattr(price, theirs, None) for ours, theirs in PRICE_KEYS.items()}
    if values["input_price"] is None and values["output_price"] is None:
        return None
    fields: dict[str, Any] = {ours: _plain(v) for ours, v in values.items()}
    fields["input_price"] = fields["input_price"] or Decimal(0)
    fields["output_price"] = fields["output_price"] or Decimal(0)
    per_thousand = getattr(price, "requests_kcount", None)
    fields["request_price"] = per_thousand / 1000 if per_thousand is not None else None
    fields["tiers"] = {
        TIER_NAMES[theirs]: [{"start": t.start, "price": str(t.price)} for t in v.tiers]
        for ours, theirs in PRICE_KEYS.items()
        if isinstance(v := values[ours], gp.TieredPrices)
    }
    return fields


def _utc_time(value: time) -> time:
    if value.tzinfo is None:
        return value
    return datetime.combine(CATALOG_EPOCH.date(), value).astimezone(UTC).time()


def _dated_prices(model: gp.ModelInfo) -> list[tuple[datetime, tuple[time, time] | None, gp.ModelPrice]]:
    """(start, daily window, price) in the catalog's order, where a later entry takes precedence."""
    if isinstance(model.prices, gp.ModelPrice):
        return [(CATALOG_EPOCH, None, model.prices)]
    entries = []
    for index, conditional in enumerate(model.prices):
        constraint, start, window = conditional.constraint, CATALOG_EPOCH, None
        # genai-prices uses the first price for any time before every start date, so it starts at the epoch.
        if index and isinstance(constraint, gp.StartDateConstraint):
            start = datetime.combine(constraint.start_date, time.min, tzinfo=UTC)
        elif isinstance(constraint, gp.TimeOfDateConstraint):
            window = (_utc_time(constraint.start_time), _utc_time(constraint.end_time))
        entries.append((start, window, conditional.prices))
    return entries


def catalog_versions(model: gp.ModelInfo) -> list[CatalogVersion]:
    """The model's prices as versions. Each all-day price ends where the next all-day price starts; a daily-window
    price ends there too, because the catalog lets any later price override it."""
    entries = [
        (start, window, fields) for start, window, price in _dated_prices(model) if (fields := _price_fields(price))
    ]
    versions = []
    for index, (start, window, fields) in enumerate(entries):
        later_starts = [s for s, w, _ in entries[index + 1 :] if w is None and s > start]
        versions.append(CatalogVersion(start, window, fields, min(later_starts, default=None)))
    return versions


def _as_stored(value: Any) -> Any:
    """A price as the database gives it back. SQLite keeps 15 significant digits, so a catalog price with more
    (a few have 18, float artefacts such as 0.041666666666666664) must be compared in that form or it would look
    changed on every run."""
    if isinstance(value, Decimal) and connection.vendor == "sqlite":
        return SQLITE_DIGITS.create_decimal_from_float(float(value))
    return value


def _same_prices(row: AIProviderPricing, prices: dict[str, Any]) -> bool:
    return all(getattr(row, name) == _as_stored(prices.get(name)) for name in COMPARED_FIELDS)


class _Plan:
    """Rows to create and rows to close, collected first and written in one transaction."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.create: list[AIProviderPricing] = []
        self.close: list[AIProviderPricing] = []
        self.report = SyncReport()

    def new_row(self, provider: gp.Provider, model: gp.ModelInfo, version: CatalogVersion, start: datetime) -> None:
        window = version.window or (None, None)
        self.create.append(
            AIProviderPricing(
                provider=provider.id,
                model=model.id,
                display_name=model.name or model.id,
                effective_from=start,
                effective_until=version.effective_until,
                daily_from_time=window[0],
                daily_until_time=window[1],
                source=PriceSource.CATALOG,
                **version.prices,
            )
        )

    def first_import(self, provider: gp.Provider, model: gp.ModelInfo, versions: list[CatalogVersion]) -> None:
        for version in versions:
            self.new_row(provider, model, version, version.effective_from)
        self.report.added.append(f"{provider.id}/{model.id}")

    def update(
        self, provider: gp.Provider, model: gp.ModelInfo, versions: list[CatalogVersion], rows: list[AIProviderPricing]
    ) -> None:
        """Bring the open versions in line with the catalog's open prices; stored history stays as it is.

        A dated price the catalog announces for later than our open version starts then; a silent change starts now.
        """
        open_rows = {_window_of(r): r for r in rows if r.effective_until is None}
        wanted = {v.window: v for v in versions if v.effective_until is None}
        changed = False
        for window, version in wanted.items():
            row = open_rows.pop(window, None)
            if row is not None and _same_prices(row, version.prices):
                continue
            dated = row is not None and version.effective_from > row.effective_from
            start = version.effective_from if dated else self.now
            if row is not None:
                self._close(row, start)
            self.new_row(provider, model, version, start)
            changed = True
        for row in open_rows.values():  # prices the catalog no longer has
            self._close(row, self.now)
            changed = True
        if changed:
            self.report.changed.append(f"{provider.id}/{model.id}")
        else:
            self.report.unchanged += 1

    def _close(self, row: AIProviderPricing, at: datetime) -> None:
        row.effective_until = at
        self.close.append(row)


def _window_of(row: AIProviderPricing) -> tuple[time, time] | None:
    if row.daily_from_time is None or row.daily_until_time is None:
        return None
    return (row.daily_from_time, row.daily_until_time)


def sync_catalog(
    providers: Iterable[gp.Provider], progress: Callable[[Iterable[Any]], Iterable[Any]] = lambda it: it
) -> SyncReport:
    """Write the catalog's prices as versions; returns what was added, changed, left alone and skipped."""
    plan = _Plan(timezone.now())
    existing: dict[tuple[str, str], list[AIProviderPricing]] = {}
    for row in AIProviderPricing.objects.filter(source=PriceSource.CATALOG):
        existing.setdefault((row.provider, row.model), []).append(row)
    models = [(provider, model) for provider in providers for model in provider.models]
    for provider, model in progress(models):
        versions = catalog_versions(model)
        if not versions:
            plan.report.skipped.append(f"{provider.id}/{model.id}")
        elif rows := existing.get((provider.id, model.id)):
            plan.update(provider, model, versions, rows)
        else:
            plan.first_import(provider, model, versions)
            existing[(provider.id, model.id)] = plan.create[-len(versions) :]
    with transaction.atomic():
        AIProviderPricing.objects.bulk_update(plan.close, ["effective_until"], batch_size=500)
        AIProviderPricing.objects.bulk_create(plan.create, batch_size=500)
    from usage.pricing import forget_cached_prices  # bulk writes send no signals

    forget_cached_prices()
    return plan.report
