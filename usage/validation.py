"""Checks on one usage event. Every problem raises InvalidUsage naming the field, before anything is written."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from django.conf import settings

from usage.json_shape import exceeded_limit, first_inexact_float
from usage.models import AIProviderPricing, AIUsageLog, CallStatus
from usage.pricing import TokenCounts, compute_cost

MAX_METADATA_BYTES = 64 * 1024
# The times a call can plausibly have; outside them day and month arithmetic would run off the calendar's end.
EARLIEST_INSTANT = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(2100, 1, 1, tzinfo=UTC)
MAX_UTC_OFFSET = timedelta(hours=14)  # the widest offset in use (Kiribati); PostgreSQL refuses some beyond it
MAX_ERROR_MESSAGE = 4000
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens")


class InvalidUsage(ValueError):
    """A usage record that cannot be stored as given. `field` names the offending field."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


@cache  # the model's columns do not change while the process runs
def _max_length(field: str) -> int:
    return int(getattr(AIUsageLog._meta.get_field(field), "max_length", 0) or 0)


def _is_utf8(text: str) -> bool:
    """False for text holding lone surrogates, which no database column can store."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text(field: str, value: Any, *, required: bool) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise InvalidUsage(field, f"must be a string, got {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise InvalidUsage(field, "must not be empty")
    if "\x00" in value:
        raise InvalidUsage(field, "must not contain NUL characters")
    if not _is_utf8(value):
        raise InvalidUsage(field, "is not valid Unicode text (it holds a lone surrogate)")
    limit = _max_length(field)
    if len(value) > limit:
        raise InvalidUsage(field, f"is {len(value)} characters long; the most allowed is {limit}")
    return value


def check_whole_number(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        else:
            raise InvalidUsage(field, f"must be a whole number, got {value!r}")
    if value < 0:
        raise InvalidUsage(field, f"must not be negative, got {value}")
    return value


def check_count(field: str, value: Any, limit: int | None = None) -> int:
    """A token count of one call, at most AI_MAX_TOKENS_PER_CALL (read on each call unless the caller read it for
    several counts, so tests can override it): stops absurd usage and typos such as a timestamp in a token field."""
    count = check_whole_number(field, value)
    if limit is None:
        limit = settings.AI_MAX_TOKENS_PER_CALL
    if count > limit:
        raise InvalidUsage(field, f"{count} is more than AI_MAX_TOKENS_PER_CALL ({limit})")
    return count


def check_tokens(**counts: Any) -> TokenCounts:
    """Token counts by the project's rule; cached reads and cache writes are parts of input, reasoning of output."""
    # None (a provider's "not reported") counts as 0; anything else falsy ("", [], False) is refused as it is.
    limit: int = settings.AI_MAX_TOKENS_PER_CALL
    checked = {name: check_count(name, 0 if counts.get(name) is None else counts[name], limit) for name in TOKEN_FIELDS}
    tokens = TokenCounts(**checked)
    if tokens.cached_input_tokens + tokens.cache_write_tokens > tokens.input_tokens:
        raise InvalidUsage(
            "cached_input_tokens",
            f"cached input ({tokens.cached_input_tokens}) plus cache write ({tokens.cache_write_tokens}) tokens "
            f"exceed input_tokens ({tokens.input_tokens}); input_tokens must include them",
        )
    if tokens.reasoning_tokens > tokens.output_tokens:
        raise InvalidUsage(
            "reasoning_tokens",
            f"reasoning tokens ({tokens.reasoning_tokens}) exceed output_tokens ({tokens.output_tokens}); "
            "output_tokens must include them",
        )
    return tokens


