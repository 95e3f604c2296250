"""Rebuild the live per-day spend counters from the logs (after a change of ANALYTICS_TIME_ZONE, say)."""

from __future__ import annotations

from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate

from usage import periods
from usage.models import AIUsageLog, UserDailySpend


def _counters_from_logs(zone_name: str) -> list[UserDailySpend]:
    days = (
        AIUsageLog.objects.filter(user__isnull=False)
        .annotate(day=TruncDate("occurred_at", tzinfo=periods.reporting_zone()))
        .values("user_id", "day")
        .annotate(
            cost=Sum("total_cost", default=0),
            requests=Count("id"),
            unpriced=Count("id", filter=Q(total_cost__isnull=True)),
        )
        .order_by()
    )
    return [
        UserDailySpend(
            user_id=d["user_id"],
            time_zone=zone_name,
            day=d["day"],
            cost=d["cost"],
            requests=d["requests"],
            unpriced_requests=d["unpriced"],
        )
        for d in days.iterator()
    ]


def rebuild_spend_counters() -> int:
    """Replace the counters of the reporting zone with sums computed from the logs; returns the rows written.

    Writers are held off from the counters while this runs: a log committed before the lock is in the sums, and
    a writer still in flight adds its increment after the swap, so no call is counted twice or lost.
    """
    zone_name = periods.reporting_zone_name()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {UserDailySpend._meta.db_table} IN EXCLUSIVE MODE")
        rows = _counters_from_logs(zone_name)  # SQLite: the IMMEDIATE transaction already excludes writers
        UserDailySpend.objects.filter(time_zone=zone_name).delete()
        UserDailySpend.objects.bulk_create(rows, batch_size=1000)
    return len(rows)
