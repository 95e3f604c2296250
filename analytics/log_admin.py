"""Admin for the usage logs: read-only billing records with statistics of the filtered list and CSV export.

It lives with the analytics admin because its filter choices and its unfiltered totals come from the daily
summaries: asking the log table for its distinct models, or summing all of it, would scan millions of rows on
every page view.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Avg, Count, Max, Q, QuerySet, Sum
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import path
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html

from analytics.csv_safety import SafeCsvWriter
from analytics.models import DailyUsageSummary
from analytics.ranges import resolve
from analytics.rollup import WideSum
from analytics.slices import SliceQuery
from usage.admin import ReadsEveryonesUsage
from usage.models import AIUsageLog, CallStatus
from usage.money import on_page

CENT, DIME = Decimal("0.01"), Decimal("0.10")  # the cost column's colours change at these amounts
STATUS_COLOURS = {
    "success": "#2e7d32",
    "error": "#c62828",
    "timeout": "#ef6c00",
    "rate_limited": "#6a1b9a",
    "cancelled": "#616161",
}


class SummaryValueFilter(admin.SimpleListFilter):
    """Exact-match filter on one log column whose choices are the values the daily summaries have seen (calls
    of the last few minutes not rolled up yet may be missing from the choices, never from the results)."""

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        column = str(self.parameter_name)
        values = DailyUsageSummary.objects.order_by(column).values_list(column, flat=True)
        return [(value, value) for value in values.distinct()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[AIUsageLog]) -> QuerySet[AIUsageLog]:
        value = self.value()
        return queryset.filter(**{str(self.parameter_name): value}) if value else queryset


class ProviderFilter(SummaryValueFilter):
    title = parameter_name = "provider"


class ModelFilter(SummaryValueFilter):
    title = parameter_name = "model"


class FeatureFilter(SummaryValueFilter):
    title = parameter_name = "feature"


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
    writer = SafeCsvWriter(CsvEcho())

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
        input_tokens=WideSum("input_tokens", default=0),
        output_tokens=WideSum("output_tokens", default=0),
        failed=Count("id", filter=~Q(status=CallStatus.SUCCESS)),
        unpriced=Count("id", filter=Q(total_cost__isnull=True)),
        avg_latency=Avg("latency_ms"),
        max_latency=Max("latency_ms"),
    )


def all_time_statistics() -> dict[str, Any]:
    """The unfiltered list's totals, from the summaries plus the unrolled tail (the same figures as summing every
    log, without reading them)."""
    span = resolve(period="all")
    totals = SliceQuery(span.start, span.end, span.zone).run().totals
    return {
        "calls": totals.total_requests, "cost": totals.total_cost, "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens, "failed": totals.failed_requests, "unpriced": totals.unpriced_requests,
        "avg_latency": totals.avg_latency_ms, "max_latency": totals.latency_max_ms,
    }  # fmt: skip


class CappedCountPaginator(Paginator):
    """Counts the list only up to COUNT_CAP rows (a hundred pages): an exact COUNT(*) of tens of millions of logs
    takes seconds on every page view, while the statistics above the list already give the exact number of calls
    and nobody pages further than a filter would take them. Past the cap the count is the cap, so every page
    number shown is a full page, and `capped` tells the template to say "more than"."""

    COUNT_CAP = 10_000

    @cached_property
    def _counted(self) -> int:
        # SELECT COUNT(*) FROM (… LIMIT 10001), unordered: which rows make up the first 10,001 does not matter
        logs: QuerySet[AIUsageLog] = self.object_list  # type: ignore[assignment]  # the admin passes its queryset
        return logs.order_by()[: self.COUNT_CAP + 1].count()

    @cached_property
    def count(self) -> int:
        return min(self._counted, self.COUNT_CAP)

    @property
    def capped(self) -> bool:
        return self._counted > self.COUNT_CAP


@admin.register(AIUsageLog)
class AIUsageLogAdmin(ReadsEveryonesUsage):
    money_fields = ("total_cost",)
    list_display = ("when", "user", "feature", "provider_model", "tokens", "cost", "status_badge", "latency")
    list_filter = (ProviderFilter, ModelFilter, FeatureFilter, "status", PricedFilter, "occurred_at")
    search_fields = ("user__username", "user__email", "feature", "session_id", "event_id")
    # No date_hierarchy: its year links need a DISTINCT over every log. The occurred_at filter gives the ranges.
    list_select_related = ("user",)
    show_full_result_count = False  # an exact count of tens of millions of rows on every page view is wasted work
    paginator = CappedCountPaginator
    readonly_fields = [f.name for f in AIUsageLog._meta.fields]
    actions = ["export_csv"]

    def get_urls(self) -> list[Any]:
        export = path("export/", self.admin_site.admin_view(self.export_view), name="usage_aiusagelog_export")
        return [export, *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:  # not on a redirect (after an action)
            changelist = context["cl"]
            filtered = changelist.has_active_filters or changelist.query
            context["log_statistics"] = log_statistics(changelist.queryset) if filtered else all_time_statistics()
        return response

    def export_view(self, request: HttpRequest) -> StreamingHttpResponse:
        """The whole filtered list (the same filters and search as the page it was opened from) as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        return stream_logs_csv(self.get_changelist_instance(request).queryset)

    @admin.action(description="Export selected logs as CSV")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[AIUsageLog]) -> StreamingHttpResponse:
        return stream_logs_csv(queryset)

    @admin.display(description="when (UTC)", ordering="occurred_at")
    def when(self, obj: AIUsageLog) -> str:
        return f"{obj.occurred_at:%Y-%m-%d %H:%M:%S}"

    @admin.display(description="model", ordering="model")
    def provider_model(self, obj: AIUsageLog) -> str:
        return f"{obj.provider} / {obj.model}"

    @admin.display(description="latency", ordering="latency_ms")
    def latency(self, obj: AIUsageLog) -> str:
        return "\u2013" if obj.latency_ms is None else f"{obj.latency_ms:,} ms"

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

    @admin.display(description="cost", ordering="total_cost")
    def cost(self, obj: AIUsageLog) -> str:
        if obj.total_cost is None:
            return format_html('<strong class="ai-unpriced" style="color:#c62828">{}</strong>', "unpriced")
        colour = "#2e7d32" if obj.total_cost < CENT else "#ef6c00" if obj.total_cost < DIME else "#c62828"
        return format_html('<span style="color:{}">{}</span>', colour, on_page(obj.total_cost))

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
