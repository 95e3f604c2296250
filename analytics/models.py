"""Summaries for fast reads. Rows are replaced by recomputation from the logs, never incremented."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Sum

from usage import periods
from usage.money import for_people

# Why the summary columns are this wide (a summary must never overflow, or one user's rows would stop the rollup
# and CAU for everyone):
# - Tokens and latency: a log holds at most 2^63 - 1 in each (bigint and integer columns) and the log table at
#   most 2^63 - 1 rows (a bigint id), so any sum of one of them over any set of logs is below 2^126 (8.5e37):
#   numeric(38,0) holds it whatever the rows hold, validated or not.
# - Cost: numeric(40,18) holds sums below 10^22 USD. A call costs at most AI_MAX_COST_PER_CALL (10^4 USD by
#   default), so a sum reaches 10^22 only after 10^18 capped calls, over 300 million a second for a century; a row
#   written around validation holds less than 10^14 (its numeric(32,18) column), so even 10^8 such rows fit. The 18
#   decimal places are those of a call's cost, so sums stay exact.
# The request counters stay bigint: each counts rows, and the log table has at most 2^63 - 1 of them.


def cost_sum_field(**options: Any) -> models.DecimalField:
    """USD summed over many calls: the per-call cost's 18 decimal places, with room for 10^22 USD."""
    return models.DecimalField(max_digits=40, decimal_places=18, **options)


class SumField(models.BigIntegerField):
    """A sum of a bigint or integer log column over any number of logs, stored as numeric(38,0) (see above).

    Its Python value is an int, as a BigIntegerField's would be: the database returns numeric (PostgreSQL) or, past
    2^63, a float (SQLite), which is turned back into an int when read.
    """

    def db_type(self, connection: Any) -> str:
        return "numeric(38,0)"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> int | None:
        return None if value is None else int(value)


class UsageMetrics(models.Model):
    """The measures every summary carries; each equals the same aggregate computed straight from the logs.

    Summary rows refer to users without a database foreign-key constraint: they are only ever written by the
    rollup from logs whose user_id is itself constrained, and a per-row constraint check on the hundreds of
    thousands of rows a backfill writes cost as much as the aggregation. Deleting a user still deletes their
    summaries (Django's on_delete cascade).
    """

    total_requests = models.BigIntegerField(default=0)
    successful_requests = models.BigIntegerField(default=0)
    failed_requests = models.BigIntegerField(default=0)
    error_requests = models.BigIntegerField(default=0)
    timeout_requests = models.BigIntegerField(default=0)
    rate_limited_requests = models.BigIntegerField(default=0)
    cancelled_requests = models.BigIntegerField(default=0)
    unpriced_requests = models.BigIntegerField(default=0)
    input_tokens = SumField(default=0)
    output_tokens = SumField(default=0)
    cached_input_tokens = SumField(default=0)
    cache_write_tokens = SumField(default=0)
    reasoning_tokens = SumField(default=0)
    total_cost = cost_sum_field(default=0)
    latency_sum_ms = SumField(default=0)
    latency_count = models.BigIntegerField(default=0, help_text="calls with a latency (the divisor of the average)")
    latency_max_ms = models.BigIntegerField(null=True, blank=True)

    class Meta:
        abstract = True


