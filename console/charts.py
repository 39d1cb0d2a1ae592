"""Stacked bar charts per day, drawn on the server as SVG: no script, no inline style (the series' colours are
classes of console.css), so they render under the console's Content-Security-Policy and without JavaScript. The
markup is written here rather than by a template: a 90-day chart has hundreds of bars, which Django's templates
would take tens of milliseconds to render."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from html import escape
from typing import NamedTuple

from django.utils.safestring import SafeString, mark_safe

# Series beyond these are summed as one "other": more colours would not be told apart.
MAX_SERIES = 7
WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 72, 8, 8, 28  # room on the left for a tick's label in a phone's larger font


class Bar(NamedTuple):  # a tuple: a 90-day page draws some 1,600 of them
    x: float
    y: float
    width: float
    height: float
    series: int
    day: str
    label: str  # its value, formatted


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class Series:
    index: int
    name: str
    total: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    bottom: float
    right: float
    bars: list[Bar]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    series: list[Series]
    empty: bool


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _nice_step(top: float, ticks: int = 4) -> float:
    """A round step (1, 2 or 5 times a power of ten) that divides [0, top] into about `ticks` parts."""
    raw = top / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def stacked_by_day(
    days: list[date],
    points: Iterable[tuple[str, str, float]],
    *,
    fmt: Callable[[float], str],
    tick_fmt: Callable[[float], str] | None = None,
    series_name: Callable[[str], str] = str,
) -> Chart:
    """A chart of one bar per day, stacked by series, from (day ISO, series, value) points. The series are ordered
    by their total, largest first (and drawn from the bottom up); past MAX_SERIES the rest are one "other". The
    values are written with `fmt`, the scale's ticks with `tick_fmt` (fmt if None)."""
    totals: dict[str, float] = {}
    for _, name, value in (points := list(points)):
        totals[name] = totals.get(name, 0) + value
    ranked = sorted(totals, key=lambda name: (-totals[name], name))
    kept = {name: i for i, name in enumerate(ranked[:MAX_SERIES])}
    labels = [series_name(name) for name in ranked[:MAX_SERIES]]
    if len(ranked) > MAX_SERIES:
        labels.append("other")
    other = len(labels) - 1 if len(ranked) > MAX_SERIES else None
    stacks: dict[str, list[float]] = {d.isoformat(): [0.0] * len(labels) for d in days}
    for day, name, value in points:
        if day in stacks:
            stacks[day][kept.get(name, other or 0)] += value
    series_totals = [0.0] * len(labels)
    for stack in stacks.values():
        for i, value in enumerate(stack):
            series_totals[i] += value

    top = max((sum(stack) for stack in stacks.values()), default=0)
    step = _nice_step(top) if top > 0 else 1
    scale_top = step * math.ceil(top / step) if top > 0 else 4
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.7, 1)
    bars = []
    width = round(bar_w, 2)
    for n, (day, stack) in enumerate(stacks.items()):
        x, base = round(LEFT + n * slot + (slot - bar_w) / 2, 2), TOP + plot_h
        for i, value in enumerate(stack):
            if value > 0:
                height = value / scale_top * plot_h
                base -= height
                bars.append(Bar(x, round(base, 2), width, round(height, 2), i, day, fmt(value)))
    y_ticks = [
        Tick(round(TOP + plot_h - k * step / scale_top * plot_h, 2), (tick_fmt or fmt)(k * step))
        for k in range(round(scale_top / step) + 1)
    ]
    every = max(1, math.ceil(len(days) / 8))  # about 8 dates under the bars, whatever the range
    x_ticks = [
        Tick(round(LEFT + n * slot + slot / 2, 2), d.strftime("%b %d")) for n, d in enumerate(days) if n % every == 0
    ]
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        bottom=TOP + plot_h,
        right=WIDTH - RIGHT,
        bars=bars,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        series=[Series(i, name, series_totals[i], fmt(series_totals[i])) for i, name in enumerate(labels)],
        empty=top == 0,
    )


def tokens(value: float) -> str:
    """A token count, short: 950, 12.5k, 3.2M."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.0f}"


def dollars(value: float) -> str:
    """Dollars: to the cent from a dollar up, with up to four significant digits below."""
    if value == 0:
        return "$0"
    return f"${value:,.2f}" if value >= 1 else f"${value:.4g}"


def dollars_tick(value: float) -> str:
    """A round amount on a chart's scale, short: $0.005, $20, $1,500."""
    return f"${value:,.0f}" if value >= 1 and value == int(value) else dollars(value)


def chart_svg(chart: Chart, *, title_id: str, caption: str) -> SafeString:
    """The chart as an `<svg>` element: a bar's series and value in its `<title>` (a tooltip, read by screen
    readers), the whole summed up in the chart's title."""
    summary = ", ".join(f"{s.name} {s.label}" for s in chart.series)
    parts = [
        f'<svg viewBox="0 0 {chart.width} {chart.height}" role="img" aria-labelledby="{title_id}" '
        f'preserveAspectRatio="xMinYMin meet"><title id="{title_id}">{escape(caption)}: {escape(summary)}</title>'
    ]
    for tick in chart.y_ticks:
        parts.append(
            f'<line class="grid" x1="{chart.left}" x2="{chart.right}" y1="{tick.at}" y2="{tick.at}"/>'
            f'<text class="axis" x="{chart.left - 6}" y="{tick.at}" text-anchor="end" dominant-baseline="middle">'
            f"{escape(tick.label)}</text>"
        )
    names = [escape(s.name) for s in chart.series]
    parts.extend(
        f'<rect class="s{series}" x="{x}" y="{y}" width="{width}" height="{height}">'
        f"<title>{day} {names[series]}: {escape(label)}</title></rect>"
        for x, y, width, height, series, day, label in chart.bars
    )
    parts.extend(
        f'<text class="axis" x="{tick.at}" y="{chart.height - 8}" text-anchor="middle">{escape(tick.label)}</text>'
        for tick in chart.x_ticks
    )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every text in it is escaped above
