"""A hostile caller's mistakes, with production settings (DEBUG off): malformed bodies, NUL characters, extreme
dates and numbers, non-ASCII digits, schema probing, several operations at once, start-up without a key and the
Python API's bad arguments. Each gets HTTP 400 or an error naming the argument; never a 500 or "Unexpected error.",
and a refused change changes nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from usage.models import AIUsageLog, UserSpendLimit
from usage.tracker import AIUsageTracker, InvalidUsage, record_usage

ROOT = Path(__file__).resolve().parents[1]
GRAPHQL = "/graphql/"
NOT_AN_OBJECT = 'Expected a JSON object such as {"query": "{ health { ok } }"}'


@pytest.fixture(autouse=True)
def _production(settings: Any) -> None:
    settings.DEBUG = False


@pytest.fixture
def root(db: None) -> Any:
    return get_user_model().objects.create_superuser("root", "root@example.com", "pw")


def client_of(user: Any | None = None) -> Client:
    client = Client(raise_request_exception=False)  # a server error is seen as the 500 a caller would get
    if user is not None:
        client.force_login(user)
    return client


def post_graphql(
    client: Client, query: str, variables: dict[str, Any] | None = None, status: int = 200, **extra: Any
) -> Any:
    body = {"query": query, "variables": variables or {}, **extra}
    response = client.post(GRAPHQL, body, content_type="application/json")
    assert response.status_code == status, response.content
    return response.json()


def messages(answer: dict[str, Any]) -> list[str]:
    return [error["message"] for error in answer.get("errors", [])]


# -- bodies that are not a GraphQL request ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'"hello"', NOT_AN_OBJECT),
        (b"null", NOT_AN_OBJECT),
        (b"5", NOT_AN_OBJECT),
        (b"\xff\xfe{", "The request body is not valid UTF-8"),
        (b'{"query": "{ health { ok } }", "variables": {"n": NaN}}', "NaN is not a JSON value; send numbers as digits"),
        (b'{"query": ', "Unable to parse request body as JSON"),
        (b'{"query": "{ health { ok } }", "variables": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001,
         "The JSON is nested more than 512 levels deep"),
        (b'[{"query": "{ health { ok } }"}]', "Batching is not enabled"),
    ],
)  # fmt: skip
def test_a_body_that_is_not_a_graphql_request_is_400_in_json(alice: Any, body: bytes, message: str) -> None:
    response = client_of(alice).post(GRAPHQL, body, content_type="application/json")
    assert (response.status_code, response["Content-Type"]) == (400, "application/json")
    assert response.json() == {"data": None, "errors": [{"message": message}]}


def test_json_nested_512_levels_is_read_and_513_is_refused(alice: Any) -> None:
    query = "query($v: JSON) { health { ok } }"
    client = client_of(alice)
    for depth, status in ((510, 200), (511, 400)):  # the body and `variables` are the first two levels
        variables = '{"v": ' + "[" * depth + "]" * depth + "}"
        body = f'{{"query": "{query}", "variables": {variables}}}'
        assert client.post(GRAPHQL, body, content_type="application/json").status_code == status, depth


def test_deep_variables_in_a_query_string_are_400(alice: Any) -> None:
    url = GRAPHQL + "?query=%7Bhealth%7Bok%7D%7D&variables=" + "%5B" * 5000 + "%5D" * 5000
    response = client_of(alice).get(url)
    assert response.status_code == 400
    assert response.json()["errors"] == [{"message": "The JSON is nested more than 512 levels deep"}]


# -- NUL characters and lone surrogates ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("/admin/usage/aiusagelog/?q=%00", "the query string"),
        ("/admin/usage/aiusagelog/?provider=a%00b", "the query string"),
        ("/admin/usage/aiusagelog/export/?q=%00", "the query string"),
        ("/admin/usage/aiusagelog/export/?model=%00", "the query string"),
        ("/admin/ai-analytics/users/?q=%00&export=csv", "the query string"),
        ("/admin/usage/userspendlimit/?q=x&%00=1", "the query string"),
        ("/admin/usage/aiusagelog/%00/change/", "the address"),
    ],
)
def test_a_nul_in_an_admin_address_is_400_and_plain(root: Any, url: str, where: str) -> None:
    response = client_of(root).get(url)
    assert (response.status_code, response["Content-Type"]) == (400, "text/plain")
    assert response.content.decode() == f"NUL characters are not allowed in {where}"


def test_a_nul_in_a_form_field_is_400_and_nothing_changes(root: Any, alice: Any) -> None:
    response = client_of(root).post(
        "/admin/usage/userspendlimit/add/", {"user": str(alice.pk), "daily_limit": "1\x00", "monthly_limit": "2"}
    )
    assert (response.status_code, response.content.decode()) == (400, "NUL characters are not allowed in a form field")
    assert UserSpendLimit.objects.count() == 0
    login = client_of().post("/admin/login/", {"username": "root\x00", "password": "pw"})
    assert login.status_code == 400


def test_a_nul_in_the_graphql_query_string_is_400_in_json(alice: Any) -> None:
    response = client_of(alice).get(GRAPHQL + "?query=%00")
    assert (response.status_code, response["Content-Type"]) == (400, "application/json")
    assert response.json()["errors"] == [{"message": "NUL characters are not allowed in the query string"}]


@pytest.mark.parametrize(
    ("query", "variables", "message"),
    [
        ('{ usage(filter: {providers: ["a\\u0000"]}) { start } }', {},
         "filter.providers: must not contain NUL characters"),
        ('{ usage(filter: {sessionId: "\\u0000"}) { start } }', {},
         "filter.sessionId: must not contain NUL characters"),
        ("query($f: UsageFilter) { usage(filter: $f) { start } }", {"f": {"models": ["ok", "x\x00"]}},
         "filter.models: must not contain NUL characters"),
        ("query($p: String) { pricing(provider: $p) { model } }", {"p": "\x00"},
         "provider: must not contain NUL characters"),
        ("query($s: String) { userSpend(search: $s) { totalCount } }", {"s": "a\x00"},
         "search: must not contain NUL characters"),
        ("query($s: String) { userSpend(search: $s) { totalCount } }", {"s": "\ud800"},
         "search: is not valid Unicode text (it holds a lone surrogate)"),
        ('{ usage(range: {timeZone: "Europe/Berlin\\u0000"}) { start } }', {},
         "range.timeZone: must not contain NUL characters"),
        ('query($p: [String!] = ["a\\u0000b"]) { usage(filter: {providers: $p}) { start } }', {},
         "$p: must not contain NUL characters"),
        ('query($s: String = "a\\u0000b") { usageLogs(filter: {sessionId: $s}) { totalCount } }', {},
         "$s: must not contain NUL characters"),
    ],
)  # fmt: skip
def test_a_nul_in_a_graphql_string_is_refused_naming_the_argument(
    root: Any, query: str, variables: dict[str, Any], message: str
) -> None:
    answer = post_graphql(client_of(root), query, variables)
    assert (answer["data"], messages(answer)) == (None, [message])


def test_record_usage_still_judges_a_nul_event_alone(alice: Any) -> None:
    query = "mutation($e: [UsageEventInput!]!) { recordUsage(events: $e) { outcome field reason } }"
    good = {"feature": "chat", "provider": "acme", "model": "acme-1", "inputTokens": 5}
    answer = post_graphql(client_of(alice), query, {"e": [good, {**good, "feature": "a\x00b"}]})
    assert answer["data"]["recordUsage"] == [
        {"outcome": "RECORDED", "field": None, "reason": None},
        {"outcome": "REJECTED", "field": "feature", "reason": "feature: must not contain NUL characters"},
    ]
    assert AIUsageLog.objects.count() == 1


# -- dates, numbers and ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('{ usage(range: {start: "0001-01-01", timeZone: "Asia/Tokyo"}) { start } }',
         "range.start: 0001-01-01 is outside 1999-12-31 to 2100-01-01"),
        ('{ usage(range: {start: "9999-12-01", end: "9999-12-31"}) { start } }',
         "range.start: 9999-12-01 is outside 1999-12-31 to 2100-01-01"),
        ('{ costTimeline(range: {end: "9999-12-31", timeZone: "Pacific/Kiritimati"}) { source } }',
         "range.end: 9999-12-31 is outside 1999-12-31 to 2100-01-01"),
        ('{ usageSummary(range: {start: "1969-12-31", end: "1970-01-01"}) { start } }',
         "range.start: 1969-12-31 is outside 1999-12-31 to 2100-01-01"),
        ('{ cau(start: "0001-01-01", end: "0001-01-02") { cau } }',
         "start: 0001-01-01 is outside 1999-12-31 to 2100-01-01"),
        ('{ cauTrend(range: {end: "9999-12-31"}) { cau } }',
         "range.end: 9999-12-31 is outside 1999-12-31 to 2100-01-01"),
        ("{ cau(days: 0) { cau } }", "days: must be between 1 and 3660, got 0"),
        ("{ cau(days: 2147483647) { cau } }", "days: must be between 1 and 3660, got 2147483647"),
        ("{ usage(range: {days: -5}) { start } }", "range.days: must be between 1 and 3660, got -5"),
        ('{ usage(range: {timeZone: "Mars/Base"}) { start } }',
         "range.timeZone: 'Mars/Base' is not an IANA time zone such as Europe/Berlin"),
        ('{ usage(filter: {userIds: ["١٢"]}) { start } }', "filter.userIds: must be user ids"),
        ('{ usage(filter: {userIds: ["²"]}) { start } }', "filter.userIds: must be user ids"),
        ('{ usage(filter: {userIds: ["99999999999999999999"]}) { start } }', "filter.userIds: must be user ids"),
        ("{ usage(limit: 2147483648) { start } }",
         "Int cannot represent non 32-bit signed integer value: 2147483648"),
    ],
)  # fmt: skip
def test_extreme_dates_numbers_and_ids_are_refused_by_name(root: Any, query: str, message: str) -> None:
    answer = post_graphql(client_of(root), query)
    assert (answer["data"], messages(answer)) == (None, [message])


def test_cau_over_the_last_day_is_a_one_day_window(root: Any) -> None:
    answer = post_graphql(client_of(root), "{ cau(days: 1) { start end } }")["data"]["cau"]
    assert answer["start"] == answer["end"]


SET_LIMIT = "mutation { setSpendLimit(userId: %s) { daily { limit } monthly { limit } } }"


@pytest.fixture
def alice_limits(alice: Any) -> UserSpendLimit:
    return UserSpendLimit.objects.create(user=alice, daily_limit=Decimal("5.00"), monthly_limit=Decimal("50.00"))


def stored_limits(user: Any) -> tuple[Decimal | None, Decimal | None]:
    row = UserSpendLimit.objects.get(user=user)
    return row.daily_limit, row.monthly_limit


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ('"{id}", dailyLimit: "NaN"', "dailyLimit: 'NaN' is not a finite decimal number"),
        ('"{id}", dailyLimit: NaN', "dailyLimit: 'NaN' is not a finite decimal number"),
        ('"{id}", monthlyLimit: "-Infinity"', "monthlyLimit: '-Infinity' is not a finite decimal number"),
        ('"{id}", dailyLimit: 1e400', "dailyLimit: must be a non-negative amount below 1e12, got 1E+400"),
        ('"{id}", dailyLimit: "abc"', "dailyLimit: 'abc' is not a decimal number"),
        ('"{id}", dailyLimit: "١٢"', "dailyLimit: '١٢' is not a decimal number written in ASCII digits"),
        ('"{id}", dailyLimit: 1234567890123',
         "dailyLimit: must be a non-negative amount below 1e12, got 1234567890123"),
        ('"{id}", monthlyLimit: "1000000000000.00"',
         "monthlyLimit: must be a non-negative amount below 1e12, got 1000000000000.00"),
        ('"{id}", dailyLimit: "-0.01"', "dailyLimit: must be a non-negative amount below 1e12, got -0.01"),
        ('"{id}", dailyLimit: "0.001"',
         "dailyLimit: 0.001 has more than 2 decimal places; limits are stored in whole cents"),
        ('"{id}", monthlyLimit: 0.125',
         "monthlyLimit: 0.125 has more than 2 decimal places; limits are stored in whole cents"),
        ('"²", dailyLimit: "1"', "userId: must be a user id such as 42, got '²'"),
        ('"١٢", dailyLimit: "1"', "userId: must be a user id such as 42, got '١٢'"),
        ('"' + "9" * 5000 + '", dailyLimit: "1"', "userId: must be a user id such as 42, got '" + "9" * 5000 + "'"),
        ('"999999", dailyLimit: "1"', "userId: no user with id 999999"),
    ],
)  # fmt: skip
def test_a_bad_limit_is_refused_by_name_and_changes_nothing(
    root: Any, alice: Any, alice_limits: UserSpendLimit, arguments: str, message: str
) -> None:
    answer = post_graphql(client_of(root), SET_LIMIT % arguments.replace("{id}", str(alice.pk)))
    assert (answer["data"], messages(answer)) == (None, [message])
    assert stored_limits(alice) == (Decimal("5.00"), Decimal("50.00"))


def test_a_bad_limit_in_a_variable_names_the_variable(root: Any, alice: Any, alice_limits: UserSpendLimit) -> None:
    query = f"mutation($d: Money) {{ setSpendLimit(userId: {alice.pk}, dailyLimit: $d) {{ status }} }}"
    answer = post_graphql(client_of(root), query, {"d": "NaN"})
    assert messages(answer) == ["dailyLimit: 'NaN' is not a finite decimal number"]
    assert stored_limits(alice) == (Decimal("5.00"), Decimal("50.00"))


def test_an_omitted_limit_is_left_alone_and_null_means_the_default(
    root: Any, alice: Any, alice_limits: UserSpendLimit, settings: Any
) -> None:
    settings.AI_DEFAULT_DAILY_LIMIT = Decimal("10.00")
    client = client_of(root)
    answer = post_graphql(client, SET_LIMIT % f'"{alice.pk}", monthlyLimit: "0.07"')
    assert answer["data"]["setSpendLimit"] == {"daily": {"limit": "5"}, "monthly": {"limit": "0.07"}}
    assert stored_limits(alice) == (Decimal("5.00"), Decimal("0.07"))
    answer = post_graphql(client, SET_LIMIT % f'"{alice.pk}", dailyLimit: null')
    assert answer["data"]["setSpendLimit"] == {"daily": {"limit": "10"}, "monthly": {"limit": "0.07"}}
    assert stored_limits(alice) == (None, Decimal("0.07"))
    post_graphql(client, SET_LIMIT % f'"{alice.pk}", dailyLimit: "0.10", monthlyLimit: 3')
    assert stored_limits(alice) == (Decimal("0.10"), Decimal("3.00"))


# -- what errors reveal ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "variables", "message"),
    [
        ("{ usag { start } }", {}, "Cannot query field 'usag' on type 'Query'."),
        ("{ usage(filtr: {}) { start } }", {}, "Unknown argument 'filtr' on field 'Query.usage'."),
        ("{ usage(groupBy: [USR]) { start } }", {}, "Value 'USR' does not exist in 'Dimension' enum."),
        ("{ usage(range: {dys: 3}) { start } }", {},
         "Expected value of type 'TimeRange' not to include unknown field 'dys'. Found: { dys: 3 }."),
        ("query($f: UsageFiltr) { usage(filter: $f) { start } }", {}, "Unknown type 'UsageFiltr'."),
        ("query($g: Granularity!) { usage(granularity: $g) { start } }", {"g": "DAYS"},
         "Variable '$g' has invalid value: Value 'DAYS' does not exist in 'Granularity' enum."),
        ("query($r: TimeRange) { usage(range: $r) { start } }", {"r": {"startt": "2026-01-01"}},
         "Variable '$r' has invalid value: Expected value of type 'TimeRange' not to include unknown field "
         "'startt'. Found: {'startt': '2026-01-01'}."),
    ],
)  # fmt: skip
def test_errors_suggest_no_names_in_production(alice: Any, query: str, variables: dict[str, Any], message: str) -> None:
    answer = post_graphql(client_of(alice), query, variables)
    assert messages(answer) == [message]


def test_period_all_starts_at_the_callers_own_first_call(root: Any, alice: Any, bob: Any) -> None:
    for user, day in ((bob, datetime(2024, 1, 5, 9, tzinfo=UTC)), (alice, datetime(2025, 3, 10, 23, tzinfo=UTC))):
        record_usage(user=user, feature="chat", provider="acme", model="acme-1", input_tokens=1, occurred_at=day)
    query = '{ usage(range: {period: ALL, timeZone: "Asia/Tokyo"}) { start totals { requests } } }'
    mine = post_graphql(client_of(alice), query)["data"]["usage"]
    everyone = post_graphql(client_of(root), query)["data"]["usage"]
    assert mine == {"start": "2025-03-10T15:00:00+00:00", "totals": {"requests": 1}}  # 11 March in Tokyo
    assert everyone == {"start": "2024-01-04T15:00:00+00:00", "totals": {"requests": 2}}


def test_several_operations_need_an_operation_name(alice: Any) -> None:
    document = "query A { health { ok } } query B { mySpend { status } }"
    client = client_of(alice)
    for _ in range(2):  # the second answer comes through the validation cache
        answer = post_graphql(client, document)
        assert answer == {
            "data": None,
            "errors": [
                {
                    "message": "Must provide operation name if query contains multiple operations.",
                    "locations": [{"line": 1, "column": 1}, {"line": 1, "column": 27}],
                }
            ],
        }
    assert post_graphql(client, document, operationName="B") == {"data": {"mySpend": {"status": "OK"}}}
    assert post_graphql(client, "query A { health { ok } }") == {"data": {"health": {"ok": True}}}


# -- start-up --------------------------------------------------------------------------------------------------


def manage(*arguments: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """manage.py with the service's own settings and only the environment given (plus PATH)."""
    env = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "project.settings", **environment}
    env.setdefault("APP_DATA_DIR", str(ROOT / "var"))
    command = [sys.executable, "manage.py", *arguments]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("key", ["", "insecure-development-key-set-SECRET_KEY-in-production", "change-me"])
