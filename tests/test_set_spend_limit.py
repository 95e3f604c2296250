"""setSpendLimit: an argument left out keeps its value, null restores the default, a value that is not a finite
number, is negative, or has more decimal places than stored is an argument error naming the argument; a caller
without the permission gets the permission error whatever they send (inline literals and variables alike), and a
refused change changes nothing."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from usage.models import UserSpendLimit
from usage.permissions import AUTHENTICATION_REQUIRED

NEEDS_PERMISSION = "setSpendLimit needs the usage.change_userspendlimit permission (to change spend limits)"
RESULT = "{ daily { limit } monthly { limit } }"
NEGATIVE_OR_HUGE = "must be a non-negative amount below 1e12, got "
CENTS = "has more than 2 decimal places; limits are stored in whole cents"

# (the argument as written inline, the same value sent as a JSON variable, the problem named after the argument)
BAD_AMOUNTS = [
    ('"abc"', '"abc"', "'abc' is not a decimal number"),
    ('""', '""', "'' is not a decimal number"),
    ('"1_000"', '"1_000"', "'1_000' is not a decimal number"),
    ('" 5"', '" 5"', "' 5' is not a decimal number"),
    ('"NaN"', '"NaN"', "'NaN' is not a finite decimal number"),
    ("NaN", '"NaN"', "'NaN' is not a finite decimal number"),
    ('"nan"', '"nan"', "'nan' is not a finite decimal number"),
    ('"Infinity"', '"Infinity"', "'Infinity' is not a finite decimal number"),
    ('"-Infinity"', '"-Infinity"', "'-Infinity' is not a finite decimal number"),
    ('"-inf"', '"-inf"', "'-inf' is not a finite decimal number"),
    ('"sNaN"', '"sNaN"', "'sNaN' is not a finite decimal number"),
    ('"١٢"', '"١٢"', "'١٢' is not a decimal number written in ASCII digits"),
    ('"-1"', "-1", NEGATIVE_OR_HUGE + "-1"),
    ("-0.01", "-0.01", NEGATIVE_OR_HUGE + "-0.01"),
    ('"0.065"', "0.065", "0.065 " + CENTS),
    ("0.30000000000000000001", "0.30000000000000000001", "0.30000000000000000001 " + CENTS),
    ('"1e-3"', "1e-3", "0.001 " + CENTS),
    ("1e400", "1e400", NEGATIVE_OR_HUGE + "1E+400"),
    ("1000000000000", "1000000000000", NEGATIVE_OR_HUGE + "1000000000000"),
    ("true", "true", "expected a decimal number as a string or number, got a boolean"),
    ("{}", "{}", "expected a decimal number as a string or number, got an object"),
    ('{a: "1"}', '{"a": "1"}', "expected a decimal number as a string or number, got an object"),
    ("[]", "[]", "expected a decimal number as a string or number, got a list"),
    ('["5"]', '["5"]', "expected a decimal number as a string or number, got a list"),
]


@pytest.fixture
def alice_limits(alice: Any) -> UserSpendLimit:
    return UserSpendLimit.objects.create(user=alice, daily_limit=Decimal("5.00"), monthly_limit=Decimal("50.00"))


@pytest.fixture
def manager(db: None) -> Any:
    user = get_user_model().objects.create_user("manager", "manager@example.com", "pw")
    user.user_permissions.add(Permission.objects.get(codename="change_userspendlimit"))
    return user


@pytest.fixture
def staff(db: None) -> Any:
    """Staff without the permission (is_staff grants none)."""
    return get_user_model().objects.create_user("staff", "staff@example.com", "pw", is_staff=True)


def call(user: Any | None, query: str, variables: dict[str, Any] | str | None = None) -> tuple[int, Any]:
    client = Client(raise_request_exception=False)
    if user is not None:
        client.force_login(user)
    # Variables go as JSON text, so numbers keep every digit written (as a client's JSON would).
    variables_text = variables if isinstance(variables, str) else json.dumps(variables or {})
    body = f'{{"query": {json.dumps(query)}, "variables": {variables_text}}}'
    response = client.post("/graphql/", body, content_type="application/json")
    return response.status_code, response.json()


def messages(answer: dict[str, Any]) -> list[str]:
    return [error["message"] for error in answer.get("errors", [])]


def stored(user: Any) -> list[tuple[Decimal | None, Decimal | None]]:
    return list(UserSpendLimit.objects.filter(user=user).values_list("daily_limit", "monthly_limit"))


def inline(user_id: object, argument: str, value: str) -> str:
    return f"mutation {{ setSpendLimit(userId: {user_id}, {argument}: {value}) {RESULT} }}"


def with_variable(user_id: object, argument: str) -> str:
    return f"mutation($v: Money) {{ setSpendLimit(userId: {user_id}, {argument}: $v) {RESULT} }}"


# -- with the permission: each bad amount is an argument error naming its argument ---------------------------------


@pytest.mark.parametrize("argument", ["dailyLimit", "monthlyLimit"])
@pytest.mark.parametrize(("literal", "variable", "problem"), BAD_AMOUNTS)
def test_a_bad_amount_is_refused_naming_the_argument(
    manager: Any, alice: Any, alice_limits: UserSpendLimit, argument: str, literal: str, variable: str, problem: str
) -> None:
    sent = [(inline(alice.pk, argument, literal), None), (with_variable(alice.pk, argument), f'{{"v": {variable}}}')]
    for query, variables in sent:
        status, answer = call(manager, query, variables)
        assert (status, answer["data"], messages(answer)) == (200, None, [f"{argument}: {problem}"]), query
    assert stored(alice) == [(Decimal("5.00"), Decimal("50.00"))]


@pytest.mark.parametrize(
    ("user_id", "message"),
    [
        ('"abc"', "userId: must be a user id such as 42, got 'abc'"),
        ('"-1"', "userId: must be a user id such as 42, got '-1'"),
        ('"1.5"', "userId: must be a user id such as 42, got '1.5'"),
        ('""', "userId: must be a user id such as 42, got ''"),
        ('"99999999999999999999999"', "userId: must be a user id such as 42, got '99999999999999999999999'"),
        ("987654", "userId: no user with id 987654"),
    ],
)
def test_a_malformed_or_unknown_user_is_refused_naming_it(manager: Any, user_id: str, message: str) -> None:
    status, answer = call(manager, inline(user_id, "dailyLimit", '"5"'))
    assert (status, answer["data"], messages(answer)) == (200, None, [message])
    assert not UserSpendLimit.objects.exists()


def test_an_omitted_limit_is_kept_and_null_restores_the_default(
    manager: Any, alice: Any, alice_limits: UserSpendLimit, settings: Any
) -> None:
    settings.AI_DEFAULT_DAILY_LIMIT, settings.AI_DEFAULT_MONTHLY_LIMIT = Decimal("10.00"), Decimal("100.00")
    status, answer = call(manager, inline(alice.pk, "monthlyLimit", '"0.07"'))
    assert (status, answer) == (
        200,
        {"data": {"setSpendLimit": {"daily": {"limit": "5"}, "monthly": {"limit": "0.07"}}}},
    )
    assert stored(alice) == [(Decimal("5.00"), Decimal("0.07"))]

    status, answer = call(manager, with_variable(alice.pk, "dailyLimit"), {"v": None})
    assert answer["data"]["setSpendLimit"] == {"daily": {"limit": "10"}, "monthly": {"limit": "0.07"}}
    assert stored(alice) == [(None, Decimal("0.07"))]

    query = f"mutation {{ setSpendLimit(userId: {alice.pk}, monthlyLimit: null, dailyLimit: 2.5) {RESULT} }}"
    _, answer = call(manager, query)
    assert answer["data"]["setSpendLimit"] == {"daily": {"limit": "2.5"}, "monthly": {"limit": "100"}}
    assert stored(alice) == [(Decimal("2.50"), None)]

    _, answer = call(manager, f"mutation {{ setSpendLimit(userId: {alice.pk}) {RESULT} }}")
    assert answer["data"]["setSpendLimit"] == {"daily": {"limit": "2.5"}, "monthly": {"limit": "100"}}
    assert stored(alice) == [(Decimal("2.50"), None)]


@pytest.mark.parametrize(
    ("value", "variable", "limit", "kept"),
    [
        ('"0"', "0", "0", Decimal("0.00")),
        ('"999999999999.99"', '"999999999999.99"', "999999999999.99", Decimal("999999999999.99")),
        ("12.30", "12.30", "12.3", Decimal("12.30")),
        ('"1e2"', "1e2", "100", Decimal("100.00")),
        ('"+7.1"', '"7.10"', "7.1", Decimal("7.10")),
    ],
)
def test_a_good_amount_is_stored_exactly(
    manager: Any, alice: Any, settings: Any, value: str, variable: str, limit: str, kept: Decimal
) -> None:
    settings.AI_DEFAULT_MONTHLY_LIMIT = Decimal("100.00")
    _, answer = call(manager, inline(alice.pk, "dailyLimit", value))
    assert answer == {"data": {"setSpendLimit": {"daily": {"limit": limit}, "monthly": {"limit": "100"}}}}
    UserSpendLimit.objects.all().delete()
    _, answer = call(manager, with_variable(alice.pk, "dailyLimit"), f'{{"v": {variable}}}')
    assert answer["data"]["setSpendLimit"]["daily"] == {"limit": limit}
    assert stored(alice) == [(kept, None)]


# -- without the permission: the permission error, whatever is sent ------------------------------------------------

EVERYTHING_WRONG = [
    *(("dailyLimit", literal, variable) for literal, variable, _ in BAD_AMOUNTS),
    ("monthlyLimit", '"0.065"', "0.065"),
    ("dailyLimit", '"5"', '"5"'),
]


@pytest.mark.parametrize("user_id", ["{alice}", '"abc"', '"-1"', "987654", '""', "true", "{}", "[]", "1.5", "null"])
@pytest.mark.parametrize(("argument", "literal", "variable"), EVERYTHING_WRONG)
@pytest.mark.parametrize("caller", ["alice", "staff", "anonymous"])
def test_without_the_permission_the_answer_is_the_permission_error(
    request: pytest.FixtureRequest,
    alice: Any,
    alice_limits: UserSpendLimit,
    staff: Any,
    caller: str,
    user_id: str,
    argument: str,
    literal: str,
    variable: str,
) -> None:
    user = None if caller == "anonymous" else request.getfixturevalue(caller)
    target = user_id.replace("{alice}", str(alice.pk))
    status, message = (401, AUTHENTICATION_REQUIRED) if user is None else (200, NEEDS_PERMISSION)
    for query, variables in ((inline(target, argument, literal), None), (with_variable(target, argument), "v")):
        got_status, answer = call(user, query, f'{{"v": {variable}}}' if variables else None)
        assert (got_status, answer["data"], messages(answer)) == (status, None, [message]), query
    assert stored(alice) == [(Decimal("5.00"), Decimal("50.00"))]
