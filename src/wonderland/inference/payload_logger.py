"""KServe's payload logger inside the model server: requests and responses as CloudEvents.

On a cluster KServe's agent sidecar does this; here the model server does it itself when
the InferenceService reconciler sets ``KSERVE_LOGGER_URL`` on the predictor. Each logged
call posts binary-mode CloudEvents (``ce-*`` headers, the payload as the body) of type
``org.kubeflow.serving.inference.request`` and ``...response`` with the same ``ce-id``
and KServe's extension attributes (``inferenceservicename``, ``namespace``,
``component``, ``endpoint``, ``metadata``). Events go out from a bounded queue (100, as
KServe's) on a keep-alive client; when the sink is slow, events are dropped and counted,
never the request.

Environment: ``KSERVE_LOGGER_URL``, ``KSERVE_LOGGER_MODE`` (all, request, response),
``KSERVE_LOGGER_METADATA_HEADERS`` (comma-separated), ``KSERVE_LOGGER_ANNOTATIONS`` (JSON
object), ``KSERVE_INFERENCESERVICE``,
``KSERVE_NAMESPACE``, ``KSERVE_COMPONENT``, ``KSERVE_ENDPOINT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client import Counter

__all__ = ["LoggerConfig", "PayloadLogger", "logger_from_env"]

log = logging.getLogger("wonderland.inference.payload_logger")

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
QUEUE_SIZE = 100

DROPPED = Counter(
    "wonderland_payloads_dropped_total",
    "payload logger CloudEvents not delivered (queue_full: the sink is slow; unreachable: "
    "it did not answer; rejected: it answered an error)",
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


class PayloadLogger:
    """ASGI middleware: passes every request through and logs POSTed payloads."""

    def __init__(self, app: ASGIApp, config: LoggerConfig) -> None:
        self.app = app
        self.config = config
        self.dropped = 0
        self._dropped = {
            reason: DROPPED.labels(config.inference_service, reason)
            for reason in ("queue_full", "unreachable", "rejected")
        }
        self._queue: asyncio.Queue[tuple[dict[str, str], bytes]] | None = None
        self._worker: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        event_id = headers.get("x-request-id") or headers.get("ce-id") or str(uuid.uuid4())
        mode = self.config.mode
        request_body: list[bytes] = []
        response_body: list[bytes] = []
        response_type = ["application/json"]

        async def logged_receive() -> Message:
            message = await receive()
            if message.get("type") == "http.request" and mode in ("all", "request"):
                request_body.append(message.get("body", b""))
            return message

        async def logged_send(message: Message) -> None:
            if message.get("type") == "http.response.start":
                for k, v in message.get("headers") or []:
                    if k.lower() == b"content-type":
                        response_type[0] = v.decode("latin-1")
            elif message.get("type") == "http.response.body" and mode in ("all", "response"):
                response_body.append(message.get("body", b""))
            await send(message)

        await self.app(scope, logged_receive, logged_send)
        metadata = {h: [headers[h]] for h in self.config.metadata_headers if h in headers}
        if mode in ("all", "request"):
            ctype = headers.get("content-type", "application/json")
            self._emit(REQUEST_TYPE, event_id, ctype, b"".join(request_body), metadata)
        if mode in ("all", "response"):
            self._emit(RESPONSE_TYPE, event_id, response_type[0], b"".join(response_body), metadata)

    def _emit(
        self, ce_type: str, event_id: str, ctype: str, body: bytes, metadata: dict[str, Any]
    ) -> None:
        cfg = self.config
        headers = {
            "ce-specversion": "1.0",
            "ce-id": event_id,
            "ce-type": ce_type,
            "ce-source": cfg.source,
            "ce-time": datetime.datetime.now(datetime.UTC).isoformat(),
            "ce-inferenceservicename": cfg.inference_service,
            "ce-namespace": cfg.namespace,
            "ce-component": cfg.component,
            "ce-endpoint": cfg.endpoint,
            "content-type": ctype,
        }
        if metadata:
            headers["ce-metadata"] = orjson.dumps(metadata).decode()
        if cfg.annotations:
            headers["ce-annotations"] = cfg.annotations
        if self._queue is None:
            self._queue = asyncio.Queue(QUEUE_SIZE)
            self._worker = asyncio.get_running_loop().create_task(self._deliver(self._queue))
        try:
            self._queue.put_nowait((headers, body))
        except asyncio.QueueFull:
            self._drop("queue_full", "the sink is slow")

    def _drop(self, reason: str, why: str) -> None:
        self.dropped += 1
        self._dropped[reason].inc()
        if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
            log.warning("payload logger: %d events dropped (%s)", self.dropped, why)

    async def _deliver(self, queue: asyncio.Queue[tuple[dict[str, str], bytes]]) -> None:
        import httpx

        # The replica's proxy setting sends cluster-local sink URLs through the gateway.
        # A sink that does not answer holds one event at a time for at most the connect
        # timeout; meanwhile the queue fills and further events are dropped and counted.
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=2.0)) as client:
            while True:
                headers, body = await queue.get()
                try:
                    resp = await client.post(self.config.url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    self._drop("unreachable", f"cannot post to {self.config.url}: {exc!r}")
                    continue
                if resp.status_code >= 300:
                    self._drop("rejected", f"{self.config.url} answered {resp.status_code}")

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker


def logger_from_env(app: Any, env: Mapping[str, str] | None = None) -> Any:
    """``app`` wrapped in a :class:`PayloadLogger` when ``KSERVE_LOGGER_URL`` is set."""
    config = LoggerConfig.from_env(os.environ if env is None else env)
    if config is None:
        return app
    log.info("payload logger: %s events to %s", config.mode, config.url)
    return PayloadLogger(app, config)
