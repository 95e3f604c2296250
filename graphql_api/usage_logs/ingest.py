"""recordUsage: many events per call, each recorded, reported as a duplicate, or rejected on its own."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from django.contrib.auth import get_user_model
from strawberry.scalars import JSON
from strawberry.types.arguments import InputContext
from strawberry.types.base import get_object_definition
from strawberry.utils.str_converters import to_camel_case

from graphql_api.errors import BadArgumentError, ServiceUnavailableError
from graphql_api.permissions import records_for_others
from graphql_api.scalars import Count
from usage.batch import record_batch
from usage.db import DatabaseUnavailable, database_available
from usage.recording import RecordResult
from usage.validation import InvalidUsage, parse_id

MAX_EVENTS = 1000
RECORDING_FOR_OTHERS_REFUSED = (
    "you may record usage only for yourself (recording for others needs the usage.record_ai_usage_for_others "
    "permission)"
)


@strawberry.enum
class RecordOutcome(Enum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@strawberry.input(description="One finished AI call. Token counts follow the README's counting rule.")
class UsageEventInput:
    feature: str
    provider: str
    model: str
    user_id: strawberry.ID | None = strawberry.field(
        default=None, description="whose call this is; default the caller; others need usage.record_ai_usage_for_others"
    )
    input_tokens: Count = Count(0)
    output_tokens: Count = Count(0)
    cached_input_tokens: Count = Count(0)
    cache_write_tokens: Count = Count(0)
    reasoning_tokens: Count = Count(0)
    occurred_at: str | None = strawberry.field(default=None, description="ISO 8601 with an offset; default now")
    latency_ms: Count | None = None
    status: str = "success"
    error_message: str = ""
    session_id: str | None = None
    event_id: str | None = strawberry.field(default=None, description="a repeat of a recorded id is a no-op")
    request_meta: JSON | None = None
    response_meta: JSON | None = None


_PYTHON_NAMES: dict[str, str] = {}  # GraphQL field name -> attribute, filled from the schema's own name converter


def _event_from_input(cls: type[UsageEventInput], value: Mapping[str, Any], context: InputContext) -> Any:
    """Strawberry's hook for input types that build their own value. Every field of an event is a scalar that
    graphql-core has already parsed, so only the names change; Strawberry's generic conversion, which resolves each
    field's type and name again for every event, took longer than recording the batch."""
    if not _PYTHON_NAMES:
        fields = get_object_definition(cls, strict=True).fields
        _PYTHON_NAMES.update({context.config.name_converter.from_field(f): f.python_name for f in fields})
    return cls(**{_PYTHON_NAMES[name]: field_value for name, field_value in value.items()})


get_object_definition(UsageEventInput, strict=True).from_input = _event_from_input


@strawberry.type
class EventResult:
    index: int
    event_id: str | None
    outcome: RecordOutcome
    log_id: strawberry.ID | None = None
    field: str | None = strawberry.field(default=None, description="the input field that was wrong")
    reason: str | None = None


def _instant(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        shown = value if len(value) <= 40 else value[:40] + "…"
        raise InvalidUsage("occurred_at", f"{shown!r} is not an ISO 8601 date and time") from exc


class _Owners:
    """Whose events the caller may record: their own, or (staff) any active user's, each id checked once."""

    def __init__(self, caller: Any, events: list[UsageEventInput]) -> None:
        self.caller = caller
        self.for_others = records_for_others(caller)  # asked once per batch, not once per event
        self.known: dict[int, bool] = {int(caller.pk): True}
        if self.for_others:  # one query for every user the batch names, not one per user
            named = {user for user in map(parse_id, (e.user_id for e in events)) if user is not None}
            active = set(get_user_model().objects.filter(pk__in=named, is_active=True).values_list("pk", flat=True))
            self.known.update({user: user in active for user in named})

    def owner(self, event: UsageEventInput) -> int:
        if event.user_id is None:
            return int(self.caller.pk)
        owner = parse_id(event.user_id)
        if owner is None:
            raise InvalidUsage("user_id", f"{event.user_id!r} is not a user id")
        if owner != self.caller.pk and not self.for_others:
            raise InvalidUsage("user_id", RECORDING_FOR_OTHERS_REFUSED)
        if owner not in self.known:
            self.known[owner] = get_user_model().objects.filter(pk=owner, is_active=True).exists()
        if not self.known[owner]:
            raise InvalidUsage("user_id", f"no active user with id {owner}")
        return owner


def _rejected(index: int, event: UsageEventInput, exc: InvalidUsage) -> EventResult:
    field = to_camel_case(exc.field)
    return EventResult(
        index=index, event_id=event.event_id, outcome=RecordOutcome.REJECTED, field=field,
        reason=f"{field}: {exc.problem}",
    )  # fmt: skip


def _counts(event: UsageEventInput) -> dict[str, Any]:
    """Counts as sent: a wrong type or value is rejected by the event's validation, naming the field."""
    names = ["input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens"]
    return {name: getattr(event, name) for name in [*names, "latency_ms"]}


def _call(event: UsageEventInput, owners: _Owners) -> dict[str, Any]:
    """The event as record_usage's fields; raises InvalidUsage for what only the API layer can check."""
    return {
        "user": owners.owner(event),
        "feature": event.feature,
        "provider": event.provider,
        "model": event.model,
        "occurred_at": _instant(event.occurred_at),
        **_counts(event),
        "status": event.status,
        "error_message": event.error_message,
        "session_id": event.session_id,
        "event_id": event.event_id,
        "request_meta": event.request_meta,
        "response_meta": event.response_meta,
    }


NOT_RECORDED = (
    "recordUsage: nothing was recorded, the database is unavailable; send the same events again "
    "(a repeated eventId is reported as a duplicate, never stored twice)"
)


def record_events(events: list[UsageEventInput], caller: Any) -> list[EventResult]:
    if len(events) > MAX_EVENTS:
        raise BadArgumentError("events", f"at most {MAX_EVENTS} per call, got {len(events)}")
    try:
        with database_available("recordUsage"):
            return _record(events, caller)
    except DatabaseUnavailable as exc:
        raise ServiceUnavailableError(NOT_RECORDED) from exc


def _record(events: list[UsageEventInput], caller: Any) -> list[EventResult]:
    owners = _Owners(caller, events)
    calls: list[dict[str, Any] | InvalidUsage] = []
    for event in events:
        try:
            calls.append(_call(event, owners))
        except InvalidUsage as exc:
            calls.append(exc)
    recorded = iter(record_batch([call for call in calls if not isinstance(call, InvalidUsage)]))
    results = []
    for index, (event, call) in enumerate(zip(events, calls, strict=True)):
        outcome = call if isinstance(call, InvalidUsage) else next(recorded)
        results.append(_result(index, event, outcome))
    return results


def _result(index: int, event: UsageEventInput, outcome: RecordResult | InvalidUsage) -> EventResult:
    if isinstance(outcome, InvalidUsage):
        return _rejected(index, event, outcome)
    log = outcome.log
    return EventResult(
        index=index,
        event_id=event.event_id,
        outcome=RecordOutcome.DUPLICATE if log is None else RecordOutcome.RECORDED,
        log_id=None if log is None else strawberry.ID(str(log.pk)),
    )
