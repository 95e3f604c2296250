"""The GraphQL endpoint: who may call what, API keys, recordUsage outcomes, spend queries, limits and masking."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from tests.helpers.people import user_with
from usage.apikeys import create_api_key, revoke
from usage.models import AIUsageLog, ApiKey, UserSpendLimit

MY_SPEND = "{ mySpend { username daily { spend limit status } } }"
USER_SPEND = "{ userSpend { totalCount rows { username } } }"
RECORD = """mutation($events: [UsageEventInput!]!) {
  recordUsage(events: $events) { index eventId outcome logId field reason }
}"""
SET_LIMIT = 'mutation { setSpendLimit(userId: "%s", dailyLimit: "5", monthlyLimit: null) { daily { limit } } }'
SYNC = "mutation { syncPricing { taskId } }"
ROLLUP = 'mutation { runRollup(start: "2026-03-01", end: "2026-03-02") { taskId } }'
DENIED_VIEW = "needs the usage.view_ai_analytics permission (to read every user's usage)"
ANONYMOUS = "authentication required: log in, or send 'Authorization: Bearer <api key>'"


def gql(client: Client, query: str, variables: dict[str, Any] | None = None, **headers: str) -> dict[str, Any]:
    response = client.post(
        "/graphql/", {"query": query, "variables": variables or {}}, content_type="application/json", headers=headers
    )
    assert response.status_code in (200, 400, 401), response.content
    return dict(response.json())


def error_messages(answer: dict[str, Any]) -> list[str]:
    return [error["message"] for error in answer.get("errors", [])]


@pytest.fixture
def staff(db: None) -> Any:
    return user_with("sam", is_staff=True)


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def bearer(user: Any) -> dict[str, str]:
    _key, raw = create_api_key(user, "tests")
    return {"Authorization": f"Bearer {raw}"}


def event(**fields: Any) -> dict[str, Any]:
    return {"feature": "chat", "provider": "acme", "model": "acme-1", "inputTokens": 1000, **fields}


def test_authorisation_table(alice: Any, bob: Any, staff: Any, make_price: Any) -> None:
    make_price()
    analyst = get_user_model().objects.create_user("ana", "ana@example.com", "pw")
    analyst.user_permissions.add(Permission.objects.get(codename="view_ai_analytics"))
    callers = {
        "anonymous": (Client(), {}),
        "user": (logged_in(alice), {}),
        "api key": (Client(), bearer(alice)),
        "analyst": (logged_in(analyst), {}),
        "staff": (logged_in(staff), {}),
        "staff key": (Client(), bearer(staff)),
    }

    def staff_only(action: str) -> dict[str, str]:
        permission, doing = (
            ("change_userspendlimit", "change spend limits")
            if action == "setSpendLimit"
            else ("queue_ai_jobs", "queue jobs")
        )
        refused = f"{action} needs the usage.{permission} permission (to {doing})"
        return {"anonymous": ANONYMOUS, "user": refused, "api key": refused, "analyst": refused}

    viewers_only = f"userSpend {DENIED_VIEW}"
    expected = {  # the callers refused, with the exact error; everyone else is allowed
        MY_SPEND: {"anonymous": ANONYMOUS},
        USER_SPEND: {"anonymous": ANONYMOUS, "user": viewers_only, "api key": viewers_only},
        SET_LIMIT % bob.pk: staff_only("setSpendLimit"),
        SYNC: staff_only("syncPricing"),
        ROLLUP: staff_only("runRollup"),
    }
    for query, refusals in expected.items():
        for name, (client, headers) in callers.items():
            answer = gql(client, query, **headers)
            assert error_messages(answer) == ([refusals[name]] if name in refusals else []), (query, name)
            if name in refusals:
                assert answer["data"] is None, (query, name)
    assert UserSpendLimit.objects.get(user=bob).daily_limit == Decimal("5")


def test_record_usage_reports_each_event_and_keeps_the_good_ones(alice: Any, bob: Any, make_price: Any) -> None:
    make_price(input_price=Decimal("2"))
    events = [
        event(eventId="e1"),
        event(eventId="e1"),  # the same call again
        event(eventId="e2", inputTokens="NaN"),
        event(eventId="e3", inputTokens=10, cachedInputTokens=20),
        event(eventId="e4", userId=str(bob.pk)),  # alice may not record for bob
        event(eventId="e5", occurredAt="yesterday"),
        event(
            eventId="e6",
            inputTokens="123456789",
            occurredAt="2026-03-01T10:00:00+01:00",
            status="timeout",
            requestMeta={"prompt": "résumé ✓", "tags": [1, None, {"deep": True}]},
            sessionId="s-9",
        ),
        event(eventId="e7", status="exploded"),
    ]
    answer = gql(Client(), RECORD, {"events": events}, **bearer(alice))
    rows = answer["data"]["recordUsage"]
    assert [(r["index"], r["eventId"], r["outcome"], r["field"], r["reason"]) for r in rows] == [
        (0, "e1", "RECORDED", None, None),
        (1, "e1", "DUPLICATE", None, None),
        (2, "e2", "REJECTED", "inputTokens", "inputTokens: must be a whole number, got 'NaN'"),
        (3, "e3", "REJECTED", "cachedInputTokens",
         "cachedInputTokens: cached input (20) plus cache write (0) tokens exceed input_tokens (10); "
         "input_tokens must include them"),
        (4, "e4", "REJECTED", "userId", "userId: you may record usage only for yourself (recording for others "
         "needs the usage.record_ai_usage_for_others permission)"),
        (5, "e5", "REJECTED", "occurredAt", "occurredAt: 'yesterday' is not an ISO 8601 date and time"),
        (6, "e6", "RECORDED", None, None),
        (7, "e7", "REJECTED", "status",
         "status: 'exploded' is not one of success, error, timeout, rate_limited, cancelled"),
    ]  # fmt: skip
    stored = AIUsageLog.objects.order_by("id").values_list("event_id", "user_id", "input_tokens", "total_cost")
    assert list(stored) == [
        ("e1", alice.pk, 1000, Decimal("0.002")),
        ("e6", alice.pk, 123456789, Decimal("246.913578")),
    ]
    assert rows[0]["logId"] == str(AIUsageLog.objects.get(event_id="e1").pk)
    e6 = AIUsageLog.objects.get(event_id="e6")
    assert (e6.request_meta, e6.response_meta, e6.session_id, e6.status) == (
        {"prompt": "résumé ✓", "tags": [1, None, {"deep": True}]}, None, "s-9", "timeout"
    )  # fmt: skip
    assert e6.occurred_at == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


EVERY_FIELD = {
    "feature": "search", "provider": "ACME", "model": "acme-1", "inputTokens": 1000, "outputTokens": 500,
    "cachedInputTokens": 200, "cacheWriteTokens": 100, "reasoningTokens": 100,
    "occurredAt": "2026-03-01T10:00:00+01:00", "latencyMs": 850, "status": "error", "errorMessage": "upstream 502",
    "sessionId": "s-1", "requestMeta": {"a": [1, "x", True]}, "responseMeta": {"b": None},
}  # fmt: skip
STORED_FIELDS = ("user_id", "feature", "provider", "model", "input_tokens", "output_tokens", "cached_input_tokens",
                 "cache_write_tokens", "reasoning_tokens", "occurred_at", "latency_ms", "status", "error_message",
                 "session_id", "request_meta", "response_meta", "total_cost")  # fmt: skip


def graphql_literal(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {graphql_literal(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(map(graphql_literal, value)) + "]"
    return json.dumps(value)


def test_every_event_field_is_read_as_sent_inline_or_as_variables(staff: Any, bob: Any, make_price: Any) -> None:
    make_price(cached_input_price=Decimal("0.50"), cache_write_price=Decimal("3.00"))
    fields = {**EVERY_FIELD, "userId": str(bob.pk)}
    sent = gql(logged_in(staff), RECORD, {"events": [{**fields, "eventId": "as-variables"}]})
    literal = graphql_literal({**fields, "eventId": "inline"})
    inline = f"mutation {{ recordUsage(events: [{literal}]) {{ outcome }} }}"
    written = gql(logged_in(staff), inline)
    assert [row["outcome"] for row in sent["data"]["recordUsage"] + written["data"]["recordUsage"]] == ["RECORDED"] * 2
    # 700 plain input tokens at 2 USD per million, 200 cached at 0.50, 100 cache writes at 3, 500 output at 8
    expected = (bob.pk, "search", "acme", "acme-1", 1000, 500, 200, 100, 100, datetime(2026, 3, 1, 9, tzinfo=UTC),
                850, "error", "upstream 502", "s-1", {"a": [1, "x", True]}, {"b": None}, Decimal("0.0058"))  # fmt: skip
    for event_id in ("as-variables", "inline"):
        assert AIUsageLog.objects.filter(event_id=event_id).values_list(*STORED_FIELDS).get() == expected


def test_staff_record_for_others_but_not_for_unknown_users(staff: Any, bob: Any, make_price: Any) -> None:
    make_price()
    answer = gql(logged_in(staff), RECORD, {"events": [event(userId=str(bob.pk)), event(userId="999999")]})
    assert [(r["outcome"], r["reason"]) for r in answer["data"]["recordUsage"]] == [
        ("RECORDED", None), ("REJECTED", "userId: no active user with id 999999")
    ]  # fmt: skip
    assert list(AIUsageLog.objects.values_list("user_id", flat=True)) == [bob.pk]


def test_more_than_a_thousand_events_are_refused_whole(alice: Any) -> None:
    answer = gql(logged_in(alice), RECORD, {"events": [event()] * 1001})
    assert error_messages(answer) == ["recordUsage: at most 1,000 events per request (over all aliases), got 1,001"]
    assert AIUsageLog.objects.count() == 0


def test_api_keys_unknown_revoked_or_malformed_are_refused(alice: Any) -> None:
    key, raw = create_api_key(alice, "ci")
    assert raw.startswith(key.prefix + "_") and key.key_hash != raw and raw not in str(ApiKey.objects.values())
    assert gql(Client(), MY_SPEND, Authorization=f"Bearer {raw}")["data"]["mySpend"]["username"] == "alice"
    revoke(ApiKey.objects.filter(pk=key.pk))
    for header in (f"Bearer {raw}", "Bearer aik_nothing", "Basic abc", raw):
        answer = gql(Client(), MY_SPEND, Authorization=header)
        assert error_messages(answer) == [
            "Authorization: unknown, revoked or malformed API key (expected 'Bearer aik_...')"
        ]


def test_session_posts_need_csrf_and_key_posts_do_not(alice: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    refused = client.post("/graphql/", {"query": MY_SPEND}, content_type="application/json")
    assert refused.status_code == 403
    keyed = Client(enforce_csrf_checks=True).post(
        "/graphql/", {"query": MY_SPEND}, content_type="application/json", headers=bearer(alice)
    )
    assert keyed.status_code == 200 and keyed.json()["data"]["mySpend"]["username"] == "alice"


def test_user_spend_lists_every_active_user_with_status_filter_and_search(staff: Any, make_price: Any) -> None:
    make_price(input_price=Decimal("1"))
    users = [get_user_model().objects.create_user(f"user{n:03}", f"u{n}@example.com") for n in range(250)]
    UserSpendLimit.objects.create(user=users[7], daily_limit=Decimal("1.00"))
    from usage.recording import record_usage

    record_usage(user=users[7], feature="chat", provider="acme", model="acme-1", input_tokens=900_000)
    client = logged_in(staff)
    everyone = gql(client, "{ userSpend(limit: 1000) { totalCount rows { username } } }")["data"]["userSpend"]
    assert everyone["totalCount"] == 251 and everyone["rows"][0]["username"] == "user007"
    warning = gql(client, "{ userSpend(status: WARNING) { totalCount rows { username daily { percent status } } } }")
    assert warning["data"]["userSpend"] == {
        "totalCount": 1, "rows": [{"username": "user007", "daily": {"percent": "90", "status": "WARNING"}}]
    }  # fmt: skip
    found = gql(client, '{ userSpend(search: "user24") { totalCount } }')["data"]["userSpend"]["totalCount"]
    assert found == 10
    assert error_messages(gql(client, "{ userSpend(limit: 0) { totalCount } }")) == [
        "limit: must be between 1 and 1000, got 0"
    ]


def test_abusive_queries_are_refused_and_introspection_is_off(alice: Any) -> None:
    client = logged_in(alice)
    nested = "query { __typename " + "".join(f"a{n}: mySpend {{ username }} " for n in range(31)) + "}"
    assert error_messages(gql(client, nested)) == ["31 aliases found. Allowed: 30"]
    cycle = "query { mySpend { ...A } } fragment A on UserSpendType { ...B } fragment B on UserSpendType { ...A }"
    assert error_messages(gql(client, cycle))[0].startswith("Cannot spread fragment")
    introspect = gql(client, "{ __schema { queryType { name } } }")
    disabled = "GraphQL introspection has been disabled, but the requested query contained the field"
    assert error_messages(introspect) == [f"{disabled} '__schema'.", f"{disabled} 'queryType'."]
    assert gql(client, MY_SPEND)["data"]["mySpend"]["daily"] == {"spend": "0", "limit": "10", "status": "OK"}


def test_depth_fragment_amplification_and_batches_are_refused(alice: Any) -> None:
    client = logged_in(alice)
    deep = "{ usageSummary { " + "byModel { metrics { " * 10 + "cost" + " } }" * 10 + " } }"
    assert error_messages(gql(client, deep))[0] == "'anonymous' exceeds maximum operation depth of 10"
    fragment = "fragment F on Query { " + " ".join(f"a{n}: mySpend {{ username }}" for n in range(10)) + " }"
    amplified = "{ " + " ".join(f"f{n}: __typename ...F" for n in range(5)) + " } " + fragment
    assert error_messages(gql(client, amplified)) == ["55 aliases found. Allowed: 30"]  # every spread of F counted
    batch = [{"query": MY_SPEND}] * 1000
    response = client.post("/graphql/", batch, content_type="application/json")
    assert response.status_code == 400 and AIUsageLog.objects.count() == 0


def test_a_full_batch_keeps_every_cent_in_logs_and_live_counters(alice: Any, make_price: Any) -> None:
    from usage.models import UserDailySpend

    make_price(input_price=Decimal("0.15"), output_price=Decimal("0.6"))
    first = [event(eventId=f"b{n}", inputTokens=n, outputTokens=n % 7) for n in range(990)]
    gql(logged_in(alice), RECORD, {"events": first[:10]})
    answer = gql(logged_in(alice), RECORD, {"events": first[:1000] + first[:10]})["data"]["recordUsage"]
    outcomes = [row["outcome"] for row in answer]
    assert outcomes == ["DUPLICATE"] * 10 + ["RECORDED"] * 980 + ["DUPLICATE"] * 10
    logs = AIUsageLog.objects.filter(user=alice)
    expected_cost = sum(
        (Decimal(n) * Decimal("0.15") + Decimal(n % 7) * Decimal("0.6")) / 1_000_000 for n in range(990)
    )
    assert logs.count() == 990
    assert sum(log.total_cost for log in logs) == expected_cost
    counter = UserDailySpend.objects.get(user=alice)
    assert (counter.requests, counter.cost) == (990, expected_cost)


def test_graphiql_only_while_debug(settings: Any) -> None:
    browser = {"HTTP_ACCEPT": "text/html"}
    settings.DEBUG = True
    page = Client().get("/graphql/", **browser)
    assert page.status_code == 200 and "graphiql" in page.content.decode().lower()
    settings.DEBUG = False
    assert Client().get("/graphql/", **browser).status_code == 404
