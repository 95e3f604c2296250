from __future__ import annotations

from django.contrib import admin

from analytics.models import UserAICostSummary


@admin.register(UserAICostSummary)
class UserAICostSummaryAdmin(admin.ModelAdmin):
    list_display = ("date", "user", "total_cost", "total_requests", "failed_requests", "unpriced_requests")
    list_filter = ("date",)
    search_fields = ("user__username", "user__email")
    date_hierarchy = "date"
    list_select_related = ("user",)
    readonly_fields = [f.name for f in UserAICostSummary._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False
