from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from usage.catalog import CatalogError
from usage.repricing import sync_prices_and_reprice


class Command(BaseCommand):
    help = "Import the genai-prices catalog into price versions (manual prices are never changed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--source",
            default=None,
            help="Catalog URL or file (default: AI_PRICING_SOURCE_URL, else the catalog bundled with genai-prices).",
        )
        parser.add_argument("--verbose-list", action="store_true", help="List every model added or changed.")

    def handle(self, *args: Any, **options: Any) -> None:
        source = options["source"] if options["source"] is not None else settings.AI_PRICING_SOURCE_URL
        try:
            result = sync_prices_and_reprice(source, trigger="command", progress=self._progress)
        except CatalogError as exc:
            raise CommandError(str(exc)) from exc
        report = result.sync
        if options["verbose_list"]:
            for name in report.added:
                self.stdout.write(f"added    {name}")
            for name in report.changed:
                self.stdout.write(f"changed  {name}")
        self.stdout.write(self.style.SUCCESS(f"Price catalog synced: {report.summary()}"))
        self.stdout.write(f"Unpriced calls now priced: {result.repriced}")

    def _progress(self, items: Iterable[Any]) -> Iterable[Any]:
        # A progress bar only for a person at a terminal; logs and pipes get the summary line alone.
        if not sys.stdout.isatty():
            return items
        return tqdm(list(items), desc="models", unit="model")
