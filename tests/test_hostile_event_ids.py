"""Event ids are idempotency keys of their user: one user can neither swallow another user's call by recording its
id first, nor learn which ids others used. Calls made on nobody's behalf share one scope of their own. Runs on
SQLite, PostgreSQL and PostgreSQL with the log table partitioned (the CI's third pass)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from tests.conftest import requires_postgres
from tests.helpers.fake_langsmith import FakeLangSmith
from tests.test_graphql_api import RECORD, bearer, event, gql
from tests.test_langsmith import add_runs, fake, langsmith  # noqa: F401  (fixtures)
from usage.batch import record_batch
from usage.langsmith_import import import_project
from usage.models import AIUsageLog, UsageEventKey, UserDailySpend
from usage.partitioning import forget_partitioning, log_table_partitioned, partition_log_table
from usage.tracker import AIUsageTracker, record_usage

# acme-1 at 2 USD per million input tokens and 8 per million output tokens (conftest's make_price).
CALL_COST = Decimal("0.002")  # 1,000 input tokens
BEFORE = ("usage", "0009_permission_model")
AFTER = ("usage", "0010_event_ids_per_user")


def call(user: Any, event_id: str | None, **fields: Any) -> dict[str, Any]:
    return {"user": user, "feature": "chat", "provider": "acme", "model": "acme-1", "input_tokens": 1000,
            "event_id": event_id, **fields}  # fmt: skip


def outcomes(results: list[Any]) -> list[str]:
    return [result.outcome for result in results]


def stored(event_id: str) -> list[tuple[int | None, int]]:
    """(user id, input tokens) of each log with this event id, users without an id last."""
    rows = AIUsageLog.objects.filter(event_id=event_id).values_list("user_id", "input_tokens")
    return sorted(rows, key=lambda row: (row[0] is None, row[0] or 0))


def day_spend(user: Any) -> tuple[Decimal, int]:
    counters = UserDailySpend.objects.filter(user=user)
    return sum((c.cost for c in counters), Decimal(0)), sum(c.requests for c in counters)


def test_another_users_id_is_recorded_over_graphql(alice: Any, bob: Any, make_price: Any) -> None:
    make_price()
    bob_key, alice_key = bearer(bob), bearer(alice)
    bob_rows = gql(Client(), RECORD, {"events": [event(eventId="req-1"), event(eventId="req-2")]}, **bob_key)
    assert [r["outcome"] for r in bob_rows["data"]["recordUsage"]] == ["RECORDED", "RECORDED"]

    # Alice sends bob's ids (a guess, or a probe): each is her own call, recorded, and tells her nothing.
    probe = [event(eventId="req-1", inputTokens=500), event(eventId="req-1"), event(eventId="req-2")]
    rows = gql(Client(), RECORD, {"events": probe}, **alice_key)["data"]["recordUsage"]
    assert [(r["index"], r["eventId"], r["outcome"], r["field"]) for r in rows] == [
        (0, "req-1", "RECORDED", None),
        (1, "req-1", "DUPLICATE", None),  # her own repeat, within the batch
        (2, "req-2", "RECORDED", None),
    ]
    assert AIUsageLog.objects.get(pk=rows[0]["logId"]).user_id == alice.pk

    # Bob's real calls are still his, and a repeat by him is still a duplicate.
    again = gql(Client(), RECORD, {"events": [event(eventId="req-1"), event(eventId="req-3")]}, **bob_key)
    assert [r["outcome"] for r in again["data"]["recordUsage"]] == ["DUPLICATE", "RECORDED"]
    assert stored("req-1") == [(alice.pk, 500), (bob.pk, 1000)]
    assert stored("req-2") == [(alice.pk, 1000), (bob.pk, 1000)]
    assert AIUsageLog.objects.count() == 5
    assert day_spend(alice) == (Decimal("0.003"), 2)
    assert day_spend(bob) == (Decimal("0.006"), 3)


def test_a_repeat_by_the_same_user_over_graphql_changes_nothing(alice: Any, make_price: Any) -> None:
    make_price()
    key = bearer(alice)
    first = gql(Client(), RECORD, {"events": [event(eventId="once")]}, **key)["data"]["recordUsage"]
    repeat = gql(Client(), RECORD, {"events": [event(eventId="once", inputTokens=9000)]}, **key)["data"]
    assert [r["outcome"] for r in first] == ["RECORDED"]
    assert repeat["recordUsage"] == [
        {"index": 0, "eventId": "once", "outcome": "DUPLICATE", "logId": None, "field": None, "reason": None}
    ]
    assert stored("once") == [(alice.pk, 1000)]
    assert day_spend(alice) == (CALL_COST, 1)


def test_the_python_api_scopes_ids_by_user(alice: Any, bob: Any, make_price: Any) -> None:
    make_price()
    assert record_usage(**call(bob, "job-7")).outcome == "recorded"
    assert record_usage(**call(alice, "job-7", input_tokens=2000)).outcome == "recorded"
    assert record_usage(**call(alice, "job-7")).outcome == "duplicate"
    assert record_usage(**call(bob.pk, "job-7")).outcome == "duplicate"
    with AIUsageTracker.track_ai_request(
        user=alice, feature="chat", provider="acme", model="acme-1", event_id="job-7"
    ) as tracker:
        tracker.set_tokens(input_tokens=1000, output_tokens=0)
    assert tracker.log is None

    assert stored("job-7") == [(alice.pk, 2000), (bob.pk, 1000)]
    assert day_spend(alice) == (Decimal("0.004"), 1)
    assert day_spend(bob) == (CALL_COST, 1)


def test_calls_without_a_user_share_one_scope(alice: Any, make_price: Any) -> None:
    make_price()
    assert record_usage(**call(None, "batch-run-1")).outcome == "recorded"
    assert record_usage(**call(None, "batch-run-1", input_tokens=3000)).outcome == "duplicate"
    assert record_usage(**call(alice, "batch-run-1")).outcome == "recorded"  # alice's scope is her own
    with AIUsageTracker.track_ai_request(
        user=None, feature="chat", provider="acme", model="acme-1", event_id="batch-run-1"
    ) as tracker:
        tracker.set_tokens(input_tokens=1000, output_tokens=0)
    assert tracker.log is None
    with AIUsageTracker.track_ai_request(user=None, feature="chat", provider="acme", model="acme-1") as unnamed:
        unnamed.set_tokens(input_tokens=1000, output_tokens=0)
    assert unnamed.log is not None  # no event id: never a duplicate

    assert stored("batch-run-1") == [(alice.pk, 1000), (None, 1000)]
    assert AIUsageLog.objects.filter(user=None).count() == 2
    assert day_spend(alice) == (CALL_COST, 1)


def test_a_batch_keeps_the_first_of_each_users_repeated_id(alice: Any, bob: Any, make_price: Any) -> None:
    make_price()
    record_usage(**call(bob, "seen"))
    results = record_batch([
        call(alice, "x", input_tokens=1100),
        call(bob, "x", input_tokens=1200),
        call(alice, "x", input_tokens=1300),
        call(None, "x", input_tokens=1400),
        call(None, "x", input_tokens=1500),
        call(bob, "x", input_tokens=1600),
        call(alice, "seen", input_tokens=1700),  # bob's id: alice's call is recorded
        call(bob, "seen", input_tokens=1800),  # bob's own repeat
        call(alice, None),
    ])  # fmt: skip
    assert outcomes(results) == [
        "recorded", "recorded", "duplicate", "recorded", "duplicate", "duplicate", "recorded", "duplicate", "recorded"
    ]  # fmt: skip
    assert stored("x") == [(alice.pk, 1100), (bob.pk, 1200), (None, 1400)]
    assert stored("seen") == [(alice.pk, 1700), (bob.pk, 1000)]
    assert AIUsageLog.objects.count() == 6
    assert day_spend(alice) == (Decimal("0.0076"), 3)  # 1,100 + 1,700 + 1,000 input tokens
    assert day_spend(bob) == (Decimal("0.0044"), 2)  # 1,000 + 1,200

    again = record_batch([call(alice, "x"), call(bob, "x"), call(None, "x"), call(alice, "seen")])
    assert outcomes(again) == ["duplicate"] * 4
    assert AIUsageLog.objects.count() == 6
    assert day_spend(alice) == (Decimal("0.0076"), 3)


def test_batches_of_only_users_or_only_nobodys_calls_keep_the_first_of_each_id(
    alice: Any, bob: Any, make_price: Any
) -> None:
    make_price()
    users_only = record_batch(
        [call(alice, "y", input_tokens=1100), call(bob, "y"), call(alice, "y", input_tokens=1300)]
    )
    nobody_only = record_batch([call(None, "y", input_tokens=1400), call(None, "y", input_tokens=1500)])
    assert outcomes(users_only) == ["recorded", "recorded", "duplicate"]
    assert outcomes(nobody_only) == ["recorded", "duplicate"]

    assert outcomes(record_batch([call(bob, "y"), call(alice, "y")])) == ["duplicate", "duplicate"]
    assert outcomes(record_batch([call(None, "y")])) == ["duplicate"]
    assert stored("y") == [(alice.pk, 1100), (bob.pk, 1000), (None, 1400)]
    assert day_spend(alice) == (Decimal("0.0022"), 1)
    assert day_spend(bob) == (CALL_COST, 1)


def test_the_langsmith_style_id_of_one_run_is_stored_once_per_user(alice: Any, bob: Any, make_price: Any) -> None:
    make_price()
    calls = [call(alice, "langsmith:run-1"), call(None, "langsmith:run-2")]
    assert outcomes(record_batch(calls)) == ["recorded", "recorded"]
    assert outcomes(record_batch([*calls, call(bob, "langsmith:run-1")])) == ["duplicate", "duplicate", "recorded"]
    assert stored("langsmith:run-1") == [(alice.pk, 1000), (bob.pk, 1000)]
    assert stored("langsmith:run-2") == [(None, 1000)]


def test_a_run_imported_again_after_its_user_appeared_is_stored_once(
    langsmith: FakeLangSmith,  # noqa: F811  (the fixture imported above)
    alice: Any,
    bob: Any,
    make_price: Any,
) -> None:
    make_price(cached_input_price=Decimal("0.50"))
    add_runs(langsmith, alice, bob)  # one run names "stranger", unknown here: imported on nobody's behalf
    first = import_project("team-app")
    stranger = get_user_model().objects.create_user("stranger")
    again = import_project("team-app")  # reads the same runs (the overlap); "stranger" now resolves
    assert (first.recorded, first.duplicates, again.recorded, again.duplicates) == (6, 0, 0, 6)
    assert AIUsageLog.objects.count() == 6
    assert AIUsageLog.objects.filter(user=None).count() == 2
    assert not AIUsageLog.objects.filter(user=stranger).exists()


def test_another_users_copy_of_a_run_id_does_not_stop_the_import(
    langsmith: FakeLangSmith,  # noqa: F811  (the fixture imported above)
    alice: Any,
    bob: Any,
    make_price: Any,
) -> None:
    make_price(cached_input_price=Decimal("0.50"))
    add_runs(langsmith, alice, bob)
    bobs_run = next(run for run in langsmith.stored_runs if run["extra"].get("metadata", {}).get("user_id") == "bob")
    record_usage(**call(alice, f"langsmith:{bobs_run['id']}", occurred_at=datetime(2026, 3, 2, 9, 1, tzinfo=UTC)))

    report = import_project("team-app")

    assert (report.recorded, report.duplicates) == (6, 0)
    assert stored(f"langsmith:{bobs_run['id']}") == [(alice.pk, 1000), (bob.pk, 1000)]


@pytest.fixture
def unpartitioned(db: None) -> Iterator[None]:
    if connection.vendor != "postgresql" or log_table_partitioned():
        pytest.skip("converts a plain PostgreSQL log table (the partitioned pass has converted it already)")
    yield
    forget_partitioning()  # the test's transaction rolls the conversion back


@requires_postgres
def test_converting_the_table_keeps_ids_per_user(unpartitioned: None, alice: Any, bob: Any, make_price: Any) -> None:
    make_price()
    for user in (alice, bob, None):
        record_usage(**call(user, "shared"))
    record_usage(**call(alice, "own"))

    assert partition_log_table()

    expected = {f"{alice.pk}:shared", f"{bob.pk}:shared", "-:shared", f"{alice.pk}:own"}
    assert set(UsageEventKey.objects.values_list("scoped_id", flat=True)) == expected
    carol = get_user_model().objects.create_user("carol")
    assert outcomes([record_usage(**call(user, "shared")) for user in (alice, bob, None, carol)]) == [
        "duplicate", "duplicate", "duplicate", "recorded"
    ]  # fmt: skip
    batch = record_batch([call(bob, "own"), call(alice, "own"), call(bob, "own"), call(None, "own")])
    assert outcomes(batch) == ["recorded", "duplicate", "duplicate", "recorded"]
    assert stored("shared") == [(alice.pk, 1000), (bob.pk, 1000), (carol.pk, 1000), (None, 1000)]
    assert stored("own") == [(alice.pk, 1000), (bob.pk, 1000), (None, 1000)]


def _migrate(target: tuple[str, str]) -> Any:
    """Migrate the usage app to `target`; returns that state's models."""
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


