"""Amounts as text: the one machine-readable form (`canonical`, for the API and the CSV exports) and the one form
for people (`for_people`, for pages and emails; `on_page` adds the exact value on hover)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe


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


def on_page(amount: Decimal | int | None) -> SafeString:
    """An amount on a staff page: `for_people`, with the exact value as its hover title; "unpriced" for the cost of
    a call that has no price yet (never "$0.00")."""
    if amount is None:
        return mark_safe('<span class="ai-unpriced" title="no price yet">unpriced</span>')
    exact = canonical(Decimal(amount))
    return format_html('<span class="ai-money" title="{} USD">{}</span>', exact, for_people(amount))


def cost_with_unpriced(amount: Decimal | int | None, unpriced: int, calls: int) -> SafeString:
    """The cost of a group of calls some of which may have no price: "unpriced (3 calls)" when none is priced,
    "$1.20 + 3 unpriced" when some are, so a breakdown never shows unpriced calls as $0.00."""
    if unpriced and unpriced >= calls:
        return format_html('<span class="ai-unpriced" title="no price yet">unpriced ({} call{})</span>',
                           unpriced, "" if unpriced == 1 else "s")  # fmt: skip
    if unpriced:
        return format_html('{} <span class="ai-unpriced">+ {} unpriced</span>', on_page(amount), unpriced)
    return on_page(amount)
