"""Monthly partitions of the log table (AI_USAGE_LOG_PARTITIONED, PostgreSQL): converting a table with data keeps
every row and id, and every rule (one row per event id, exact counters, rollups) holds on the partitioned table.
CI also runs the whole suite once on a database migrated with the setting on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from analytics.rollup import run_rollup
from tests.conftest import requires_postgres
from tests.test_rollup import assert_rollup_matches_logs
from usage.batch import record_batch
from usage.models import AIUsageLog, UserDailySpend
from usage.partitioning import forget_partitioning, log_table_partitioned
from usage.tracker import record_usage

pytestmark = requires_postgres


@pytest.fixture
def unpartitioned(db: None) -> Iterator[None]:
    """The test's transaction rolls the conversion back; the process must then read the catalog again."""
    if log_table_partitioned():
        pytest.skip("this database was migrated with AI_USAGE_LOG_PARTITIONED on: the conversion already ran")
    yield
    forget_partitioning()


def partitions() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'usage_aiusagelog'::regclass ORDER BY 1"
        )
        return [name for (name,) in cursor.fetchall()]


def call(alice: Any, **fields: Any) -> dict[str, Any]:
    return {"user": alice, "feature": "chat", "provider": "acme", "model": "acme-1", "input_tokens": 1000,
            "output_tokens": 10, **fields}  # fmt: skip


def test_converting_keeps_rows_ids_and_the_event_id_rule(unpartitioned: None, alice: Any, make_price: Any) -> None:
    make_price()
    march = datetime(2026, 3, 10, 12, tzinfo=UTC)
    record_usage(**call(alice, occurred_at=march, event_id="before-1"))
    record_usage(**call(alice, event_id="before-2"))
    record_usage(**call(alice))
    before = list(AIUsageLog.objects.order_by("id").values_list("id", "event_id", "total_cost", "occurred_at"))

    out = StringIO()
    call_command("partition_usage_logs", stdout=out)

    now = timezone.now()
    months_ahead = [(now.year + (now.month + k - 1) // 12, (now.month + k - 1) % 12 + 1) for k in range(4)]
    months = [(2026, m) for m in range(3, now.month)] if now.year == 2026 else []
    expected = [f"usage_aiusagelog_y{y}m{m:02d}" for y, m in sorted(set(months + months_ahead))]
    assert out.getvalue() == "partitioned the log table; 0 monthly partitions created\n"
    assert log_table_partitioned()
    assert partitions() == sorted([*expected, "usage_aiusagelog_default"])
    assert list(AIUsageLog.objects.order_by("id").values_list("id", "event_id", "total_cost", "occurred_at")) == before

    assert record_usage(**call(alice, event_id="before-1")).outcome == "duplicate"
    fresh = record_usage(**call(alice, event_id="after-1"))
    assert fresh.outcome == "recorded" and fresh.log is not None and fresh.log.pk == before[-1][0] + 1
    outcomes = record_batch([call(alice, event_id="b-1"), call(alice, event_id="b-1"), call(alice, event_id="before-2"),
                             call(alice)])  # fmt: skip
    assert [o.outcome for o in outcomes] == ["recorded", "duplicate", "duplicate", "recorded"]  # type: ignore[union-attr]
    assert AIUsageLog.objects.count() == 6
    assert AIUsageLog.objects.filter(event_id="b-1").count() == 1
    logged = AIUsageLog.objects.aggregate(c=Sum("total_cost"))["c"]
    assert UserDailySpend.objects.aggregate(c=Sum("cost"))["c"] == logged

    assert run_rollup().outcome == "succeeded"
    assert_rollup_matches_logs("UTC")
    again = StringIO()
    call_command("partition_usage_logs", stdout=again)
    assert again.getvalue() == "the log table was already partitioned; 0 monthly partitions created\n"
