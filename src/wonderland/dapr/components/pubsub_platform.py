"""``pubsub.in-memory`` on the platform: one broker in the daemon's memory for every sidecar.

A standalone sidecar keeps ``pubsub.in-memory`` in its own process. Under ``wonderland up``
every replica has its own sidecar process, so a process-local broker would never carry an
event from one app to another. Here "in memory" means "in the platform's memory": the
daemon runs :class:`PlatformBroker` on a loopback port, and the sidecars it starts use
:class:`PlatformPubSub` (registered for ``pubsub.in-memory`` by this module's ``__main__``
entry, which the Dapr plugin runs instead of ``wonderland``) as a client of that broker.

Semantics are those of a broker with consumer groups: every group subscribed to a topic
gets each message once; within a group, subscribers take turns (so two replicas of one app
share the work, as with Kafka or Redis Streams). A group whose subscribers are all gone
(a replica restarting) keeps up to :data:`BACKLOG` messages until one comes back. As with
Dapr's in-memory broker, nothing survives the daemon and a failed delivery is not retried
by the broker (a resiliency policy retries it in the sidecar).

The wire: frames of ``>II`` (header length, payload length), an orjson header, the payload.
The broker writes its address and a random token to ``<state_dir>/dapr/broker.json`` (0600);
a client must send the token first.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import struct
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from wonderland.dapr.components.base import Closer, Message, MessageHandler, PubSubComponent

if TYPE_CHECKING:
    from wonderland.dapr.platform import DaprPlatform
    from wonderland.platform import Platform

__all__ = ["BACKLOG", "BROKER_FILE", "PlatformBroker", "PlatformPubSub", "install"]

log = logging.getLogger(__name__)

BROKER_FILE = "broker.json"
#: Messages kept for a consumer group while it has no subscriber.
BACKLOG = 1000
_HEAD = struct.Struct(">II")
_MAX_FRAME = 64 * 1024 * 1024


async def _read_frame(reader: asyncio.StreamReader) -> tuple[dict[str, Any], bytes]:
    head = await reader.readexactly(_HEAD.size)
    hlen, plen = _HEAD.unpack(head)
    if hlen > _MAX_FRAME or plen > _MAX_FRAME:
        raise ValueError(f"frame of {hlen + plen} bytes is over the {_MAX_FRAME} byte limit")
    header = orjson.loads(await reader.readexactly(hlen))
    payload = await reader.readexactly(plen) if plen else b""
    if not isinstance(header, dict):
        raise ValueError("frame header is not an object")
    return header, payload


def _frame(header: dict[str, Any], payload: bytes = b"") -> bytes:
    head = orjson.dumps(header)
    return _HEAD.pack(len(head), len(payload)) + head + payload


# -- the broker (in the daemon) -----------------------------------------------------------------


@dataclass(eq=False)
class _Connection:
    writer: asyncio.StreamWriter
    subs: dict[int, tuple[str, str]] = field(default_factory=dict)

    def send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        if not self.writer.is_closing():
            self.writer.write(_frame(header, payload))


@dataclass
class _Group:
    members: list[tuple[_Connection, int]] = field(default_factory=list)
    turn: int = 0
    backlog: deque[tuple[dict[str, str], bytes]] = field(
        default_factory=lambda: deque(maxlen=BACKLOG)
    )


class PlatformBroker:
    """Topics and consumer groups in the daemon's memory, served on a loopback port."""

    def __init__(self, state_dir: Path, host: str = "127.0.0.1") -> None:
        self.file = state_dir / BROKER_FILE
        self.host = host
        self.port = 0
        self.token = ""
        self.topics: dict[str, dict[str, _Group]] = {}
        self._server: asyncio.Server | None = None
        self._conns: set[_Connection] = set()
        self.published = 0
        self.delivered = 0

    async def start(self) -> None:
        self.token = secrets.token_urlsafe(24)
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        self.file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_name(f".{BROKER_FILE}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(orjson.dumps({"address": f"{self.host}:{self.port}", "token": self.token}))
        os.replace(tmp, self.file)
        log.info("in-memory pub/sub broker on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.file.unlink()
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns):
            conn.writer.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    def publish(self, topic: str, meta: dict[str, str], payload: bytes) -> None:
        self.published += 1
        for group in self.topics.get(topic, {}).values():
            if not group.members:
                group.backlog.append((meta, payload))
                continue
            conn, sid = group.members[group.turn % len(group.members)]
            group.turn += 1
            conn.send({"op": "msg", "sid": sid, "topic": topic, "meta": meta}, payload)
            self.delivered += 1

    def _subscribe(self, conn: _Connection, sid: int, topic: str, group_name: str) -> None:
        group = self.topics.setdefault(topic, {}).setdefault(group_name, _Group())
        group.members.append((conn, sid))
        conn.subs[sid] = (topic, group_name)
        while group.backlog:
            meta, payload = group.backlog.popleft()
            conn.send({"op": "msg", "sid": sid, "topic": topic, "meta": meta}, payload)
            self.delivered += 1

    def _unsubscribe(self, conn: _Connection, sid: int) -> None:
        found = conn.subs.pop(sid, None)
        if found is None:
            return
        topic, group_name = found
        group = self.topics.get(topic, {}).get(group_name)
        if group is not None:
            with contextlib.suppress(ValueError):
                group.members.remove((conn, sid))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(writer)
        try:
            hello, _ = await asyncio.wait_for(_read_frame(reader), 10)
            if hello.get("op") != "hello" or not secrets.compare_digest(
                str(hello.get("token", "")), self.token
            ):
                conn.send({"op": "error", "error": "bad token: read it from broker.json"})
                return
            conn.send({"op": "welcome"})
            self._conns.add(conn)
            while True:
                header, payload = await _read_frame(reader)
                op = header.get("op")
                if op == "pub":
                    meta = {str(k): str(v) for k, v in (header.get("meta") or {}).items()}
                    self.publish(str(header.get("topic", "")), meta, payload)
                elif op == "sub":
                    self._subscribe(
                        conn, int(header["sid"]), str(header["topic"]), str(header["group"])
                    )
                elif op == "unsub":
                    self._unsubscribe(conn, int(header["sid"]))
                else:
                    conn.send({"op": "error", "error": f"unknown operation {op!r}"})
                    continue
                if "id" in header:
                    conn.send({"op": "ack", "id": header["id"]})
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        except (ValueError, KeyError, orjson.JSONDecodeError) as exc:
            log.warning(
                "in-memory pub/sub broker: dropping a client that sent a bad frame: %s", exc
            )
        finally:
            for sid in list(conn.subs):
                self._unsubscribe(conn, sid)
            self._conns.discard(conn)
            writer.close()


# -- the client (in each sidecar started by the platform) ---------------------------------------


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
                writer.write(_frame({"op": "hello", "token": info["token"]}))
                answer, _ = await asyncio.wait_for(_read_frame(reader), 10)
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
                writer.write(_frame({"op": "sub", "sid": sid, "topic": topic, "group": group}))
            self._connected.set()
            try:
                while True:
                    header, payload = await _read_frame(reader)
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
        writer.write(_frame({**header, "id": req}, payload))
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
            self._writer.write(_frame({"op": "sub", "sid": sid, "topic": topic, "group": group}))

        async def close() -> None:
            self._subs.pop(sid, None)
            if self._writer is not None:
                self._writer.write(_frame({"op": "unsub", "sid": sid}))
            task = self._workers.pop(sid, None)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        return close


# -- the platform hook --------------------------------------------------------------------------

#: The module the Dapr plugin runs sidecars with, so that they use :class:`PlatformPubSub`.
SIDECAR_MODULE = "wonderland.dapr.components.pubsub_platform"


def install(platform: Platform, dapr: DaprPlatform) -> PlatformBroker:
    """Run the broker in the daemon and start the platform's sidecars as its clients."""
    broker = PlatformBroker(dapr.root)
    platform.add_service(broker)
    dapr.sidecar_module = SIDECAR_MODULE
    return broker


def use_platform_broker() -> None:
    """Make ``pubsub.in-memory`` in this process a client of the platform's broker."""
    from wonderland.dapr import components

    components.register("pubsub.in-memory", f"{SIDECAR_MODULE}:PlatformPubSub")


def main(argv: list[str]) -> int:
    """``python -m wonderland.dapr.components.pubsub_platform sidecar ...``: the platform's sidecar."""
    from wonderland.cli import main as cli_main

    use_platform_broker()
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
