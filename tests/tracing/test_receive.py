"""Span exports decoded: OTLP JSON and protobuf (checked against opentelemetry-proto's own
encoding), Zipkin v2; the store keeps the newest traces within its limits."""

from __future__ import annotations

import orjson
import pytest

from wonderland.tracing.receive import (
    SpanDecodeError,
    decode_otlp_json,
    decode_otlp_proto,
    decode_zipkin,
)
from wonderland.tracing.store import Span, TraceStore

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def otlp_json(trace_id: str = TRACE) -> bytes:
    return orjson.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": "app"}}]
                    },
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": trace_id,
                                    "spanId": "00f067aa0ba902b7",
                                    "parentSpanId": "1111111111111111",
                                    "name": "work",
                                    "kind": 2,
                                    "startTimeUnixNano": "1000000000",
                                    "endTimeUnixNano": "1500000000",
                                    "attributes": [
                                        {"key": "n", "value": {"intValue": "3"}},
                                        {"key": "ok", "value": {"boolValue": True}},
                                    ],
                                    "status": {"code": 2, "message": "boom"},
                                }
                            ]
                        }
                    ],
                }
            ]
        }
    )


def test_otlp_json_decodes() -> None:
    (span,) = decode_otlp_json(otlp_json())
    assert (span.trace_id, span.span_id, span.parent_id) == (
        TRACE,
        "00f067aa0ba902b7",
        "1111111111111111",
    )
    assert (span.name, span.kind, span.service) == ("work", "SERVER", "app")
    assert span.attributes == {"n": 3, "ok": True}
    assert (span.status, span.status_message) == ("ERROR", "boom")
    assert span.end_ns - span.start_ns == 500_000_000


def test_otlp_protobuf_decodes_what_opentelemetry_proto_encodes() -> None:
    trace_service = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")
    from google.protobuf import json_format

    doc = orjson.loads(otlp_json())
    # the protobuf JSON mapping spells ids in base64; decode_otlp_json takes both
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    import base64

                    sp[key] = base64.b64encode(bytes.fromhex(sp[key])).decode()
    message = json_format.ParseDict(doc, trace_service.ExportTraceServiceRequest())
    (span,) = decode_otlp_proto(message.SerializeToString())
    assert decode_otlp_json(orjson.dumps(doc)) == [span]
    assert span.trace_id == TRACE and span.attributes == {"n": 3, "ok": True}
    assert span.status == "ERROR" and span.kind == "SERVER" and span.service == "app"


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"resourceSpans": [1]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz", "spanId": "00"}]}]}]}',
    ],
)
def test_bad_otlp_json_is_a_decode_error(body: bytes) -> None:
    with pytest.raises(SpanDecodeError):
        decode_otlp_json(body)


def test_truncated_protobuf_is_a_decode_error() -> None:
    with pytest.raises(SpanDecodeError):
        decode_otlp_proto(b"\x0a\xff\x01\x0a")


def test_zipkin_v2_decodes() -> None:
    body = orjson.dumps(
        [
            {
                "traceId": TRACE,
                "id": "00f067aa0ba902b7",
                "name": "calllocal/app/method",
                "kind": "CLIENT",
                "timestamp": 1000,
                "duration": 250,
                "localEndpoint": {"serviceName": "checkout"},
                "tags": {"dapr.api": "/v1.0/invoke"},
            }
        ]
    )
    (span,) = decode_zipkin(body)
    assert span.service == "checkout" and span.kind == "CLIENT"
    assert span.start_ns == 1_000_000 and span.end_ns == 1_250_000
    with pytest.raises(SpanDecodeError):
        decode_zipkin(b'{"not": "a list"}')


def test_the_store_keeps_the_newest_traces_and_orders_a_waterfall() -> None:
    store = TraceStore(max_traces=3)
    for i in range(5):
        trace = f"{i:032x}"
        store.record((trace, "a" * 16, "", "root", "SERVER", "gw", 10_000, 100_000, None, False))
        store.record(
            (
                trace.encode(),
                b"b" * 16,
                b"a" * 16,
                "child",
                "CLIENT",
                "gw",
                20_000,
                50_000,
                {"k": "v"},
                True,
            )
        )
    assert len(store) == 3
    assert [t["traceId"] for t in store.summaries()] == [f"{i:032x}" for i in (4, 3, 2)]
    assert store.trace(f"{0:032x}") is None
    found = store.trace(f"{4:032x}")
    assert found is not None
    assert [(s["name"], s["depth"], s["offsetMs"]) for s in found["spans"]] == [
        ("root", 0, 0.0),
        ("child", 1, 0.01),
    ]
    assert found["spans"][1]["status"]["code"] == "ERROR"


def test_the_store_evicts_by_bytes() -> None:
    store = TraceStore(max_traces=1000, max_bytes=10_000)
    big = "x" * 3000
    for i in range(10):
        store.add([Span(f"{i:032x}", "a" * 16, "", big)])
    assert store.bytes <= 10_000 and 1 <= len(store) <= 3
    assert store.summaries(limit=1)[0]["traceId"] == f"{9:032x}"


def test_one_endless_trace_does_not_take_the_store() -> None:
    store = TraceStore()
    store.max_spans_per_trace = 5
    store.add([Span(TRACE, f"{i:016x}", "", "again") for i in range(1, 9)])
    found = store.trace(TRACE)
    assert found is not None and len(found["spans"]) == 5 and store.dropped == 3
