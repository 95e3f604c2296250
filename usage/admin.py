"""Admin for logs (read-only: they are billing records), price versions, per-user limits and spend alerts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from usage.alerts import deliver_pending, reset_current_alerts
from usage.apikeys import create_api_key, revoke
from usage.budgets import limit_cache
from usage.models import (
    AIProviderPricing,
    ApiKey,
    LangSmithImport,
    PricingSync,
    SpendAlert,
    UserSpendLimit,
)
from usage.money import on_page
from usage.permissions import Action, may_in_admin


def money_display(name: str, label: str) -> Callable[[Any, Any], SafeString]:
    """An admin column or read-only field showing the amount in `name` in the one format for people, the exact
    value on hover (a raw DecimalField shows all 18 places: 0.084697118750000000)."""

    @admin.display(description=label, ordering=name)
    def show(model_admin: Any, obj: Any) -> SafeString:
        amount = getattr(obj, name)
        if amount is None and name != "total_cost":  # an optional price or limit that is not set
            return format_html("{}", "\u2013")
        return on_page(amount)  # a call's missing cost: "unpriced"

    return show


class ShowsMoney(admin.ModelAdmin):
    """Shows the amounts named in `money_fields` through `money_display` in the list and on the read-only detail
    page. Each gets a `<name>_usd` method, which replaces the field wherever the page would show the raw value."""

    money_fields: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in cls.money_fields:
            setattr(cls, f"{name}_usd", money_display(name, name.replace("_", " ")))

    def _as_money(self, names: Sequence[Any], keep: Sequence[str] = ()) -> list[str]:
        return [f"{name}_usd" if name in self.money_fields and name not in keep else name for name in names]

    def get_list_display(self, request: HttpRequest) -> list[Any]:
        return self._as_money(super().get_list_display(request), keep=self.list_editable)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self._as_money(super().get_readonly_fields(request, obj))

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        """The form still holds the raw field: show its formatted twin in its place instead."""
        fields = list(super().get_fields(request, obj))
        shown = [name for name in self.money_fields if f"{name}_usd" in fields]
        return [f"{name}_usd" if name in shown else name for name in fields if name not in {f"{n}_usd" for n in shown}]


class ReadsEveryonesUsage(ShowsMoney):
    """Rows about every user's usage: viewing them is reading everyone's usage (usage.permissions), whatever
    Django's per-model view permissions say, so the admin and the API agree on who sees what."""

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return may_in_admin(request.user, Action.READ_EVERYONE)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)


@admin.register(AIProviderPricing)
class AIProviderPricingAdmin(ShowsMoney):
    money_fields = ("input_price", "output_price", "cached_input_price", "cache_write_price")
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
class UserSpendLimitAdmin(ReadsEveryonesUsage):
    money_fields = ("daily_limit", "monthly_limit")
    list_display = ("user", "daily_limit", "monthly_limit", "updated_at")
    list_editable = ("daily_limit", "monthly_limit")
    search_fields = ("user__username", "user__email")
    autocomplete_fields = ("user",)
    list_select_related = ("user",)
    actions = ["reset_alerts"]

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return may_in_admin(request.user, Action.CHANGE_LIMITS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return self.has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: UserSpendLimit, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        limit_cache.clear()  # this process enforces the new limit at once, others within AI_PRICING_CACHE_SECONDS

    @admin.action(description="Reset this period's alerts (so they are sent again)", permissions=["change"])
    def reset_alerts(self, request: HttpRequest, queryset: QuerySet[UserSpendLimit]) -> None:
        removed = reset_current_alerts(list(queryset.values_list("user_id", flat=True)))
        self.message_user(request, f"{removed} alert record(s) of the current day and month removed.", messages.SUCCESS)


@admin.register(SpendAlert)
class SpendAlertAdmin(ReadsEveryonesUsage):
    """Alert records: what was sent, what is waiting for SMTP, and why a send failed."""

    money_fields = ("spend", "limit")

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

    def has_queue_permission(self, request: HttpRequest) -> bool:
        return may_in_admin(request.user, Action.QUEUE_JOBS)

    @admin.action(description="Send the selected unsent alerts now", permissions=["queue"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[SpendAlert]) -> None:
        report = deliver_pending(ids=list(queryset.values_list("id", flat=True)))
        messages.info(request, f"{report.sent} sent, {report.failed} failed")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created here (the key is shown once, in the confirmation message) and revoked, never edited.
    A key acts as its user, so creating one for someone else is acting as them: superusers only."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return self.has_module_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return self.has_module_permission(request)

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


@admin.register(LangSmithImport)
class LangSmithImportAdmin(admin.ModelAdmin):
    list_display = ("project", "cursor", "last_finished_at", "last_succeeded", "imported_total", "last_error")
    readonly_fields = ("last_started_at", "last_finished_at", "last_succeeded", "last_report", "last_error",
                       "imported_total")  # fmt: skip
