"""The platform's in-memory pub/sub broker, run by the daemon on a loopback port.

Semantics are those of a broker with consumer groups: every group subscribed to a topic
gets each message once; within a group, subscribers take turns (so two replicas of one app
share the work, as with Kafka or Redis Streams). A group whose subscribers are all gone
(a replica restarting) keeps up to :data:`~wonderland.dapr.broker.wire.BACKLOG` messages
until one comes back. As with Dapr's in-memory broker, nothing survives the daemon and a
failed delivery is not retried by the broker (a resiliency policy retries it in the sidecar).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from wonderland.dapr.broker.wire import BACKLOG, BROKER_FILE, frame, read_frame

__all__ = ["PlatformBroker"]

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Connection:
    writer: asyncio.StreamWriter
    subs: dict[int, tuple[str, str]] = field(default_factory=dict)

    def send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        if not self.writer.is_closing():
            self.writer.write(frame(header, payload))


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
            hello, _ = await asyncio.wait_for(read_frame(reader), 10)
            if hello.get("op") != "hello" or not secrets.compare_digest(
                str(hello.get("token", "")), self.token
            ):
                conn.send({"op": "error", "error": "bad token: read it from broker.json"})
                return
            conn.send({"op": "welcome"})
            self._conns.add(conn)
            while True:
                header, payload = await read_frame(reader)
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
