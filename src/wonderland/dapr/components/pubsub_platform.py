"""``pubsub.in-memory`` for the sidecars ``wonderland up`` starts: a client of the daemon's
broker (:mod:`wonderland.dapr.broker`), so events cross from one app's sidecar to another's.
Registered for ``pubsub.in-memory`` only by :mod:`wonderland.dapr.platform_sidecar`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from pathlib import Path
from typing import Any

import orjson

from wonderland.dapr.broker.wire import BROKER_FILE, frame, read_frame
from wonderland.dapr.components.base import Closer, Message, MessageHandler, PubSubComponent

__all__ = ["BrokerUnavailableError", "PlatformPubSub"]

log = logging.getLogger(__name__)


class BrokerUnavailableError(ConnectionError):
    """The platform's broker did not answer; the message says where it looked."""


class PlatformPubSub(PubSubComponent):
    """``pubsub.in-memory`` for sidecars under ``wonderland up``: a client of the daemon's broker.

    The connection is made in the background and made again if it drops (subscriptions are
    renewed); publishing waits up to ``connectTimeout`` for it.
    """

    FIELDS = {"consumerID": "", "connectTimeout": "10s"}

    async def init(self) -> None:
        self.file = Path(self.ctx.state_dir or ".") / BROKER_FILE
        self._subs: dict[int, tuple[str, str, asyncio.Queue[Message | None]]] = {}
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._ids = itertools.count(1)
        self._acks: dict[int, asyncio.Future[None]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._connected = asyncio.Event()
        self._closed = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        self._closed = True
        self._task.cancel()
        for task in self._workers.values():
            task.cancel()
        if self._writer is not None:
            self._writer.close()

    async def _run(self) -> None:
        delay = 0.05
        while not self._closed:
            try:
                info = orjson.loads(self.file.read_bytes())
                host, _, port = str(info["address"]).rpartition(":")
                reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(frame({"op": "hello", "token": info["token"]}))
                answer, _ = await asyncio.wait_for(read_frame(reader), 10)
                if answer.get("op") != "welcome":
                    writer.close()
                    raise BrokerUnavailableError(str(answer.get("error", answer)))
            except (
                OSError,
                ValueError,
                KeyError,
                TimeoutError,
                asyncio.IncompleteReadError,
            ) as exc:
                log.debug("pubsub %s: broker not reachable yet (%s)", self.name, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            delay = 0.05
            self._writer = writer
            for sid, (topic, group, _queue) in self._subs.items():
                writer.write(frame({"op": "sub", "sid": sid, "topic": topic, "group": group}))
            self._connected.set()
            try:
                while True:
                    header, payload = await read_frame(reader)
                    op = header.get("op")
                    if op == "msg":
                        sub = self._subs.get(int(header["sid"]))
                        if sub is not None:
                            meta = {str(k): str(v) for k, v in (header.get("meta") or {}).items()}
                            sub[2].put_nowait(Message(str(header["topic"]), payload, meta))
                    elif op == "ack":
                        fut = self._acks.pop(int(header["id"]), None)
                        if fut is not None and not fut.done():
                            fut.set_result(None)
                    elif op == "error":
                        log.warning("pubsub %s: broker says %s", self.name, header.get("error"))
            except (OSError, ValueError, KeyError, asyncio.IncompleteReadError) as exc:
                log.warning(
                    "pubsub %s: lost the platform broker (%s); reconnecting", self.name, exc
                )
            finally:
                self._connected.clear()
                self._writer = None
                writer.close()
                for fut in self._acks.values():
                    if not fut.done():
                        fut.set_exception(
                            BrokerUnavailableError("the connection to the broker dropped")
                        )
                self._acks.clear()

    async def _request(self, header: dict[str, Any], payload: bytes = b"") -> None:
        timeout = self.number("connectTimeout") or 10.0
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            raise BrokerUnavailableError(
                f"pubsub {self.name!r}: the platform's in-memory broker ({self.file}) did not "
                f"answer within {timeout:g}s; is `wonderland up` running?"
            ) from None
        writer = self._writer
        assert writer is not None
        req = next(self._ids)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acks[req] = fut
        writer.write(frame({**header, "id": req}, payload))
        await asyncio.wait_for(fut, timeout)

    async def publish(self, topic: str, data: bytes, metadata: dict[str, str]) -> None:
        await self._request({"op": "pub", "topic": topic, "meta": metadata}, data)

    async def subscribe(self, topic: str, group: str, handler: MessageHandler) -> Closer:
        sid = next(self._ids)
        queue: asyncio.Queue[Message | None] = asyncio.Queue()
        self._subs[sid] = (topic, group, queue)

        async def worker() -> None:
            while True:
                msg = await queue.get()
                if msg is None:
                    return
                try:
                    await handler(msg)
                except Exception as exc:
                    log.warning(
                        "in-memory pubsub %s: message on %s not processed: %s",
                        self.name,
                        topic,
                        exc,
                    )

        self._workers[sid] = asyncio.get_running_loop().create_task(worker())
        if self._writer is not None:
            self._writer.write(frame({"op": "sub", "sid": sid, "topic": topic, "group": group}))

        async def close() -> None:
            self._subs.pop(sid, None)
            if self._writer is not None:
                self._writer.write(frame({"op": "unsub", "sid": sid}))
            task = self._workers.pop(sid, None)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        return close
