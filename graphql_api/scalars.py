"""Scalars with exact wire formats: money and other decimals in one canonical string form, big counts as digit
strings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NewType

import strawberry
from graphql import FloatValueNode, IntValueNode, StringValueNode, ValueNode, value_from_ast_untyped

from usage.money import canonical

BigInt = NewType("BigInt", int)
Money = NewType("Money", Decimal)
Count = NewType("Count", object)


@dataclass(frozen=True)
class UnreadableAmount:
    """An amount argument that is not a finite decimal number, kept so the resolver can refuse it by name after
    the caller's permission is checked (a caller without it gets the permission error whatever they send)."""

    raw: object
    problem: str


def _amount(value: Any) -> Decimal | UnreadableAmount:
    try:
        return _finite_decimal(value)
    except ScalarValueError as exc:
        return UnreadableAmount(value, str(exc))


class ScalarValueError(ValueError):
    """A value our scalars cannot read; shown to the caller (it is their mistake), named by argument."""


def _lenient_count(value: Any) -> Any:
    """Digit strings become ints; anything else is passed on for the event's own validation to reject by name."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():  # not "²" or "١٢"
        try:
            return int(value.strip())  # int() strips less than str.strip() does (not "\x1f")
        except ValueError:  # more digits than Python converts: left for the field's own check to refuse
            return value
    return value


class JsonNumber(float):
    """A JSON number with a fraction or exponent, as the float GraphQL's Float expects, keeping the digits the
    client wrote: an amount is read from those, so 0.30000000000000000001 is not silently rounded to 0.3."""

    text: str

    def __new__(cls, text: str) -> JsonNumber:
        number = super().__new__(cls, text)
        number.text = text
        return number


DECIMAL_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
NOT_FINITE = re.compile(r"[+-]?(s?nan|inf|infinity)", re.IGNORECASE)
JSON_KINDS = {bool: "a boolean", dict: "an object", list: "a list", type(None): "null"}


def _finite_decimal(value: Any) -> Decimal:
    """An exact decimal from a string or number; NaN and infinities are not amounts."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        kind = JSON_KINDS.get(type(value), type(value).__name__)
        raise ScalarValueError(f"expected a decimal number as a string or number, got {kind}")
    text = value.text if isinstance(value, JsonNumber) else str(value)
    if not text.isascii():  # Decimal() would read "١٢" as 12
        raise ScalarValueError(f"{text!r} is not a decimal number written in ASCII digits")
    if NOT_FINITE.fullmatch(text):
        raise ScalarValueError(f"{text!r} is not a finite decimal number")
    # Stricter than Decimal(), which also reads "1_000" and " 5 ".
    if not DECIMAL_NUMBER.fullmatch(text):
        raise ScalarValueError(f"{text!r} is not a decimal number")
    return Decimal(text)


def _literal(node: ValueNode, variables: dict[str, Any] | None = None) -> Any:
    """A literal's value; numbers as the digits written, never through a float."""
    if isinstance(node, IntValueNode | FloatValueNode | StringValueNode):
        return node.value
    return value_from_ast_untyped(node, variables)


def _amount_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> Decimal | UnreadableAmount:
    return _amount(_literal(node, variables))


def _decimal_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> Decimal:
    return _finite_decimal(_literal(node, variables))


SCALAR_MAP: dict[object, Any] = {
    Money: strawberry.scalar(
        name="Money",
        description=(
            "An exact amount of US dollars as a string: plain digits, no exponent, no trailing zeros "
            '("100", "0.0491605312", "0"). Sent as a string or a number; never rounded.'
        ),
        serialize=canonical,
        parse_value=_amount,
        parse_literal=_amount_literal,
    ),
    Decimal: strawberry.scalar(
        name="Decimal",
        description="An exact decimal number (a rate or a percentage) in the same form as Money.",
        serialize=canonical,
        parse_value=_finite_decimal,
        parse_literal=_decimal_literal,
    ),
    BigInt: strawberry.scalar(
        name="BigInt",
        description="A whole number of any size (token totals), serialised as a string of digits.",
        serialize=lambda value: str(int(value)),
        parse_value=lambda value: int(value),
    ),
    Count: strawberry.scalar(
        name="Count",
        description=(
            "A whole number (tokens, milliseconds) as a number or a string of digits. A bad value rejects only "
            "the event it belongs to, with a reason naming the field."
        ),
        serialize=lambda value: value,
        parse_value=_lenient_count,
    ),
}
