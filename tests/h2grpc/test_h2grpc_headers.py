"""The HPACK decoder against the ``hpack`` package's encoder and decoder."""

from __future__ import annotations

import random

import hpack
import pytest

from wonderland.h2grpc.headers import HeaderDecoder, response_headers, status_fields


def _calls(seed: int) -> list[list[tuple[str, str]]]:
    rng = random.Random(seed)
    base = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/dapr.proto.runtime.v1.Dapr/GetState"),
        (":authority", "127.0.0.1:50001"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("user-agent", "grpc-go/1.33.3"),
    ]
    out = []
    for i in range(300):
        call = list(base)
        call.append(("grpc-timeout", f"{rng.randint(1, 99_999_999)}u"))
        if rng.random() < 0.3:
            call.append((f"x-custom-{rng.randint(0, 40)}", "é" * rng.randint(0, 300)))
        if rng.random() < 0.1:
            call.append(("trace-bin", "AAEC"))
        if rng.random() < 0.5:
            call[2] = (":path", f"/svc/M{i % 7}")
        out.append(call)
    return out


@pytest.mark.parametrize("table_size", [4096, 256, 0])
def test_decodes_what_the_hpack_encoder_writes(table_size: int) -> None:
    enc = hpack.Encoder()
    enc.header_table_size = table_size  # exercises size updates and eviction
    ours = HeaderDecoder()
    theirs = hpack.Decoder()
    for call in _calls(table_size):
        for _ in range(2):  # the second time the block may be all references: the cache
            block = enc.encode(call)
            expected = [(str(k), str(v)) for k, v in theirs.decode(block)]
            assert ours.decode(block) == expected == call


def test_sensitive_and_huffman_literals() -> None:
    enc = hpack.Encoder()
    call = [
        hpack.NeverIndexedHeaderTuple("dapr-api-token", "s3cret"),
        ("x-plain", "v"),
        (":path", "/a"),
    ]
    block = enc.encode(call, huffman=True)
    assert HeaderDecoder().decode(block) == [
        ("dapr-api-token", "s3cret"),
        ("x-plain", "v"),
        (":path", "/a"),
    ]


def test_malformed_blocks_raise_hpack_errors() -> None:
    for block in (b"\xff", b"\xbf\x7f", b"\x00\x05ab", b"\x3f\xe2\x1f", b"\x80"):
        with pytest.raises(hpack.HPACKError):
            HeaderDecoder().decode(block)


def test_answers_decode_with_a_standard_decoder() -> None:
    dec = hpack.Decoder()
    fields = dict(
        dec.decode(
            response_headers()
            + status_fields(5, "not found: é 100%", [("x-id", "7"), ("detail-bin", b"\x00\xff")])
        )
    )
    assert fields[":status"] == "200"
    assert fields["content-type"] == "application/grpc"
    assert fields["grpc-status"] == "5"
    assert fields["grpc-message"] == "not found: %C3%A9 100%25"
    assert fields["x-id"] == "7"
    assert fields["detail-bin"] == "AP8"
