"""The write path: validate one call, price it, and store it with the user's live spend in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from usage import periods, validation
from usage.models import AIUsageLog, CallStatus, UserDailySpend
from usage.pricing import TokenCounts, price_call

SPEND_TABLE = UserDailySpend._meta.db_table
# One atomic increment: concurrent writers for the same user and day never lose each other's cost.
ADD_TO_DAILY_SPEND = f"""
    INSERT INTO {SPEND_TABLE} (user_id, time_zone, day, cost, requests, unpriced_requests)
    VALUES (%s, %s, %s, %s, 1, %s)
    ON CONFLICT (user_id, time_zone, day) DO UPDATE SET
        cost = {SPEND_TABLE}.cost + EXCLUDED.cost,
        requests = {SPEND_TABLE}.requests + 1,
        unpriced_requests = {SPEND_TABLE}.unpriced_requests + EXCLUDED.unpriced_requests
"""


@dataclass(frozen=True)
class RecordResult:
    """What happened to one event: recorded (with the saved log) or a duplicate of an earlier event_id."""

    log: AIUsageLog | None

    @property
    def outcome(self) -> Literal["recorded", "duplicate"]:
        return "recorded" if self.log is not None else "duplicate"

    @property
    def duplicate(self) -> bool:
        return self.log is None


def user_id_of(user: AbstractBaseUser | int | None) -> int | None:
    if user is None or (isinstance(user, int) and not isinstance(user, bool)):
        return user
    if isinstance(user, AbstractBaseUser):
        if user.pk is None:
            raise validation.InvalidUsage("user", "is not saved (it has no id)")
        return int(user.pk)
    raise validation.InvalidUsage("user", f"must be a user or a user id, got {type(user).__name__}")


def build_log(
    *,
    user: AbstractBaseUser | int | None,
    feature: Any,
    provider: Any,
    model: Any,
    tokens: TokenCounts,
    occurred_at: Any = None,
    latency_ms: Any = None,
    status: Any = CallStatus.SUCCESS,
    error_message: Any = "",
    session_id: Any = None,
    event_id: Any = None,
    request_meta: Any = None,
    response_meta: Any = None,
) -> AIUsageLog:
    """A validated, priced, unsaved log row. Raises InvalidUsage naming the first bad field."""
    when = timezone.now() if occurred_at is None else validation.check_instant("occurred_at", occurred_at)
    log = AIUsageLog(
        occurred_at=when,
        user_id=user_id_of(user),
        feature=validation.check_text("feature", feature, required=True),
        provider=validation.check_text("provider", provider, required=True).lower(),
        model=validation.check_text("model", model, required=True),
        session_id=validation.check_text("session_id", session_id, required=False),
        latency_ms=validation.check_latency(latency_ms),
        status=validation.check_status(status),
        error_message=validation.clip_error_message(error_message),
        request_meta=validation.check_metadata("request_meta", request_meta),
        response_meta=validation.check_metadata("response_meta", response_meta),
        event_id=validation.check_event_id(event_id),
        **tokens.__dict__,
    )
    log.pricing, log.total_cost = price_call(log.provider, log.model, when, tokens)
    return log


def _add_to_daily_spend(log: AIUsageLog) -> None:
    day = periods.reporting_day(log.occurred_at)
    unpriced = 1 if log.total_cost is None else 0
    with connection.cursor() as cursor:
        cursor.execute(
            ADD_TO_DAILY_SPEND,
            [log.user_id, periods.reporting_zone_name(), day, log.total_cost or 0, unpriced],
        )


def save_log(log: AIUsageLog) -> RecordResult:
    """Insert the log and add its cost to the user's live spend, both or neither. A repeated event_id is a no-op."""
    try:
        with transaction.atomic():
            log.save(force_insert=True)
            if log.user_id is not None:
                _add_to_daily_spend(log)
    except IntegrityError:
        log.pk = None
        if log.event_id is not None and AIUsageLog.objects.filter(event_id=log.event_id).exists():
            return RecordResult(None)
        raise
    return RecordResult(log)


def record_usage(
    *,
    user: AbstractBaseUser | int | None,
    feature: str,
    provider: str,
    model: str,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cached_input_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    occurred_at: datetime | None = None,
    latency_ms: int | None = None,
    status: str = CallStatus.SUCCESS,
    error_message: str = "",
    session_id: str | None = None,
    event_id: str | None = None,
    request_meta: dict[str, Any] | None = None,
    response_meta: dict[str, Any] | None = None,
) -> RecordResult:
    """Record a call that already finished. Raises InvalidUsage (a ValueError) and writes nothing on bad input."""
    tokens = validation.check_tokens(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached_input_tokens,
        cache_write_tokens=cache_write_tokens,
        reasoning_tokens=reasoning_tokens,
    )
    log = build_log(
        user=user,
        feature=feature,
        provider=provider,
        model=model,
        tokens=tokens,
        occurred_at=occurred_at,
        latency_ms=latency_ms,
        status=status,
        error_message=error_message,
        session_id=session_id,
        event_id=event_id,
        request_meta=request_meta,
        response_meta=response_meta,
    )
    return save_log(log)
