"""The Python API: the context manager, record_usage, duplicates, bad input and provider adapters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from tests.conftest import requires_postgres
from usage.models import AIUsageLog, UserDailySpend
from usage.pricing import TokenCounts
from usage.tracker import AIUsageTracker, InvalidUsage, record_usage

NOW = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)


class RateLimitError(Exception):
    """Named like the OpenAI SDK's exception; the tracker judges exceptions by kind and name."""


def test_context_manager_writes_one_priced_row(alice: Any, make_price: Any) -> None:
    price = make_price()
    with AIUsageTracker.track_ai_request(
        user=alice, feature="chat", provider="acme", model="acme-1", session_id="s-1", event_id="e-1"
    ) as tracker:
        tracker.set_tokens(input_tokens=1000, output_tokens=500)
        tracker.set_metadata(request_meta={"temperature": 0.2}, response_meta={"finish_reason": "stop"})
    log = tracker.log
    assert log is not None and AIUsageLog.objects.count() == 1
    stored = AIUsageLog.objects.get()
    # 1000 * 2.00 / 1e6 + 500 * 8.00 / 1e6
    assert stored.total_cost == Decimal("0.006")
    assert stored.pricing_id == price.pk
    assert (stored.status, stored.feature, stored.session_id, stored.event_id) == ("success", "chat", "s-1", "e-1")
    assert stored.request_meta == {"temperature": 0.2} and stored.response_meta == {"finish_reason": "stop"}
    assert stored.latency_ms is not None and stored.latency_ms >= 0
    assert stored.user_id == alice.pk


def test_exception_is_recorded_by_kind_and_reraised(alice: Any, make_price: Any) -> None:
    make_price()
    cases = [(TimeoutError("slow"), "timeout"), (RateLimitError("429"), "rate_limited"), (KeyError("x"), "error")]
    for exc, status in cases:
        with (
            pytest.raises(type(exc)),
            AIUsageTracker.track_ai_request(user=alice, feature="chat", provider="acme", model="acme-1") as tracker,
        ):
            tracker.set_tokens(input_tokens=10, output_tokens=0)
            raise exc
        assert tracker.log is not None and tracker.log.status == status
    assert list(AIUsageLog.objects.order_by("id").values_list("status", "error_message")) == [
        ("timeout", "TimeoutError: slow"),
        ("rate_limited", "RateLimitError: 429"),
        ("error", "KeyError: 'x'"),
    ]


def test_mark_error_sets_status_without_an_exception(alice: Any, make_price: Any) -> None:
    make_price()
    with AIUsageTracker.track_ai_request(user=alice, feature="chat", provider="acme", model="acme-1") as tracker:
        tracker.mark_error("content filtered", status="cancelled")
    assert AIUsageLog.objects.get().status == "cancelled"
    assert AIUsageLog.objects.get().error_message == "content filtered"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the refused INSERT fails alone, as in autocommit
def test_a_failing_log_write_never_hides_the_callers_exception(alice: Any, make_price: Any) -> None:
    """A write the database refuses (token counts that bypassed validation break its check constraint) must not
    replace the caller's own exception."""
    make_price()
    with (
        pytest.raises(ZeroDivisionError),
        AIUsageTracker.track_ai_request(user=alice, feature="chat", provider="acme", model="acme-1") as tracker,
    ):
        tracker._tokens = TokenCounts(input_tokens=-1)  # never passes set_tokens; the database refuses it
        1 / 0  # noqa: B018
    assert AIUsageLog.objects.count() == 0


def test_unknown_model_is_logged_unpriced_never_zero(alice: Any) -> None:
    result = record_usage(user=alice, feature="chat", provider="acme", model="mystery", input_tokens=5, output_tokens=5)
    assert result.log is not None and result.log.total_cost is None and result.log.pricing_id is None
    assert AIUsageLog.objects.filter(total_cost__isnull=True).count() == 1
    counter = UserDailySpend.objects.get(user=alice)
    assert (counter.cost, counter.requests, counter.unpriced_requests) == (Decimal(0), 1, 1)


