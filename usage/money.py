"""The one machine-readable form of an amount, shared by the API and the CSV exports."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def canonical(amount: Decimal) -> str:
    """Exact, plain digits, no exponent, no trailing zeros ("100", "0.0491605", "0"), so equal amounts are equal
    strings whatever scale they were stored or summed at."""
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


CENT = Decimal("0.01")


def for_people(amount: Decimal | int) -> str:
    """The one format of an amount on pages and in emails: cents from a dollar up ("$1,234.57"), four significant
    digits below ("$0.08470" shows as "$0.0847", with at least two decimals: "$0.10"), "$0.00" for nothing.
    Pages put the exact value (`canonical`) beside it on hover; CSV and the API keep the exact value."""
    value = Decimal(amount)
    sign, size = ("-" if value < 0 else ""), abs(value)
    if size >= 1:
        return f"{sign}${size.quantize(CENT, ROUND_HALF_UP):,.2f}"
    if size == 0:
        return "$0.00"
    places = max(2, 3 - size.adjusted())  # adjusted(): the exponent of the first significant digit
    rounded = size.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
    if rounded >= 1:
        return f"{sign}$1.00"
    digits = format(rounded, "f").rstrip("0")
    return f"{sign}${digits if len(digits.split('.')[1]) >= 2 else format(rounded, '.2f')}"