def check_cost(version: AIProviderPricing, tokens: TokenCounts, cost: Decimal) -> None:
    """A call may cost at most AI_MAX_COST_PER_CALL (USD, default 10,000: about 100 times the costliest real call).

    The cap also bounds the live counters, whose cost columns (UserDailySpend.cost, numeric(32,18)) hold less than
    10^14 USD per user and day: at the default cap that is 10^10 capped calls by one user in one day, more than
    115,000 a second around the clock. A refusal names the token field that contributes most to the cost.
    """
    limit: Decimal = settings.AI_MAX_COST_PER_CALL
    if cost <= limit:
        return
    field = _costliest_field(version, tokens)
    raise InvalidUsage(
        field,
        f"the call would cost {format(cost.normalize(), 'f')} USD, more than AI_MAX_COST_PER_CALL ({limit}); "
        f"its {getattr(tokens, field)} {field.removesuffix('_tokens').replace('_', ' ')} tokens cost the most",
    )


def _costliest_field(version: AIProviderPricing, tokens: TokenCounts) -> str:
    """The token field whose tokens alone would cost most (cached reads and cache writes priced as such)."""
    plain = tokens.input_tokens - tokens.cached_input_tokens - tokens.cache_write_tokens
    alone = {
        "input_tokens": TokenCounts(input_tokens=plain),
        "cached_input_tokens": TokenCounts(
            input_tokens=tokens.cached_input_tokens, cached_input_tokens=tokens.cached_input_tokens
        ),
        "cache_write_tokens": TokenCounts(
            input_tokens=tokens.cache_write_tokens, cache_write_tokens=tokens.cache_write_tokens
        ),
        "output_tokens": TokenCounts(output_tokens=tokens.output_tokens),
    }
    return max(alone, key=lambda field: compute_cost(version, alone[field]))


STATUSES = tuple(CallStatus.values)  # computed once: the enum builds the list afresh on every access


def check_status(value: Any) -> str:
    if value not in STATUSES:
        raise InvalidUsage("status", f"{value!r} is not one of {', '.join(STATUSES)}")
    return str(value)


