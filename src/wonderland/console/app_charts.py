"""The Service page's charts, from the metrics history of its revisions.

:func:`service_charts` reads each revision's series (:data:`REVISION_SERIES`) over one
range and draws, as Knative's "Revision HTTP Requests" and "Scaling Debugging" dashboards
do: replicas (actual and desired, all revisions), request rate per revision (the split
shows), request rate by status class (2xx, 4xx, 5xx; 1xx and 3xx when there were any),
latency p50/p95/p99, the autoscaler's stable and panic window averages per revision, and
cold starts. :func:`cold_start_histogram` bins the durations of the cold starts the
gateway saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from wonderland.console.charts import Chart, charts_json, make_chart, sum_series
from wonderland.console.sources import HistorySource, Series

__all__ = [
    "COLD_START_BOUNDS",
    "REVISION_SERIES",
    "ColdStartBin",
    "ServiceCharts",
    "cold_start_histogram",
    "service_charts",
]

REVISION_SERIES = (
    "request_rate",
    "error_rate",
    "rate_1xx",
    "rate_3xx",
    "rate_4xx",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "replicas",
    "desired_replicas",
    "cold_starts",
    "concurrency_stable",
    "concurrency_panic",
    "rps_stable",
    "rps_panic",
)
NO_HISTORY = (
    "No points in this range: the history fills in once per scrape "
    "(WONDERLAND_METRICS_SCRAPE_SECONDS) after the revision served requests."
)
NO_SERIES = Series(np.empty(0), np.empty(0))
# the upper bounds (seconds) of the cold-start histogram's bins, as the gateway's
# faas_init_duration_seconds buckets; the last bin is open
COLD_START_BOUNDS = (0.1, 0.2, 0.4, 0.6, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class ServiceCharts:
    charts: list[Chart]
    cold_start_count: int  # over the range
    data: str  # the JSON the page embeds for its chart script


@dataclass(frozen=True)
class ColdStartBin:
    """One bar of the cold-start histogram: its range of durations and how many."""

    label: str
    count: int


def _on(times: npt.NDArray[np.float64], series: Series) -> npt.NDArray[np.float64]:
    """``series``' values at ``times`` (0 where it has none: the counter had no such code)."""
    out = np.zeros(len(times))
    if len(series):
        at = np.searchsorted(times, series.times)
        inside = (at < len(times)) & (times[np.minimum(at, len(times) - 1)] == series.times)
        known = inside & ~np.isnan(series.values)
        out[at[known]] = series.values[known]
    return out


def status_classes(
    requests: Series, errors: Series, kept: Sequence[tuple[str, Series]]
) -> list[tuple[str, Series]]:
    """Request rate by status class: the classes the history keeps (``kept``: 1xx, 3xx,
    4xx), 5xx (``errors``) and 2xx, the rest of ``requests``. Where the request rate has
    no value, neither has any class."""
    times = requests.times
    missing = np.isnan(requests.values)
    rest = np.nan_to_num(requests.values) - _on(times, errors)
    classes: list[tuple[str, Series]] = []
    for label, series in kept:
        values = _on(times, series)
        rest -= values
        if label == "4xx" or np.any(values[~missing] > 0):
            classes.append((label, Series(times, np.where(missing, np.nan, values))))
    ok = np.where(missing, np.nan, np.clip(rest, 0.0, None))
    five = np.where(missing, np.nan, _on(times, errors))
    out = [("2xx", Series(times, ok)), *classes, ("5xx", Series(times, five))]
    return sorted(out, key=lambda line: line[0])


async def service_charts(
    sources: HistorySource,
    namespace: str,
    revisions: Sequence[str],
    since: float,
    step: float,
    now: float,
) -> ServiceCharts:
    """The charts of a Service whose revisions are ``revisions`` (newest first)."""
    histories = await asyncio.gather(
        *(
            sources.history("revisions", namespace, r, since, step, REVISION_SERIES)
            for r in revisions
        )
    )
    by_rev = dict(zip(revisions, histories, strict=True))
    oldest_first = [r for r in reversed(revisions) if by_rev[r]]
    single = len(revisions) == 1

    def lines(series: str) -> list[tuple[str, Series]]:
        return [(r, by_rev[r].get(series, NO_SERIES)) for r in oldest_first]

    def total(series: str) -> Series:
        return sum_series([by_rev[r][series] for r in revisions if series in by_rev[r]])

    requests = total("request_rate")
    kept = [(f"{c}xx", total(f"rate_{c}xx")) for c in "134"]
    latency = [
        (q if single else f"{r} {q}", s)
        for q in ("p50", "p95", "p99")
        for r, s in lines(f"latency_{q}")
    ]
    found = [
        (r, metric, window, by_rev[r][f"{metric}_{window}"])
        for r in oldest_first
        for metric in ("concurrency", "rps")
        for window in ("stable", "panic")
        if f"{metric}_{window}" in by_rev[r]
    ]
    metrics = {metric for _, metric, _, _ in found}
    mixed = len(metrics) > 1  # revisions scaled on different metrics: say which is which
    windows = [
        ((window if single else f"{r} {window}") + (f" ({metric})" if mixed else ""), s)
        for r, metric, window, s in found
    ]
    colds = total("cold_starts")
    charts = [
        make_chart(
            "chart-replicas",
            "Replicas (all revisions)",
            "replicas",
            [("actual", total("replicas")), ("desired", total("desired_replicas"))],
            NO_HISTORY,
        ),
        make_chart(
            "chart-requests", "Request rate by revision", "req/s", lines("request_rate"), NO_HISTORY
        ),
        make_chart(
            "chart-status",
            "Request rate by status class",
            "req/s",
            status_classes(requests, total("error_rate"), kept) if len(requests) else [],
            NO_HISTORY,
        ),
        make_chart("chart-latency", "Latency", "s", latency, NO_HISTORY),
        make_chart(
            "chart-scaler",
            "Autoscaler: stable and panic window averages"
            + (" (requests/s per replica)" if metrics == {"rps"} else " (concurrency)"),
            "req/s" if metrics == {"rps"} else "count",
            windows,
            "No window averages in this range: the autoscaler reports them while a "
            "revision has replicas or requests.",
        ),
        make_chart(
            "chart-cold",
            "Cold starts",
            "count",
            [("cold starts", colds)],
            "No cold start in this range: a revision at zero replicas that gets a request "
            "starts one.",
        ),
    ]
    return ServiceCharts(charts, int(colds.total), charts_json(charts, since, now))


def cold_start_histogram(seconds: Sequence[float]) -> list[ColdStartBin]:
    """How many cold starts took how long, in the bins of :data:`COLD_START_BOUNDS`, from
    the first bin with one to the last."""
    if not seconds:
        return []
    counts = np.bincount(
        np.searchsorted(COLD_START_BOUNDS, seconds, side="left"),
        minlength=len(COLD_START_BOUNDS) + 1,
    )
    labels: list[str] = []
    lower = 0.0
    for upper in COLD_START_BOUNDS:
        labels.append(f"{lower:g} to {upper:g} s")
        lower = upper
    labels.append(f"over {lower:g} s")
    used = np.flatnonzero(counts)
    first, last = int(used[0]), int(used[-1])
    return [ColdStartBin(labels[i], int(counts[i])) for i in range(first, last + 1)]