def test_production_refuses_to_start_without_a_real_secret_key(key: str) -> None:
    started = manage("check", DEBUG="false", SECRET_KEY=key)
    assert started.returncode == 1
    problem = "unset" if not key else "a known insecure placeholder"
    assert (
        f"ImproperlyConfigured: SECRET_KEY must be set to a long random value when DEBUG is off (it is {problem}); "
        "generate one with python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    ) in started.stderr


def test_development_starts_without_a_key() -> None:
    started = manage("check", DEBUG="true")
    assert (started.returncode, started.stdout.strip()) == (0, "System check identified no issues (0 silenced).")


def compose_environment() -> dict[str, str]:
    """The web service's environment in docker-compose.yml, with each ${NAME:-default} at its default."""
    text = (ROOT / "docker-compose.yml").read_text()
    block = text[text.index("  environment:\n") : text.index("  depends_on:")]
    environment = {}
    for name, value in re.findall(r"^    ([A-Z_]+): (.*)$", block, re.M):
        default = re.fullmatch(r"\$\{\w+:-(.*)\}", value)
        environment[name] = default.group(1) if default else value.strip('"')
    environment["SECRET_KEY"] = "kX9vQ2mR7tL4wZ8pN3bF6hJ1sD5gC0yA-uE_iO7rT2nM9qW4xV"  # compose requires one
    return environment


def test_the_docker_compose_environment_passes_the_deployment_checks() -> None:
    environment = compose_environment()
    assert (environment["DEBUG"], environment["SECURE_SSL_REDIRECT"]) == ("false", "true")
    checked = manage("check", "--deploy", "--fail-level", "WARNING", **environment)
    assert (checked.returncode, checked.stdout.strip()) == (0, "System check identified no issues (0 silenced)."), (
        checked.stderr
    )


def test_production_redirects_to_https_and_marks_cookies_secure() -> None:
    shown = manage(
        "shell",
        "-c",
        "from django.conf import settings as s; print(s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, "
        "s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS)",
        DEBUG="false",
        SECRET_KEY="k" * 60,
    )
    assert shown.stdout.strip().splitlines()[-1] == "True True True 31536000"
    development = manage("shell", "-c", "from django.conf import settings as s; print(s.SECURE_SSL_REDIRECT, "
                         "s.SESSION_COOKIE_SECURE, s.SECURE_HSTS_SECONDS)", DEBUG="true")  # fmt: skip
    assert development.stdout.strip().splitlines()[-1] == "False False 0"


# -- the Python API --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ("abc", "monthly_budget: 'abc' is not an amount such as '100.00'"),
        ("١٢", "monthly_budget: '١٢' is not an amount such as '100.00'"),
        ("NaN", "monthly_budget: must be a finite amount of zero or more, got 'NaN'"),
        (Decimal("-1"), "monthly_budget: must be a finite amount of zero or more, got Decimal('-1')"),
        (1.5, "monthly_budget: must be a Decimal, int or string such as '100.00', got float"),
        ([1], "monthly_budget: must be a Decimal, int or string such as '100.00', got list"),
    ],
)
def test_check_user_budget_refuses_a_bad_budget_by_name(alice: Any, budget: Any, message: str) -> None:
    with pytest.raises(InvalidUsage) as refused:
        AIUsageTracker.check_user_budget(alice, monthly_budget=budget)
    assert (refused.value.field, str(refused.value)) == ("monthly_budget", message)


