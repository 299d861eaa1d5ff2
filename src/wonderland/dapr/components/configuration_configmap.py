"""``configuration.wonderland.configmap``: configuration items from a ConfigMap's ``data``.

A wonderland extension for feature flags kept where a platform keeps them: a ConfigMap,
read through the Kubernetes API (the platform's control API under ``wonderland up``, with
the kubeconfig it writes). Each ``data`` key is an item whose version is the ConfigMap's
``resourceVersion``; ``kubectl apply`` or ``wonderland apply`` of a changed ConfigMap
reaches subscribers within ``pollInterval``, as flagd notices a patched ConfigMap.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import ssl
from pathlib import Path
from typing import Any

from wonderland.dapr.components.base import (
    Closer,
    ConfigHandler,
    ConfigItem,
    ConfigurationStoreComponent,
)
from wonderland.dapr.errors import ComponentConfigError

__all__ = ["ConfigMapConfigurationStore"]


class ConfigMapConfigurationStore(ConfigurationStoreComponent):
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
        self._items: dict[str, ConfigItem] = {}
        self._subs: dict[int, tuple[list[str], ConfigHandler]] = {}
        self._ids = itertools.count()
        self._task: asyncio.Task[None] | None = None

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

    async def get(self, keys: list[str], metadata: dict[str, str]) -> dict[str, ConfigItem]:
        self._items = await self._read()
        if not keys:
            return dict(self._items)
        return {k: self._items[k] for k in keys if k in self._items}

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                new = await self._read()
            except Exception:
                continue
            changed = {
                k: v for k, v in new.items() if self._items.get(k, ConfigItem("")).value != v.value
            }
            for k in self._items.keys() - new.keys():
                changed[k] = ConfigItem("", "")
            self._items = new
            if not changed:
                continue
            for keys, handler in list(self._subs.values()):
                sel = changed if not keys else {k: v for k, v in changed.items() if k in keys}
                if sel:
                    with contextlib.suppress(Exception):
                        await handler(sel)

    async def subscribe(
        self, keys: list[str], metadata: dict[str, str], handler: ConfigHandler
    ) -> Closer:
        if self._task is None:
            with contextlib.suppress(Exception):
                self._items = await self._read()
            self._task = asyncio.get_running_loop().create_task(self._watch())
        sub_id = next(self._ids)
        self._subs[sub_id] = (keys, handler)

        async def close() -> None:
            self._subs.pop(sub_id, None)

        return close

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.client is not None:
            await self.client.aclose()
