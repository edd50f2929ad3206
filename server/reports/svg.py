"""Bar charts as server-rendered SVG: no script, no inline style, readable without colour.

Every bar carries its value as a text label and a `<title>`, the axes are labelled with
their units, and the chart has a `<title>`/`<desc>` and `role="img"`; the page puts the
same numbers beside it in a table (the text alternative). Only presentation attributes are
used (`fill`, `font-size`), which the page's CSP allows; every text is escaped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from markupsafe import Markup, escape

BAR_FILL = "#1f5f9e"  # dark blue on white: 7:1 contrast, and value labels carry the numbers
AXIS = "#44505c"


@dataclass
class Bar:
    """One bar: its category label and value."""

    label: str
    value: float


def _nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)  # pragma: no cover


def _fmt(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


def bar_chart(
    bars: list[Bar],
    *,
    title: str,
    x_label: str,
    y_label: str,
    chart_id: str,
    width: int = 560,
    height: int = 300,
    whole: bool = False,
    label_every: int = 1,
) -> Markup:
    """A vertical bar chart with a value on every bar, axis titles and a text summary.

    `whole`: the values are counts, so the axis ticks are whole numbers too.
    `label_every`: name only every n-th bar on the axis (long series; each bar still
    carries its value and its own title).
    """
    left, right, top, bottom = 56, 16, 28, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = _nice_max(max((b.value for b in bars), default=0.0))
    if whole:  # four equal whole-number steps
        top_value = float(4 * max(1, math.ceil(top_value / 4)))
    slot = plot_w / max(len(bars), 1)
    bar_w = slot * 0.6
    summary = "; ".join(f"{b.label}: {_fmt(b.value)}" for b in bars) or "no data"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{escape(chart_id)}" class="chart" '
        f'role="img" aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(y_label)} by {escape(x_label)}: '
        f"{escape(summary)}</desc>",
    ]
    # Grid lines and y ticks: 0, 1/4 ... 4/4 of the axis maximum.
    for i in range(5):
        value = top_value * i / 4
        y = top + plot_h - plot_h * i / 4
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
            f'stroke="#d5dbe2" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="12" '
            f'fill="{AXIS}">{escape(_fmt(round(value, 2)))}</text>'
        )
    for i, bar in enumerate(bars):
        h = plot_h * (bar.value / top_value) if top_value else 0.0
        x = left + slot * i + (slot - bar_w) / 2
        y = top + plot_h - h
        out.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
            f'fill="{BAR_FILL}"><title>{escape(bar.label)}: {escape(_fmt(bar.value))}</title>'
            "</rect>"
        )
        out.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{y - 5:.1f}" text-anchor="middle" '
            f'font-size="13" font-weight="bold" fill="#111">{escape(_fmt(bar.value))}</text>'
        )
        if i % label_every == 0:
            out.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 18}" text-anchor="middle" '
                f'font-size="12" fill="{AXIS}">{escape(bar.label)}</text>'
            )
    out.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        f'stroke="{AXIS}" stroke-width="1.5"/>'
    )
    out.append(
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" '
        f'stroke="{AXIS}" stroke-width="1.5"/>'
    )
    out.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 12}" text-anchor="middle" '
        f'font-size="13" fill="#111">{escape(x_label)}</text>'
    )
    out.append(
        f'<text x="14" y="{top + plot_h / 2:.1f}" text-anchor="middle" font-size="13" '
        f'fill="#111" transform="rotate(-90 14 {top + plot_h / 2:.1f})">{escape(y_label)}</text>'
    )
    out.append("</svg>")
    # Every text above went through escape(): the markup is ours alone.
    return Markup("".join(out))  # noqa: S704  # nosec B704
