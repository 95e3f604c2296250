"""The one machine-readable form of an amount, shared by the API and the CSV exports."""

from __future__ import annotations

from decimal import Decimal


def canonical(amount: Decimal) -> str:
    """Exact, plain digits, no exponent, no trailing zeros ("100", "0.0491605", "0"), so equal amounts are equal
    strings whatever scale they were stored or summed at."""
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
