"""Answers of the text routes: a JSON document, or a stream of server-sent events."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["DONE", "EventStream", "JsonAnswer", "sse"]

DONE = b"data: [DONE]\n\n"


@dataclass(slots=True)
class JsonAnswer:
    """A whole JSON reply."""

    doc: Any
    status: int = 200


@dataclass(slots=True)
class EventStream:
    """A ``text/event-stream`` reply, sent chunk by chunk as ``chunks`` yields them.

    The server closes ``chunks`` when the client goes away, which ends the generation."""

    chunks: AsyncGenerator[bytes, None]
    headers: list[tuple[bytes, bytes]] = field(
        default_factory=lambda: [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
    )


def sse(doc: Any) -> bytes:
    """One ``data:`` event holding ``doc`` as JSON."""
    return b"data: " + orjson.dumps(doc) + b"\n\n"
