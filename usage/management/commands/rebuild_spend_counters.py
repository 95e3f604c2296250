from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from usage import periods
from usage.counters import rebuild_spend_counters


class Command(BaseCommand):
    help = "Recompute the live per-day spend counters from the logs for the current ANALYTICS_TIME_ZONE."

    def handle(self, *args: Any, **options: Any) -> None:
        written = rebuild_spend_counters()
        self.stdout.write(self.style.SUCCESS(f"{written} day counters rebuilt for {periods.reporting_zone_name()}"))
