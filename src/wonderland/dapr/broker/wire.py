"""The platform broker's wire: length-prefixed frames between the daemon and its sidecars.

A frame is ``>II`` (header length, payload length), an orjson header object, then the
payload. The broker writes its address and a random token to ``<state_dir>/dapr/broker.json``
(0600); a client must send the token first (``{"op": "hello", "token": ...}``).
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import orjson

__all__ = ["BACKLOG", "BROKER_FILE", "MAX_FRAME", "frame", "read_frame"]

BROKER_FILE = "broker.json"
#: Messages kept for a consumer group while it has no subscriber.
BACKLOG = 1000
_HEAD = struct.Struct(">II")
MAX_FRAME = 64 * 1024 * 1024


async def read_frame(reader: asyncio.StreamReader) -> tuple[dict[str, Any], bytes]:
    """The next frame from ``reader``; ``ValueError`` for one over the limit or malformed."""
    head = await reader.readexactly(_HEAD.size)
    hlen, plen = _HEAD.unpack(head)
    if hlen > MAX_FRAME or plen > MAX_FRAME:
        raise ValueError(f"frame of {hlen + plen} bytes is over the {MAX_FRAME} byte limit")
    header = orjson.loads(await reader.readexactly(hlen))
    payload = await reader.readexactly(plen) if plen else b""
    if not isinstance(header, dict):
        raise ValueError("frame header is not an object")
    return header, payload


def frame(header: dict[str, Any], payload: bytes = b"") -> bytes:
    """One frame: ``header`` as JSON, then ``payload``."""
    head = orjson.dumps(header)
    return _HEAD.pack(len(head), len(payload)) + head + payload