def test_duplicate_event_id_writes_nothing_and_reports_it(alice: Any, make_price: Any) -> None:
    make_price()
    first = record_usage(user=alice, feature="f", provider="acme", model="acme-1", input_tokens=10, event_id="evt")
    second = record_usage(user=alice, feature="f", provider="acme", model="acme-1", input_tokens=999, event_id="evt")
    assert (first.outcome, second.outcome, second.duplicate) == ("recorded", "duplicate", True)
    assert AIUsageLog.objects.count() == 1 and AIUsageLog.objects.get().input_tokens == 10
    counter = UserDailySpend.objects.get(user=alice)
    assert (counter.requests, counter.cost) == (1, Decimal("0.00002"))
    with AIUsageTracker.track_ai_request(user=alice, feature="f", provider="acme", model="acme-1", event_id="evt") as t:
        t.set_tokens(input_tokens=1)
    assert t.log is None and AIUsageLog.objects.count() == 1


def test_price_in_force_at_the_calls_time_is_used(alice: Any, make_price: Any) -> None:
    old = make_price(effective_until=NOW)
    new = make_price(effective_from=NOW, input_price=Decimal("4.00"))
    before = record_usage(
        user=alice,
        feature="f",
        provider="acme",
        model="acme-1",
        input_tokens=1_000_000,
        occurred_at=NOW - timedelta(microseconds=1),
    )
    after = record_usage(
        user=alice, feature="f", provider="acme", model="acme-1", input_tokens=1_000_000, occurred_at=NOW
    )
    assert before.log is not None and after.log is not None
    assert (before.log.pricing_id, before.log.total_cost) == (old.pk, Decimal("2.00"))
    assert (after.log.pricing_id, after.log.total_cost) == (new.pk, Decimal("4.00"))


def test_cached_and_cache_write_tokens_use_their_own_prices(alice: Any, make_price: Any) -> None:
    make_price(cached_input_price=Decimal("0.50"), cache_write_price=Decimal("2.50"), request_price=Decimal("0.001"))
    result = record_usage(
        user=alice,
        feature="f",
        provider="acme",
        model="acme-1",
        input_tokens=10_000,
        cached_input_tokens=4_000,
        cache_write_tokens=1_000,
        output_tokens=2_000,
        reasoning_tokens=500,
    )
    # plain input 5000*2 + cached 4000*0.5 + write 1000*2.5 + output 2000*8 = 30500 per million, plus 0.001 per request
    assert result.log is not None and result.log.total_cost == Decimal("0.0315")


def test_tiny_prices_never_round_to_zero(alice: Any, make_price: Any) -> None:
    make_price(input_price=Decimal("0.15"), output_price=Decimal("0.15"))
    result = record_usage(user=alice, feature="f", provider="acme", model="acme-1", input_tokens=1)
    assert result.log is not None
    result.log.refresh_from_db()
    assert result.log.total_cost == Decimal("0.00000015")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"input_tokens": -1}, "input_tokens: must not be negative, got -1"),
        (
            {"input_tokens": 10, "cached_input_tokens": 11},
            "cached_input_tokens: cached input (11) plus cache write (0)",
        ),
        (
            {"output_tokens": 1, "reasoning_tokens": 2},
            "reasoning_tokens: reasoning tokens (2) exceed output_tokens (1)",
        ),
        ({"input_tokens": "12"}, "input_tokens: must be a whole number, got '12'"),
        ({"input_tokens": True}, "input_tokens: must be a whole number, got True"),
        ({"input_tokens": float("nan")}, "input_tokens: must be a whole number, got nan"),
        ({"input_tokens": 10**16}, "input_tokens: 10000000000000000 is more than AI_MAX_TOKENS_PER_CALL (1000000000)"),
        ({"status": "custom_error"}, "status: 'custom_error' is not one of success, error, timeout"),
        ({"model": "  "}, "model: must not be empty"),
        ({"provider": None}, "provider: must be a string, got NoneType"),
        ({"occurred_at": datetime(2026, 1, 1)}, "occurred_at: must be timezone-aware"),
        ({"request_meta": {"x": float("nan")}}, "request_meta: must be JSON-serialisable"),
        ({"request_meta": ["not", "a", "dict"]}, "request_meta: must be a JSON object (dict), got list"),
        ({"request_meta": {"blob": "x" * 70_000}}, "request_meta: is 70012 bytes as JSON; the most allowed is 65536"),
        ({"event_id": ""}, "event_id: must not be empty"),
        ({"latency_ms": -5}, "latency_ms: must not be negative, got -5"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error_and_writes_nothing(
    alice: Any, make_price: Any, fields: dict[str, Any], message: str
) -> None:
    make_price()
    call = {"user": alice, "feature": "chat", "provider": "acme", "model": "acme-1", "input_tokens": 10}
    call.update(fields)
    with pytest.raises(InvalidUsage) as caught:
        record_usage(**call)
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, ValueError)
    assert AIUsageLog.objects.count() == 0 and UserDailySpend.objects.count() == 0


