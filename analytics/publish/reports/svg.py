"""Inline SVG charts for the HTML report: a key's hourly calls against its usual band.

Hand-written SVG rather than a plotting library: the report must open offline with no scripts
and no fetched assets, the chart is 24 bars and a shaded band, and generating it here keeps the
output byte-for-byte deterministic for the golden tests. Every text that reaches the markup —
the key ARN in the label, the tooltips — goes through :func:`html.escape`.

Colour carries meaning, so it is spent sparingly: a bar above the usual range is amber (worth a
glance), and only an hour inside an alert's window on the key is red. The moments someone changed
the key — disabled it, scheduled its deletion, replaced its policy — are numbered markers at
their minute, because those, not a blip of use, are what a reader must find on the chart.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 760
HEIGHT = 210
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 12, 24, 30


@dataclass(frozen=True)
class HourPoint:
    hour: int
    calls: int
    band_low: float | None
    band_median: float | None
    band_high: float | None

    @property
    def above(self) -> bool:
        return self.band_high is not None and self.calls > self.band_high


@dataclass(frozen=True)
class Marker:
    """A control-plane event on the key: drawn at its minute, numbered as in the legend."""

    number: int
    hour: int
    minute: int
    text: str


def _nice_ceiling(value: float) -> float:
    """The smallest 1/2/5×10ⁿ at or above ``value`` (axis tops people can read)."""
    if value <= 1:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return float(step * magnitude)
    return float(10 * magnitude)


def _num(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _xy(value: float) -> str:
    return f"{value:.1f}"


def hourly_chart(
    label: str,
    points: Sequence[HourPoint],
    markers: Sequence[Marker] = (),
    alerted_hours: Collection[int] = (),
) -> str:
    """An SVG of 24 hourly bars over the band; ``label`` names the key (escaped here). Hours in
    ``alerted_hours`` are red; ``markers`` are drawn as numbered lines."""
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = HEIGHT - _TOP - _BOTTOM
    top_value = max([float(p.calls) for p in points] + [p.band_high or 0.0 for p in points] + [1.0])
    y_max = _nice_ceiling(top_value)
    slot = plot_w / 24

    def y(value: float) -> float:
        return _TOP + plot_h - (value / y_max) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{escape("Hourly calls of " + label + " against its usual range")}">',
        f"<title>{escape('Hourly calls of ' + label)}</title>",
    ]
    for tick in (0.0, y_max / 2, y_max):
        ty = y(tick)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" y1="{_xy(ty)}" x2="{WIDTH - _RIGHT}" '
            f'y2="{_xy(ty)}"/>'
            f'<text class="axis" x="{_LEFT - 6}" y="{_xy(ty + 4)}" text-anchor="end">'
            f"{escape(_num(tick))}</text>"
        )
    median_path: list[str] = []
    for point in sorted(points, key=lambda p: p.hour):
        x0 = _LEFT + point.hour * slot
        if point.band_low is not None and point.band_high is not None:
            top, bottom = y(point.band_high), y(point.band_low)
            parts.append(
                f'<rect class="band" x="{_xy(x0)}" y="{_xy(top)}" width="{_xy(slot)}" '
                f'height="{_xy(max(bottom - top, 1.0))}"/>'
            )
        if point.band_median is not None:
            my = y(point.band_median)
            command = "M" if not median_path else "L"
            median_path.append(f"{command}{_xy(x0)} {_xy(my)} L{_xy(x0 + slot)} {_xy(my)}")
        bar_w = slot * 0.6
        bar_top = y(float(point.calls))
        band_text = (
            f"usual {_num(point.band_low)}–{_num(point.band_high)}, median "
            f"{_num(point.band_median or 0.0)}"
            if point.band_low is not None and point.band_high is not None
            else "no baseline yet"
        )
        tooltip = f"{point.hour:02d}:00–{(point.hour + 1) % 24:02d}:00 UTC: " + (
            f"{point.calls:,} calls ({band_text})"
        )
        if point.hour in alerted_hours:
            css = "bar alerted"
            tooltip += "; in an alert's window"
        else:
            css = "bar over" if point.above else "bar"
        parts.append(
            f'<rect class="{css}" x="{_xy(x0 + (slot - bar_w) / 2)}" y="{_xy(bar_top)}" '
            f'width="{_xy(bar_w)}" height="{_xy(_TOP + plot_h - bar_top)}">'
            f"<title>{escape(tooltip)}</title></rect>"
        )
        if point.hour % 3 == 0:
            parts.append(
                f'<text class="axis" x="{_xy(x0 + slot / 2)}" y="{HEIGHT - 10}" '
                f'text-anchor="middle">{point.hour:02d}</text>'
            )
    if median_path:
        parts.append(f'<path class="median" d="{" ".join(median_path)}"/>')
    label_x = float("-inf")
    for marker in sorted(markers, key=lambda m: (m.hour, m.minute, m.number)):
        mx = _LEFT + (marker.hour + marker.minute / 60) * slot
        label_x = min(max(mx, label_x + 14), WIDTH - _RIGHT)  # numbers of close events side by side
        parts.append(
            f'<g class="marker"><title>{escape(f"{marker.number}: {marker.text}")}</title>'
            f'<line x1="{_xy(mx)}" y1="{_TOP - 6}" x2="{_xy(mx)}" y2="{_TOP + plot_h}"/>'
            f'<text x="{_xy(label_x)}" y="{_TOP - 9}" text-anchor="middle">{marker.number}</text>'
            "</g>"
        )
    parts.append("</svg>")
    return "".join(parts)
