"""Admin for logs (read-only: they are billing records), price versions, per-user limits and spend alerts."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Avg, Count, Max, Q, QuerySet, Sum
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from usage.alerts import deliver_pending, reset_current_alerts
from usage.apikeys import create_api_key, revoke
from usage.budgets import limit_cache
from usage.models import (
    AIProviderPricing,
    AIUsageLog,
    ApiKey,
    CallStatus,
    PricingSync,
    SpendAlert,
    UserSpendLimit,
)

STATUS_COLOURS = {
    "success": "#2e7d32",
    "error": "#c62828",
    "timeout": "#ef6c00",
    "rate_limited": "#6a1b9a",
    "cancelled": "#616161",
}


class PricedFilter(admin.SimpleListFilter):
    title = "pricing"
    parameter_name = "priced"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "Priced"), ("no", "Unpriced")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[AIUsageLog]) -> QuerySet[AIUsageLog]:
        if self.value() in {"yes", "no"}:
            return queryset.filter(total_cost__isnull=self.value() == "no")
        return queryset


LOG_CSV_COLUMNS = ["id", "occurred_at", "user", "feature", "provider", "model", "session_id", "status", "input_tokens",
                   "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens", "total_cost",
                   "latency_ms", "event_id", "error_message"]  # fmt: skip


class CsvEcho:
    """A file-like object that hands back what csv.writer writes, so rows stream without being kept."""

    def write(self, value: str) -> str:
        return value


def stream_logs_csv(logs: QuerySet[AIUsageLog]) -> StreamingHttpResponse:
    """Every log of the queryset as CSV, streamed in chunks (costs exact, times in UTC ISO 8601)."""
    writer = csv.writer(CsvEcho())

    def rows() -> Iterator[str]:
        yield writer.writerow(LOG_CSV_COLUMNS)
        for log in logs.select_related("user").order_by("-occurred_at", "-id").iterator(chunk_size=2000):
            yield writer.writerow([
                log.pk, log.occurred_at.isoformat(), log.user.get_username() if log.user else "", log.feature,
                log.provider, log.model, log.session_id, log.status, log.input_tokens, log.cached_input_tokens,
                log.cache_write_tokens, log.output_tokens, log.reasoning_tokens,
                "" if log.total_cost is None else log.total_cost, log.latency_ms or "", log.event_id or "",
                log.error_message,
            ])  # fmt: skip

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="ai-usage-logs-{timezone.now():%Y%m%d-%H%M%S}.csv"'
    return response


def log_statistics(logs: QuerySet[AIUsageLog]) -> dict[str, Any]:
    """Totals of the filtered list, shown above it (one aggregate over the filtered rows)."""
    return logs.order_by().aggregate(
        calls=Count("id"),
        cost=Sum("total_cost", default=Decimal(0)),
        input_tokens=Sum("input_tokens", default=0),
        output_tokens=Sum("output_tokens", default=0),
        failed=Count("id", filter=~Q(status=CallStatus.SUCCESS)),
        unpriced=Count("id", filter=Q(total_cost__isnull=True)),
        avg_latency=Avg("latency_ms"),
        max_latency=Max("latency_ms"),
    )


@admin.register(AIUsageLog)
class AIUsageLogAdmin(admin.ModelAdmin):
    list_display = (
        "occurred_at",
        "user",
        "feature",
        "provider",
        "model",
        "tokens",
        "cost",
        "status_badge",
        "latency_ms",
    )
    list_filter = ("provider", "model", "feature", "status", PricedFilter, "occurred_at")
    search_fields = ("user__username", "user__email", "feature", "session_id", "event_id")
    date_hierarchy = "occurred_at"
    list_select_related = ("user",)
    show_full_result_count = False  # an exact count of tens of millions of rows on every page view is wasted work
    readonly_fields = [f.name for f in AIUsageLog._meta.fields]
    actions = ["export_csv"]

    def get_urls(self) -> list[Any]:
        export = path("export/", self.admin_site.admin_view(self.export_view), name="usage_aiusagelog_export")
        return [export, *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:  # not on a redirect (after an action)
            context["log_statistics"] = log_statistics(context["cl"].queryset)
        return response

    def export_view(self, request: HttpRequest) -> StreamingHttpResponse:
        """The whole filtered list (the same filters and search as the page it was opened from) as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        return stream_logs_csv(self.get_changelist_instance(request).queryset)

    @admin.action(description="Export selected logs as CSV")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[AIUsageLog]) -> StreamingHttpResponse:
        return stream_logs_csv(queryset)

    @admin.display(description="tokens (in / out)")
    def tokens(self, obj: AIUsageLog) -> str:
        return format_html(
            '<span title="cached {} · cache write {} · reasoning {}">{} / {}</span>',
            obj.cached_input_tokens,
            obj.cache_write_tokens,
            obj.reasoning_tokens,
            obj.input_tokens,
            obj.output_tokens,
        )

    @admin.display(description="cost (USD)", ordering="total_cost")
    def cost(self, obj: AIUsageLog) -> str:
        if obj.total_cost is None:
            return format_html('<strong style="color:#c62828">unpriced</strong>')
        colour = (
            "#2e7d32"
            if obj.total_cost < Decimal("0.01")
            else "#ef6c00"
            if obj.total_cost < Decimal("0.10")
            else "#c62828"
        )
        return format_html('<span style="color:{}">${}</span>', colour, f"{obj.total_cost:.6f}")

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: AIUsageLog) -> str:
        colour = STATUS_COLOURS.get(obj.status, "#616161")
        return format_html(
            '<span style="background:{};color:#fff;padding:1px 6px;border-radius:8px">{}</span>', colour, obj.status
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(AIProviderPricing)
class AIProviderPricingAdmin(admin.ModelAdmin):
    list_display = (
        "provider",
        "model",
        "input_price",
        "output_price",
        "cached_input_price",
        "cache_write_price",
        "effective_from",
        "effective_until",
        "source",
        "in_force",
        "is_active",
        "history",
    )
    list_filter = ("source", "is_active", "provider")
    search_fields = ("model", "display_name", "provider")
    ordering = ("provider", "model", "-effective_from")
    actions = ["mark_inactive"]
    readonly_fields = ("created_at",)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # logs point at the version that priced them; retire a version with "mark inactive"

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"source": "manual", "effective_from": timezone.now()}

    @admin.display(description="history")
    def history(self, obj: AIProviderPricing) -> str:
        url = reverse("admin:usage_aiproviderpricing_changelist")
        return format_html('<a href="{}?provider={}&amp;model={}">all versions</a>', url, obj.provider, obj.model)

    @admin.display(boolean=True, description="in force now")
    def in_force(self, obj: AIProviderPricing) -> bool:
        now = timezone.now()
        return (
            obj.is_active and obj.effective_from <= now and (obj.effective_until is None or now < obj.effective_until)
        )

    @admin.action(description="Mark selected prices inactive (never used for pricing)")
    def mark_inactive(self, request: HttpRequest, queryset: QuerySet[AIProviderPricing]) -> None:
        count = queryset.update(is_active=False)
        from usage.pricing import forget_cached_prices

        forget_cached_prices()
        self.message_user(request, f"{count} price version(s) marked inactive.", messages.SUCCESS)


