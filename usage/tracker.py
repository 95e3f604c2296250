"""The Python API application code uses to record AI calls (names and shapes as the product notes describe).

    with AIUsageTracker.track_ai_request(user=user, feature="chat", provider="openai", model="gpt-4o") as tracker:
        response = client.chat.completions.create(...)
        tracker.set_tokens(input_tokens=response.usage.prompt_tokens, output_tokens=response.usage.completion_tokens)

The block is timed; an exception inside it is recorded as a failed call (timeout, rate_limited, cancelled or
error by its kind) and re-raised. One row is written synchronously when the block ends; after it,
`tracker.log` is the saved AIUsageLog, or None when the event_id had been recorded before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.utils import timezone

from usage import budgets, periods, validation
from usage.adapters import tokens_from_response
from usage.db import DatabaseUnavailable
from usage.models import AIUsageLog, CallStatus
from usage.pricing import TokenCounts
from usage.recording import Price, RecordResult, priced_log, priced_within_cap, record_usage, save_log
from usage.validation import InvalidUsage

__all__ = ["AIUsageTracker", "BudgetExceeded", "DatabaseUnavailable", "InvalidUsage", "RecordResult", "record_usage"]

logger = logging.getLogger(__name__)


class BudgetExceeded(Exception):
    """The user has reached a spend limit; raised before the AI call runs when enforcement is on."""

    def __init__(self, spend: budgets.UserSpend) -> None:
        self.spend = spend
        period, used = ("daily", spend.daily) if spend.daily.status == "EXCEEDED" else ("monthly", spend.monthly)
        super().__init__(
            f"user {spend.user_id} has exceeded the {period} AI spend limit: "
            f"{used.spend.quantize(Decimal('0.01'))} of {used.limit} USD"
        )


def status_for_exception(exc: BaseException) -> str:
    """The call status an exception stands for, judged by its kind (SDK exceptions are matched by name)."""
    name = type(exc).__name__.lower()
    if isinstance(exc, TimeoutError) or "timeout" in name:
        return CallStatus.TIMEOUT
    if "ratelimit" in name or getattr(exc, "status_code", None) == 429:
        return CallStatus.RATE_LIMITED
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt) or "cancel" in name:
        return CallStatus.CANCELLED
    return CallStatus.ERROR


class AIUsageTracker:
    """Collects one call's tokens and metadata inside `track_ai_request` and writes the log when the block ends."""

    def __init__(
        self, identity: dict[str, Any], request_meta: dict[str, Any] | None, check: budgets.BudgetCheck | None
    ) -> None:
        self._identity = identity  # validated when the block was entered
        self._check = check  # what the enforced budget check read, which the write then need not read again
        self._meta: dict[str, dict[str, Any] | None] = {"request_meta": request_meta, "response_meta": None}
        self._tokens = TokenCounts()
        self._status: str = CallStatus.SUCCESS
        self._error_message = ""
        self.log: AIUsageLog | None = None
        self.result: RecordResult | None = None
        self._started_at = timezone.now()  # the call's time (occurred_at) and the time its price is taken at
        self._price: Price | None = None  # the price of the tokens set, taken when they were set

    # -- used inside the block -------------------------------------------------------------------------------
    def set_tokens(
        self,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> None:
        self._set_checked_tokens(
            validation.check_tokens(
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cached_input_tokens=cached_input_tokens,
                cache_write_tokens=cache_write_tokens,
                reasoning_tokens=reasoning_tokens,
            )
        )

    def set_usage_from_response(self, response_or_usage: Any) -> None:
        """Read tokens from an OpenAI or Anthropic response (or its usage), normalised by the counting rule."""
        self._set_checked_tokens(tokens_from_response(self._identity["provider"], response_or_usage))

    def _set_checked_tokens(self, tokens: TokenCounts) -> None:
        # The cost cap is checked here, inside the block: a refusal then raises where the caller set the tokens
        # and the block ends without writing anything.
        self._price = priced_within_cap(self._identity, self._started_at, tokens)
        self._tokens = tokens

    def set_metadata(
        self, request_meta: dict[str, Any] | None = None, response_meta: dict[str, Any] | None = None
    ) -> None:
        if request_meta is not None:
            self._meta["request_meta"] = validation.check_metadata("request_meta", request_meta)
        if response_meta is not None:
            self._meta["response_meta"] = validation.check_metadata("response_meta", response_meta)

    def mark_error(self, message: str, status: str = CallStatus.ERROR) -> None:
        self._status = validation.check_status(status)
        self._error_message = validation.clip_error_message(message)

    # -- the block ---------------------------------------------------------------------------------------------
    @classmethod
    @contextmanager
    def track_ai_request(
        cls,
        *,
        user: AbstractBaseUser | int | None,
        feature: str,
        provider: str,
        model: str,
        session_id: str | None = None,
        event_id: str | None = None,
        enforce_budget: bool = False,
        request_meta: dict[str, Any] | None = None,
    ) -> Iterator[AIUsageTracker]:
        # Fail on bad identifiers before the AI call runs, not after it has been paid for.
        identity = validation.check_identity(
            user=user, feature=feature, provider=provider, model=model, session_id=session_id, event_id=event_id
        )
        request_meta = validation.check_metadata("request_meta", request_meta)
        user_id = identity["user_id"]
        check = budgets.check_before_call(user_id) if enforce_budget and user_id is not None else None
        if check is not None and check.refusal is not None:
            raise BudgetExceeded(check.refusal)
        tracker = cls(identity, request_meta, check)
        started_at, started = tracker._started_at, time.perf_counter()
        try:
            yield tracker
        except InvalidUsage:
            raise  # our own refusal of bad input: nothing is written
        except BaseException as exc:
            if tracker._status == CallStatus.SUCCESS:
                tracker.mark_error(f"{type(exc).__name__}: {exc}", status_for_exception(exc))
            tracker._save_quietly(started_at, started)
            raise
        tracker._save(started_at, started)

    def _save(self, started_at: Any, started: float) -> None:
        latency_ms = round((time.perf_counter() - started) * 1000)
        log = priced_log(
            self._identity,
            self._tokens,
            self._price,
            occurred_at=started_at,
            latency_ms=latency_ms,
            status=self._status,
            error_message=self._error_message,
            **self._meta,
        )
        self.result = save_log(log, self._check)
        self.log = self.result.log

    def _save_quietly(self, started_at: Any, started: float) -> None:
        """Record a failed call without ever replacing the caller's exception with our own."""
        try:
            self._save(started_at, started)
        except Exception:
            logger.exception(
                "could not record a failed AI call (%s/%s)", self._identity["provider"], self._identity["model"]
            )

    # -- reads from the product notes ------------------------------------------------------------------------
    @staticmethod
    def get_user_monthly_cost(user: AbstractBaseUser | int) -> Decimal:
        """This reporting month's spend of a user."""
        return budgets.spend_status(_required_user_id(user)).monthly.spend

    @staticmethod
    def check_user_budget(
        user: AbstractBaseUser | int, monthly_budget: Decimal | None = None
    ) -> tuple[bool, Decimal, Decimal]:
        """(is_over, current monthly spend, remaining) against `monthly_budget` or the user's monthly limit."""
        budget_given = None if monthly_budget is None else _amount("monthly_budget", monthly_budget)
        monthly = budgets.spend_status(_required_user_id(user)).monthly
        budget = monthly.limit if budget_given is None else budget_given
        return monthly.spend >= budget, monthly.spend, max(budget - monthly.spend, Decimal(0))

    @staticmethod
    def get_cau(days: int = 30, start_date: date | None = None, end_date: date | None = None) -> dict[str, Any]:
        """Cost per active user over the last `days` reporting days, or over start_date..end_date inclusive."""
        if start_date is not None or end_date is not None:
            if start_date is None or end_date is None:
                raise InvalidUsage("start_date", "start_date and end_date must be given together")
            for name, day in (("start_date", start_date), ("end_date", end_date)):
                if not isinstance(day, date):
                    raise InvalidUsage(name, f"must be a date, got {type(day).__name__}")
            if end_date < start_date:
                raise InvalidUsage("end_date", f"{end_date} is before start_date {start_date}")
            return budgets.cost_per_active_user(start_date, end_date)
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise InvalidUsage("days", f"must be a whole number of at least 1, got {days!r}")
        if days > periods.MAX_REPORT_DAYS:
            raise InvalidUsage("days", f"must be at most {periods.MAX_REPORT_DAYS} (ten years), got {days}")
        return budgets.cost_per_active_user(*budgets.window(days))


def _amount(name: str, value: Any) -> Decimal:
    """A money argument as an exact Decimal: a Decimal, an int or a string of ASCII digits, finite and not negative.
    Floats are refused: 0.1 is not exactly a tenth."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise InvalidUsage(name, f"must be a Decimal, int or string such as '100.00', got {type(value).__name__}")
    try:
        if isinstance(value, str) and not value.isascii():  # Decimal() would read "١٢" as 12
            raise ArithmeticError
        amount = Decimal(value)
    except ArithmeticError:
        raise InvalidUsage(name, f"{value!r} is not an amount such as '100.00'") from None
    if not amount.is_finite() or amount < 0:
        raise InvalidUsage(name, f"must be a finite amount of zero or more, got {value!r}")
    return amount


def _required_user_id(user: AbstractBaseUser | int) -> int:
    user_id = validation.check_user(user)
    if user_id is None:
        raise InvalidUsage("user", "is required")
    return user_id
