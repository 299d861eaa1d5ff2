"""Live updates: the store's watch as one server-sent events stream per open page.

Each change becomes an ``event: change`` whose ``id`` is the change's resourceVersion and
whose data names the object (``{"type", "resource", "namespace", "name", "rv"}``); the
page then fetches its fresh content. A browser that reconnects sends ``Last-Event-ID``
and the stream resumes from there; when that resourceVersion is older than the store's
kept history, or a client read too slowly and its bounded queue overflowed, the stream
sends ``event: resync`` (the page reloads its content whole) and goes on from the current
resourceVersion. A ``: ping`` comment every ``heartbeat`` seconds keeps proxies and the
browser from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson

from wonderland.errors import InvalidError
from wonderland.store import ExpiredError, Store, WatchEvent

__all__ = ["HEARTBEAT_SECONDS", "QUEUE_SIZE", "QUIET_RESOURCES", "LiveFeed", "format_event"]

HEARTBEAT_SECONDS = 15.0
QUEUE_SIZE = 256
RETRY_MS = 2000
# Changes no page shows and that come often: the node's lease heartbeat, metrics.
QUIET_RESOURCES = frozenset(
    {"leases.coordination.k8s.io", "nodes.metrics.k8s.io", "pods.metrics.k8s.io"}
)


@dataclass(frozen=True)
class _Resync:
    rv: int
    why: str


def format_event(event: str, data: object, event_id: str | None = None) -> bytes:
    """One SSE message (``data`` as one JSON line)."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    lines.append("data: " + orjson.dumps(data).decode())
    return ("\n".join(lines) + "\n\n").encode()


class LiveFeed:
    """Streams the store's changes to one client (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        heartbeat: float = HEARTBEAT_SECONDS,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.store = store
        self.heartbeat = heartbeat
        self.queue_size = queue_size

    def _start_rv(self, last_event_id: str) -> tuple[int, _Resync | None]:
        current = int(self.store.resource_version)
        raw = last_event_id.strip()
        if not raw:
            return current, None
        if not raw.isdigit():
            return current, _Resync(current, f"Last-Event-ID {raw!r} is not a resourceVersion")
        since = int(raw)
        if since > current:  # the store was reset under the page
            return current, _Resync(current, f"resourceVersion {since} is in the future")
        return since, None

    async def _pump(self, since: int, queue: asyncio.Queue[WatchEvent | _Resync]) -> None:
        """Copy the watch into ``queue``; on overflow or an expired start, empty the queue,
        put a resync and start over from the current resourceVersion."""
        while True:
            watch = self.store.watch(None, since)
            try:
                async for event in watch:
                    if event.resource in QUIET_RESOURCES:
                        continue
                    try:
                        queue.put_nowait(event)
                    except asyncio.QueueFull:
                        since = self._drain(queue, "the page read changes too slowly")
                        break
                    since = event.rv
                else:
                    return
            except (ExpiredError, InvalidError) as exc:
                since = self._drain(queue, str(exc))
            finally:
                await watch.aclose()

    def _drain(self, queue: asyncio.Queue[WatchEvent | _Resync], why: str) -> int:
        while not queue.empty():
            queue.get_nowait()
        current = int(self.store.resource_version)
        queue.put_nowait(_Resync(current, why))
        return current

    async def stream(self, last_event_id: str = "") -> AsyncIterator[bytes]:
        """The SSE bytes for one client, until the caller stops iterating."""
        since, resync = self._start_rv(last_event_id)
        queue: asyncio.Queue[WatchEvent | _Resync] = asyncio.Queue(self.queue_size)
        yield f"retry: {RETRY_MS}\n\n".encode()
        if resync is not None:
            yield format_event("resync", {"rv": resync.rv, "why": resync.why}, str(resync.rv))
        else:
            yield format_event("hello", {"rv": since}, str(since))
        pump = asyncio.create_task(self._pump(since, queue))
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), self.heartbeat)
                except TimeoutError:
                    if pump.done():
                        pump.result()  # raise what stopped the watch
                        return
                    yield b": ping\n\n"
                    continue
                if isinstance(item, _Resync):
                    yield format_event("resync", {"rv": item.rv, "why": item.why}, str(item.rv))
                    continue
                yield format_event(
                    "change",
                    {
                        "type": item.type,
                        "resource": item.resource,
                        "namespace": item.namespace,
                        "name": item.name,
                        "rv": item.rv,
                    },
                    str(item.rv),
                )
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