@admin.register(UserSpendLimit)
class UserSpendLimitAdmin(admin.ModelAdmin):
    list_display = ("user", "daily_limit", "monthly_limit", "updated_at")
    list_editable = ("daily_limit", "monthly_limit")
    search_fields = ("user__username", "user__email")
    autocomplete_fields = ("user",)
    list_select_related = ("user",)
    actions = ["reset_alerts"]

    def save_model(self, request: HttpRequest, obj: UserSpendLimit, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        limit_cache.clear()  # this process enforces the new limit at once, others within AI_PRICING_CACHE_SECONDS

    @admin.action(description="Reset this period's alerts (alert again when a threshold is crossed)")
    def reset_alerts(self, request: HttpRequest, queryset: QuerySet[UserSpendLimit]) -> None:
        removed = reset_current_alerts(list(queryset.values_list("user_id", flat=True)))
        self.message_user(request, f"{removed} alert record(s) of the current day and month removed.", messages.SUCCESS)


@admin.register(SpendAlert)
class SpendAlertAdmin(admin.ModelAdmin):
    """Alert records: what was sent, what is waiting for SMTP, and why a send failed."""

    list_display = ("created_at", "user", "period", "period_start", "threshold", "spend", "limit", "delivery")
    list_filter = ("period", "threshold", "superseded", ("sent_at", admin.EmptyFieldListFilter))
    search_fields = ("user__username", "user__email")
    date_hierarchy = "created_at"
    list_select_related = ("user",)
    readonly_fields = [f.name for f in SpendAlert._meta.fields]
    actions = ["retry_now"]

    @admin.display(description="delivery")
    def delivery(self, alert: SpendAlert) -> str:
        if alert.superseded:
            return "superseded by a higher threshold"
        if alert.sent_at:
            return f"sent {alert.sent_at:%Y-%m-%d %H:%M} UTC"
        return f"waiting ({alert.attempts} attempts): {alert.last_error}" if alert.attempts else "waiting"

    @admin.action(description="Send the selected unsent alerts now")
    def retry_now(self, request: HttpRequest, queryset: QuerySet[SpendAlert]) -> None:
        report = deliver_pending(ids=list(queryset.values_list("id", flat=True)))
        messages.info(request, f"{report.sent} sent, {report.failed} failed")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created here (the key is shown once, in the confirmation message) and revoked, never edited."""

    list_display = ("prefix", "name", "user", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("prefix", "name", "user__username", "user__email")
    list_select_related = ("user",)
    autocomplete_fields = ("user",)
    fields = ("user", "name")
    actions = ["revoke_keys"]

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:  # only the name may change after creation
            super().save_model(request, obj, form, change)
            return
        key, raw = create_api_key(obj.user, obj.name)
        obj.pk, obj.prefix, obj.key_hash, obj.created_at = key.pk, key.prefix, key.key_hash, key.created_at
        messages.warning(request, f"New API key for {obj.user} (copy it now; it is not shown again): {raw}")

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple[str, ...]:
        return ("user",) if obj else ()

    @admin.action(description="Revoke the selected keys")
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        messages.info(request, f"{revoke(queryset)} key(s) revoked")


@admin.register(PricingSync)
class PricingSyncAdmin(admin.ModelAdmin):
    list_display = ("started_at", "finished_at", "trigger", "succeeded", "added", "changed", "unchanged", "repriced")
    list_filter = ("succeeded", "trigger")
    date_hierarchy = "started_at"
    readonly_fields = [f.name for f in PricingSync._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
