"""Scalars with exact wire formats: money and other decimals in one canonical string form, big counts as digit
strings."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NewType

import strawberry

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


def _finite_decimal(value: Any) -> Decimal:
    """An exact decimal from a string or number; NaN and infinities are not amounts."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ScalarValueError(f"expected a decimal number as a string or number, got {value!r}")
    if isinstance(value, str) and not value.isascii():  # Decimal() would read "١٢" as 12
        raise ScalarValueError(f"{value!r} is not a decimal number written in ASCII digits")
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        raise ScalarValueError(f"{value!r} is not a decimal number") from None
    if not number.is_finite():
        raise ScalarValueError(f"{value!r} is not a finite decimal number")
    return number


SCALAR_MAP: dict[object, Any] = {
    Money: strawberry.scalar(
        name="Money",
        description=(
            "An exact amount of US dollars as a string: plain digits, no exponent, no trailing zeros "
            '("100", "0.0491605312", "0"). Sent as a string or a number; never rounded.'
        ),
        serialize=canonical,
        parse_value=_amount,
    ),
    Decimal: strawberry.scalar(
        name="Decimal",
        description="An exact decimal number (a rate or a percentage) in the same form as Money.",
        serialize=canonical,
        parse_value=_finite_decimal,
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
