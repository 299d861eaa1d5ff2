"""A client for the Kubernetes API server a kubeconfig names (the platform's control API
under ``wonderland up``), shared by the stores that read resources through it."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["KubeApiClient"]


class KubeApiClient:
    """GETs with the kubeconfig's CA and bearer token.

    The kubeconfig is read on first use, not at construction: under `wonderland up` the
    daemon writes it once its API listens, which may be after the first sidecars started.
    After a transport error the connection is reopened and the request tried once more.
    ``bad_kubeconfig`` turns a kubeconfig that cannot be read into the caller's error.
    """

    def __init__(self, path: Path, bad_kubeconfig: Callable[[Exception], Exception]) -> None:
        self.path = path
        self._bad_kubeconfig = bad_kubeconfig
        self._client: Any = None

    def _connect(self) -> Any:
        import httpx

        from wonderland.kubeconfig import read_kubeconfig

        try:
            cfg = read_kubeconfig(self.path)
        except Exception as exc:
            raise self._bad_kubeconfig(exc) from None
        context = ssl.create_default_context(cadata=cfg.ca_pem.decode())
        return httpx.AsyncClient(
            base_url=cfg.server,
            verify=context,
            timeout=10.0,
            headers={"Authorization": f"Bearer {cfg.token}"},
        )

    async def get(self, url: str) -> Any:
        """The ``httpx.Response`` to ``GET url`` (a path on the API server)."""
        import httpx

        for attempt in range(2):
            if self._client is None:
                self._client = self._connect()
            try:
                return await self._client.get(url)
            except httpx.TransportError:
                await self._client.aclose()
                self._client = None
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