class UsageHourlyBucket(UsageMetrics):
    """Usage in one UTC hour for one user, provider, model and feature: the grain every other summary comes from.

    user is NULL for calls made on nobody's behalf.
    """

    hour = models.DateTimeField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,  # see UsageMetrics: derived rows, checked by construction
    )
    provider = models.CharField(max_length=64)
    model = models.CharField(max_length=128)
    feature = models.CharField(max_length=100)

    class Meta:
        verbose_name = "hourly usage bucket"
        indexes = [
            models.Index(fields=["hour"], name="bucket_hour"),
            models.Index(fields=["user", "hour"], name="bucket_user_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.provider}/{self.model} {self.feature}"


class UserAICostSummary(UsageMetrics):
    """One user's usage on one reporting day (ANALYTICS_TIME_ZONE)."""

    date = models.DateField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="ai_cost_summaries",
        db_constraint=False,
        db_index=False,  # the unique (user, date) index serves lookups by user
    )

    class Meta:
        verbose_name = "user AI cost summary (daily)"
        verbose_name_plural = "user AI cost summaries (daily)"
        ordering = ["-date", "-total_cost"]
        constraints = [models.UniqueConstraint(fields=["user", "date"], name="summary_one_row_per_user_day")]
        indexes = [models.Index(fields=["date", "user"], name="summary_day_user")]

    def __str__(self) -> str:
        return f"{self.user_id} on {self.date}: {for_people(self.total_cost)}"

    @classmethod
    def get_top_users_by_cost(cls, days: int = 30, limit: int = 10) -> list[dict[str, Any]]:
        """The users who spent most over the last `days` reporting days, most expensive first."""
        since = periods.today() - timedelta(days=days - 1)
        rows = (
            cls.objects.filter(date__gte=since)
            .values("user_id", "user__username", "user__email")
            .annotate(total_cost=Sum("total_cost"), total_requests=Sum("total_requests"))
            .order_by("-total_cost", "user_id")[:limit]
        )
        return list(rows)


class DailyUsageSummary(UsageMetrics):
    """Usage on one reporting day for one provider, model and feature, over all users.

    The small table behind dashboard timelines and breakdowns: its size grows with the days and the variety of
    models and features, not with the number of calls or users, so a 90-day chart reads a few thousand rows
    whether the logs number one million or a hundred million. It cannot count distinct users; slices that need
    users read the per-user summaries instead.
    """

    date = models.DateField()
    provider = models.CharField(max_length=64)
    model = models.CharField(max_length=128)
    feature = models.CharField(max_length=100)

    class Meta:
        verbose_name = "daily usage summary (all users)"
        verbose_name_plural = "daily usage summaries (all users)"
        ordering = ["-date", "-total_cost"]
        constraints = [
            models.UniqueConstraint(fields=["date", "provider", "model", "feature"], name="daily_usage_one_row")
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.provider}/{self.model} {self.feature}: {for_people(self.total_cost)}"


class UserMonthlyAICostSummary(UsageMetrics):
    """One user's usage in one reporting month; month is the first day of that month."""

    month = models.DateField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )

    class Meta:
        verbose_name = "user AI cost summary (monthly)"
        verbose_name_plural = "user AI cost summaries (monthly)"
        ordering = ["-month", "-total_cost"]
        constraints = [models.UniqueConstraint(fields=["user", "month"], name="monthly_one_row_per_user_month")]
        indexes = [models.Index(fields=["month", "user"], name="monthly_month_user")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.month:%Y-%m}: {for_people(self.total_cost)}"


class CAUSnapshot(models.Model):
    """Cost per active user over the window of `window_days` reporting days ending on `date`."""

    date = models.DateField()
    window_days = models.PositiveSmallIntegerField()
    total_cost = cost_sum_field(default=0)
    active_users = models.BigIntegerField(default=0)
    cau = cost_sum_field(default=0)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "CAU snapshot"
        ordering = ["-date", "window_days"]
        constraints = [models.UniqueConstraint(fields=["date", "window_days"], name="cau_one_per_day_window")]

    def __str__(self) -> str:
        return f"CAU {self.window_days}d to {self.date}: {for_people(self.cau)}"


class RunOutcome(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    SKIPPED = "skipped", "Skipped (another run held the lock)"
    FAILED = "failed", "Failed"


class RollupRun(models.Model):
    """One run of the rollup: when, what it recomputed, and how it ended."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=RunOutcome.choices, default=RunOutcome.RUNNING)
    trigger = models.CharField(max_length=32, default="schedule")
    scanned_since = models.DateTimeField(null=True, blank=True, help_text="logs written from here were scanned")
    hours = models.IntegerField(default=0)
    days = models.IntegerField(default=0)
    months = models.IntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["outcome", "started_at"], name="rollup_outcome_started")]

    def __str__(self) -> str:
        return f"rollup {self.started_at:%Y-%m-%d %H:%M:%S} {self.outcome}"


class JobRun(models.Model):
    """The latest run of each background job, written by the worker as the job starts and ends, so pages show it
    at once (django-celery-beat writes its own last_run_at only every few minutes, and never for a job run by
    hand or at first start)."""

    task = models.CharField(max_length=200, unique=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=RunOutcome.choices, default=RunOutcome.RUNNING)

    def __str__(self) -> str:
        return f"{self.task} {self.started_at:%Y-%m-%d %H:%M:%S} {self.outcome}"
