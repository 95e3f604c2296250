from __future__ import annotations

import sys
from datetime import date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from analytics.rollup import backfill_days, run_rollup
from usage import periods


def iso_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD)") from exc


class Command(BaseCommand):
    help = (
        "Roll up usage logs into hourly buckets and daily/monthly summaries. Without dates: what changed since the "
        "last run. With --start/--end: recompute those reporting days (a backfill), a chunk of days per transaction."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--start", type=iso_date, help="first reporting day to recompute (YYYY-MM-DD)")
        parser.add_argument("--end", type=iso_date, help="last reporting day to recompute (default: today)")
        parser.add_argument("--chunk-days", type=int, default=7, help="days per transaction (default 7)")

    def handle(self, *args: Any, **options: Any) -> None:
        start, end, chunk = options["start"], options["end"], options["chunk_days"]
        if start is None and end is None:
            run = run_rollup()
            self.stdout.write(f"Rollup {run.outcome}: {run.hours} hours, {run.days} days, {run.months} months")
            return
        if start is None:
            raise CommandError("--start is required with --end")
        end = end or periods.today()
        if end < start:
            raise CommandError(f"--end {end} is before --start {start}")
        if chunk < 1:
            raise CommandError(f"--chunk-days must be at least 1, got {chunk}")
        self._backfill(start, end, chunk)

    def _backfill(self, start: date, end: date, chunk: int) -> None:
        chunks = []
        first = start
        while first <= end:
            last = min(first + timedelta(days=chunk - 1), end)
            chunks.append((first, last))
            first = last + timedelta(days=1)
        # A progress bar only for a person at a terminal; logs and pipes get the summary line alone.
        steps = tqdm(chunks, desc="days", unit="chunk") if sys.stdout.isatty() else chunks
        days = 0
        for first, last in steps:
            run = backfill_days(first, last)
            if run.outcome != "succeeded":
                raise CommandError(
                    f"rollup of {first}..{last} {run.outcome}: {run.error or 'another run held the lock'}"
                )
            days += (last - first).days + 1
        self.stdout.write(self.style.SUCCESS(f"Backfilled {days} days ({start} to {end})"))
