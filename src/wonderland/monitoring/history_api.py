"""The read side of the scrape loop on the monitoring endpoint.

- ``/federate?match[]=SELECTOR``: Prometheus's federation, the last scrape's samples that
  match any selector, each with ``job`` and ``instance``, in the text format;
- ``GET /wonderland/v1/history?kind=&name=&namespace=&series=&since=&step=``: a derived
  object's series as ``[[time, value|null], ...]``;
- ``GET /wonderland/v1/top?kind=&namespace=``: the newest row of each object of a kind
  reported in the last 5 minutes;
- ``GET /wonderland/v1/targets``: every target, its health, last error and last scrape.

Bad parameters are a 400 naming the parameter and what it takes.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from typing import Any

import orjson

from wonderland.monitoring.derive import CHART_SERIES, KIND_SERIES, KINDS
from wonderland.monitoring.history import SeriesKey
from wonderland.monitoring.hub import HttpRequest, HttpResponse, MetricsHub
from wonderland.monitoring.recorder import MetricsRecorder
from wonderland.monitoring.selectors import SeriesSelector, parse_selector

__all__ = [
    "FEDERATE_PATH",
    "HISTORY_PATH",
    "MAX_POINTS",
    "TARGETS_PATH",
    "TOP_PATH",
    "HistoryApi",
    "parse_since",
]

FEDERATE_PATH = "/federate"
HISTORY_PATH = "/wonderland/v1/history"
TOP_PATH = "/wonderland/v1/top"
TARGETS_PATH = "/wonderland/v1/targets"
MAX_POINTS = 11000  # as Prometheus's query_range
LOOKBACK_SECONDS = 300.0  # as Prometheus's instant queries
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def _json(status: int, body: Any) -> HttpResponse:
    return HttpResponse(status, orjson.dumps(body), "application/json")


def _seconds(name: str, raw: str) -> float:
    match = _DURATION.fullmatch(raw.strip())
    if not match:
        raise ValueError(
            f"{name}={raw!r} is not a duration; write seconds (300) or a Prometheus "
            "duration (90s, 15m, 1h, 1d)"
        )
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def parse_since(raw: str, now: float) -> float:
    """``since`` as unix seconds: a duration back from ``now`` (``15m``, ``3600``) or a
    unix time (anything past the year 2001)."""
    try:
        value = float(raw)
    except ValueError:
        return now - _seconds("since", raw)
    if value > 1e9:
        return value
    return now - _seconds("since", raw)


def _one(params: Mapping[str, list[str]], name: str, default: str = "") -> str:
    values = params.get(name) or []
    if len(values) > 1:
        raise ValueError(f"{name} is given {len(values)} times; give it once")
    return values[0] if values else default


def _number(value: float) -> str:
    """A sample value as the text format writes it (Go's float formatting)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if value != int(value) or abs(value) >= 1e15 else str(int(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class HistoryApi:
    """The routes over one :class:`MetricsRecorder`."""

    def __init__(self, recorder: MetricsRecorder) -> None:
        self.recorder = recorder

    def install(self, hub: MetricsHub) -> None:
        hub.add_route(FEDERATE_PATH, self.federate)
        hub.add_route(HISTORY_PATH, self.history)
        hub.add_route(TOP_PATH, self.top)
        hub.add_route(TARGETS_PATH, self.targets)

    # -- /federate -------------------------------------------------------------------------

    async def federate(self, request: HttpRequest) -> HttpResponse:
        raw = request.params().get("match[]") or []
        if not raw:
            raise ValueError(
                'federation needs at least one match[] selector, e.g. /federate?match[]={job="pods"}'
            )
        selectors: list[SeriesSelector] = [parse_selector(text) for text in raw]
        by_name: dict[str, list[str]] = {}
        for scrape in self.recorder.latest:
            stamp = str(int(scrape.at * 1000))
            for sample in scrape.samples:
                labels = {"__name__": sample.name, **sample.labels}
                if not any(s.matches(labels) for s in selectors):
                    continue
                pairs = ",".join(
                    f'{k}="{_escape(v)}"' for k, v in sorted(sample.labels.items()) if v != ""
                )
                line = f"{sample.name}{{{pairs}}} {_number(sample.value)} {stamp}"
                by_name.setdefault(sample.name, []).append(line)
        out: list[str] = []
        for name in sorted(by_name):
            out.append(f"# TYPE {name} untyped")
            out.extend(by_name[name])
        body = ("\n".join(out) + "\n").encode() if out else b""
        return HttpResponse(200, body, "text/plain; version=0.0.4; charset=utf-8")

    # -- /wonderland/v1/history ------------------------------------------------------------

    def _kind(self, params: Mapping[str, list[str]], default: str = "") -> str:
        kind = _one(params, "kind", default)
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r} is not one of {', '.join(KINDS)}")
        return kind

    async def history(self, request: HttpRequest) -> HttpResponse:
        params = request.params()
        store = self.recorder.store
        kind = self._kind(params)
        name = _one(params, "name")
        if not name:
            raise ValueError("name is missing: the revision, model, app id or job to read")
        namespace = _one(params, "namespace", "\0")
        keys = [
            k
            for k in store.series_keys()
            if k.kind == kind and k.name == name and (namespace == "\0" or k.namespace == namespace)
        ]
        namespaces = sorted({k.namespace for k in keys})
        if len(namespaces) > 1:
            raise ValueError(
                f"{kind} {name!r} is in namespaces {', '.join(namespaces)}; pass namespace="
            )
        known = sorted(
            {k.series for k in keys} | set(KIND_SERIES[kind]) | set(CHART_SERIES.get(kind, ()))
        )
        wanted_raw = _one(params, "series")
        wanted = [s for s in wanted_raw.split(",") if s] if wanted_raw else []
        for s in wanted:
            if s not in known:
                raise ValueError(f"series={s!r} is not one of {', '.join(known)}")
        now = time.time()
        since = parse_since(_one(params, "since", "1h"), now)
        step_raw = _one(params, "step")
        step = _seconds("step", step_raw) if step_raw else store.step
        if step < store.step:
            raise ValueError(f"step={step_raw!r} is below the history's step of {store.step:g}s")
        if (now - since) / step > MAX_POINTS:
            raise ValueError(
                f"since and step ask for more than {MAX_POINTS} points; raise step or shorten since"
            )
        if not keys:
            where = f" in namespace {namespace!r}" if namespace != "\0" else ""
            return _json(
                404,
                {
                    "status": "error",
                    "errorType": "not_found",
                    "error": f"no history of {kind} {name!r}{where}; see /wonderland/v1/top?kind={kind}",
                },
            )
        series: dict[str, list[list[float | None]]] = {}
        for key in sorted(keys):
            if wanted and key.series not in wanted:
                continue
            series[key.series] = [[t, v] for t, v in store.read(key, since, now, step)]
        return _json(
            200,
            {
                "kind": kind,
                "namespace": keys[0].namespace,
                "name": name,
                "since": since,
                "step": max(store.step, round(step / store.step) * store.step),
                "series": series,
            },
        )

    # -- /wonderland/v1/top ----------------------------------------------------------------

    async def top(self, request: HttpRequest) -> HttpResponse:
        params = request.params()
        kind = self._kind(params, "revisions")
        namespace = _one(params, "namespace")
        store = self.recorder.store
        objects: dict[tuple[str, str], list[SeriesKey]] = {}
        for key in store.series_keys():
            if key.kind == kind and (not namespace or key.namespace == namespace):
                objects.setdefault((key.namespace, key.name), []).append(key)
        columns = list(KIND_SERIES[kind])
        charted = set(CHART_SERIES.get(kind, ()))  # history only: no column of their own
        items: list[dict[str, Any]] = []
        # an object nobody reported for Prometheus's lookback (a deleted revision) drops out
        fresh_after = time.time() - max(LOOKBACK_SECONDS, 3 * store.step)
        for (ns, name), keys in sorted(objects.items()):
            written = {k: store.last_written(k) for k in keys}
            updated = max((t for t in written.values() if t is not None), default=None)
            if updated is None or updated < fresh_after:
                continue
            values: dict[str, float | None] = dict.fromkeys(columns)
            for key in keys:
                if key.series in charted:
                    continue
                latest = store.latest(key) if written[key] == updated else None
                values[key.series] = latest[1] if latest is not None else None
                if key.series not in columns:
                    columns.append(key.series)
            items.append({"namespace": ns, "name": name, "updated": updated, "values": values})
        return _json(
            200,
            {
                "kind": kind,
                "columns": columns,
                "step": store.step,
                "lastScrape": self.recorder.last_round or None,
                "items": items,
            },
        )

    # -- /wonderland/v1/targets ------------------------------------------------------------

    async def targets(self, request: HttpRequest) -> HttpResponse:
        health = sorted(self.recorder.scraper.health.values(), key=lambda h: (h.job, h.url))
        return _json(
            200,
            {
                "scrapeInterval": self.recorder.interval,
                "lastRound": self.recorder.last_round or None,
                "lastRoundDuration": round(self.recorder.last_round_duration, 6),
                "series": len(self.recorder.store),
                "droppedSeries": self.recorder.store.dropped,
                "targets": [h.as_json() for h in health],
            },
        )
