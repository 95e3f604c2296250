"""Bounded values: absurd usage is refused on every write path, naming the field, and the largest usage one user can
store (allowed, or written around validation) never makes a rollup, a CAU run, an admin page or a GraphQL query
fail, for that user or anyone else."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from analytics.models import CAUSnapshot, RollupRun, RunOutcome, UserAICostSummary
from analytics.rollup import run_rollup
from tasks import compute_cau
from tests.conftest import as_summed
from tests.helpers.fake_langsmith import API_KEY, FakeLangSmith
from tests.test_graphql_api import RECORD, bearer, error_messages, gql, logged_in
from usage import periods
from usage.langsmith_import import import_project
from usage.models import AIUsageLog, UserDailySpend
from usage.tracker import AIUsageTracker, InvalidUsage, record_usage

O1_PRO = {"provider": "openai", "model": "o1-pro"}  # the costliest catalog model: 150 / 600 USD per million tokens
ATTACK = {"feature": "chat", **O1_PRO, "inputTokens": 10**15, "outputTokens": 10**15}
TOKEN_REFUSAL = "inputTokens: 1000000000000000 is more than AI_MAX_TOKENS_PER_CALL (1000000000)"
# The most o1-pro output one call may have under the 10,000 USD cap, and one token more.
CAPPED_OUTPUT = 16_666_666  # 9999.9996 USD
COST_REFUSAL = (
    "the call would cost 10000.0002 USD, more than AI_MAX_COST_PER_CALL (10000.00); "
    "its 16666667 output tokens cost the most"
)
# What a log row can hold at most, whatever wrote it: bigint tokens, numeric(32,18) cost, integer latency.
BIGGEST_TOKENS = 2**63 - 1
# SQLite keeps decimals as floats read back to 15 digits; there the largest is the one those 15 digits keep below
# 10^14 (one that rounds up to 10^14 no longer fits the column).
BIGGEST_COST = Decimal("99999999999999.999999999999999999" if connection.vendor == "postgresql" else "99999999999999.9")
BIGGEST_LATENCY = 2**31 - 1


def nothing_stored() -> bool:
    return not AIUsageLog.objects.exists() and not UserDailySpend.objects.exists()


def o1_call(user: Any, **fields: Any) -> dict[str, Any]:
    return {"user": user, "feature": "chat", **O1_PRO, **fields}


# --- the caps, on every write path ------------------------------------------------------------------------


def test_record_usage_refuses_tokens_over_the_cap_and_accepts_the_cap(alice: Any, make_price: Any) -> None:
    make_price()
    with pytest.raises(InvalidUsage) as refused:
        record_usage(user=alice, feature="chat", provider="acme", model="acme-1", input_tokens=2_000_000_000)
    assert str(refused.value) == "input_tokens: 2000000000 is more than AI_MAX_TOKENS_PER_CALL (1000000000)"
    assert refused.value.field == "input_tokens"
    assert nothing_stored()
    log = record_usage(user=alice, feature="chat", provider="acme", model="acme-1", input_tokens=10**9).log
    assert log is not None and log.total_cost == Decimal("2000")


def test_record_usage_refuses_a_call_costing_more_than_the_cap(alice: Any, catalog: None) -> None:
    with pytest.raises(InvalidUsage) as refused:
        record_usage(**o1_call(alice, input_tokens=0, output_tokens=CAPPED_OUTPUT + 1))
    assert str(refused.value) == f"output_tokens: {COST_REFUSAL}"
    assert nothing_stored()
    log = record_usage(**o1_call(alice, output_tokens=CAPPED_OUTPUT)).log
    assert log is not None and log.total_cost == Decimal("9999.9996")


@override_settings(AI_MAX_TOKENS_PER_CALL=5000, AI_MAX_COST_PER_CALL=Decimal("0.01"))
def test_the_caps_are_read_when_used_and_the_costliest_field_is_named(alice: Any, make_price: Any) -> None:
    make_price(cached_input_price=Decimal("0.50"))  # input 2.00, output 8.00, cached reads 0.50 per million
    call = {"user": alice, "feature": "chat", "provider": "acme", "model": "acme-1"}
    with pytest.raises(InvalidUsage) as too_many:
        record_usage(**call, input_tokens=5001)
    assert str(too_many.value) == "input_tokens: 5001 is more than AI_MAX_TOKENS_PER_CALL (5000)"
    with pytest.raises(InvalidUsage) as input_costs_most:
        record_usage(**call, input_tokens=5000, output_tokens=1000)  # 0.010 input + 0.008 output
    assert str(input_costs_most.value) == (
        "input_tokens: the call would cost 0.018 USD, more than AI_MAX_COST_PER_CALL (0.01); "
        "its 5000 input tokens cost the most"
    )
    with pytest.raises(InvalidUsage) as output_costs_most:
        record_usage(**call, input_tokens=5000, cached_input_tokens=5000, output_tokens=1500)  # 0.0025 + 0.012
    assert output_costs_most.value.field == "output_tokens"
    assert nothing_stored()


def test_the_tracker_refuses_inside_the_block_and_writes_nothing(alice: Any, catalog: None) -> None:
    reached: list[str] = []
    with (
        pytest.raises(InvalidUsage) as refused,
        AIUsageTracker.track_ai_request(user=alice, feature="chat", **O1_PRO) as tracker,
    ):
        tracker.set_tokens(input_tokens=0, output_tokens=CAPPED_OUTPUT + 1)
        reached.append("after set_tokens")
    assert str(refused.value) == f"output_tokens: {COST_REFUSAL}"
    with (
        pytest.raises(InvalidUsage) as from_response,
        AIUsageTracker.track_ai_request(user=alice, feature="chat", **O1_PRO) as tracker,
    ):
        tracker.set_usage_from_response({"usage": {"prompt_tokens": 0, "completion_tokens": CAPPED_OUTPUT + 1}})
        reached.append("after set_usage_from_response")
    assert str(from_response.value) == f"output_tokens: {COST_REFUSAL}"
    with (
        pytest.raises(InvalidUsage) as too_many,
        AIUsageTracker.track_ai_request(user=alice, feature="chat", **O1_PRO) as tracker,
    ):
        tracker.set_tokens(input_tokens=10**15)
        reached.append("after set_tokens")
    assert str(too_many.value) == "input_tokens: 1000000000000000 is more than AI_MAX_TOKENS_PER_CALL (1000000000)"
    assert reached == []
    assert nothing_stored()
    with AIUsageTracker.track_ai_request(user=alice, feature="chat", **O1_PRO) as tracker:
        tracker.set_tokens(output_tokens=CAPPED_OUTPUT)
    assert tracker.log is not None and AIUsageLog.objects.get().total_cost == Decimal("9999.9996")


def outcomes(answer: dict[str, Any]) -> list[tuple[str, str | None, str | None]]:
    return [(r["outcome"], r["field"], r["reason"]) for r in answer["data"]["recordUsage"]]


def test_the_attackers_batches_are_rejected_by_field_and_the_next_rollup_succeeds(alice: Any, catalog: None) -> None:
    key = bearer(alice)  # an ordinary user with an API key
    client = logged_in(alice)
    client.logout()
    for batch in range(2):
        events = [{**ATTACK, "eventId": f"b{batch}-{n}"} for n in range(130)]
        answer = gql(client, RECORD, {"events": events}, **key)
        assert outcomes(answer) == [("REJECTED", "inputTokens", TOKEN_REFUSAL)] * 130
    assert nothing_stored()
    assert run_rollup().outcome == RunOutcome.SUCCEEDED
    good = [{"feature": "chat", **O1_PRO, "inputTokens": 1000 * n, "outputTokens": 100} for n in (1, 2, 3)]
    answer = gql(client, RECORD, {"events": [ATTACK] * 200 + good}, **key)
    assert outcomes(answer) == [("REJECTED", "inputTokens", TOKEN_REFUSAL)] * 200 + [("RECORDED", None, None)] * 3
    costs = sorted(AIUsageLog.objects.values_list("total_cost", flat=True))
    assert costs == [Decimal("0.21"), Decimal("0.36"), Decimal("0.51")]  # 150 per million in, 600 out
    assert UserDailySpend.objects.get().cost == as_summed(Decimal("1.08"))


def test_record_usage_over_graphql_names_the_costliest_field(alice: Any, catalog: None) -> None:
    events = [{"feature": "chat", **O1_PRO, "outputTokens": CAPPED_OUTPUT + 1}]
    answer = gql(logged_in(alice), RECORD, {"events": events})
    assert outcomes(answer) == [("REJECTED", "outputTokens", f"outputTokens: {COST_REFUSAL}")]
    assert nothing_stored()


@pytest.fixture
def langsmith(settings: Any) -> Iterator[FakeLangSmith]:
    server = FakeLangSmith()
    settings.LANGSMITH_API_KEY = API_KEY
    settings.LANGSMITH_ENDPOINT = server.url
    yield server
    server.stop()


def test_the_langsmith_import_skips_and_counts_a_refused_run(
    langsmith: FakeLangSmith, alice: Any, catalog: None
) -> None:
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    for minute, output_tokens in enumerate([100, 10**15, CAPPED_OUTPUT + 1, 200]):
        langsmith.add_run(
            "team-app", start_time=(start + timedelta(minutes=minute)).isoformat(),
            end_time=(start + timedelta(minutes=minute, seconds=1)).isoformat(),
            extra={"metadata": {"ls_provider": "openai", "ls_model_name": "o1-pro", "user_id": alice.pk,
                                "usage_metadata": {"input_tokens": 10, "output_tokens": output_tokens}}},
        )  # fmt: skip
    report = import_project("team-app")
    assert (report.fetched, report.recorded, report.rejected) == (4, 2, 2)
    assert sorted(AIUsageLog.objects.values_list("output_tokens", "total_cost")) == [
        (100, Decimal("0.0615")),
        (200, Decimal("0.1215")),
    ]


# --- the largest usage one user can store breaks nothing ----------------------------------------------------

DAYS = 40
GRAPHQL_QUERIES = [
    "{ usage(range: {days: 60}, groupBy: [USER, MODEL]) { totals { cost inputTokens totalTokens avgLatencyMs"
    " avgCostPerRequest activeUsers } rows { userId metrics { cost outputTokens } } } }",
    "{ costTimeline(range: {days: 60}, groupBy: [PROVIDER]) { rows { period metrics { cost inputTokens } } } }",
    "{ tokenUsage(range: {days: 60}) { totals { totalTokens } byProvider { provider metrics { inputTokens } } } }",
    "{ usageSummary(range: {days: 30}) { totals { cost inputTokens } costChangePercent requestsChangePercent } }",
    "{ topUsers(range: {days: 60}, limit: 5) { rows { userId metrics { cost inputTokens avgLatencyMs } } } }",
    "{ topUsers(range: {days: 60}, limit: 5, orderBy: TOKENS) { rows { userId metrics { totalTokens } } } }",
    "{ costliestRequests(range: {days: 60}, limit: 5) { cost inputTokens latencyMs } }",
    "{ usageLogs(range: {days: 60}, pagination: {limit: 5}) { totalCount results { cost inputTokens outputTokens } } }",
    "{ userSpend { totalCount rows { username daily { spend percent } monthly { spend percent } status } } }",
    "{ mySpend { daily { spend } monthly { spend } status } }",
    "{ cau(days: 30) { cau activeUsers totalCost } }",
    "{ cauTrend(windowDays: 30, range: {days: 3}) { cau activeUsers } }",
]


@pytest.fixture
def worst_user(alice: Any, make_price: Any, catalog: None) -> dict[str, Any]:
    """mallory, on each of 40 days: two calls at the cost cap on o1-pro, one at the token cap on every field (on an
    unpriced model), and three rows written straight to the table at the largest values a row can hold. alice makes
    one ordinary call a day, on o1-pro too (so she shares the all-user daily rows with mallory)."""
    mallory = get_user_model().objects.create_user("mallory")
    make_price(input_price=Decimal("2.00"))
    now = timezone.now()
    alice_cost = Decimal(0)
    bypassed = []
    at_cap = {"input_tokens": 10**9, "cached_input_tokens": 5 * 10**8, "cache_write_tokens": 5 * 10**8,
              "output_tokens": 10**9, "reasoning_tokens": 10**9}  # fmt: skip
    for days_ago in range(DAYS):
        when = now - timedelta(days=days_ago, minutes=5)
        for n in range(2):
            record_usage(**o1_call(mallory, output_tokens=CAPPED_OUTPUT, occurred_at=when - timedelta(minutes=n)))
        record_usage(user=mallory, feature="chat", provider="acme", model="unpriced-1", occurred_at=when, **at_cap)
        log = record_usage(**o1_call(alice, input_tokens=1234 + days_ago, output_tokens=56, occurred_at=when)).log
        assert log is not None and log.total_cost is not None
        alice_cost += log.total_cost
        bypassed += [AIUsageLog(user=mallory, feature="chat", **O1_PRO, occurred_at=when, input_tokens=BIGGEST_TOKENS,
                                cached_input_tokens=2**62, cache_write_tokens=2**62 - 1,  # parts within the input
                                output_tokens=BIGGEST_TOKENS, reasoning_tokens=BIGGEST_TOKENS,
                                total_cost=BIGGEST_COST, latency_ms=BIGGEST_LATENCY) for _ in range(3)]  # fmt: skip
    AIUsageLog.objects.bulk_create(bypassed)  # around validation, as a hand-written INSERT would be
    return {"mallory": mallory, "alice_cost": alice_cost, "alice_input": sum(1234 + d for d in range(DAYS))}


def test_the_largest_usage_breaks_no_rollup_cau_page_or_query(worst_user: dict[str, Any], alice: Any) -> None:
    assert run_rollup().outcome == RunOutcome.SUCCEEDED
    today = periods.today()
    call_command("rollup_usage", "--start", str(today - timedelta(days=DAYS + 1)), "--end", str(today))
    assert set(RollupRun.objects.values_list("outcome", flat=True)) == {RunOutcome.SUCCEEDED}  # a week per run
    assert compute_cau() == {"snapshots": 6}
    mallory = worst_user["mallory"]
    mallory_days = UserAICostSummary.objects.filter(user=mallory)
    assert mallory_days.count() == DAYS + (1 if mallory_days.filter(date=today - timedelta(days=DAYS)).exists() else 0)
    biggest_day = max(mallory_days, key=lambda s: s.input_tokens)
    assert biggest_day.input_tokens >= 3 * BIGGEST_TOKENS and isinstance(biggest_day.input_tokens, int)
    assert CAUSnapshot.objects.filter(window_days=30, date=today).get().total_cost > 30 * 3 * BIGGEST_COST / 2

    alice_days = UserAICostSummary.objects.filter(user=alice)
    assert sum(s.total_cost for s in alice_days) == as_summed(worst_user["alice_cost"])
    assert sum(s.input_tokens for s in alice_days) == worst_user["alice_input"]
    assert sum(s.total_requests for s in alice_days) == DAYS

    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    for page in ["/admin/ai-analytics/", "/admin/ai-analytics/users/", "/admin/ai-analytics/system/",
                 "/admin/usage/aiusagelog/", "/admin/ai-analytics/?days=90"]:  # fmt: skip
        assert logged_in(admin).get(page).status_code == 200, page

    for user in (admin, mallory, alice):
        for query in GRAPHQL_QUERIES:
            answer = gql(logged_in(user), query)
            if user is admin or not query.startswith(("{ userSpend", "{ cau", "{ topUsers")):
                assert "errors" not in answer, (user.username, query, answer)
            else:  # for readers of everyone's usage: refused for what it is, not masked
                assert error_messages(answer)[0].endswith(
                    "needs the usage.view_ai_analytics permission (to read every user's usage)"
                )
    totals = gql(logged_in(alice), "{ usage(range: {days: 60}) { totals { cost inputTokens requests } } }")
    totals = totals["data"]["usage"]["totals"]
    assert (Decimal(totals["cost"]), totals["inputTokens"], totals["requests"]) == (
        as_summed(worst_user["alice_cost"]), str(worst_user["alice_input"]), DAYS
    )  # fmt: skip
