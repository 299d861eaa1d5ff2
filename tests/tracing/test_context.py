"""traceparent parsing and writing: what the W3C spec accepts, and new traces for the rest."""

from __future__ import annotations

import pytest

from wonderland.tracing.context import (
    TraceParent,
    child,
    child_bytes,
    from_grpc_trace_bin,
    parse_traceparent,
    to_grpc_trace_bin,
)

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_header_parses_and_round_trips() -> None:
    parsed = parse_traceparent(VALID)
    assert parsed == TraceParent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1)
    assert parsed.sampled
    assert parsed.header() == VALID
    assert parse_traceparent(VALID.encode()) == parsed
    unsampled = parse_traceparent(VALID[:-2] + "00")
    assert unsampled is not None and not unsampled.sampled


def test_a_later_version_may_carry_more_fields() -> None:
    parsed = parse_traceparent("cc" + VALID[2:] + "-what-the-future-holds")
    assert parsed is not None and parsed.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "garbage",
        VALID.upper(),  # ids are lower-case hex
        "ff" + VALID[2:],  # version ff is invalid
        VALID + "-extra",  # version 00 has exactly four fields
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",  # short flags
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e47z6-00f067aa0ba902b7-01",
        "\xff\x00" * 30,
    ],
)
def test_malformed_headers_start_a_new_trace(bad: str) -> None:
    assert parse_traceparent(bad) is None
    span, parent = child(bad)
    assert parent == ""
    assert span.trace_id != "4bf92f3577b34da6a3ce929d0e0e4736"
    assert len(span.trace_id) == 32 and len(span.parent_id) == 16 and span.sampled
    header, trace_id, span_id, parent_id = child_bytes(bad.encode("latin-1"))
    assert parent_id == b"" and header == b"00-" + trace_id + b"-" + span_id + b"-01"
    assert parse_traceparent(header) is not None


def test_a_child_keeps_the_trace_and_flags_with_a_new_span() -> None:
    span, parent = child(VALID[:-2] + "00")
    assert span.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert parent == "00f067aa0ba902b7" and span.parent_id != parent
    assert span.flags == 0
    header, trace_id, span_id, parent_id = child_bytes(VALID.encode())
    assert trace_id == b"4bf92f3577b34da6a3ce929d0e0e4736" and parent_id == b"00f067aa0ba902b7"
    assert header.endswith(b"-01") and span_id in header
    ids = {child_bytes(b"")[1] for _ in range(1000)}
    assert len(ids) == 1000


def test_grpc_trace_bin_round_trips() -> None:
    parsed = parse_traceparent(VALID)
    assert parsed is not None
    assert from_grpc_trace_bin(to_grpc_trace_bin(parsed)) == parsed
    assert from_grpc_trace_bin(b"\x00\x01junk") is None
    assert from_grpc_trace_bin("text") is None
