"""HTTP health probes of the processes the daemon supervises (Prometheus, MLflow)."""

from __future__ import annotations

import asyncio

__all__ = ["http_ok"]


async def http_ok(host: str, port: int, path: str, timeout: float = 2.0) -> bool:
    """Whether ``GET path`` on ``host:port`` answers 200; False when nothing listens, the
    answer is another status, or connecting or the status line takes over ``timeout``
    seconds. One request on a fresh connection, closed after the status line."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.read(32), timeout)
        return head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200"))
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
