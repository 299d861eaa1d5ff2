"""KServe's payload logger inside the model server: requests and responses as CloudEvents.

On a cluster KServe's agent sidecar does this; here the model server does it itself when
the InferenceService reconciler sets ``KSERVE_LOGGER_URL`` on the predictor. Each logged
call posts binary-mode CloudEvents (``ce-*`` headers, the payload as the body) of type
``org.kubeflow.serving.inference.request`` and ``...response`` with the same ``ce-id``
and KServe's extension attributes (``inferenceservicename``, ``namespace``,
``component``, ``endpoint``, ``metadata``, ``annotations``), as KServe's
``pkg/logger/worker.go`` sends them.

The request path only appends the bodies it already has as bytes to a bounded queue (100,
as KServe's); :data:`SENDERS` background tasks on the server's event loop take them from
there and post them, each on its own HTTP/1.1 keep-alive connection written directly on
asyncio streams (a general-purpose client costs the loop more per event than the model's
own request). A sink that is slow, refuses, does not answer within the timeout, or answers
an error costs only the event, which is dropped and counted; never the request. On
shutdown the queue is flushed for at most :attr:`LoggerConfig.flush_seconds`.

Environment: ``KSERVE_LOGGER_URL``, ``KSERVE_LOGGER_MODE`` (all, request, response),
``KSERVE_LOGGER_METADATA_HEADERS`` (comma-separated), ``KSERVE_LOGGER_ANNOTATIONS`` (JSON
object), ``KSERVE_INFERENCESERVICE``, ``KSERVE_NAMESPACE``, ``KSERVE_COMPONENT``,
``KSERVE_ENDPOINT``. ``HTTP_PROXY``/``NO_PROXY`` apply to ``http://`` URLs as for any
client of the replica (cluster-local names go through the gateway).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import ssl
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import orjson
from prometheus_client import Counter

__all__ = ["QUEUE_SIZE", "SENDERS", "LoggerConfig", "PayloadLogger", "logger_from_env"]

log = logging.getLogger("wonderland.inference.payload_logger")

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
QUEUE_SIZE = 100
SENDERS = 4  # events in flight at once, one keep-alive connection each
REASONS = ("queue_full", "unreachable", "rejected", "shutdown")

DROPPED = Counter(
    "wonderland_payloads_dropped_total",
    "payload logger CloudEvents not delivered (queue_full: the sink is slow; unreachable: "
    "it refused, failed or did not answer in time; rejected: it answered an error; "
    "shutdown: still queued when the server stopped)",
    ["inferenceservice", "reason"],
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class LoggerConfig:
    """Where and what to log (KServe's ``logger`` spec plus the component's identity)."""

    url: str
    mode: str = "all"
    inference_service: str = ""
    namespace: str = ""
    component: str = "predictor"
    endpoint: str = "default"
    metadata_headers: tuple[str, ...] = ()
    annotations: str = ""  # JSON of the InferenceService annotations to attach
    source: str = field(default="http://localhost:9081/")
    connect_timeout: float = 2.0
    timeout: float = 10.0  # per event: connect, send, the sink's answer
    flush_seconds: float = 2.0  # longest wait for the queue to empty on shutdown

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LoggerConfig | None:
        url = env.get("KSERVE_LOGGER_URL", "").strip()
        if not url:
            return None
        mode = env.get("KSERVE_LOGGER_MODE", "all").strip().lower() or "all"
        if mode not in ("all", "request", "response"):
            raise ValueError(f"KSERVE_LOGGER_MODE {mode!r}: use all, request or response")
        headers = tuple(
            h.strip().lower()
            for h in env.get("KSERVE_LOGGER_METADATA_HEADERS", "").split(",")
            if h.strip()
        )
        return cls(
            url=url,
            mode=mode,
            inference_service=env.get("KSERVE_INFERENCESERVICE", ""),
            namespace=env.get("KSERVE_NAMESPACE", ""),
            component=env.get("KSERVE_COMPONENT", "predictor"),
            endpoint=env.get("KSERVE_ENDPOINT", "default"),
            metadata_headers=headers,
            annotations=env.get("KSERVE_LOGGER_ANNOTATIONS", ""),
        )


class _Event(NamedTuple):
    """One queued CloudEvent: what the request path had at hand, nothing serialized."""

    ce_type: bytes
    event_id: bytes
    content_type: bytes
    body: bytes
    metadata: bytes
    at: float  # time.time()


class _Target(NamedTuple):
    """Where a connection goes and what the request line names."""

    host: str
    port: int
    tls: bool
    request_target: bytes
    host_header: bytes


def _target(url: str) -> _Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"KSERVE_LOGGER_URL {url!r}: give an http:// or https:// URL")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default_port = parts.port is None or parts.port == (443 if tls else 80)
    host_header = parts.hostname if default_port else f"{parts.hostname}:{port}"
    if ":" in parts.hostname and not default_port:
        host_header = f"[{parts.hostname}]:{port}"
    if not tls:
        # the replica's proxy (the gateway) routes cluster-local names, as for any client
        proxy = urllib.request.getproxies_environment().get("http", "")
        if proxy and not urllib.request.proxy_bypass(parts.hostname):
            via = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            if via.hostname:
                absolute = f"http://{host_header}{path}"
                return _Target(
                    via.hostname, via.port or 80, False, absolute.encode(), host_header.encode()
                )
    return _Target(parts.hostname, port, tls, path.encode(), host_header.encode())


def _header_value(value: str) -> bytes:
    return value.replace("\r", " ").replace("\n", " ").encode("utf-8", "replace")


def _rfc3339(at: float) -> bytes:
    stamp = datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return stamp.encode()


class _Rejected(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Connection:
    """One HTTP/1.1 keep-alive connection to the sink (or the proxy in front of it)."""

    def __init__(self, target: _Target, connect_timeout: float) -> None:
        self.target = target
        self.connect_timeout = connect_timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, head: bytes, body: bytes) -> int:
        """Send one request; the status code. A kept connection that turns out closed
        (the sink dropped it while idle) is reopened once."""
        reused = self.writer is not None
        try:
            return await self._post_once(head, body)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.close()
            if not reused:
                raise
        return await self._post_once(head, body)

    async def _post_once(self, head: bytes, body: bytes) -> int:
        if self.writer is None or self.reader is None:
            tls: ssl.SSLContext | None = ssl.create_default_context() if self.target.tls else None
            async with asyncio.timeout(self.connect_timeout):
                self.reader, self.writer = await asyncio.open_connection(
                    self.target.host, self.target.port, ssl=tls, limit=1 << 16
                )
        reader, writer = self.reader, self.writer
        writer.write(head + body if len(body) < 4096 else head)
        if len(body) >= 4096:
            writer.write(body)
        await writer.drain()
        status_line = await reader.readuntil(b"\r\n")
        try:
            status = int(status_line.split(b" ", 2)[1])
        except (IndexError, ValueError):
            raise ConnectionError(f"not an HTTP answer: {status_line[:60]!r}") from None
        length, chunked, keep = -1, False, True
        while True:
            line = await reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                keep = False
        if chunked:
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length > 0:
            await reader.readexactly(length)
        elif length < 0 and status not in (204, 304) and status >= 200:
            await reader.read()  # no length: the body ends with the connection
            keep = False
        if not keep:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class PayloadLogger:
    """ASGI middleware: passes every request through and logs POSTed payloads."""

    def __init__(self, app: ASGIApp, config: LoggerConfig) -> None:
        self.app = app
        self.config = config
        self.dropped = 0
        self.sent = 0
        self._dropped = {
            reason: DROPPED.labels(config.inference_service, reason) for reason in REASONS
        }
        self._target = _target(config.url)
        self._log_request = config.mode in ("all", "request")
        self._log_response = config.mode in ("all", "response")
        self._wanted = tuple(h.encode("latin-1") for h in config.metadata_headers)
        # the headers every event has, written once
        fixed = [
            (b"Host", self._target.host_header),
            (b"ce-specversion", b"1.0"),
            (b"ce-source", _header_value(config.source)),
            (b"ce-inferenceservicename", _header_value(config.inference_service)),
            (b"ce-namespace", _header_value(config.namespace)),
            (b"ce-component", _header_value(config.component)),
            (b"ce-endpoint", _header_value(config.endpoint)),
        ]
        if config.annotations:
            fixed.append((b"ce-annotations", _header_value(config.annotations)))
        self._head_start = b"POST " + self._target.request_target + b" HTTP/1.1\r\n"
        self._head_fixed = b"".join(k + b": " + v + b"\r\n" for k, v in fixed)
        self._queue: asyncio.Queue[_Event] | None = None
        self._senders: list[asyncio.Task[None]] = []
        self._connections: list[_Connection] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request_body: list[bytes] = []
        response_body: list[bytes] = []
        response_type = [b"application/json"]
        if self._log_request:

            async def logged_receive() -> Message:
                message = await receive()
                if message["type"] == "http.request":
                    request_body.append(message.get("body", b""))
                return message

        if self._log_response:

            async def logged_send(message: Message) -> None:
                if message["type"] == "http.response.body":
                    response_body.append(message.get("body", b""))
                elif message["type"] == "http.response.start":
                    for k, v in message.get("headers") or ():
                        if k.lower() == b"content-type":
                            response_type[0] = v
                await send(message)

        await self.app(
            scope,
            logged_receive if self._log_request else receive,
            logged_send if self._log_response else send,
        )
        event_id = b""
        request_type = b"application/json"
        metadata: dict[str, list[str]] = {}
        for k, v in scope["headers"]:
            if k == b"x-request-id" or (k == b"ce-id" and not event_id):
                event_id = v
            elif k == b"content-type":
                request_type = v
            if self._wanted and k in self._wanted:
                metadata[k.decode("latin-1")] = [v.decode("latin-1")]
        if not event_id:
            event_id = str(uuid.uuid4()).encode()
        meta = orjson.dumps(metadata) if metadata else b"{}"
        at = time.time()
        if self._log_request:
            self._enqueue(
                _Event(
                    REQUEST_TYPE.encode(), event_id, request_type, b"".join(request_body), meta, at
                )
            )
        if self._log_response:
            self._enqueue(
                _Event(
                    RESPONSE_TYPE.encode(),
                    event_id,
                    response_type[0],
                    b"".join(response_body),
                    meta,
                    at,
                )
            )

    def _enqueue(self, event: _Event) -> None:
        queue = self._queue
        if queue is None:
            queue = self._start()
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            self._drop("queue_full", "the sink is slow")

    def _start(self) -> asyncio.Queue[_Event]:
        # on the first event, in the serving loop (after a --workers fork: each worker its own)
        queue: asyncio.Queue[_Event] = asyncio.Queue(QUEUE_SIZE)
        self._queue = queue
        loop = asyncio.get_running_loop()
        for _ in range(SENDERS):
            conn = _Connection(self._target, self.config.connect_timeout)
            self._connections.append(conn)
            self._senders.append(loop.create_task(self._deliver(queue, conn)))
        return queue

    def _drop(self, reason: str, why: str) -> None:
        self.dropped += 1
        self._dropped[reason].inc()
        if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
            log.warning("payload logger: %d events dropped (%s)", self.dropped, why)

    def _head(self, event: _Event) -> bytes:
        return b"".join(
            (
                self._head_start,
                self._head_fixed,
                b"ce-id: ",
                event.event_id,
                b"\r\nce-type: ",
                event.ce_type,
                b"\r\nce-time: ",
                _rfc3339(event.at),
                b"\r\nce-metadata: ",
                event.metadata,
                b"\r\ncontent-type: ",
                event.content_type,
                b"\r\ncontent-length: ",
                str(len(event.body)).encode(),
                b"\r\n\r\n",
            )
        )

    async def _deliver(self, queue: asyncio.Queue[_Event], conn: _Connection) -> None:
        url, timeout = self.config.url, self.config.timeout
        while True:
            event = await queue.get()
            try:
                async with asyncio.timeout(timeout):
                    status = await conn.post(self._head(event), event.body)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                conn.close()
                self._drop("unreachable", f"cannot post to {url}: {exc!r}")
            except asyncio.CancelledError:
                self._drop("shutdown", "the server stopped before the sink answered")
                raise
            else:
                if status >= 300:
                    self._drop("rejected", f"{url} answered {status}")
                else:
                    self.sent += 1
            finally:
                queue.task_done()

    async def close(self) -> None:
        """Send what is queued (for at most ``flush_seconds``), then stop; what is left is
        dropped and counted (``shutdown``)."""
        queue = self._queue
        if queue is not None and queue.qsize():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.flush_seconds):
                    await queue.join()
        for task in self._senders:
            task.cancel()
        for task in self._senders:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for conn in self._connections:
            conn.close()
        if queue is not None:
            while not queue.empty():
                queue.get_nowait()
                self._drop("shutdown", "the server stopped before the sink took them")
        self._senders, self._connections, self._queue = [], [], None


def logger_from_env(app: Any, env: Mapping[str, str] | None = None) -> Any:
    """``app`` wrapped in a :class:`PayloadLogger` when ``KSERVE_LOGGER_URL`` is set."""
    config = LoggerConfig.from_env(os.environ if env is None else env)
    if config is None:
        return app
    log.info("payload logger: %s events to %s", config.mode, config.url)
    return PayloadLogger(app, config)
