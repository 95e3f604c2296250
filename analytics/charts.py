"""Charts drawn on the server as plain HTML and CSS: no script, no CDN, nothing to download, readable offline.

They are boxes sized in percent, so they take the width of their card at any screen size while their text keeps
the page's size (an SVG viewBox scales its text down with the chart). Colours come from the admin's CSS variables,
so the charts follow its light and dark themes. Every bar shows its exact value on hover (title) and on keyboard
focus (a tip), and carries it in data-value (what the browser tests read).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from usage.money import canonical

Number = Decimal | int
Show = Callable[[Number], str]


def exact_money(value: Number) -> str:
    return f"${canonical(Decimal(value))}"


def tokens(value: Number) -> str:
    """Compact token counts: 6.2M, 12.5K, 950."""
    amount = int(value)
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")):
        if abs(amount) >= size:
            return f"{amount / size:.1f}{suffix}"
    return str(amount)


def exact_tokens(value: Number) -> str:
    return f"{int(value):,} tokens"


def _empty(message: str) -> SafeString:
    return format_html('<p class="ai-chart-empty">{}</p>', message)


def _share(value: Number, largest: Decimal) -> str:
    return f"{Decimal(value) / largest * 100:.2f}" if largest else "0"


def horizontal_bars(
    title: str,
    rows: Sequence[tuple[str, Number]],
    show: Show,
    exact: Show,
    css_class: str = "",
    notes: Mapping[str, str] | None = None,
) -> SafeString:
    """One bar per row, in the order given, scaled to the largest value. `notes` replaces a row's shown value
    (an unpriced provider's "unpriced (3 calls)" rather than "$0.00")."""
    if not rows:
        return _empty(f"{title}: no calls in this window")
    largest = max(Decimal(value) for _label, value in rows)
    bars = format_html_join("", (
        '<div class="ai-bar" data-label="{0}" data-value="{1}" tabindex="0" title="{0}: {2}">'
        '<span class="ai-chart-label">{0}</span><span class="ai-bar-area"><span class="ai-bar-rect" '
        'style="width: {3}%"></span></span><span class="ai-chart-value">{4}</span><span class="ai-tip">{0}: {2}</span>'
        "</div>"
    ), [
        (label, value, exact(value), _share(value, largest), (notes or {}).get(label) or show(value))
        for label, value in rows
    ])  # fmt: skip
    return format_html(
        '<figure class="ai-chart ai-hbars {}" role="group" aria-label="{}">{}</figure>', css_class, title, bars
    )


def columns(title: str, points: Sequence[tuple[str, Number]], show: Show, exact: Show) -> SafeString:
    """A column per point (a day, say), oldest on the left, with the top value and about seven date labels."""
    if not any(Decimal(value) for _label, value in points):
        return _empty(f"{title}: nothing recorded in this window")
    largest = max(Decimal(value) for _label, value in points)
    every = max(1, len(points) // 7)
    bars = format_html_join("", (
        '<div class="ai-bar" data-label="{0}" data-value="{1}" tabindex="0" title="{0}: {2}">'
        '<span class="ai-bar-rect" style="height: {3}%"></span><span class="ai-tip">{0}: {2}</span></div>'
    ), [(label, value, exact(value), _share(value, largest)) for label, value in points])  # fmt: skip
    axis = format_html_join("", '<span style="grid-column: {} / span {}">{}</span>', [
        (index + 1, min(every, len(points) - index), label[5:]) for index, (label, _v) in enumerate(points)
        if index % every == 0
    ])  # fmt: skip
    grid = f"grid-template-columns: repeat({len(points)}, minmax(0, 1fr))"
    return format_html(
        '<figure class="ai-chart ai-columns" role="group" aria-label="{}"><div class="ai-chart-top">{}</div>'
        '<div class="ai-columns-plot" style="{}">{}</div><div class="ai-columns-axis" style="{}">{}</div></figure>',
        title, show(largest), grid, bars, grid, axis,
    )  # fmt: skip