def test_check_user_budget_reads_an_exact_budget(alice: Any) -> None:
    assert AIUsageTracker.check_user_budget(alice, monthly_budget="0.10") == (False, Decimal(0), Decimal("0.10"))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"days": 10**9}, "days: must be at most 3660 (ten years), got 1000000000"),
        ({"days": 0}, "days: must be a whole number of at least 1, got 0"),
        ({"start_date": "2026-01-01", "end_date": date(2026, 1, 2)}, "start_date: must be a date, got str"),
        ({"start_date": date(2026, 1, 1), "end_date": 5}, "end_date: must be a date, got int"),
    ],
)
def test_get_cau_refuses_bad_arguments_by_name(db: None, arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidUsage, match=f"^{re.escape(message)}$"):
        AIUsageTracker.get_cau(**arguments)


@pytest.mark.parametrize(
    ("provider", "usage", "message"),
    [
        ("openai", {"prompt_tokens": "x"}, "prompt_tokens: must be a whole number, got 'x'"),
        ("openai", {"prompt_tokens": 2.7, "completion_tokens": 1}, "prompt_tokens: must be a whole number, got 2.7"),
        ("openai", {"prompt_tokens": 9, "prompt_tokens_details": {"cached_tokens": "²"}},
         "prompt_tokens_details.cached_tokens: must be a whole number, got '²'"),
        ("openai", {"input_tokens": 3, "output_tokens": -1}, "output_tokens: must not be negative, got -1"),
        ("anthropic", {"input_tokens": 10, "cache_read_input_tokens": 2.5},
         "cache_read_input_tokens: must be a whole number, got 2.5"),
        ("anthropic", {"input_tokens": 10, "output_tokens": float("nan")},
         "output_tokens: must be a whole number, got nan"),
    ],
)  # fmt: skip
def test_a_bad_response_in_the_tracker_block_is_refused_by_name_and_writes_nothing(
    alice: Any, provider: str, usage: dict[str, Any], message: str
) -> None:
    with (
        pytest.raises(InvalidUsage, match=f"^{re.escape(message)}$"),
        AIUsageTracker.track_ai_request(user=alice, feature="chat", provider=provider, model="m-1") as tracker,
    ):
        tracker.set_usage_from_response({"usage": usage})
    assert AIUsageLog.objects.count() == 0


