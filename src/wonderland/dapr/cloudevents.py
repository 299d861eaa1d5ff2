"""CloudEvents envelopes built as Dapr builds them (components-contrib ``pubsub/envelope.go``)."""

from __future__ import annotations

import base64
import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["from_raw_payload", "is_json_content_type", "new_envelope"]

_TRACEPARENT_EMPTY = "00-00000000000000000000000000000000-0000000000000000-00"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def is_json_content_type(ct: str) -> bool:
    base = ct.split(";", 1)[0].strip().lower()
    return base == "application/json" or base.endswith("+json") or base == "text/json"


def _is_binary(ct: str) -> bool:
    base = ct.split(";", 1)[0].strip().lower()
    return (
        base == "application/octet-stream"
        or base.startswith(("image/", "audio/", "video/"))
        or base
        in {
            "application/protobuf",
            "application/x-protobuf",
            "application/cloudevents+protobuf",
        }
    )


def new_envelope(
    *,
    data: bytes,
    content_type: str,
    topic: str,
    pubsub: str,
    source: str,
    metadata: dict[str, str],
) -> dict[str, Any]:
    """The envelope for a publish; ``metadata`` may carry ``cloudevent.*`` and ``ttlInSeconds``."""
    ct = content_type or "text/plain"
    base_ct = ct.split(";", 1)[0].strip().lower()
    if base_ct == "application/cloudevents+json":
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise ValueError(
                "the body is not a JSON CloudEvent but the content type is application/cloudevents+json"
            ) from None
        if not isinstance(event, dict):
            raise ValueError("a CloudEvent must be a JSON object")
        event.setdefault("id", str(uuid.uuid4()))
        event.setdefault("source", source or "Dapr")
        event.setdefault("type", "com.dapr.event.sent")
        event.setdefault("specversion", "1.0")
        event.setdefault("time", _now())
        event.setdefault("datacontenttype", "application/json" if "data" in event else ct)
        event["topic"] = topic
        event["pubsubname"] = pubsub
    else:
        event = {
            "id": str(uuid.uuid4()),
            "specversion": "1.0",
            "datacontenttype": ct,
            "source": source or "Dapr",
            "type": "com.dapr.event.sent",
            "topic": topic,
            "pubsubname": pubsub,
            "traceid": _TRACEPARENT_EMPTY,
            "traceparent": _TRACEPARENT_EMPTY,
            "tracestate": "",
            "time": _now(),
        }
        if is_json_content_type(ct):
            try:
                event["data"] = orjson.loads(data) if data else None
            except orjson.JSONDecodeError:
                event["data"] = data.decode("utf-8", "replace")
        elif _is_binary(ct):
            event["data_base64"] = base64.b64encode(data).decode("ascii")
        else:
            event["data"] = data.decode("utf-8", "replace")
    for key, field in (
        ("cloudevent.id", "id"),
        ("cloudevent.source", "source"),
        ("cloudevent.type", "type"),
        ("cloudevent.subject", "subject"),
        ("cloudevent.traceparent", "traceparent"),
        ("cloudevent.tracestate", "tracestate"),
        ("cloudevent.traceid", "traceid"),
    ):
        if metadata.get(key):
            event[field] = metadata[key]
    ttl = metadata.get("ttlInSeconds")
    if ttl:
        try:
            expires = datetime.fromtimestamp(time.time() + int(ttl), UTC)
        except (OverflowError, OSError) as exc:  # past what a date can hold
            raise ValueError(f"ttlInSeconds {ttl} puts the expiration out of range") from exc
        event["expiration"] = expires.isoformat(timespec="seconds").replace("+00:00", "Z")
    return event


def from_raw_payload(data: bytes, topic: str, pubsub: str) -> dict[str, Any]:
    """Wrap bytes published with ``rawPayload`` for a subscriber that expects a CloudEvent."""
    return {
        "id": str(uuid.uuid4()),
        "specversion": "1.0",
        "datacontenttype": "application/octet-stream",
        "source": os.environ.get("APP_ID", "Dapr"),
        "type": "com.dapr.event.sent",
        "topic": topic,
        "pubsubname": pubsub,
        "data_base64": base64.b64encode(data).decode("ascii"),
    }
