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
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
import orjson

from wonderland.console.sources import Series

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
    "sum_series",
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
    """One line of a chart: its label and one value per time of the chart (NaN: none)."""

    label: str
    values: npt.NDArray[np.float64]

    @property
    def known(self) -> list[float]:
        return [float(v) for v in self.values[~np.isnan(self.values)]]

    @cached_property
    def last(self) -> float | None:
        found = np.flatnonzero(~np.isnan(self.values))
        return float(self.values[found[-1]]) if len(found) else None

    def value(self, i: int) -> float | None:
        v = float(self.values[i])
        return None if math.isnan(v) else v


@dataclass(frozen=True)
class Chart:
    """One chart: an id (the element it is drawn in), a title, the unit of its values
    (``req/s``, ``s``, ``replicas``, ``count``), the shared times and its lines.
    ``empty`` says why there is nothing to draw when no line has a value."""

    id: str
    title: str
    unit: str
    times: npt.NDArray[np.float64]
    lines: list[Line]
    empty: str = ""

    # computed once per chart: the template asks for each more than once
    @cached_property
    def has_data(self) -> bool:
        return any(line.last is not None for line in self.lines)

    @cached_property
    def summaries(self) -> list[tuple[str, str, str, str]]:
        """(line, newest, lowest, highest) as text, for lines with values."""
        out: list[tuple[str, str, str, str]] = []
        for line in self.lines:
            last = line.last
            if last is None:
                continue
            fmt = format_value
            low, high = float(np.nanmin(line.values)), float(np.nanmax(line.values))
            out.append(
                (line.label, fmt(last, self.unit), fmt(low, self.unit), fmt(high, self.unit))
            )
        return out

    def recent(self, n: int = 12) -> list[tuple[str, list[str]]]:
        """The newest ``n`` times (ISO, UTC) with each line's value as text."""
        rows: list[tuple[str, list[str]]] = []
        start = max(0, len(self.times) - n)
        for i in range(len(self.times) - 1, start - 1, -1):
            cells = [format_value(line.value(i), self.unit) for line in self.lines]
            stamp = time.strftime("%H:%M:%S", time.gmtime(float(self.times[i])))
            rows.append((stamp, cells))
        return rows

    @cached_property
    def points(self) -> int:
        """How many values the chart shows (all lines)."""
        return sum(int(np.count_nonzero(~np.isnan(line.values))) for line in self.lines)

    def as_json(self) -> dict[str, object]:
        """The chart for the page's script; NaN becomes ``null`` (orjson, numpy arrays)."""
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
    lines: Sequence[tuple[str, Series]],
    empty: str,
) -> Chart:
    """A chart of several series, aligned on the union of their times."""
    shown = [(label, s) for label, s in lines]
    if not shown:
        return Chart(id, title, unit, np.empty(0), [], empty)
    first = shown[0][1].times
    if all(np.array_equal(s.times, first) for _, s in shown):
        # the usual case: every series was read over the same range and step
        return Chart(id, title, unit, first, [Line(label, s.values) for label, s in shown], empty)
    times = np.unique(np.concatenate([s.times for _, s in shown]))
    out: list[Line] = []
    for label, s in shown:
        values = np.full(len(times), np.nan)
        values[np.searchsorted(times, s.times)] = s.values
        out.append(Line(label, values))
    return Chart(id, title, unit, times, out, empty)


def sum_series(series: Sequence[Series]) -> Series:
    """The sum of several series at each time (times where none has a value: NaN)."""
    present = [s for s in series if len(s)]
    if not present:
        return Series(np.empty(0), np.empty(0))
    first = present[0].times
    if all(np.array_equal(s.times, first) for s in present):
        times = first
        stacked = np.vstack([s.values for s in present])
    else:
        times = np.unique(np.concatenate([s.times for s in present]))
        stacked = np.full((len(present), len(times)), np.nan)
        for row, s in zip(stacked, present, strict=True):
            row[np.searchsorted(times, s.times)] = s.values
    known = ~np.isnan(stacked)
    sums = np.where(known.any(axis=0), np.nansum(stacked, axis=0), np.nan)
    return Series(times, sums)


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
    text = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
