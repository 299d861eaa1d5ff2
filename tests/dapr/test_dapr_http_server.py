"""The sidecar's HTTP/1.1 server on raw sockets: keep-alive, pipelining, 100-continue, limits."""

from __future__ import annotations

import asyncio

import pytest

from wonderland.dapr.http_server import RawRequest, RawResponse, serve


async def _echo(req: RawRequest) -> RawResponse:
    if req.path == "/boom":
        raise RuntimeError("handler bug")
    body = f"{req.method} {req.path}?{req.query} {len(req.body)}".encode()
    return RawResponse(200, body, [(b"content-type", b"text/plain")])


@pytest.fixture
async def port() -> int:
    server = await serve(_echo, "127.0.0.1", 0, max_body=1000)
    try:
        yield int(server.sockets[0].getsockname()[1])  # type: ignore[misc]
    finally:
        server.close()


async def _exchange(port: int, data: bytes, until: int = 1) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    out = b""
    try:
        while out.count(b"HTTP/1.1 ") < until:
            chunk = await asyncio.wait_for(reader.read(65536), 10)
            if not chunk:
                break
            out += chunk
        # anything more (a stray response) comes within the read's timeout
        with_more = await asyncio.wait_for(reader.read(65536), 0.2) if not reader.at_eof() else b""
    except TimeoutError:
        with_more = b""
    writer.close()
    return out + with_more


async def test_pipelined_requests_answer_in_order(port: int) -> None:
    req = b"GET /a?x=1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
    out = await _exchange(port, req, until=2)
    first, second = out.index(b"GET /a?x=1 0"), out.index(b"POST /b? 3")
    assert first < second
    assert out.count(b"content-length: ") == 2


async def test_expect_continue_and_chunked_body(port: int) -> None:
    req = (
        b"PUT /c HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nwiki\r\n0\r\n\r\n"
    )
    out = await _exchange(port, req, until=2)
    assert out.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert b"PUT /c? 4" in out


async def test_malformed_oversized_and_failing_requests(port: int) -> None:
    assert (await _exchange(port, b"NOT A REQUEST\r\n\r\n")).startswith(b"HTTP/1.1 400")
    big = b"POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000
    assert (await _exchange(port, big)).startswith(b"HTTP/1.1 413")
    out = await _exchange(port, b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 500") and b"ERR_INTERNAL" in out


async def test_connection_close_is_honoured(port: int) -> None:
    out = await _exchange(port, b"GET /e HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"connection: close" in out and b"GET /e? 0" in out
