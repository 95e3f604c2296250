"""Charts drawn on the server as inline SVG: no script, no CDN, nothing to download, readable offline.

Colours come from the admin's CSS variables, so the charts follow its light and dark themes. Every bar carries
its exact value in a <title> (a tooltip) and in data-value (what the browser tests read).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

Number = Decimal | int
LABEL_WIDTH = 190
BAR_HEIGHT = 22
WIDTH = 640
WIDE = 1200  # the full-width chart: drawn about as wide as it is shown, so its text keeps the page's size


def money(value: Number) -> str:
    """Dollars for display: cents above a dollar, more digits for the small amounts AI calls cost."""
    amount = Decimal(value)
    if amount == 0:
        return "$0.00"
    if abs(amount) >= 1:
        return f"${amount:,.2f}"
    return f"${amount:.6f}".rstrip("0").rstrip(".") if abs(amount) >= Decimal("0.000001") else f"${amount:.2E}"


def tokens(value: Number) -> str:
    """Compact token counts: 6.2M, 12.5K, 950."""
    amount = int(value)
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")):
        if abs(amount) >= size:
            return f"{amount / size:.1f}{suffix}"
    return str(amount)


def _empty(message: str) -> SafeString:
    return mark_safe(f'<p class="ai-chart-empty">{escape(message)}</p>')


def horizontal_bars(
    title: str, rows: Sequence[tuple[str, Number]], show: Callable[[Number], str], css_class: str = ""
) -> SafeString:
    """One bar per row, longest first as given, scaled to the largest value."""
    if not rows:
        return _empty(f"{title}: no calls in this window")
    largest = max(Decimal(value) for _label, value in rows) or Decimal(1)
    height = BAR_HEIGHT * len(rows) + 8
    room = WIDTH - LABEL_WIDTH - 90
    parts = [
        f'<svg class="ai-chart {css_class}" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {height}" '
        f'preserveAspectRatio="xMinYMin meet"><title>{escape(title)}</title>'
    ]
    for index, (label, value) in enumerate(rows):
        y = 4 + index * BAR_HEIGHT
        length = max(float(Decimal(value) / largest) * room, 1.0)
        shown = escape(show(value))
        parts.append(
            f'<g class="ai-bar" data-label="{escape(label)}" data-value="{escape(str(value))}">'
            f"<title>{escape(label)}: {shown}</title>"
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 15}" text-anchor="end" class="ai-chart-label">'
            f"{escape(_shorten(label))}</text>"
            f'<rect x="{LABEL_WIDTH}" y="{y + 3}" width="{length:.1f}" height="{BAR_HEIGHT - 6}" rx="2"/>'
            f'<text x="{LABEL_WIDTH + length + 6:.1f}" y="{y + 15}" class="ai-chart-value">{shown}</text></g>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def columns(title: str, points: Sequence[tuple[str, Number]], show: Callable[[Number], str]) -> SafeString:
    """A column per point (a day, say), oldest on the left, with a labelled top line and a few date labels."""
    if not any(Decimal(value) for _label, value in points):
        return _empty(f"{title}: nothing recorded in this window")
    largest = max(Decimal(value) for _label, value in points)
    width, height, top, bottom, left = WIDE, 260, 24, 30, 8
    room = height - top - bottom
    step = (width - left * 2) / len(points)
    every = max(1, len(points) // 7)  # about seven date labels whatever the window
    parts = [
        f'<svg class="ai-chart ai-columns" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'preserveAspectRatio="xMinYMin meet"><title>{escape(title)}</title>'
        f'<line x1="{left}" x2="{width - left}" y1="{top}" y2="{top}" class="ai-chart-grid"/>'
        f'<text x="{left}" y="{top - 8}" class="ai-chart-label">{escape(show(largest))}</text>'
        f'<line x1="{left}" x2="{width - left}" y1="{top + room}" y2="{top + room}" class="ai-chart-axis"/>',
    ]
    for index, (label, value) in enumerate(points):
        size = float(Decimal(value) / largest) * room if largest else 0.0
        x = left + index * step
        parts.append(
            f'<g class="ai-bar" data-label="{escape(label)}" data-value="{escape(str(value))}">'
            f"<title>{escape(label)}: {escape(show(value))}</title>"
            f'<rect x="{x + step * 0.12:.1f}" y="{top + room - size:.1f}" width="{step * 0.76:.1f}" '
            f'height="{max(size, 0.0):.1f}" rx="1"/></g>'
        )
        if index % every == 0:
            parts.append(f'<text x="{x + step / 2:.1f}" y="{height - 10}" text-anchor="middle" '
                         f'class="ai-chart-label">{escape(label[5:])}</text>')  # fmt: skip
    parts.append("</svg>")
    return mark_safe("".join(parts))


def _shorten(label: str, size: int = 28) -> str:
    return label if len(label) <= size else label[: size - 1] + "…"
