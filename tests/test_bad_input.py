"""Random and hostile input, property-based: through the tracker, record_usage and recordUsage, every value is
either stored exactly as given (after the documented normalising: text stripped, provider lower-cased) or refused
with an InvalidUsage naming the field, with nothing written; good events in the same batch are kept."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usage.models import AIUsageLog
from usage.tracker import AIUsageTracker, InvalidUsage, record_usage

HOSTILE_TEXT = ["", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "NaN", "-1", "1e400", "\uff10x10", "²",
                "١٢", "🙂" * 300, "x" * 5000, "DROP TABLE usage_aiusagelog;--", "' OR 1=1 --", "\u202eevil",
                "null"]  # fmt: skip
hostile_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([2**63 - 1, 2**63, 10**15, 10**15 + 1, -1, 0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(HOSTILE_TEXT),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.one_of(st.text(max_size=5), st.integers()), st.one_of(st.integers(), st.text(max_size=5),
                    st.floats()), max_size=3),
    st.just({"blob": "x" * 70_000}),
    st.just({"nested": {"deep": [1, {"a": "\ud800"}]}}),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))])),
    st.datetimes(),  # naive
    st.sampled_from([datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))), datetime(9999, 12, 31, 23, tzinfo=UTC)]),
)  # fmt: skip
CALL_FIELDS = ["user", "feature", "provider", "model", "input_tokens", "output_tokens", "cached_input_tokens",
               "cache_write_tokens", "reasoning_tokens", "occurred_at", "latency_ms", "status", "error_message",
               "session_id", "event_id", "request_meta", "response_meta"]  # fmt: skip
PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def good_call(user: Any) -> dict[str, Any]:
    return {"user": user, "feature": "chat", "provider": "acme", "model": "acme-1", "input_tokens": 120,
            "output_tokens": 30, "event_id": f"ev-{uuid.uuid4()}"}  # fmt: skip


def expected_stored(field: str, value: Any) -> Any:
    """What the log should hold for an accepted value: the value itself, normalised as documented."""
    if value is None:  # optional fields left out
        return {"session_id": "", **{name: 0 for name in CALL_FIELDS if name.endswith("_tokens")}}.get(field)
    if field in ("feature", "model", "session_id", "event_id"):
        return value.strip()
    if field == "provider":
        return value.strip().lower()
    if field == "user":
        return getattr(value, "pk", value)
    if field in ("error_message",):
        return value
    if isinstance(value, float):
        return int(value)
    return value


def stored_value(log: AIUsageLog, field: str) -> Any:
    return log.user_id if field == "user" else getattr(log, field)


def assert_stored_exactly_or_refused(field: str, value: Any, attempt: Any) -> None:
    before = AIUsageLog.objects.count()
    try:
        log = attempt()
    except InvalidUsage as exc:
        assert exc.field in [*CALL_FIELDS, "user_id"], exc
        assert str(exc).startswith(f"{exc.field}: ") and exc.problem
        assert AIUsageLog.objects.count() == before  # nothing written
        return
    assert AIUsageLog.objects.count() == before + 1
    log = AIUsageLog.objects.get(pk=log.pk)
    defaulted = field == "occurred_at" and value is None  # no time given: the time of recording
    if field != "error_message" and not defaulted:  # error text is informational: clipped rather than refused
        assert stored_value(log, field) == expected_stored(field, value)


@pytest.fixture
def caller(db: None, make_price: Any) -> Any:
    make_price()
    return get_user_model().objects.create_user("fuzz")


@PROPERTY
@given(field=st.sampled_from(CALL_FIELDS), value=hostile_values)
def test_record_usage_stores_exactly_or_refuses_naming_the_field(caller: Any, field: str, value: Any) -> None:
    call = {**good_call(caller), field: value}
    assert_stored_exactly_or_refused(field, value, lambda: record_usage(**call).log)


@PROPERTY
@given(field=st.sampled_from([*CALL_FIELDS[:4], "session_id", "event_id", "request_meta"]), value=hostile_values)
def test_tracker_block_refuses_bad_identity_before_the_call(caller: Any, field: str, value: Any) -> None:
    call = {**good_call(caller), field: value}
    tokens = {"input_tokens": call.pop("input_tokens"), "output_tokens": call.pop("output_tokens")}

    def tracked() -> AIUsageLog | None:
        with AIUsageTracker.track_ai_request(**call) as tracker:
            tracker.set_tokens(**tokens)
        return tracker.log

    assert_stored_exactly_or_refused(field, value, tracked)


@PROPERTY
@given(field=st.sampled_from(CALL_FIELDS[4:9]), value=hostile_values)
def test_tracker_set_tokens_stores_exactly_or_refuses(caller: Any, field: str, value: Any) -> None:
    call = good_call(caller)
    tokens = {"input_tokens": call.pop("input_tokens"), "output_tokens": call.pop("output_tokens"), field: value}

    def tracked() -> AIUsageLog | None:
        with AIUsageTracker.track_ai_request(**call) as tracker:
            tracker.set_tokens(**tokens)
        return tracker.log

    assert_stored_exactly_or_refused(field, value, tracked)


# recordUsage: what JSON can carry. Strings stay strings (the schema types them); the rest is open.
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
                         st.sampled_from(HOSTILE_TEXT))  # fmt: skip
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                           st.dictionaries(st.text(max_size=5), inner, max_size=3)), max_leaves=6)  # fmt: skip
GRAPHQL_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "feature": st.one_of(st.text(max_size=40), st.sampled_from(HOSTILE_TEXT)),
    "model": st.sampled_from(HOSTILE_TEXT),
    "userId": st.one_of(st.sampled_from(["0", "-1", "99999999999999999999", "²", "١٢", "1.5", "abc", ""]),
                        st.integers(min_value=-(2**70), max_value=2**70).map(str)),
    "inputTokens": json_scalars.filter(lambda v: v is not None),  # null for a Count! is a type error: below
    "outputTokens": json_scalars.filter(lambda v: v is not None),
    "cachedInputTokens": json_scalars.filter(lambda v: v is not None),
    "latencyMs": json_scalars,
    "occurredAt": st.one_of(st.sampled_from(["NaN", "2026-13-01T00:00:00Z", "0001-01-01T00:00:00+14:00",
                                             "9999-12-31T23:59:59-12:00", "2026-01-01T00:00:00", "", "\x00"]),
                            st.text(max_size=30)),
    "status": st.sampled_from([*HOSTILE_TEXT, "success", "error", "timeout"]),
    "sessionId": st.sampled_from(HOSTILE_TEXT),
    "eventId": st.sampled_from(HOSTILE_TEXT),
    "requestMeta": json_values,
    "responseMeta": st.one_of(json_values, st.just({"blob": "x" * 70_000})),
}  # fmt: skip
MUTATION = "mutation($events: [UsageEventInput!]!) { recordUsage(events: $events) { index outcome field reason } }"


def graphql_event(**fields: Any) -> dict[str, Any]:
    return {"feature": "chat", "provider": "acme", "model": "acme-1", "inputTokens": 120, "outputTokens": 30,
            "eventId": f"ev-{uuid.uuid4()}", **fields}  # fmt: skip


@PROPERTY
@given(data=st.data())
def test_record_usage_mutation_rejects_a_hostile_event_alone(caller: Any, data: st.DataObject) -> None:
    staff = get_user_model().objects.get_or_create(username="staff-fuzz", defaults={"is_staff": True})[0]
    client = Client()
    client.force_login(staff)
    field = data.draw(st.sampled_from(sorted(GRAPHQL_FIELDS)))
    value = data.draw(GRAPHQL_FIELDS[field])
    events = [graphql_event(), graphql_event(**{field: value}), graphql_event()]
    before = AIUsageLog.objects.count()
    answer = client.post("/graphql/", {"query": MUTATION, "variables": {"events": events}},
                         content_type="application/json").json()  # fmt: skip
    assert "errors" not in answer, answer
    first, hostile, last = answer["data"]["recordUsage"]
    assert first["outcome"] == last["outcome"] == "RECORDED"
    if hostile["outcome"] == "REJECTED":
        assert hostile["field"] and hostile["reason"]
        assert AIUsageLog.objects.count() == before + 2
    else:
        assert hostile["outcome"] == "RECORDED", hostile
        assert AIUsageLog.objects.count() == before + 3


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("feature", 5, "has invalid value at [1].feature: String cannot represent a non string value: 5"),
        ("inputTokens", None, "has invalid value at [1].inputTokens: Expected value of non-null type 'Count!' not "
                              "to be None."),
    ],
)  # fmt: skip
def test_a_wrongly_typed_field_refuses_the_whole_request_and_names_it(
    caller: Any, field: str, value: Any, message: str
) -> None:
    """A type error is caught by GraphQL itself before any event runs: nothing is recorded, the path is named."""
    client = Client()
    client.force_login(caller)
    events = [graphql_event(), graphql_event(**{field: value})]
    answer = client.post("/graphql/", {"query": MUTATION, "variables": {"events": events}},
                         content_type="application/json").json()  # fmt: skip
    assert [e["message"] for e in answer["errors"]] == [f"Variable '$events' {message}"]
    assert AIUsageLog.objects.count() == 0


def test_exact_values_survive_the_round_trip(caller: Any) -> None:
    """Sanity for the property above: a hostile-looking but valid call is stored as given, to the last digit."""
    meta = {"prompt": "' OR 1=1 --", "emoji": "🙂", "n": 2**62, "f": 0.1}
    log = record_usage(**{**good_call(caller), "input_tokens": 10**9, "output_tokens": 0, "request_meta": meta}).log
    stored = AIUsageLog.objects.get(pk=log.pk)
    assert (stored.input_tokens, stored.request_meta, stored.total_cost) == (10**9, meta, Decimal("2000"))
