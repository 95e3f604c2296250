"""Usage metering data: versioned prices, one row per AI call, spend limits and live spend counters."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from usage.json_shape import exceeded_limit, text_may_nest_deeper
from usage.money import for_people


def cost_field(**options: Any) -> models.DecimalField:
    """USD with 18 decimal places: a token priced at 1.5e-7 USD never rounds to zero, and sums stay exact."""
    return models.DecimalField(max_digits=32, decimal_places=18, **options)


class MetadataField(models.JSONField):
    """JSON metadata that reads safely however deep the stored value is. New values are capped at
    AI_MAX_METADATA_DEPTH levels, but a row written before that cap, or straight into the database, may nest
    thousands of levels; reading one as it is would make every page and API answer that touches the row fail
    (json, the admin and GraphQL recurse once per level), so it reads as a short note instead."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        max_depth = settings.AI_MAX_METADATA_DEPTH
        if not isinstance(value, str) or not text_may_nest_deeper(value, max_depth):
            return super().from_db_value(value, expression, connection)
        try:
            data = super().from_db_value(value, expression, connection)
        except RecursionError:
            return unreadable_metadata(max_depth)
        return unreadable_metadata(max_depth) if exceeded_limit(data, max_depth=max_depth) else data


def unreadable_metadata(max_depth: int) -> dict[str, str]:
    return {"not_shown": f"stored metadata nested more than {max_depth} levels deep"}


def price_field(**options: Any) -> models.DecimalField:
    return models.DecimalField(max_digits=28, decimal_places=18, **options)


def limit_field(**options: Any) -> models.DecimalField:
    return models.DecimalField(max_digits=14, decimal_places=2, **options)


class PriceSource(models.TextChoices):
    CATALOG = "catalog", "Catalog (genai-prices)"
    MANUAL = "manual", "Manual"


class CallStatus(models.TextChoices):
    SUCCESS = "success", "Success"
    ERROR = "error", "Error"
    TIMEOUT = "timeout", "Timeout"
    RATE_LIMITED = "rate_limited", "Rate limited"
    CANCELLED = "cancelled", "Cancelled"


class AIProviderPricing(models.Model):
    """One price version of one model: in force from effective_from until effective_until (open when NULL).

    Token prices are USD per million tokens. Cached input and cache write prices are NULL when the model bills
    those tokens at the plain input price. tiers maps a price name (input, output, cached_input, cache_write) to
    [{"start": tokens, "price": "usd per million"}]; crossing a tier's start in total input tokens reprices all
    tokens of that kind, as providers bill it.
    """

    provider = models.CharField(max_length=64)
    model = models.CharField(max_length=128, help_text="Canonical model id; dated names resolve to it.")
    display_name = models.CharField(max_length=200, blank=True)
    input_price = price_field(help_text="USD per million input tokens")
    output_price = price_field(help_text="USD per million output tokens")
    cached_input_price = price_field(null=True, blank=True)
    cache_write_price = price_field(null=True, blank=True)
    request_price = price_field(null=True, blank=True, help_text="USD per request")
    tiers = models.JSONField(default=dict, blank=True)
    effective_from = models.DateTimeField()
    effective_until = models.DateTimeField(null=True, blank=True)
    # A daily window in UTC (peak or off-peak prices, as DeepSeek bills). While it applies, this version is
    # preferred over one without a window; an end before the start wraps past midnight.
    daily_from_time = models.TimeField(null=True, blank=True, help_text="UTC; empty means all day")
    daily_until_time = models.TimeField(null=True, blank=True, help_text="UTC; empty means all day")
    source = models.CharField(max_length=16, choices=PriceSource.choices, default=PriceSource.MANUAL)
    is_active = models.BooleanField(default=True, help_text="Inactive versions are never used for pricing.")
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "AI provider price"
        ordering = ["provider", "model", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "model", "source", "effective_from"],
                condition=Q(daily_from_time__isnull=True),
                name="pricing_one_version_per_start",
            ),
            models.UniqueConstraint(
                fields=["provider", "model", "source", "effective_from", "daily_from_time"],
                condition=Q(daily_from_time__isnull=False),
                name="pricing_one_windowed_version_per_start",
            ),
            models.CheckConstraint(
                condition=Q(daily_from_time__isnull=True, daily_until_time__isnull=True)
                | Q(daily_from_time__isnull=False, daily_until_time__isnull=False),
                name="pricing_daily_window_complete",
            ),
            models.CheckConstraint(
                condition=Q(effective_until__isnull=True) | Q(effective_until__gt=F("effective_from")),
                name="pricing_until_after_from",
            ),
            models.CheckConstraint(
                condition=Q(input_price__gte=0)
                & Q(output_price__gte=0)
                & (Q(cached_input_price__isnull=True) | Q(cached_input_price__gte=0))
                & (Q(cache_write_price__isnull=True) | Q(cache_write_price__gte=0))
                & (Q(request_price__isnull=True) | Q(request_price__gte=0)),
                name="pricing_prices_not_negative",
            ),
        ]
        indexes = [models.Index(fields=["provider", "model", "effective_from"], name="pricing_lookup")]

    def __str__(self) -> str:
        window = f" {self.daily_from_time:%H:%M}-{self.daily_until_time:%H:%M} UTC" if self.daily_from_time else ""
        return f"{self.provider}/{self.model} from {self.effective_from:%Y-%m-%d}{window} ({self.source})"

    def applies_at(self, at: datetime) -> bool:
        """In force at `at`: active, inside effective_from..effective_until and inside its daily window if any."""
        if not self.is_active or at < self.effective_from:
            return False
        if self.effective_until is not None and at >= self.effective_until:
            return False
        if self.daily_from_time is None or self.daily_until_time is None:
            return True
        clock = at.astimezone(UTC).time().replace(tzinfo=None)
        start, end = self.daily_from_time, self.daily_until_time
        return start <= clock < end if start <= end else clock >= start or clock < end


