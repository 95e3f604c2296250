"""Admin for the summaries (read-only: recomputed by the rollup), CAU snapshots and rollup runs."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from analytics import log_admin  # noqa: F401 (registers the usage log admin)
from analytics.models import (
    CAUSnapshot,
    DailyUsageSummary,
    RollupRun,
    UsageHourlyBucket,
    UserAICostSummary,
    UserMonthlyAICostSummary,
)
from usage.admin import ReadsEveryonesUsage

# The admin home gains an "AI Gateway Analytics" section linking to the dashboard pages.
admin.site.index_template = "admin/ai_analytics/index.html"


class ReadOnlyAdmin(ReadsEveryonesUsage):
    """Rows written by the jobs alone, about every user's usage: viewing only, for readers of everyone's usage."""

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self._as_money([f.name for f in self.model._meta.fields])

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(UserAICostSummary)
class UserAICostSummaryAdmin(ReadOnlyAdmin):
    money_fields = ("total_cost",)
    list_display = ("date", "user", "total_cost", "total_requests", "failed_requests", "unpriced_requests")
    list_filter = ("date",)
    search_fields = ("user__username", "user__email")
    date_hierarchy = "date"
    list_select_related = ("user",)


@admin.register(UserMonthlyAICostSummary)
class UserMonthlyAICostSummaryAdmin(ReadOnlyAdmin):
    money_fields = ("total_cost",)
    list_display = ("month", "user", "total_cost", "total_requests", "failed_requests", "unpriced_requests")
    list_filter = ("month",)
    search_fields = ("user__username", "user__email")
    list_select_related = ("user",)


@admin.register(DailyUsageSummary)
class DailyUsageSummaryAdmin(ReadOnlyAdmin):
    money_fields = ("total_cost",)
    list_display = ("date", "provider", "model", "feature", "total_requests", "failed_requests", "total_cost")
    list_filter = ("provider",)
    search_fields = ("model", "feature")
    date_hierarchy = "date"


@admin.register(UsageHourlyBucket)
class UsageHourlyBucketAdmin(ReadOnlyAdmin):
    money_fields = ("total_cost",)
    list_display = ("hour", "user", "provider", "model", "feature", "total_requests", "total_cost")
    list_filter = ("provider",)
    search_fields = ("user__username", "model", "feature")
    date_hierarchy = "hour"
    list_select_related = ("user",)


@admin.register(CAUSnapshot)
class CAUSnapshotAdmin(ReadOnlyAdmin):
    money_fields = ("cau", "total_cost")
    list_display = ("date", "window_days", "cau", "active_users", "total_cost", "computed_at")
    list_filter = ("window_days",)
    date_hierarchy = "date"


@admin.register(RollupRun)
class RollupRunAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "finished_at", "outcome", "trigger", "hours", "days", "months", "error")
    list_filter = ("outcome", "trigger")
    date_hierarchy = "started_at"
