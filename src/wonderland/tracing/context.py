"""W3C Trace Context (``traceparent``/``tracestate``) without an SDK.

The gateway and the sidecars call these on every request, so they are small: one regular
expression to check a header, ``random.getrandbits`` for ids (ids need to be unique, not
secret), and ``%``-formatting to write the header back. A malformed ``traceparent`` is
not an error: as the W3C spec says, the receiver starts a new trace.
"""

from __future__ import annotations

import re
from binascii import b2a_hex as _b2a
from random import getrandbits
from typing import NamedTuple

__all__ = [
    "TraceParent",
    "child",
    "child_bytes",
    "format_traceparent",
    "from_grpc_trace_bin",
    "new_span_id",
    "new_trace_id",
    "parse_traceparent",
    "to_grpc_trace_bin",
]

# version 00 is exactly 55 characters; a later version may append "-..." fields, which a
# version-00 reader ignores (W3C Trace Context §3.2.4). "ff" is never a valid version.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_TRACEPARENT_B = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_HEX_DIGITS = b"0123456789abcdef"
_ZERO_TRACE_B = b"0" * 32
_ZERO_SPAN_B = b"0" * 16


class TraceParent(NamedTuple):
    """A parsed ``traceparent``: lower-case hex ids and the flags byte."""

    trace_id: str
    parent_id: str
    flags: int = 1

    @property
    def sampled(self) -> bool:
        return bool(self.flags & 1)

    def header(self) -> str:
        return format_traceparent(self.trace_id, self.parent_id, self.flags)


def new_trace_id() -> str:
    """32 lower-case hex digits, never all zeros."""
    return "%032x" % (getrandbits(128) or 1)


def new_span_id() -> str:
    """16 lower-case hex digits, never all zeros."""
    return "%016x" % (getrandbits(64) or 1)


def format_traceparent(trace_id: str, span_id: str, flags: int = 1) -> str:
    return f"00-{trace_id}-{span_id}-{flags:02x}"


def parse_traceparent(value: str | bytes | None) -> TraceParent | None:
    """The ``traceparent`` header's parts, or None when it is missing or malformed (then
    the caller starts a new trace)."""
    if not value:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    m = _TRACEPARENT.fullmatch(value.strip())
    if m is None:
        return None
    version, trace_id, parent_id, flags, rest = m.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return TraceParent(trace_id, parent_id, int(flags, 16))


def child(incoming: str | bytes | None) -> tuple[TraceParent, str]:
    """Continue ``incoming`` (or start a new sampled trace when it is missing or
    malformed) with a new span: ``(the span as a TraceParent, its parent span id or "")``.
    Send ``result[0].header()`` on."""
    parent = parse_traceparent(incoming)
    if parent is None:
        return TraceParent(new_trace_id(), new_span_id(), 1), ""
    return TraceParent(parent.trace_id, new_span_id(), parent.flags), parent.parent_id


_POOL_SIZE = 512
_NEW_HEADERS: list[bytes] = []  # ready "00-<trace>-<span>-01" headers, popped one a request
_SPAN_IDS: list[bytes] = []  # ready span ids


def _refill() -> None:
    """Random ids for the next requests, made in bulk (one ``getrandbits`` and one hex
    conversion per pool; a ``list.pop`` per request)."""
    n = _POOL_SIZE
    raw = _b2a(getrandbits(192 * n).to_bytes(24 * n, "little"))
    _NEW_HEADERS.extend(
        [b"00-%s-%s-01" % (raw[k : k + 32], raw[k + 32 : k + 48]) for k in range(0, 48 * n, 48)]
    )
    raw = _b2a(getrandbits(64 * n).to_bytes(8 * n, "little"))
    _SPAN_IDS.extend([raw[k : k + 16] for k in range(0, 16 * n, 16)])


def child_bytes(incoming: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """The gateway's hot path on raw header bytes: ``(header to send, trace id, new span
    id, parent span id)``; a missing (``b""``) or malformed header starts a new sampled
    trace with an empty parent.

    Ids come from pools refilled in bulk (:func:`_refill`); an all-zero id is left to
    its 2**-64 chance."""
    if incoming:
        if (
            len(incoming) == 55
            and incoming[2] == 45  # "-"
            and incoming[35] == 45
            and incoming[52] == 45
            and incoming.translate(None, _HEX_DIGITS) == b"---"
            and incoming[:2] != b"ff"
        ):
            trace_id = incoming[3:35]
            parent_id = incoming[36:52]
            if trace_id != _ZERO_TRACE_B and parent_id != _ZERO_SPAN_B:
                if not _SPAN_IDS:
                    _refill()
                span = _SPAN_IDS.pop()
                if incoming[1] == 48 and incoming[0] == 48:  # version 00: keep all but the id
                    return incoming[:36] + span + incoming[52:], trace_id, span, parent_id
                return b"00-" + trace_id + b"-" + span + incoming[52:], trace_id, span, parent_id
        elif len(incoming) > 55:  # a later version's header may carry more fields
            m = _TRACEPARENT_B.fullmatch(incoming)
            if m is not None:
                version, trace_id, parent_id, flags, _ = m.groups()
                if (
                    version not in (b"00", b"ff")
                    and trace_id != _ZERO_TRACE_B
                    and parent_id != _ZERO_SPAN_B
                ):
                    if not _SPAN_IDS:
                        _refill()
                    span = _SPAN_IDS.pop()
                    return b"00-" + trace_id + b"-" + span + b"-" + flags, trace_id, span, parent_id
    if not _NEW_HEADERS:
        _refill()
    header = _NEW_HEADERS.pop()
    return header, header[3:35], header[36:52], b""


def to_grpc_trace_bin(parent: TraceParent) -> bytes:
    """The OpenCensus binary format of ``grpc-trace-bin`` metadata (what Dapr also reads):
    version 0, field 0 the trace id, field 1 the span id, field 2 the options."""
    return (
        b"\x00\x00"
        + bytes.fromhex(parent.trace_id)
        + b"\x01"
        + bytes.fromhex(parent.parent_id)
        + b"\x02"
        + bytes([parent.flags & 1])
    )


def from_grpc_trace_bin(value: bytes | str | None) -> TraceParent | None:
    """``grpc-trace-bin`` metadata as a TraceParent, or None when it is malformed."""
    if not value or isinstance(value, str) or len(value) < 27 or value[0] != 0:
        return None
    if value[1] != 0 or value[18] != 1:
        return None
    trace_id, span_id = value[2:18].hex(), value[19:27].hex()
    flags = value[28] if len(value) >= 29 and value[27] == 2 else 0
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceParent(trace_id, span_id, flags)
