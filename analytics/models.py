"""Summaries for fast reads. Rows are replaced by recomputation from the logs, never incremented."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Sum

from usage import periods
from usage.models import cost_field


class UserAICostSummary(models.Model):
    """One user's usage on one reporting day (ANALYTICS_TIME_ZONE)."""

    date = models.DateField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ai_cost_summaries")
    total_cost = cost_field(default=0)
    total_requests = models.BigIntegerField(default=0)
    successful_requests = models.BigIntegerField(default=0)
    failed_requests = models.BigIntegerField(default=0)
    unpriced_requests = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    latency_sum_ms = models.BigIntegerField(default=0)
    latency_max_ms = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = "user AI cost summary (daily)"
        verbose_name_plural = "user AI cost summaries (daily)"
        ordering = ["-date", "-total_cost"]
        constraints = [models.UniqueConstraint(fields=["user", "date"], name="summary_one_row_per_user_day")]
        indexes = [models.Index(fields=["date", "user"], name="summary_day_user")]

    def __str__(self) -> str:
        return f"{self.user_id} on {self.date}: {self.total_cost}"

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
