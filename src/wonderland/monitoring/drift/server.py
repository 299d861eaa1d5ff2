"""The drift detector's HTTP server: an ASGI app over :class:`DriftDetector`.

- ``POST /`` (any path but the ones below): one logger CloudEvent, binary or structured
  mode. 202 once read (the window is tested in the background); 400 when it is not a
  CloudEvent or its inputs do not match the reference's columns (the message names them).
  With a :class:`~wonderland.monitoring.drift.publish.PayloadForwarder` every event
  received is passed on to the payload sink.
- ``GET /metrics``: ``wonderland_drift_score``, ``wonderland_drift_p_value``,
  ``wonderland_drift_detected`` and the detector's counters.
- ``GET /`` (JSON status), ``GET /healthz``, ``GET /ready``.
"""

from __future__ import annotations

from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from wonderland.asgi import Receive, Scope, Send
from wonderland.monitoring.cloudevents import CloudEventError, parse_event
from wonderland.monitoring.drift.detector import DriftDetector
from wonderland.monitoring.drift.publish import PayloadForwarder

__all__ = ["MAX_BODY", "DriftDetectorApp"]

MAX_BODY = 16 * 1024 * 1024


class DriftDetectorApp:
    """The ASGI app (parses, calls the detector, maps errors)."""

    def __init__(
        self,
        detector: DriftDetector,
        registry: CollectorRegistry,
        forwarder: PayloadForwarder | None = None,
    ) -> None:
        self.detector = detector
        self.registry = registry
        self.forwarder = forwarder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        status, body, ctype = await self._answer(scope, receive)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", ctype.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope, receive: Receive) -> tuple[int, bytes, str]:
        method = scope["method"]
        path = scope["path"]
        if method in ("GET", "HEAD"):
            if path == "/metrics":
                return 200, generate_latest(self.registry), CONTENT_TYPE_LATEST
            if path in ("/healthz", "/ready", "/v2/health/ready", "/v2/health/live"):
                return 200, b"ok", "text/plain"
            if path == "/":
                return _json(200, self.detector.status())
            return _json(404, {"error": f"no such path: {path}"})
        if method != "POST":
            return _json(405, {"error": "POST CloudEvents; GET /metrics or / for the status"})
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return _json(400, {"error": "client went away"})
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                return _json(413, {"error": f"request bodies are limited to {MAX_BODY} bytes"})
            chunks.append(chunk)
            more = bool(message.get("more_body"))
        body = b"".join(chunks)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            event = parse_event(headers, body)
        except CloudEventError as exc:
            return _json(400, {"error": str(exc)})
        if self.forwarder is not None:
            self.forwarder.forward(event.inference_service, headers, body)
        try:
            await self.detector.receive(event)
        except ValueError as exc:
            return _json(400, {"error": str(exc)})
        return 202, b"", "text/plain"


def _json(status: int, doc: Any) -> tuple[int, bytes, str]:
    return status, orjson.dumps(doc), "application/json"