def check_instant(field: str, value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidUsage(field, f"must be a datetime, got {type(value).__name__}")
    offset = value.utcoffset() if value.tzinfo is not None else None
    if offset is None:
        raise InvalidUsage(field, "must be timezone-aware (a naive time is ambiguous)")
    if abs(offset) > MAX_UTC_OFFSET:
        raise InvalidUsage(field, f"has the UTC offset {_offset_text(offset)}; offsets run from -14:00 to +14:00")
    try:
        plausible = EARLIEST_INSTANT <= value < LATEST_INSTANT
    except OverflowError:  # an offset that takes year 1 or 9999 out of range
        plausible = False
    if not plausible:
        raise InvalidUsage(field, f"{value.isoformat()} is outside {EARLIEST_INSTANT:%Y} to {LATEST_INSTANT:%Y}")
    return value.astimezone(UTC)  # stored as UTC: the database need not accept the caller's offset


def _offset_text(offset: timedelta) -> str:
    sign = "-" if offset < timedelta(0) else "+"
    hours, rest = divmod(abs(offset), timedelta(hours=1))
    minutes, rest = divmod(rest, timedelta(minutes=1))
    return f"{sign}{hours:02d}:{minutes:02d}" + (f" and {rest.total_seconds():g} s" if rest else "")


def check_latency(value: Any) -> int | None:
    if value is None:
        return None
    latency = check_whole_number("latency_ms", value)
    if latency > 2**31 - 1:
        raise InvalidUsage("latency_ms", f"{latency} is larger than the most allowed ({2**31 - 1})")
    return latency


def check_metadata(field: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidUsage(field, f"must be a JSON object (dict), got {type(value).__name__}")
    check_metadata_shape(field, value)
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidUsage(field, f"must be JSON-serialisable: {exc}") from None
    if not _is_utf8(json.dumps(value, ensure_ascii=False)):
        raise InvalidUsage(field, "is not valid Unicode text (it holds a lone surrogate)")
    if json.loads(encoded) != value:
        raise InvalidUsage(
            field, "would not be stored as given: JSON object keys must be strings, and lists not tuples"
        )
    if "\\u0000" in encoded:
        raise InvalidUsage(field, "must not contain NUL characters")
    inexact = first_inexact_float(value)
    if inexact is not None:
        raise InvalidUsage(field, f"{inexact!r} cannot be stored exactly as a JSON number; send it as a string")
    if len(encoded.encode()) > MAX_METADATA_BYTES:
        raise InvalidUsage(field, f"is {len(encoded.encode())} bytes as JSON; the most allowed is {MAX_METADATA_BYTES}")
    return value


def check_metadata_shape(field: str, value: dict[str, Any]) -> None:
    """Depth and size measured before json.dumps, which would recurse once per level and may never finish on a
    value that shares or contains itself."""
    max_depth = settings.AI_MAX_METADATA_DEPTH
    exceeded = exceeded_limit(value, max_depth=max_depth, max_values=MAX_METADATA_BYTES)
    if exceeded == "depth":
        raise InvalidUsage(field, f"is nested more than {max_depth} levels deep; the most allowed is {max_depth}")
    if exceeded == "values":
        raise InvalidUsage(
            field, f"holds more than {MAX_METADATA_BYTES} values, over {MAX_METADATA_BYTES} bytes as JSON; "
            f"the most allowed is {MAX_METADATA_BYTES} bytes"
        )  # fmt: skip


def check_event_id(value: Any) -> str | None:
    if value is None:
        return None
    return check_text("event_id", value, required=True)


def check_user(user: Any) -> int | None:
    """A user instance or id as an id (None for calls made on nobody's behalf)."""
    from django.contrib.auth.base_user import AbstractBaseUser

    if user is None:
        return None
    if isinstance(user, int) and not isinstance(user, bool):
        if not (1 <= user <= MAX_ID and _user_exists(user)):
            raise InvalidUsage("user", f"no user with id {user}")
        return user
    if isinstance(user, AbstractBaseUser):
        if user.pk is None:
            raise InvalidUsage("user", "is not saved (it has no id)")
        return int(user.pk)
    raise InvalidUsage("user", f"must be a user or a user id, got {type(user).__name__}")


MAX_ID = 2**63 - 1  # the largest id the database can hold


def parse_id(value: Any) -> int | None:
    """An id written in ASCII digits that the database can hold (1 to MAX_ID), else None; int() alone would also
    read "١٢" as 12 and spend seconds on a million digits."""
    text = "" if value is None else str(value)
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(MAX_ID))):
        return None
    number = int(text)
    return number if 1 <= number <= MAX_ID else None


_known_users: set[int] = set()


def _user_exists(user_id: int) -> bool:
    """Whether a user id names a user, asked once per process and id: ids are checked before the call is written,
    where a missing user would otherwise surface as a foreign key error at commit."""
    if user_id in _known_users:
        return True
    from django.contrib.auth import get_user_model

    if not get_user_model().objects.filter(pk=user_id).exists():
        return False
    if len(_known_users) > 100_000:
        _known_users.clear()
    _known_users.add(user_id)
    return True


def forget_known_users() -> None:
    _known_users.clear()


def check_identity(
    *, user: Any, feature: Any, provider: Any, model: Any, session_id: Any = None, event_id: Any = None
) -> dict[str, Any]:
    """Who made the call and with what: the fields known before the call runs, checked and normalised."""
    return {
        "user_id": check_user(user),
        "feature": check_text("feature", feature, required=True),
        # Lower-cased before the length check: lowering can lengthen text ("İ" becomes two characters).
        "provider": check_text("provider", provider.lower() if isinstance(provider, str) else provider, required=True),
        "model": check_text("model", model, required=True),
        "session_id": check_text("session_id", session_id, required=False),
        "event_id": check_event_id(event_id),
    }


def clip_error_message(message: Any) -> str:
    """Error text is informational, so an over-long message is shortened rather than refused."""
    text = str(message or "").replace("\x00", "")
    text = text if _is_utf8(text) else text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= MAX_ERROR_MESSAGE else text[: MAX_ERROR_MESSAGE - 1] + "…"
