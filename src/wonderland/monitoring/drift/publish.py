"""Where the detector's output goes: drift events and the payloads it passes on.

- :class:`DaprPublisher`: the drift CloudEvent to a Dapr pub/sub topic through the sidecar
  (``POST http://127.0.0.1:$DAPR_HTTP_PORT/v1.0/publish/<pubsub>/<topic>``, body the event
  as ``application/cloudevents+json``, which Dapr passes through unchanged).
- :class:`ReplyPublisher`: the drift CloudEvent in binary mode to ``--reply_url`` (as
  KServe's drift detector sample replies, e.g. to a Knative broker or event display).
- :class:`PayloadForwarder`: every CloudEvent the detector receives, as received, to
  ``--sink_url`` (the platform's payload sink), from a bounded queue; when the sink is slow
  or does not answer, events are dropped and counted
  (``wonderland_payloads_dropped_total``), never the logger's request held.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import httpx
import orjson
from prometheus_client import CollectorRegistry, Counter

__all__ = ["DaprPublisher", "PayloadForwarder", "ReplyPublisher", "events_counter"]

log = logging.getLogger("wonderland.monitoring.drift")

TIMEOUT = httpx.Timeout(10.0, connect=2.0)


class _Publisher:
    def __init__(self, name: str, counter: Counter | None) -> None:
        self.name = name
        self.failures = 0
        self._client: httpx.AsyncClient | None = None
        self._counter = counter

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=TIMEOUT)
        return self._client

    async def _post(self, url: str, content: bytes, headers: Mapping[str, str]) -> None:
        outcome = "success"
        try:
            resp = await self.client.post(url, content=content, headers=dict(headers))
            if resp.status_code >= 300:
                outcome = "failure"
                log.warning(
                    "drift event to %s: %s answered %d %s",
                    self.name,
                    url,
                    resp.status_code,
                    resp.text[:200],
                )
        except httpx.HTTPError as exc:
            outcome = "failure"
            log.warning("drift event to %s: cannot post to %s: %s", self.name, url, exc)
        if outcome == "failure":
            self.failures += 1
        if self._counter is not None:
            self._counter.labels(self.name, outcome).inc()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def events_counter(registry: CollectorRegistry) -> Counter:
    return Counter(
        "wonderland_drift_events_total",
        "drift CloudEvents sent, by destination and outcome",
        ["destination", "outcome"],
        registry=registry,
    )


class DaprPublisher(_Publisher):
    """Publishes to ``pubsub``/``topic`` through the Dapr sidecar on ``port``."""

    def __init__(self, port: int, pubsub: str, topic: str, counter: Counter | None = None) -> None:
        super().__init__(f"dapr:{pubsub}/{topic}", counter)
        self.url = f"http://127.0.0.1:{port}/v1.0/publish/{pubsub}/{topic}"

    async def publish(self, event: dict[str, Any]) -> None:
        await self._post(
            self.url, orjson.dumps(event), {"content-type": "application/cloudevents+json"}
        )


class ReplyPublisher(_Publisher):
    """Posts the event in binary mode (``ce-*`` headers, ``data`` as the body) to ``url``."""

    def __init__(self, url: str, counter: Counter | None = None) -> None:
        super().__init__(f"reply:{url}", counter)
        self.url = url

    async def publish(self, event: dict[str, Any]) -> None:
        headers = {
            f"ce-{k}": str(v) for k, v in event.items() if k not in ("data", "datacontenttype")
        }
        headers["content-type"] = str(event.get("datacontenttype", "application/json"))
        await self._post(self.url, orjson.dumps(event.get("data")), headers)


class PayloadForwarder:
    """Passes received CloudEvents on to the payload sink (see the module docstring)."""

    QUEUE_SIZE = 100

    def __init__(self, url: str, registry: CollectorRegistry) -> None:
        self.url = url
        self.dropped = Counter(
            "wonderland_payloads_dropped_total",
            "logged payloads not passed on to the payload sink (queue_full: the sink is slow; "
            "unreachable: it did not answer; rejected: it answered an error)",
            ["inferenceservice", "reason"],
            registry=registry,
        )
        self._queue: asyncio.Queue[tuple[str, dict[str, str], bytes]] = asyncio.Queue(
            self.QUEUE_SIZE
        )
        self._worker: asyncio.Task[None] | None = None

    def forward(self, service: str, headers: Mapping[str, str], body: bytes) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._deliver())
        passed = {k: v for k, v in headers.items() if k.startswith("ce-") or k == "content-type"}
        try:
            self._queue.put_nowait((service, passed, body))
        except asyncio.QueueFull:
            self.dropped.labels(service, "queue_full").inc()

    async def _deliver(self) -> None:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            while True:
                service, headers, body = await self._queue.get()
                try:
                    resp = await client.post(self.url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    self.dropped.labels(service, "unreachable").inc()
                    log.debug("payload sink %s: %s", self.url, exc)
                    continue
                if resp.status_code >= 300:
                    self.dropped.labels(service, "rejected").inc()

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
