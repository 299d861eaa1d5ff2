"""The channel from the sidecar to its app over HTTP (``--app-port``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from wonderland.dapr.metrics import SidecarMetrics

__all__ = ["AppChannel", "AppDeliveryError", "wait_for_port"]


class AppDeliveryError(Exception):
    """The app answered a delivery with a failure; ``status`` feeds resiliency matching."""

    def __init__(self, message: str, status: int = 0, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.permanent = permanent


async def wait_for_port(host: str, port: int, timeout: float) -> bool:
    """Poll until ``host:port`` accepts a connection or ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
            continue
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return True


class AppChannel:
    """A pooled HTTP client for the app; adds ``dapr-api-token`` when APP_API_TOKEN is set."""

    def __init__(
        self,
        address: str,
        port: int,
        app_token: str = "",
        max_concurrency: int = 0,
        metrics: SidecarMetrics | None = None,
    ) -> None:
        """``metrics`` (the channel to this sidecar's own app) records daprd's HTTP client families."""
        self.metrics = metrics if metrics is not None and metrics.enabled else None
        self.base = f"http://{address}:{port}"
        self.address = address
        self.port = port
        self.app_token = app_token
        self.ready = False
        self._session: Any = None
        self._limit = max_concurrency

    async def start(self) -> None:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=self._limit or 0, force_close=False)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Content-Type"),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: str = "",
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        timeout: float | None = None,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Call the app; returns status, headers and body. Network errors raise OSError."""
        if self.metrics is None:
            return await self._request(method, path, query, headers, body, timeout)
        start = time.perf_counter()
        status, received = 0, 0
        try:
            status, hs, data = await self._request(method, path, query, headers, body, timeout)
            received = len(data)
            return status, hs, data
        finally:
            self.metrics.http_client(
                method, path, status, len(body), received, time.perf_counter() - start
            )

    async def _request(
        self,
        method: str,
        path: str,
        query: str,
        headers: list[tuple[str, str]] | None,
        body: bytes,
        timeout: float | None,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        import aiohttp
        import yarl

        hdrs = list(headers or [])
        if self.app_token:
            hdrs = [(k, v) for k, v in hdrs if k.lower() != "dapr-api-token"]
            hdrs.append(("dapr-api-token", self.app_token))
        url = self.base + (path if path.startswith("/") else "/" + path)
        if query:
            url += "?" + query
        try:
            async with self._session.request(
                method,
                yarl.URL(url, encoded=True),
                headers=hdrs,
                data=body if body else None,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as resp:
                data = await resp.read()
                hs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers]
                return resp.status, hs, data
        except aiohttp.ClientError as exc:
            raise OSError(f"{type(exc).__name__}: {exc}") from None
