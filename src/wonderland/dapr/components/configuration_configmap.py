"""``configuration.wonderland.configmap``: configuration items from a ConfigMap's ``data``.

A wonderland extension for feature flags kept where a platform keeps them: a ConfigMap,
read through the Kubernetes API (the platform's control API under ``wonderland up``, with
the kubeconfig it writes). Each ``data`` key is an item whose version is the ConfigMap's
``resourceVersion``; ``kubectl apply`` or ``wonderland apply`` of a changed ConfigMap
reaches subscribers within ``pollInterval``, as flagd notices a patched ConfigMap.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from pathlib import Path
from typing import Any

from wonderland.dapr.components._polling import PollingConfigurationStore
from wonderland.dapr.components.base import ConfigItem
from wonderland.dapr.errors import ComponentConfigError

__all__ = ["ConfigMapConfigurationStore"]


class ConfigMapConfigurationStore(PollingConfigurationStore):
    """Items of ConfigMap ``configMapName``; polled every ``pollInterval`` for changes."""

    FIELDS = {"configMapName": None, "namespace": "", "kubeconfigPath": "", "pollInterval": "1s"}

    client: Any = None

    async def init(self) -> None:
        path = self.meta["kubeconfigPath"] or os.environ.get("KUBECONFIG", "")
        if not path and self.ctx.state_dir:
            # Under `wonderland up` the sidecar's state folder is <home>/dapr.
            path = str(Path(self.ctx.state_dir).parent / "kubeconfig")
        if not path:
            raise ComponentConfigError(
                f"component {self.name!r}: set kubeconfigPath (or KUBECONFIG) to reach the API server"
            )
        self.path = Path(path).expanduser()
        self.namespace = self.meta["namespace"] or self.ctx.namespace or "default"
        self.interval = self.number("pollInterval") or 1.0
        self._start_polling({})

    def _connect(self) -> Any:
        # Read lazily: the daemon writes the kubeconfig once its API listens.
        import httpx

        from wonderland.kubeconfig import read_kubeconfig

        try:
            cfg = read_kubeconfig(self.path)
        except Exception as exc:
            raise ComponentConfigError(
                f"component {self.name!r}: cannot read kubeconfig {self.path}: {exc}"
            ) from None
        context = ssl.create_default_context(cadata=cfg.ca_pem.decode())
        return httpx.AsyncClient(
            base_url=cfg.server,
            verify=context,
            timeout=10.0,
            headers={"Authorization": f"Bearer {cfg.token}"},
        )

    async def _read(self) -> dict[str, ConfigItem]:
        import httpx

        url = f"/api/v1/namespaces/{self.namespace}/configmaps/{self.meta['configMapName']}"
        for attempt in range(2):
            if self.client is None:
                self.client = self._connect()
            try:
                resp = await self.client.get(url)
                break
            except httpx.TransportError:
                await self.client.aclose()
                self.client = None
                if attempt == 1:
                    raise
        if resp.status_code == 404:
            return {}
        resp.raise_for_status()
        obj = resp.json()
        version = str((obj.get("metadata") or {}).get("resourceVersion", ""))
        return {str(k): ConfigItem(str(v), version) for k, v in (obj.get("data") or {}).items()}

    async def _load(self) -> dict[str, ConfigItem]:
        return await self._read()

    def _differs(self, old: ConfigItem | None, new: ConfigItem) -> bool:
        # Every item carries the ConfigMap's resourceVersion: only a new value is a change.
        return (old or ConfigItem("")).value != new.value

    async def _before_watch(self) -> None:
        with contextlib.suppress(Exception):
            self._items = await self._read()

    async def close(self) -> None:
        await super().close()
        if self.client is not None:
            await self.client.aclose()
