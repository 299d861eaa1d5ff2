"""The shared HTTP health probe against real listening sockets."""

from __future__ import annotations

import asyncio

from _support.daemon import free_port

from wonderland.probes import http_ok


async def _serve(status: bytes) -> tuple[asyncio.Server, list[bytes]]:
    seen: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0), seen


async def test_200_is_healthy_and_anything_else_is_not() -> None:
    ok, seen = await _serve(b"200 OK")
    busy, _ = await _serve(b"503 Service Unavailable")
    async with ok, busy:
        ok_port = ok.sockets[0].getsockname()[1]
        busy_port = busy.sockets[0].getsockname()[1]
        assert await http_ok("127.0.0.1", ok_port, "/-/ready")
        assert not await http_ok("127.0.0.1", busy_port, "/health")
    assert seen[0].startswith(b"GET /-/ready HTTP/1.1\r\nHost: 127.0.0.1:")
    assert not await http_ok("127.0.0.1", free_port(), "/health", 1.0)  # nothing listens