def test_whole_counts_from_a_response_are_stored_exactly(alice: Any) -> None:
    usage = {"prompt_tokens": 2.0, "completion_tokens": "7", "prompt_tokens_details": {"cached_tokens": None}}
    with AIUsageTracker.track_ai_request(user=alice, feature="chat", provider="openai", model="m-1") as tracker:
        tracker.set_usage_from_response(usage)
    assert tracker.log is not None
    stored = AIUsageLog.objects.get(pk=tracker.log.pk)
    assert (stored.input_tokens, stored.output_tokens, stored.cached_input_tokens) == (2, 7, 0)


# -- what a first round of attacks still got through -------------------------------------------------------------


@pytest.mark.parametrize("zone", ["Europe", "America", "a" * 300])
def test_a_time_zone_naming_a_folder_or_too_long_is_refused_by_name(alice: Any, zone: str) -> None:
    answer = post_graphql(client_of(alice), "query($z: String) { usage(range: {timeZone: $z}) { start } }", {"z": zone})
    assert (answer["data"], messages(answer)) == (
        None, [f"range.timeZone: {zone!r} is not an IANA time zone such as Europe/Berlin"]
    )  # fmt: skip


def test_a_body_over_the_size_limit_is_413_in_json(alice: Any, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    body = json.dumps({"query": "{ health { ok } }", "variables": {"pad": "x" * 4096}})
    response = client_of(alice).post(GRAPHQL, body, content_type="application/json")
    assert (response.status_code, response.json()) == (413, {"data": None, "errors": [
        {"message": "The request body is larger than 2,048 bytes; send fewer events"}]})  # fmt: skip


def test_a_session_post_without_its_csrf_token_is_refused_in_json(alice: Any) -> None:
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(alice)
    response = client.post(GRAPHQL, {"query": "{ mySpend { status } }"}, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["errors"][0]["message"].startswith("CSRF verification failed: a request with a session")


def test_a_stale_session_cookie_is_no_credential(db: None) -> None:
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.cookies["sessionid"] = "garbage"
    answer = client.post(GRAPHQL, {"query": "{ health { ok } mySpend { status } }"}, content_type="application/json")
    assert answer.status_code == 401
    assert messages(answer.json()) == ["authentication required: log in, or send 'Authorization: Bearer <api key>'"]


def test_a_rollup_of_days_no_call_can_have_is_refused_by_name(root: Any) -> None:
    answer = post_graphql(client_of(root), 'mutation { runRollup(start: "0001-01-01", end: "9999-12-31") { taskId } }')
    assert (answer["data"], messages(answer)) == (None, ["start: 0001-01-01 is outside 1999-12-31 to 2100-01-01"])


def test_a_refusal_is_one_log_line_without_a_traceback(alice: Any, caplog: Any) -> None:
    with caplog.at_level("INFO"):
        for query in ("{ topUsers { source } }", "{ usage(range: {days: 0}) { start } }"):
            assert post_graphql(client_of(alice), query)["data"] is None
    refusals = [r for r in caplog.records if r.name == "graphql_api.client_errors"]
    assert sorted(r.getMessage() for r in refusals) == [
        "GraphQL request refused at topUsers: topUsers needs the usage.view_ai_analytics permission (to read "
        "every user's usage)",
        "GraphQL request refused at usage: range.days: must be between 1 and 3660, got 0",
    ]
    assert [r for r in caplog.records if r.exc_info or r.name.startswith("strawberry")] == []
