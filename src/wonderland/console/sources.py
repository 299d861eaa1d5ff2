"""Where the Service and InferenceService pages read what is not in the store.

Each seam is a small Protocol with one implementation over the daemon's own parts, called
in process:

- :class:`HistorySource`: the metrics history, the last scrape's raw samples
  (``/federate``) and the logged payloads (``/wonderland/v1/payloads``)
  (:class:`HubSources`). The history is read straight from the daemon's
  :class:`~wonderland.monitoring.history.HistoryStore` through :class:`HistoryReader`
  (no JSON in between: a Service page reads 14 series of up to 360 points); the rest
  are routes of the monitoring endpoint's :class:`~wonderland.monitoring.hub.MetricsHub`;
- :class:`ModelClient`: V2 requests to a model through the gateway, as a user's client
  would send them, and :class:`GatewayClient`: any request to a Service through the
  gateway (a function's "invoke" box), both :class:`GatewayModelClient`.

The autoscaler's state is :class:`~wonderland.autoscaler.exporter.ScalerSource` (the
serving system), the recent cold starts the gateway's
:class:`~wonderland.gateway.RoutingTable`, and logs
:class:`~wonderland.control.sources.PodLogSource` (the kubelet): those seams exist already.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast
from urllib.parse import urlencode, urlsplit

import httpx
import numpy as np
import numpy.typing as npt
import orjson
from prometheus_client.parser import text_string_to_metric_families

from wonderland.monitoring.history import SeriesKey
from wonderland.monitoring.hub import HttpRequest, MetricsHub

__all__ = [
    "HISTORY_PATH",
    "PAYLOADS_PATH",
    "GatewayClient",
    "GatewayModelClient",
    "HistoryReader",
    "HistorySource",
    "HubSources",
    "ModelAnswer",
    "ModelClient",
    "NoSources",
    "RawSample",
    "Series",
]

log = logging.getLogger("wonderland.console")

HISTORY_PATH = "/wonderland/v1/history"
FEDERATE_PATH = "/federate"
PAYLOADS_PATH = "/wonderland/v1/payloads"


@dataclass(frozen=True)
class Series:
    """One series of the history over a range: its times (unix seconds) and values, NaN
    where nothing was recorded. Charts compute on the arrays (sums, minimum, maximum)
    and write them as JSON without a Python float per point."""

    times: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]

    @classmethod
    def of(cls, points: Sequence[tuple[float, float | None]]) -> Series:
        """From ``(time, value or None)`` pairs."""
        times = np.array([t for t, _ in points], np.float64)
        values = np.array([np.nan if v is None else v for _, v in points], np.float64)
        return cls(times, values)

    def __len__(self) -> int:
        return len(self.times)

    @property
    def total(self) -> float:
        """The sum of the recorded values (0 without any)."""
        return float(np.nansum(self.values)) if len(self.values) else 0.0


@dataclass(frozen=True)
class RawSample:
    """One sample of the last scrape (``/federate``): name, labels, value."""

    name: str
    labels: Mapping[str, str]
    value: float


class HistoryReader(Protocol):
    """The read side of the metrics history
    (:class:`~wonderland.monitoring.history.HistoryStore`): one series' points."""

    @property
    def step(self) -> float:
        """The history's step (seconds between two recorded points)."""
        ...

    def read_arrays(
        self, key: SeriesKey, since: float, until: float | None = None, step: float | None = None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Times and values (NaN where nothing was recorded) from ``since`` to ``until``
        every ``step`` seconds (a multiple of the history's); empty when the series is not
        kept."""
        ...


class HistorySource(Protocol):
    """The monitoring endpoint's read routes, as the console pages need them."""

    @property
    def available(self) -> bool:
        """Whether the daemon keeps a metrics history at all."""
        ...

    async def history(
        self,
        kind: str,
        namespace: str,
        name: str,
        since: float,
        step: float,
        series: Sequence[str] = (),
    ) -> dict[str, Series]:
        """The ``series`` (every one when empty) of one object from ``since`` (unix seconds), one point per ``step``
        seconds; empty when the object has no history."""
        ...

    async def samples(self, selector: str) -> list[RawSample]:
        """The last scrape's samples matching one Prometheus selector."""
        ...

    async def payloads(self, namespace: str, name: str, limit: int) -> list[dict[str, Any]] | None:
        """The newest logged calls of an InferenceService (``/wonderland/v1/payloads``
        items), or None when no payload sink runs."""
        ...


class NoSources:
    """A :class:`HistorySource` for a daemon without the monitoring plugin."""

    available = False

    async def history(
        self,
        kind: str,
        namespace: str,
        name: str,
        since: float,
        step: float,
        series: Sequence[str] = (),
    ) -> dict[str, Series]:
        return {}

    async def samples(self, selector: str) -> list[RawSample]:
        return []

    async def payloads(self, namespace: str, name: str, limit: int) -> list[dict[str, Any]] | None:
        return None


class HubSources:
    """:class:`HistorySource` over the :class:`MetricsHub`'s routes, called in process; the
    history from ``reader`` directly when there is one (the daemon's), else through the
    ``/wonderland/v1/history`` route."""

    def __init__(self, hub: MetricsHub, reader: HistoryReader | None = None) -> None:
        self.hub = hub
        self.reader = reader

    @property
    def available(self) -> bool:
        return self.reader is not None or self.hub.route(HISTORY_PATH) is not None

    async def _get(self, path: str, params: Mapping[str, str]) -> tuple[int, bytes]:
        handler = self.hub.route(path)
        if handler is None:
            return 404, b""
        try:
            response = await handler(HttpRequest("GET", path, urlencode(params)))
        except ValueError as exc:  # the route's 400: a bug of ours, not the user's
            log.warning("console: %s refused %s: %s", path, dict(params), exc)
            return 400, b""
        return response.status, response.body

    async def history(
        self,
        kind: str,
        namespace: str,
        name: str,
        since: float,
        step: float,
        series: Sequence[str] = (),
    ) -> dict[str, Series]:
        if self.reader is not None and series:
            return self._read(kind, namespace, name, since, step, series)
        params = {
            "kind": kind,
            "namespace": namespace,
            "name": name,
            "since": f"{since:.3f}",
            "step": f"{step:g}",
        }
        if series:
            params["series"] = ",".join(series)
        status, body = await self._get(HISTORY_PATH, params)
        if status != 200:
            return {}
        doc = orjson.loads(body)
        # [time, value] pairs as the route writes them (numbers or null): used as they are
        found = doc.get("series") or {}
        return {
            str(k): Series.of(cast(list[tuple[float, float | None]], v))
            for k, v in found.items()
            if isinstance(v, list)
        }

    def _read(
        self, kind: str, namespace: str, name: str, since: float, step: float, series: Sequence[str]
    ) -> dict[str, Series]:
        assert self.reader is not None
        # the route's rounding: a step below the history's is the history's
        step = max(step, self.reader.step)
        until = time.time()
        out: dict[str, Series] = {}
        for s in series:
            times, values = self.reader.read_arrays(
                SeriesKey(kind, namespace, name, s), since, until, step
            )
            if len(times):
                out[s] = Series(times, values)
        return out

    async def samples(self, selector: str) -> list[RawSample]:
        status, body = await self._get(FEDERATE_PATH, {"match[]": selector})
        if status != 200 or not body:
            return []
        out: list[RawSample] = []
        for family in text_string_to_metric_families(body.decode("utf-8", "replace")):
            for sample in family.samples:
                out.append(RawSample(sample.name, dict(sample.labels), float(sample.value)))
        return out

    async def payloads(self, namespace: str, name: str, limit: int) -> list[dict[str, Any]] | None:
        params = {"namespace": namespace, "inferenceservice": name, "limit": str(limit)}
        status, body = await self._get(PAYLOADS_PATH, params)
        if status == 404:
            return None
        if status != 200:
            return []
        items = orjson.loads(body).get("items") or []
        return [i for i in items if isinstance(i, dict)]


@dataclass(frozen=True)
class ModelAnswer:
    """What a model answered: HTTP status, body (text), the seconds it took, and the
    ``curl`` command that sends the same request from a terminal."""

    status: int
    body: str
    seconds: float
    curl: str
    error: str = ""  # the request did not get an answer (gateway down, timeout)
    headers: tuple[tuple[str, str], ...] = ()  # the answer's content type and ce-* headers


class ModelClient(Protocol):
    """Sends Open Inference Protocol (V2) requests to a model the platform serves."""

    async def get(self, url: str, path: str) -> ModelAnswer: ...

    async def post(self, url: str, path: str, body: bytes) -> ModelAnswer: ...


class GatewayClient(Protocol):
    """Sends one POST to a Service the platform routes (its ``status.url``) through the
    gateway, with the given headers, as ``wonderland func invoke`` does."""

    async def send(
        self, url: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> ModelAnswer: ...


MAX_ANSWER = 256 * 1024  # bytes of a model's answer the page shows


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


class GatewayModelClient:
    """:class:`ModelClient` through the platform's gateway: the request goes to the
    gateway's address with the model's host name (its ``status.url``), as curl with
    ``-H Host`` would send it; a request nobody answers within ``timeout`` is an error."""

    def __init__(self, gateway: Callable[[], str | None], timeout: float = 30.0) -> None:
        self._gateway = gateway
        self.timeout = timeout

    def _target(self, url: str, path: str) -> tuple[str, str, str]:
        gateway = self._gateway() or ""
        host = urlsplit(url).netloc
        return gateway, host, (gateway.rstrip("/") + path)

    def _curl(self, url: str, path: str, body: bytes | None, headers: Mapping[str, str]) -> str:
        _, host, target = self._target(url, path)
        parts = ["curl", "-sS", "-H", _shell_quote(f"Host: {host}")]
        for name, value in headers.items():
            parts += ["-H", _shell_quote(f"{name}: {value}")]
        if body is not None:
            text = body.decode("utf-8", "replace")
            if "json" in headers.get("Content-Type", "").lower():
                try:  # one line in the terminal: the same request, without the editor's spaces
                    text = orjson.dumps(orjson.loads(body)).decode()
                except orjson.JSONDecodeError:
                    pass
            parts += ["-d", _shell_quote(text)]
        parts.append(target or path)
        return " ".join(parts)

    async def _send(
        self,
        method: str,
        url: str,
        path: str,
        body: bytes | None,
        headers: Mapping[str, str],
        what: str = "model",
    ) -> ModelAnswer:
        gateway, host, target = self._target(url, path)
        curl = self._curl(url, path, body, headers)
        if not gateway or not host:
            why = "the gateway is not running" if not gateway else f"the {what} has no URL yet"
            return ModelAnswer(0, "", 0.0, curl, why)
        sent = {"host": host, **{k.lower(): v for k, v in headers.items()}}
        started = time.perf_counter()
        try:
            async with httpx.AsyncClient(timeout=self.timeout, trust_env=False) as client:
                response = await client.request(method, target, content=body, headers=sent)
                data = response.content[:MAX_ANSWER]
        except httpx.HTTPError as exc:
            took = time.perf_counter() - started
            return ModelAnswer(0, "", took, curl, f"no answer from {target}: {exc!r}")
        took = time.perf_counter() - started
        kept = tuple(
            (k, v)
            for k, v in response.headers.items()
            if k.lower() == "content-type" or k.lower().startswith("ce-")
        )
        text = data.decode("utf-8", "replace")
        return ModelAnswer(response.status_code, text, took, curl, headers=kept)

    async def get(self, url: str, path: str) -> ModelAnswer:
        return await self._send("GET", url, path, None, {})

    async def post(self, url: str, path: str, body: bytes) -> ModelAnswer:
        return await self._send("POST", url, path, body, {"Content-Type": "application/json"})

    async def send(
        self, url: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> ModelAnswer:
        return await self._send("POST", url, path, body, headers, "Service")
