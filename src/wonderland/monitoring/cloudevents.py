"""The payload logger's CloudEvents as received: binary mode (``ce-*`` headers, the payload
as the body, what KServe's logger sends) or structured mode (``application/cloudevents+json``,
the attributes and ``data`` in one JSON object). The sink and the drift detector read both."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "REQUEST_TYPE",
    "RESPONSE_TYPE",
    "CloudEventError",
    "LoggedEvent",
    "parse_event",
]

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"

_REQUIRED = ("id", "type", "source", "specversion")


class CloudEventError(ValueError):
    """The request is not a CloudEvent; the message says which attribute is missing."""


@dataclass(frozen=True)
class LoggedEvent:
    """One CloudEvent: its id, type, KServe's extension attributes and the payload bytes."""

    id: str
    type: str
    source: str
    time: str
    inference_service: str
    namespace: str
    component: str
    endpoint: str
    content_type: str
    data: bytes
    extensions: Mapping[str, str] = field(default_factory=dict)


def _event(attrs: Mapping[str, str], content_type: str, data: bytes) -> LoggedEvent:
    missing = [a for a in _REQUIRED if not attrs.get(a)]
    if missing:
        raise CloudEventError(
            "not a CloudEvent: missing "
            + ", ".join(f"ce-{a}" for a in missing)
            + " (send binary mode with ce-* headers, or application/cloudevents+json)"
        )
    known = {"id", "type", "source", "specversion", "time", "datacontenttype"}
    return LoggedEvent(
        id=attrs["id"],
        type=attrs["type"],
        source=attrs["source"],
        time=attrs.get("time", ""),
        inference_service=attrs.get("inferenceservicename", ""),
        namespace=attrs.get("namespace", ""),
        component=attrs.get("component", ""),
        endpoint=attrs.get("endpoint", ""),
        content_type=content_type,
        data=data,
        extensions={k: v for k, v in attrs.items() if k not in known},
    )


def parse_event(headers: Mapping[str, str], body: bytes) -> LoggedEvent:
    """The CloudEvent in a request (``headers`` with lower-case names)."""
    content_type = headers.get("content-type", "")
    if content_type.startswith("application/cloudevents+json"):
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise CloudEventError(f"structured CloudEvent is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise CloudEventError("structured CloudEvent must be a JSON object")
        attrs = {k: str(v) for k, v in doc.items() if k not in ("data", "data_base64")}
        if "data_base64" in doc:
            data = base64.b64decode(str(doc["data_base64"]))
        elif "data" in doc:
            value: Any = doc["data"]
            data = value.encode() if isinstance(value, str) else orjson.dumps(value)
        else:
            data = b""
        return _event(attrs, attrs.get("datacontenttype", "application/json"), data)
    attrs = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
    return _event(attrs, content_type or "application/json", body)


def to_binary(event: LoggedEvent) -> tuple[dict[str, str], bytes]:
    """Headers and body of ``event`` in binary mode (what the detector forwards)."""
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event.id,
        "ce-type": event.type,
        "ce-source": event.source,
        "content-type": event.content_type,
    }
    if event.time:
        headers["ce-time"] = event.time
    for key, value in (
        ("inferenceservicename", event.inference_service),
        ("namespace", event.namespace),
        ("component", event.component),
        ("endpoint", event.endpoint),
    ):
        if value:
            headers[f"ce-{key}"] = value
    for key, value in event.extensions.items():
        headers.setdefault(f"ce-{key}", value)
    return headers, event.data
