"""Scalars with exact wire formats: money as a plain decimal string, big counts as digit strings."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, NewType

import strawberry

BigInt = NewType("BigInt", int)
Count = NewType("Count", object)


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
    # Money leaves the API as a plain decimal string ("0.000150"), never "1.5E-4" and never a float.
    Decimal: strawberry.scalar(
        name="Decimal",
        description="An exact decimal number, serialised as a plain string such as 0.000150.",
        serialize=lambda value: format(value, "f"),
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
