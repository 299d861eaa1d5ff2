"""Time-series charts as typed data: what the page's chart script draws with uPlot and what
its text summary and "show data" table say.

A page asks the metrics history for one time range (:data:`RANGES`: 5 m, 1 h, 6 h, 24 h)
at a step that keeps every series under :data:`MAX_POINTS` points, and turns the points
into :class:`Chart` objects: one shared time axis (the union of the series' times) and
one row of values per line. :func:`charts_json` is the JSON the page embeds in a
``<script type="application/json">`` element (no inline script: the CSP allows none).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

from wonderland.console.sources import Points

__all__ = [
    "DEFAULT_RANGE",
    "MAX_POINTS",
    "RANGES",
    "Chart",
    "Line",
    "charts_json",
    "format_value",
    "make_chart",
    "range_seconds",
    "step_for",
]

RANGES: dict[str, float] = {"5m": 300.0, "1h": 3600.0, "6h": 21600.0, "24h": 86400.0}
DEFAULT_RANGE = "1h"
MAX_POINTS = 360


def range_seconds(name: str) -> tuple[str, float]:
    """The range a page was asked for (``?range=``), the default for anything else."""
    if name in RANGES:
        return name, RANGES[name]
    return DEFAULT_RANGE, RANGES[DEFAULT_RANGE]


def step_for(seconds: float, history_step: float) -> float:
    """A step, a multiple of the history's, that keeps a range under MAX_POINTS points."""
    factor = max(1, math.ceil(seconds / history_step / MAX_POINTS))
    return history_step * factor


@dataclass(frozen=True)
class Line:
    label: str
    values: list[float | None]

    @property
    def known(self) -> list[float]:
        return [v for v in self.values if v is not None]

    @property
    def last(self) -> float | None:
        for v in reversed(self.values):
            if v is not None:
                return v
        return None


@dataclass(frozen=True)
class Chart:
    """One chart: an id (the element it is drawn in), a title, the unit of its values
    (``req/s``, ``s``, ``replicas``, ``count``), the shared times and its lines.
    ``empty`` says why there is nothing to draw when no line has a value."""

    id: str
    title: str
    unit: str
    times: list[float]
    lines: list[Line]
    empty: str = ""

    @property
    def has_data(self) -> bool:
        return any(line.known for line in self.lines)

    @property
    def summaries(self) -> list[tuple[str, str, str, str]]:
        """(line, newest, lowest, highest) as text, for lines with values."""
        out: list[tuple[str, str, str, str]] = []
        for line in self.lines:
            known = line.known
            if known:
                fmt = format_value
                out.append(
                    (
                        line.label,
                        fmt(line.last, self.unit),
                        fmt(min(known), self.unit),
                        fmt(max(known), self.unit),
                    )
                )
        return out

    def recent(self, n: int = 12) -> list[tuple[str, list[str]]]:
        """The newest ``n`` times (ISO, UTC) with each line's value as text."""
        rows: list[tuple[str, list[str]]] = []
        start = max(0, len(self.times) - n)
        for i in range(len(self.times) - 1, start - 1, -1):
            cells = [format_value(line.values[i], self.unit) for line in self.lines]
            stamp = time.strftime("%H:%M:%S", time.gmtime(self.times[i]))
            rows.append((stamp, cells))
        return rows

    @property
    def points(self) -> int:
        """How many values the chart shows (all lines)."""
        return sum(len(line.known) for line in self.lines)

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "title": self.title,
            "unit": self.unit,
            "x": self.times,
            "series": [{"label": line.label, "values": line.values} for line in self.lines],
        }


def make_chart(
    id: str,
    title: str,
    unit: str,
    lines: Sequence[tuple[str, Points]],
    empty: str,
) -> Chart:
    """A chart of several point lists, aligned on the union of their times. The values
    are the history's (numbers or None: its JSON has no NaN or infinity)."""
    times = sorted({t for _, points in lines for t, _ in points})
    out: list[Line] = []
    for label, points in lines:
        if len(points) == len(times) and [p[0] for p in points] == times:
            values = [p[1] for p in points]  # the usual case: every line has the same times
        else:
            by_time: Mapping[float, float | None] = dict(points)
            values = [by_time.get(t) for t in times]
        out.append(Line(label, values))
    return Chart(id, title, unit, times, out, empty)


def format_value(value: float | None, unit: str) -> str:
    """A chart value as the page writes it: ``12.3 ms``, ``4.20/s``, ``3``."""
    if value is None:
        return "\N{EN DASH}"
    if unit == "s":
        return f"{value * 1000:.1f} ms"
    if unit == "req/s":
        return f"{value:.2f}/s"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}"


def charts_json(charts: Sequence[Chart], start: float = 0.0, end: float = 0.0) -> str:
    """The page's chart data as JSON that is safe inside a ``<script>`` element; ``start``
    and ``end`` (unix seconds) are the time range every chart's axis spans."""
    doc = {"start": start, "end": end, "charts": [c.as_json() for c in charts]}
    text = orjson.dumps(doc).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
