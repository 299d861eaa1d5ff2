"""Spans sent to the daemon: OTLP/HTTP (JSON and protobuf encodings of
``ExportTraceServiceRequest``) and Zipkin v2 JSON, decoded into :class:`Span` objects.

The protobuf reader is a small wire-format walker over the fields a trace view needs, so
the daemon takes OTLP without ``opentelemetry-proto``. Bad input raises
:class:`SpanDecodeError` with what was wrong and where.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from typing import Any

import orjson

from wonderland.tracing.store import KINDS, Span

__all__ = ["SpanDecodeError", "decode_otlp_json", "decode_otlp_proto", "decode_zipkin"]


class SpanDecodeError(ValueError):
    """A request body that is not what its content type says."""


# -- OTLP/JSON ------------------------------------------------------------------------


def _id(value: Any, where: str, size: int) -> str:
    """An id as lower-case hex: OTLP/JSON writes hex, some senders base64."""
    if not isinstance(value, str):
        raise SpanDecodeError(f"{where} must be a string of hex digits")
    if len(value) == size * 2:
        try:
            bytes.fromhex(value)
        except ValueError:
            pass
        else:
            return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raw = b""
    if len(raw) == size:
        return raw.hex()
    raise SpanDecodeError(f"{where}={value!r} is not a {size}-byte id in hex")


def _any_value(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return value["intValue"]
    if "arrayValue" in value:
        return [_any_value(v) for v in (value["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in value:
        return _attrs((value["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def _attrs(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(items, list):
        for kv in items:
            if isinstance(kv, dict) and isinstance(kv.get("key"), str):
                out[kv["key"]] = _any_value(kv.get("value"))
    return out


def _kind(value: Any) -> str:
    if isinstance(value, int) and 0 <= value < len(KINDS):
        return KINDS[value]
    if isinstance(value, str):
        name = value.removeprefix("SPAN_KIND_").upper()
        if name in KINDS:
            return name
    return "UNSPECIFIED"


_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


def _status(value: Any) -> tuple[str, str]:
    if not isinstance(value, dict):
        return "UNSET", ""
    code = value.get("code", 0)
    if isinstance(code, str):
        code = {"STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}.get(code, 0)
    return _STATUS.get(code, "UNSET"), str(value.get("message", "") or "")


def _int(value: Any, where: str) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        raise SpanDecodeError(f"{where}={value!r} is not a whole number of nanoseconds") from None


def decode_otlp_json(body: bytes) -> list[Span]:
    """An OTLP/JSON ``ExportTraceServiceRequest`` body."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SpanDecodeError(f"the body is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceSpans", []), list):
        raise SpanDecodeError('expected an object with a "resourceSpans" list')
    out: list[Span] = []
    for i, rs in enumerate(doc.get("resourceSpans", [])):
        if not isinstance(rs, dict):
            raise SpanDecodeError(f"resourceSpans[{i}] must be an object")
        resource = _attrs((rs.get("resource") or {}).get("attributes"))
        service = str(resource.get("service.name", ""))
        for j, ss in enumerate(rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []):
            if not isinstance(ss, dict) or not isinstance(ss.get("spans", []), list):
                raise SpanDecodeError(f"resourceSpans[{i}].scopeSpans[{j}] must be an object")
            for k, sp in enumerate(ss.get("spans", [])):
                where = f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]"
                if not isinstance(sp, dict):
                    raise SpanDecodeError(f"{where} must be an object")
                parent = sp.get("parentSpanId") or ""
                code, message = _status(sp.get("status"))
                out.append(
                    Span(
                        _id(sp.get("traceId"), f"{where}.traceId", 16),
                        _id(sp.get("spanId"), f"{where}.spanId", 8),
                        _id(parent, f"{where}.parentSpanId", 8) if parent else "",
                        str(sp.get("name", "")),
                        _kind(sp.get("kind", 0)),
                        service,
                        _int(sp.get("startTimeUnixNano"), f"{where}.startTimeUnixNano"),
                        _int(sp.get("endTimeUnixNano"), f"{where}.endTimeUnixNano"),
                        _attrs(sp.get("attributes")),
                        code,
                        message,
                    )
                )
    return out


# -- OTLP/protobuf --------------------------------------------------------------------


