"""Scraping: the daemon's own registry and every target's ``/metrics``, parsed.

A :class:`MetricsScraper` reads the targets (``targets.py``, the daemon's and every running
Pod's) with one keep-alive HTTP client, each under a timeout and a body cap, and parses
the Prometheus text format with ``prometheus_client.parser``. The daemon's own registry is
read in process rather than over HTTP. A target that fails is marked down with its error;
nothing a target answers stops the others or the loop. Each target also gets Prometheus's
``up`` series (1 or 0), which ``/federate`` serves like the scraped ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from prometheus_client.parser import text_string_to_metric_families

from wonderland.monitoring.targets import ScrapeTarget

__all__ = [
    "MAX_SCRAPE_BYTES",
    "MetricsScraper",
    "Sample",
    "TargetHealth",
    "TargetScrape",
    "samples_of",
]

MAX_SCRAPE_BYTES = 16 * 1024 * 1024
CONCURRENCY = 16
INLINE_PARSE_BYTES = 256 * 1024


class MetricSource(Protocol):
    """What the in-process registry offers (``CollectorRegistry.collect``)."""

    def collect(self) -> Iterable[Any]: ...


@dataclass(frozen=True)
class Sample:
    """One sample of a scrape: its name and every label (the target's, then its own,
    ``job`` and ``instance``)."""

    name: str
    labels: Mapping[str, str]
    value: float


@dataclass
class TargetHealth:
    """What ``/wonderland/v1/targets`` shows of one target."""

    url: str
    job: str
    labels: dict[str, str]
    health: str = "unknown"  # up | down | unknown
    last_error: str = ""
    last_scrape: float = 0.0  # unix seconds
    last_duration: float = 0.0
    samples: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "scrapeUrl": self.url,
            "job": self.job,
            "labels": self.labels,
            "health": self.health,
            "lastError": self.last_error,
            "lastScrape": self.last_scrape or None,
            "lastScrapeDuration": round(self.last_duration, 6),
            "samples": self.samples,
        }


@dataclass
class TargetScrape:
    """One target's samples at ``at`` (unix seconds); empty when it was down."""

    health: TargetHealth
    at: float
    samples: list[Sample] = field(default_factory=list)


def samples_of(families: Iterable[Any], base: Mapping[str, str]) -> list[Sample]:
    """The samples of parsed metric families, each with ``base`` under its own labels
    (a sample's own label wins, as with Prometheus's ``honor_labels``)."""
    out: list[Sample] = []
    for family in families:
        for s in family.samples:
            labels = {**base, **s.labels} if s.labels else dict(base)
            out.append(Sample(s.name, labels, float(s.value)))
    return out


def _parse(text: str, base: Mapping[str, str]) -> list[Sample]:
    return samples_of(text_string_to_metric_families(text), base)


class MetricsScraper:
    """Scrapes ``targets()`` and ``own`` (the daemon's registry, as ``own_instance()``)."""

    def __init__(
        self,
        targets: Callable[[], list[ScrapeTarget]],
        own: MetricSource | None = None,
        own_instance: Callable[[], str] = lambda: "daemon",
        *,
        timeout: float = 5.0,
        max_bytes: int = MAX_SCRAPE_BYTES,
    ) -> None:
        self.targets = targets
        self.own = own
        self.own_instance = own_instance
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.health: dict[str, TargetHealth] = {}
        self._client: httpx.AsyncClient | None = None
        self._limit = asyncio.Semaphore(CONCURRENCY)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(max_keepalive_connections=64, keepalive_expiry=60),
                headers={"Accept": "text/plain;version=0.0.4"},
                trust_env=False,
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def scrape(self) -> list[TargetScrape]:
        """One round: every target once; the health table follows the targets."""
        targets = [t for t in self.targets() if t.label_dict().get("component") != "daemon"]
        results = await asyncio.gather(*(self._one(t) for t in targets))
        out = list(results)
        if self.own is not None:
            out.insert(0, self._own())
        alive = {r.health.url for r in out}
        for url in [u for u in self.health if u not in alive]:
            del self.health[url]
        return out

    def _own(self) -> TargetScrape:
        instance = self.own_instance()
        url = f"http://{instance}/metrics"
        health = self.health.setdefault(
            url, TargetHealth(url, "wonderland", {"component": "daemon"})
        )
        at = time.time()
        base = {"component": "daemon", "job": "wonderland", "instance": instance}
        try:
            assert self.own is not None
            samples = samples_of(self.own.collect(), base)
        except Exception as exc:  # a collector that raises must not stop the loop
            return self._down(health, at, f"reading the daemon's registry failed: {exc}")
        return self._up(health, at, samples)

    async def _one(self, target: ScrapeTarget) -> TargetScrape:
        health = self.health.get(target.url)
        if health is None:
            health = self.health[target.url] = TargetHealth(
                target.url, target.job, target.label_dict()
            )
        at = time.time()
        async with self._limit:
            try:
                text = await self._fetch(target.url)
            except httpx.TimeoutException:
                return self._down(health, at, f"timed out after {self.timeout:g}s")
            except (httpx.HTTPError, OSError, ValueError) as exc:
                return self._down(health, at, str(exc) or type(exc).__name__)
        base = {**target.label_dict(), "job": target.job, "instance": target.address}
        try:
            if len(text) > INLINE_PARSE_BYTES:  # keep the event loop answering meanwhile
                samples = await asyncio.to_thread(_parse, text, base)
            else:
                samples = _parse(text, base)
        except Exception as exc:  # the parser raises more than ValueError on bad input
            return self._down(health, at, f"not the Prometheus text format: {exc}")
        return self._up(health, at, samples)

    async def _fetch(self, url: str) -> str:
        async with self._http().stream("GET", url) as resp:
            if resp.status_code != 200:
                raise ValueError(f"{url} answered {resp.status_code}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise ValueError(f"the body is over {self.max_bytes} bytes")
                chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", errors="replace")

    def _down(self, health: TargetHealth, at: float, error: str) -> TargetScrape:
        health.health, health.last_error = "down", error
        health.last_scrape, health.last_duration = at, time.time() - at
        health.samples = 0
        return TargetScrape(health, at, [_up_sample(health, 0.0)])

    def _up(self, health: TargetHealth, at: float, samples: list[Sample]) -> TargetScrape:
        health.health, health.last_error = "up", ""
        health.last_scrape, health.last_duration = at, time.time() - at
        health.samples = len(samples)
        return TargetScrape(health, at, [*samples, _up_sample(health, 1.0)])


def _up_sample(health: TargetHealth, value: float) -> Sample:
    """Prometheus's ``up`` of a target: 1 when its scrape worked, 0 when not."""
    instance = health.url.split("://", 1)[-1].split("/", 1)[0]
    return Sample("up", {**health.labels, "job": health.job, "instance": instance}, value)