def _latest() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def _log_before_0010(apps: Any, user_id: int | None, event_id: str) -> None:
    """A log as 0009's schema stored it (with its claimed id when the table is partitioned)."""
    apps.get_model("usage", "AIUsageLog").objects.create(
        user_id=user_id, event_id=event_id, occurred_at=datetime(2026, 3, 2, 9, tzinfo=UTC), feature="chat",
        provider="acme", model="acme-1", input_tokens=1000, total_cost=CALL_COST,
    )  # fmt: skip
    if log_table_partitioned():
        apps.get_model("usage", "UsageEventKey").objects.create(event_id=event_id)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_migration_scopes_existing_ids(make_price: Any) -> None:
    make_price()
    users = get_user_model().objects
    alice, bob = users.create_user("alice"), users.create_user("bob")
    try:
        old = _migrate(BEFORE)
        _log_before_0010(old, alice.pk, "a-1")
        _log_before_0010(old, bob.pk, "b-1")
        _log_before_0010(old, None, "n-1")
        _migrate(AFTER)
        if log_table_partitioned():
            assert set(UsageEventKey.objects.values_list("scoped_id", flat=True)) == {
                f"{alice.pk}:a-1", f"{bob.pk}:b-1", "-:n-1"
            }  # fmt: skip
        else:
            with connection.cursor() as cursor:
                names = set(connection.introspection.get_constraints(cursor, AIUsageLog._meta.db_table))
            assert {"usage_event_id_once_per_user", "usage_event_id_once_without_user"} <= names
            assert "usage_event_id_once" not in names
            assert UsageEventKey.objects.count() == 0

        mine = [call(alice, "a-1"), call(bob, "b-1"), call(None, "n-1")]
        others = [call(bob, "a-1"), call(alice, "n-1")]
        assert outcomes([record_usage(**c) for c in mine + others]) == ["duplicate"] * 3 + ["recorded"] * 2
        assert outcomes(record_batch([*mine, call(None, "a-1")])) == ["duplicate"] * 3 + ["recorded"]
        assert stored("a-1") == [(alice.pk, 1000), (bob.pk, 1000), (None, 1000)]
        assert stored("n-1") == [(alice.pk, 1000), (None, 1000)]
        assert AIUsageLog.objects.count() == 6
    finally:
        _latest()


def test_deleting_users_releases_their_ids_and_keeps_their_logs(alice: Any, bob: Any, make_price: Any) -> None:
    make_price()
    for user in (alice, bob, None):
        record_usage(**call(user, "shared"))

    alice.delete()
    bob.delete()

    assert AIUsageLog.objects.filter(user=None).count() == 3
    assert stored("shared") == [(None, 1000)]  # the one recorded on nobody's behalf keeps its id
    assert AIUsageLog.objects.filter(event_id=None).count() == 2
    assert record_usage(**call(None, "shared")).outcome == "duplicate"
    assert AIUsageLog.objects.count() == 3
