"""Cost per active user (CAU): total attributed cost over a window divided by the users who made a call in it.

Snapshots hold CAU for 7-, 30- and 90-day windows ending on each reporting day, so a trend is one cheap read.
They are computed from the daily summaries, which the job brings up to date first.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, Sum

from analytics.models import CAUSnapshot, UserAICostSummary
from analytics.rollup import run_rollup
from usage import periods

WINDOWS = (7, 30, 90)
ZERO = Decimal(0)


def cau_from_summaries(start: date, end: date) -> dict[str, Any]:
    """CAU over reporting days start..end inclusive, from the daily summaries."""
    totals = UserAICostSummary.objects.filter(date__gte=start, date__lte=end).aggregate(
        total_cost=Sum("total_cost", default=ZERO),
        active_users=Count("user", distinct=True, filter=Q(total_requests__gt=0)),
    )
    active, total = totals["active_users"], totals["total_cost"]
    return {"cau": total / active if active else ZERO, "active_users": active, "total_cost": total}


def snapshot_days(days: Iterable[date]) -> int:
    """Write the snapshots of every window ending on each of these days; returns how many were written."""
    written = 0
    for day in days:
        for window in WINDOWS:
            figures = cau_from_summaries(day - timedelta(days=window - 1), day)
            CAUSnapshot.objects.update_or_create(date=day, window_days=window, defaults=figures)
            written += 1
    return written


def refresh_cau_snapshots(days_back: int = 1) -> int:
    """Bring the summaries up to date, then snapshot today and the `days_back` days before it
    (yesterday's snapshot, taken while yesterday was still running, becomes final)."""
    run_rollup()
    today = periods.today()
    return snapshot_days(today - timedelta(days=n) for n in range(days_back, -1, -1))


def cau_trend(window_days: int, start: date, end: date) -> list[CAUSnapshot]:
    """The stored snapshots of one window size for days start..end, oldest first."""
    return list(CAUSnapshot.objects.filter(window_days=window_days, date__gte=start, date__lte=end).order_by("date"))
