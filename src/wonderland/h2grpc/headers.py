"""HPACK for the gRPC server: a caching decoder for requests, fixed encodings for answers.

Requests are decoded here (RFC 7541). A client that sends the same call again sends
the same bytes once its dynamic table holds every field (grpcio does), so blocks that
leave the table alone are cached until a block changes it.

Answers never touch the client's table: every field is a literal without indexing
(RFC 7541 section 6.2.2), so they can be built from fixed bytes.
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Sequence

import hpack
from hpack.huffman_table import decode_huffman

__all__ = ["HeaderDecoder", "HeaderListFlood", "response_headers", "status_fields"]

MAX_HEADER_LIST = 64 * 1024
_CACHE_LIMIT = 512
_MAX_INT_BYTES = 4  # continuation bytes of an HPACK integer: values up to 2**28 + prefix


class HeaderListFlood(hpack.HPACKDecodingError):
    """A header list so far over the limit that decoding stopped: the table is lost."""


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
    for _ in range(_MAX_INT_BYTES):
        byte = block[i]
        i += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i
    raise hpack.HPACKDecodingError(f"HPACK integer longer than {_MAX_INT_BYTES + 1} bytes")


_STATIC: tuple[tuple[str, str], ...] = tuple(
    (name.decode(), value.decode()) for name, value in hpack.table.HeaderTable.STATIC_TABLE
)


class HeaderDecoder:
    """One connection's HPACK decoder (RFC 7541), with a cache of blocks that leave the
    dynamic table as it is.

    Written for the request path: the ``hpack`` package's decoder takes about 40 us for a
    block with one new literal (a ``grpc-timeout`` that changes per call, as grpc-go
    sends it); this one decodes the same block in a few microseconds. Huffman strings use
    the ``hpack`` package's table.

    Bounded before any work: integers have at most five bytes, a string longer than the
    header list limit is skipped without being decoded (it can only fail the request),
    and decoding stops once the list is twice over the limit (``HeaderListFlood``).
    """

    __slots__ = ("_cache", "_dynamic", "_limit", "_list_limit", "_max", "_size")

    def __init__(self, max_table_size: int = 4096, max_header_list: int = MAX_HEADER_LIST) -> None:
        self._dynamic: deque[tuple[str, str, int]] = deque()  # newest first
        self._size = 0
        self._max = max_table_size  # what our SETTINGS allow (the default)
        self._limit = max_table_size  # what the encoder chose, at most _max
        self._list_limit = max_header_list
        self._cache: dict[bytes, list[tuple[str, str]]] = {}

    def set_max_table_size(self, size: int) -> None:
        """Our SETTINGS_HEADER_TABLE_SIZE took effect (the client acknowledged it)."""
        self._max = size
        if self._limit > size:
            self._limit = size
            self._evict(0)
            self._cache.clear()

    def _entry(self, index: int) -> tuple[str, str]:
        if 0 < index <= len(_STATIC):
            return _STATIC[index - 1]
        i = index - len(_STATIC) - 1
        if index <= 0 or i >= len(self._dynamic):
            raise hpack.HPACKDecodingError(f"header table index {index} out of range")
        name, value, _ = self._dynamic[i]
        return name, value

    def _evict(self, room: int) -> None:
        while self._dynamic and self._size + room > self._limit:
            self._size -= self._dynamic.pop()[2]

    def _add(self, name: str, value: str, size: int) -> None:
        if size > self._limit:
            self._dynamic.clear()
            self._size = 0
            return
        self._evict(size)
        self._dynamic.appendleft((name, value, size))
        self._size += size

    def _string(self, block: bytes, i: int) -> tuple[bytes | None, int]:
        """The string at ``i``, or None for one longer than the list limit (not decoded)."""
        huffman = block[i] & 0x80
        length, i = _read_int(block, i, 7)
        end = i + length
        if end > len(block):
            raise hpack.HPACKDecodingError("header string runs past the block")
        if length > self._list_limit:
            return None, end
        raw = block[i:end]
        return (decode_huffman(raw) if huffman else raw), end

    def decode(self, block: bytes) -> list[tuple[str, str]]:
        """The block's fields; raises ``hpack.HPACKError`` on a malformed block."""
        cached = self._cache.get(block)
        if cached is not None:
            return cached
        try:
            fields, changed = self._decode(block)
        except HeaderListFlood:
            raise
        except (IndexError, UnicodeDecodeError) as exc:
            raise hpack.HPACKDecodingError(f"malformed header block: {exc}") from None
        if changed:
            self._cache.clear()
        else:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[block] = fields
        return fields

    def _decode(self, block: bytes) -> tuple[list[tuple[str, str]], bool]:
        fields: list[tuple[str, str]] = []
        changed = False
        total = 0
        cap = self._list_limit
        i, n = 0, len(block)
        while i < n:
            if total > 2 * cap:
                raise HeaderListFlood(f"header list over twice the {cap} bytes allowed")
            byte = block[i]
            if byte & 0x80:  # indexed field
                index, i = _read_int(block, i, 7)
                field = self._entry(index)
                total += len(field[0]) + len(field[1]) + 32
                if total <= cap:
                    fields.append(field)
                continue
            if byte & 0xE0 == 0x20:  # dynamic table size update
                size, i = _read_int(block, i, 5)
                if size > self._max:
                    raise hpack.HPACKDecodingError(f"table size {size} above {self._max}")
                self._limit = size
                self._evict(0)
                changed = True
                continue
            indexing = byte & 0xC0 == 0x40
            index, i = _read_int(block, i, 6 if indexing else 4)
            if index:
                name = self._entry(index)[0]
                name_len = len(name.encode())
            else:
                raw_name, i = self._string(block, i)
                if raw_name is None:  # longer than the list may be: skip its value too
                    _, i = self._string(block, i)
                    total += cap + 1
                    if indexing:  # an entry larger than any table empties it (RFC 7541 4.4)
                        self._add("", "", cap + 1)
                        changed = True
                    continue
                name, name_len = raw_name.decode(), len(raw_name)
            raw_value, i = self._string(block, i)
            if raw_value is None:
                total += cap + 1
                if indexing:
                    self._add("", "", cap + 1)
                    changed = True
                continue
            value = raw_value.decode()
            size = name_len + len(raw_value) + 32
            total += size
            if indexing:
                self._add(name, value, size)
                changed = True
            if total <= cap:
                fields.append((name, value))
        if total > cap:
            if changed:  # the table did change: cached blocks no longer decode the same
                self._cache.clear()
            raise hpack.OversizedHeaderListError(
                f"header list of {total} bytes is over the {cap} allowed"
            )
        return fields, changed


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