def test_bad_tokens_inside_the_block_raise_and_write_nothing(alice: Any, make_price: Any) -> None:
    make_price()
    with (
        pytest.raises(InvalidUsage, match="output_tokens: must not be negative"),
        AIUsageTracker.track_ai_request(user=alice, feature="chat", provider="acme", model="acme-1") as tracker,
    ):
        tracker.set_tokens(input_tokens=1, output_tokens=-3)
    assert AIUsageLog.objects.count() == 0


def test_bad_identifiers_fail_before_the_block_runs(alice: Any) -> None:
    ran = []
    with (
        pytest.raises(InvalidUsage, match="feature: must not be empty"),
        AIUsageTracker.track_ai_request(user=alice, feature="", provider="acme", model="acme-1"),
    ):
        ran.append(True)
    assert ran == [] and AIUsageLog.objects.count() == 0


def test_openai_and_anthropic_usage_is_normalised(alice: Any, make_price: Any) -> None:
    make_price(provider="openai", model="gpt-x", cached_input_price=Decimal("1"))
    make_price(
        provider="anthropic", model="claude-x", cached_input_price=Decimal("0.2"), cache_write_price=Decimal("2.5")
    )
    openai_response = {
        "usage": {
            "prompt_tokens": 1200,
            "completion_tokens": 300,
            "prompt_tokens_details": {"cached_tokens": 200},
            "completion_tokens_details": {"reasoning_tokens": 100},
        }
    }
    with AIUsageTracker.track_ai_request(user=alice, feature="f", provider="openai", model="gpt-x") as tracker:
        tracker.set_usage_from_response(openai_response)
    anthropic_usage = {
        "input_tokens": 100,
        "cache_read_input_tokens": 1000,
        "cache_creation_input_tokens": 50,
        "output_tokens": 40,
    }
    with AIUsageTracker.track_ai_request(user=alice, feature="f", provider="anthropic", model="claude-x") as tracker2:
        tracker2.set_usage_from_response(anthropic_usage)
    fields = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")
    assert list(AIUsageLog.objects.order_by("id").values_list(*fields)) == [
        (1200, 200, 0, 300, 100),
        (1150, 1000, 50, 40, 0),
    ]
    assert tracker.log is not None and tracker.log.total_cost == Decimal("0.0046")  # (1000*2 + 200*1 + 300*8) / 1e6
    # (100*2 + 1000*0.2 + 50*2.5 + 40*8) / 1e6
    assert tracker2.log is not None and tracker2.log.total_cost == Decimal("0.000845")


def test_default_occurred_at_is_now_in_utc(alice: Any) -> None:
    before = timezone.now()
    result = record_usage(user=alice, feature="f", provider="acme", model="m", input_tokens=1)
    assert result.log is not None and before <= result.log.occurred_at <= timezone.now()
    assert result.log.occurred_at.utcoffset() == timedelta(0)


def _write_path_plans() -> dict[str, int]:
    """This connection's prepared write-path statements (the log write, the budget read) and how often each ran."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE %s OR statement LIKE %s",
            ["%INSERT INTO usage_aiusagelog%", "%FROM usage_userdailyspend%WHERE user_id = $2%"],
        )
        return {("log" if "INSERT INTO usage_aiusagelog" in text else "budget"): runs for text, runs in cursor}


@requires_postgres
def test_write_path_statements_are_prepared_once_and_reused(alice: Any, make_price: Any) -> None:
    make_price()

    def enforced_call() -> None:
        with AIUsageTracker.track_ai_request(
            user=alice, feature="chat", provider="acme", model="acme-1", enforce_budget=True
        ) as tracker:
            tracker.set_tokens(input_tokens=10, output_tokens=5)

    enforced_call()
    before = _write_path_plans()
    enforced_call()
    after = _write_path_plans()
    assert set(before) == {"log", "budget"}
    assert {name: after[name] - before[name] for name in after} == {"log": 1, "budget": 1}
    assert AIUsageLog.objects.count() == 2