class AIUsageLog(models.Model):
    """One AI call. total_cost is NULL while the model has no price: unpriced, never a silent zero."""

    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField(auto_now_add=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="ai_usage_logs",
        db_index=False,  # usage_user_time covers lookups by user
    )
    feature = models.CharField(max_length=100)
    provider = models.CharField(max_length=64)
    model = models.CharField(max_length=128)
    session_id = models.CharField(max_length=128, blank=True, default="")
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    total_cost = cost_field(null=True, blank=True)
    # No index: versions are retired (is_active), never deleted, so nothing looks logs up by version at scale.
    pricing = models.ForeignKey(
        AIProviderPricing, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=CallStatus.choices, default=CallStatus.SUCCESS)
    error_message = models.TextField(blank=True, default="")
    request_meta = MetadataField(null=True, blank=True)
    response_meta = MetadataField(null=True, blank=True)
    event_id = models.CharField(max_length=200, null=True, blank=True)

    class Meta:
        verbose_name = "AI usage log"
        ordering = ["-occurred_at"]
        # The permission model (usage/permissions.py): reading everyone's usage and acting on others are separate.
        permissions = [
            ("view_ai_analytics", "Can view AI usage analytics for every user"),
            ("record_ai_usage_for_others", "Can record AI usage on behalf of other users"),
            ("queue_ai_jobs", "Can queue AI analytics jobs (rollup, pricing sync)"),
        ]
        constraints = [
            # An event id is an idempotency key of its user: never shared across users, so one user's id can
            # neither swallow another user's call nor tell them which ids others used. Calls on nobody's behalf
            # share one scope of their own (NULLs are distinct in the first constraint). event_id leads, so a
            # lookup of an id across users (the LangSmith import's) uses the index too.
            models.UniqueConstraint(fields=["event_id", "user"], name="usage_event_id_once_per_user"),
            models.UniqueConstraint(
                fields=["event_id"], condition=Q(user__isnull=True), name="usage_event_id_once_without_user"
            ),
            models.CheckConstraint(
                condition=Q(input_tokens__gte=0)
                & Q(output_tokens__gte=0)
                & Q(cached_input_tokens__gte=0)
                & Q(cache_write_tokens__gte=0)
                & Q(reasoning_tokens__gte=0),
                name="usage_tokens_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(input_tokens__gte=F("cached_input_tokens") + F("cache_write_tokens"))
                & Q(output_tokens__gte=F("reasoning_tokens")),
                name="usage_token_parts_within_totals",
            ),
            models.CheckConstraint(
                condition=Q(total_cost__isnull=True) | Q(total_cost__gte=0), name="usage_cost_not_negative"
            ),
        ]
        indexes = [
            models.Index(fields=["user", "occurred_at"], name="usage_user_time"),
            models.Index(fields=["occurred_at"], name="usage_time"),
            # The rollup finds what changed since its last run by write time, so late events are never missed.
            models.Index(fields=["recorded_at"], name="usage_recorded"),
            models.Index(fields=["session_id"], name="usage_session", condition=~Q(session_id="")),
            models.Index(fields=["provider", "model"], name="usage_unpriced", condition=Q(total_cost__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model} {self.feature} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"

    @property
    def is_unpriced(self) -> bool:
        return self.total_cost is None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class UsageEventKey(models.Model):
    """An event id claimed once in its user's scope. Used only when the log table is partitioned by month
    (usage.partitioning), where a unique index on the log itself would have to include the month."""

    # "<user id>:<event id>", or "-:<event id>" for calls on nobody's behalf (see scoped_event_id).
    scoped_id = models.CharField(max_length=220, primary_key=True)

    class Meta:
        verbose_name = "recorded event id"

    def __str__(self) -> str:
        return self.scoped_id


def scoped_event_id(user_id: int | None, event_id: str | None) -> str | None:
    """An event id as UsageEventKey holds it: prefixed with its user's id, so equal ids of two users differ.
    usage.partitioning.SCOPED_EVENT_ID builds the same text in SQL."""
    if event_id is None:
        return None
    return f"{'-' if user_id is None else user_id}:{event_id}"


class UserSpendLimit(models.Model):
    """Per-user override of the default daily and monthly limits (NULL keeps the default from settings)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ai_spend_limit")
    daily_limit = limit_field(null=True, blank=True)
    monthly_limit = limit_field(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "AI spend limit"
        constraints = [
            models.CheckConstraint(
                condition=(Q(daily_limit__isnull=True) | Q(daily_limit__gte=0))
                & (Q(monthly_limit__isnull=True) | Q(monthly_limit__gte=0)),
                name="limits_not_negative",
            )
        ]

    def __str__(self) -> str:
        return f"Limits for {self.user}"


class UserDailySpend(models.Model):
    """Live spend counter: one row per user and reporting day, updated in the same transaction as each log.

    A budget check reads one day row and at most 31 rows for the month, whatever the size of the user's history.
    time_zone is part of the key so a change of ANALYTICS_TIME_ZONE never mixes days of two zones
    (rebuild_spend_counters recomputes the history for the new zone).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    time_zone = models.CharField(max_length=64)
    day = models.DateField()
    cost = cost_field(default=0)
    requests = models.BigIntegerField(default=0)
    unpriced_requests = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = "live daily spend"
        constraints = [models.UniqueConstraint(fields=["user", "time_zone", "day"], name="spend_one_row_per_user_day")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.day}: {for_people(self.cost)}"


class StaleHour(models.Model):
    """A UTC hour whose logs changed after they were written (repriced), so the next rollup recomputes it."""

    hour = models.DateTimeField(unique=True)
    marked_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} UTC"


class AlertPeriod(models.TextChoices):
    DAY = "day", "Daily"
    MONTH = "month", "Monthly"


class SpendAlert(models.Model):
    """One alert per user, period and threshold. The row is written before the email is sent, so the unique
    constraint makes a second send impossible whatever runs at once; sent_at stays NULL until delivery succeeds,
    and a failed send is retried from here."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ai_spend_alerts")
    period = models.CharField(max_length=8, choices=AlertPeriod.choices)
    period_start = models.DateField(help_text="the reporting day, or the first day of the reporting month")
    threshold = models.PositiveSmallIntegerField(help_text="percent of the limit: 80 or 100")
    spend = cost_field()
    limit = limit_field()
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    user_copy_sent_at = models.DateTimeField(
        null=True, blank=True, help_text="the user's copy went out (a retry then sends only the staff copy)"
    )
    superseded = models.BooleanField(
        default=False, help_text="a higher threshold was crossed at the same time, so only that one was emailed"
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        verbose_name = "spend alert"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["user", "period", "period_start", "threshold"], name="alert_once"),
        ]
        indexes = [
            models.Index(
                fields=["created_at"], name="alert_pending", condition=Q(sent_at__isnull=True, superseded=False)
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.get_period_display().lower()} {self.threshold}% ({self.period_start})"

    @property
    def percent(self) -> Decimal | None:
        return None if not self.limit else (self.spend * 100 / self.limit).quantize(Decimal("0.01"))


class ApiKey(models.Model):
    """A per-user key for the API (`Authorization: Bearer <key>`). Only a SHA-256 of the key is stored: the key
    is shown once, when created. Keys are long random strings, so a fast hash is as safe as a slow one here."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ai_api_keys")
    name = models.CharField(max_length=100, help_text="what the key is for, e.g. 'chat backend'")
    prefix = models.CharField(max_length=16, unique=True, editable=False, help_text="the key's visible start")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class PricingSync(models.Model):
    """One import of the price catalog (scheduled, by command or from the API): what it changed and how it ended."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    trigger = models.CharField(max_length=32, default="schedule")
    source = models.CharField(max_length=500, blank=True, help_text="catalog URL or file; empty for the bundled one")
    succeeded = models.BooleanField(null=True, help_text="empty while running")
    added = models.IntegerField(default=0)
    changed = models.IntegerField(default=0)
    unchanged = models.IntegerField(default=0)
    skipped = models.IntegerField(default=0)
    repriced = models.IntegerField(default=0, help_text="unpriced calls priced afterwards")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        verbose_name = "pricing sync"

    def __str__(self) -> str:
        return f"pricing sync {self.started_at:%Y-%m-%d %H:%M:%S}"


class LangSmithImport(models.Model):
    """Where the import of one LangSmith project has got to, and how its last run ended."""

    project = models.CharField(max_length=200, unique=True)
    cursor = models.DateTimeField(null=True, blank=True, help_text="runs that started from here (less an overlap)")
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_succeeded = models.BooleanField(null=True)
    last_report = models.JSONField(default=dict, blank=True)
    last_error = models.TextField(blank=True)
    imported_total = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = "LangSmith import"

    def __str__(self) -> str:
        return f"LangSmith project {self.project}"