def _fields(data: bytes, where: str) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of one message: varints as int, fixed as bytes,
    length-delimited as bytes."""
    i, n = 0, len(data)
    while i < n:
        key, i = _varint(data, i, where)
        num, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, i = _varint(data, i, where)
        elif wire == 1:
            value, i = data[i : i + 8], i + 8
        elif wire == 2:
            size, i = _varint(data, i, where)
            value, i = data[i : i + size], i + size
        elif wire == 5:
            value, i = data[i : i + 4], i + 4
        else:
            raise SpanDecodeError(f"{where}: unsupported protobuf wire type {wire}")
        if i > n:
            raise SpanDecodeError(f"{where}: the protobuf message is truncated")
        yield num, wire, value


def _varint(data: bytes, i: int, where: str) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(data) or shift > 63:
            raise SpanDecodeError(f"{where}: the protobuf message is truncated")
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _pb_any(data: bytes, where: str) -> Any:
    for num, wire, value in _fields(data, where):
        if num == 1 and wire == 2:
            return value.decode("utf-8", "replace")
        if num == 2 and wire == 0:
            return bool(value)
        if num == 3 and wire == 0:
            return value - (1 << 64) if value >= 1 << 63 else value
        if num == 4 and wire == 1:
            return struct.unpack("<d", value)[0]
        if num == 5 and wire == 2:
            return [_pb_any(v, where) for n, w, v in _fields(value, where) if n == 1 and w == 2]
        if num == 6 and wire == 2:
            return _pb_attrs((v for n, w, v in _fields(value, where) if n == 1 and w == 2), where)
        if num == 7 and wire == 2:
            return base64.b64encode(value).decode()
    return None


def _pb_attrs(items: Iterator[bytes] | list[bytes], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, value = "", None
        for num, wire, v in _fields(item, where):
            if num == 1 and wire == 2:
                key = v.decode("utf-8", "replace")
            elif num == 2 and wire == 2:
                value = _pb_any(v, where)
        out[key] = value
    return out


def _pb_span(data: bytes, service: str, where: str) -> Span:
    span = Span("", "", "", "")
    attrs: list[bytes] = []
    for num, wire, v in _fields(data, where):
        if wire == 2 and num in (1, 2, 4):
            if num == 1:
                span.trace_id = v.hex()
            elif num == 2:
                span.span_id = v.hex()
            else:
                span.parent_id = v.hex()
        elif num == 5 and wire == 2:
            span.name = v.decode("utf-8", "replace")
        elif num == 6 and wire == 0:
            span.kind = _kind(v)
        elif num == 7 and wire == 1:
            span.start_ns = int.from_bytes(v, "little")
        elif num == 8 and wire == 1:
            span.end_ns = int.from_bytes(v, "little")
        elif num == 9 and wire == 2:
            attrs.append(v)
        elif num == 15 and wire == 2:
            for n, w, sv in _fields(v, where):
                if n == 2 and w == 2:
                    span.status_message = sv.decode("utf-8", "replace")
                elif n == 3 and w == 0:
                    span.status = _STATUS.get(sv, "UNSET")
    if len(span.trace_id) != 32 or len(span.span_id) != 16:
        raise SpanDecodeError(f"{where}: a span needs a 16-byte trace_id and an 8-byte span_id")
    span.service = service
    span.attributes = _pb_attrs(attrs, where)
    return span


def decode_otlp_proto(body: bytes) -> list[Span]:
    """An OTLP/protobuf ``ExportTraceServiceRequest`` body."""
    out: list[Span] = []
    for i, (num, wire, rs) in enumerate(_fields(body, "ExportTraceServiceRequest")):
        if num != 1 or wire != 2:
            continue
        where = f"resource_spans[{i}]"
        service = ""
        scopes: list[bytes] = []
        for n, w, v in _fields(rs, where):
            if n == 1 and w == 2:
                attrs = _pb_attrs(
                    (a for an, aw, a in _fields(v, where) if an == 1 and aw == 2), where
                )
                service = str(attrs.get("service.name", ""))
            elif n == 2 and w == 2:
                scopes.append(v)
        for scope in scopes:
            for n, w, v in _fields(scope, where):
                if n == 2 and w == 2:
                    out.append(_pb_span(v, service, where))
    return out


# -- Zipkin v2 ------------------------------------------------------------------------


def decode_zipkin(body: bytes) -> list[Span]:
    """A Zipkin v2 JSON list of spans (``POST /api/v2/spans``, what Dapr sends)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SpanDecodeError(f"the body is not JSON: {exc}") from None
    if not isinstance(doc, list):
        raise SpanDecodeError("expected a JSON list of Zipkin v2 spans")
    out: list[Span] = []
    for i, sp in enumerate(doc):
        where = f"[{i}]"
        if not isinstance(sp, dict):
            raise SpanDecodeError(f"{where} must be an object")
        trace_id = sp.get("traceId")
        if isinstance(trace_id, str) and len(trace_id) == 16:
            trace_id = trace_id.rjust(32, "0")  # 64-bit Zipkin ids
        start = _int(sp.get("timestamp"), f"{where}.timestamp") * 1000
        duration = _int(sp.get("duration"), f"{where}.duration") * 1000
        raw_tags, raw_local = sp.get("tags"), sp.get("localEndpoint")
        tags: dict[str, Any] = raw_tags if isinstance(raw_tags, dict) else {}
        local: dict[str, Any] = raw_local if isinstance(raw_local, dict) else {}
        parent = sp.get("parentId") or ""
        error = "error" in tags
        out.append(
            Span(
                _id(trace_id, f"{where}.traceId", 16),
                _id(sp.get("id"), f"{where}.id", 8),
                _id(parent, f"{where}.parentId", 8) if parent else "",
                str(sp.get("name", "")),
                _kind(sp.get("kind", "")) if sp.get("kind") else "UNSPECIFIED",
                str(local.get("serviceName", "") or ""),
                start,
                start + duration,
                dict(tags),
                "ERROR" if error else "UNSET",
                str(tags.get("error", "")) if error else "",
            )
        )
    return out
