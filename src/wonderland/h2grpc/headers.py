"""HPACK for the gRPC server: a caching decoder for requests, fixed encodings for answers.

Requests are decoded with the ``hpack`` package. A client that sends the same call again
sends the same bytes once its dynamic table holds every field (grpcio does), so blocks
made only of table references are cached until a block changes the table.

Answers never touch the client's table: every field is a literal without indexing
(RFC 7541 section 6.2.2), so they can be built from fixed bytes.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

import hpack

__all__ = ["HeaderDecoder", "response_headers", "status_fields"]

MAX_HEADER_LIST = 64 * 1024
_CACHE_LIMIT = 512


def _int(value: int, prefix_bits: int, flags: int = 0) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((flags | value,))
    out = bytearray((flags | limit,))
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal(name: bytes, value: bytes) -> bytes:
    """A header field as a literal without indexing, with a literal name."""
    return b"\x00" + _int(len(name), 7) + name + _int(len(value), 7) + value


def _read_int(block: bytes, i: int, prefix_bits: int) -> tuple[int, int]:
    limit = (1 << prefix_bits) - 1
    value = block[i] & limit
    i += 1
    if value < limit:
        return value, i
    shift = 0
    while True:
        byte = block[i]
        i += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def _changes_table(block: bytes) -> bool:
    """Whether a (well-formed) block inserts into the dynamic table or resizes it."""
    i, n = 0, len(block)
    while i < n:
        byte = block[i]
        if byte & 0x80:  # indexed field
            _, i = _read_int(block, i, 7)
        elif byte & 0xC0 == 0x40 or byte & 0xE0 == 0x20:  # incremental indexing, size update
            return True
        else:  # literal without indexing / never indexed
            index, i = _read_int(block, i, 4)
            if index == 0:
                length, i = _read_int(block, i, 7)
                i += length
            length, i = _read_int(block, i, 7)
            i += length
    return False


class HeaderDecoder:
    """One connection's HPACK decoder with a cache of blocks that leave the table as it is."""

    __slots__ = ("_cache", "_decoder")

    def __init__(self) -> None:
        self._decoder = hpack.Decoder(max_header_list_size=MAX_HEADER_LIST)
        self._cache: dict[bytes, list[tuple[str, str]]] = {}

    def decode(self, block: bytes) -> list[tuple[str, str]]:
        """The block's fields; raises ``hpack.HPACKError`` on a malformed block."""
        cached = self._cache.get(block)
        if cached is not None:
            return cached
        fields = [(str(k), str(v)) for k, v in self._decoder.decode(block)]
        if _changes_table(block):
            self._cache.clear()
        else:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[block] = fields
        return fields


_PERCENT_SAFE = frozenset(range(0x20, 0x7F)) - {ord("%")}


def _percent_encode(message: str) -> bytes:
    """grpc-message encoding: UTF-8, bytes outside printable ASCII and '%' as %XX."""
    raw = message.encode()
    return b"".join(bytes((b,)) if b in _PERCENT_SAFE else b"%%%02X" % b for b in raw)


def response_headers(status: int = 200) -> bytes:
    """``:status`` and ``content-type: application/grpc``."""
    first = b"\x88" if status == 200 else literal(b":status", str(status).encode())
    return first + literal(b"content-type", b"application/grpc")


def status_fields(
    code: int, message: str = "", metadata: Sequence[tuple[str, str | bytes]] = ()
) -> bytes:
    """``grpc-status``, ``grpc-message`` and custom trailing metadata (``-bin`` base64)."""
    out = [literal(b"grpc-status", str(code).encode())]
    if message:
        out.append(literal(b"grpc-message", _percent_encode(message)))
    for key, value in metadata:
        name = key.lower().encode()
        if name.endswith(b"-bin"):
            raw = value if isinstance(value, bytes) else value.encode()
            out.append(literal(name, base64.b64encode(raw).rstrip(b"=")))
        else:
            text = value.decode() if isinstance(value, bytes) else value
            out.append(literal(name, text.encode()))
    return b"".join(out)


OK_TRAILERS = status_fields(0)
OK_HEADERS = response_headers()
