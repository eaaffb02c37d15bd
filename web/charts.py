"""Charts drawn on the server as inline SVG: no script, no CDN, printable, readable by screen readers (each
chart has a title and a text alternative; the pages also show the figures as a table).

Two shapes cover the console: horizontal bars (a document's seconds per page, documents by dwell time) and
stacked columns (meetings or minutes per week, one colour per host).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# Colour-blind-safe qualitative palette (Okabe–Ito), cycled for more series.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
FONT = 'font-family="system-ui, sans-serif"'


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str  # the value as people read it ("1分20秒")


def _nice_max(value: float) -> float:
    """A round top for the axis: 1, 2, 5 × 10^n at or above ``value``."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)  # pragma: no cover


def horizontal_bars(title: str, bars: Sequence[Bar], width: int = 640) -> Markup:
    """One bar per item, label on the left, value text at the bar's end."""
    row, label_width, top = 26, 170, 8
    height = top + row * max(1, len(bars)) + 8
    top_value = _nice_max(max((bar.value for bar in bars), default=0.0))
    plot = width - label_width - 90
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet" {FONT} font-size="13">',
        f"<title>{escape(title)}</title>",
    ]
    for index, bar in enumerate(bars):
        y = top + index * row
        length = 0 if top_value == 0 else max(0.0, bar.value) / top_value * plot
        label = escape(_clip(bar.label, 22))
        parts.append(
            f'<g data-label="{escape(bar.label)}" data-value="{bar.value:g}">'
            f'<text x="{label_width - 8}" y="{y + 16}" text-anchor="end">{label}</text>'
            f'<rect x="{label_width}" y="{y + 4}" width="{length:.1f}" height="{row - 8}" '
            f'fill="{PALETTE[0]}"><title>{escape(bar.label)}: {escape(bar.text)}</title></rect>'
            f'<text x="{label_width + length + 6:.1f}" y="{y + 16}">{escape(bar.text)}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True)
class Column:
    """One column (a week): its label and each series' value, in the order of the series."""

    label: str
    values: Sequence[float]


def stacked_columns(
    title: str, series: Sequence[str], columns: Sequence[Column], unit: str, width: int = 720
) -> Markup:
    """Columns stacked by series (hosts), with a y axis, labels under the columns and a legend."""
    height, left, bottom, top = 300, 48, 56, 12
    legend_rows = -(-len(series) // 4)
    total_height = height + legend_rows * 20
    top_value = _nice_max(max((sum(c.values) for c in columns), default=0.0))
    plot_w, plot_h = width - left - 10, height - top - bottom
    slot = plot_w / max(1, len(columns))
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {total_height}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet" {FONT} font-size="12">',
        f"<title>{escape(title)}</title>",
    ]
    for tick in range(5):
        value = top_value * tick / 4
        y = top + plot_h - plot_h * tick / 4
        parts.append(
            f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eaecf0"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:g}</text>'
        )
    parts.append(f'<text x="4" y="{top + 4}" font-size="11">{escape(unit)}</text>')
    for index, column in enumerate(columns):
        x = left + index * slot + slot * 0.15
        y = top + plot_h
        parts.append(f'<g data-label="{escape(column.label)}" data-total="{sum(column.values):g}">')
        for value, name, colour in zip(column.values, series, _colours(len(series)), strict=False):
            if value <= 0:
                continue
            h = value / top_value * plot_h
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{escape(column.label)} {escape(name)}: {value:g} {escape(unit)}</title></rect>"
            )
        label_x = left + index * slot + slot / 2
        parts.append(
            f'<text x="{label_x:.1f}" y="{top + plot_h + 16}" text-anchor="middle" font-size="11">'
            f"{escape(column.label)}</text></g>"
        )
    for index, (name, colour) in enumerate(zip(series, _colours(len(series)), strict=False)):
        x = left + (index % 4) * ((width - left) / 4)
        y = height - 14 + (index // 4) * 20
        parts.append(
            f'<rect x="{x:.1f}" y="{y}" width="12" height="12" fill="{colour}"/>'
            f'<text x="{x + 16:.1f}" y="{y + 10}">{escape(_clip(name, 16))}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _colours(count: int) -> list[str]:
    return [PALETTE[i % len(PALETTE)] for i in range(count)]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
