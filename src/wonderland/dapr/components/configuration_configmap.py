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
from pathlib import Path

from wonderland.dapr.components._kube import KubeApiClient
from wonderland.dapr.components._polling import PollingConfigurationStore
from wonderland.dapr.components.base import ConfigItem
from wonderland.dapr.errors import ComponentConfigError

__all__ = ["ConfigMapConfigurationStore"]


class ConfigMapConfigurationStore(PollingConfigurationStore):
    """Items of ConfigMap ``configMapName``; polled every ``pollInterval`` for changes."""

    FIELDS = {"configMapName": None, "namespace": "", "kubeconfigPath": "", "pollInterval": "1s"}

    client: KubeApiClient | None = None

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
        self.client = KubeApiClient(
            self.path,
            lambda exc: ComponentConfigError(
                f"component {self.name!r}: cannot read kubeconfig {self.path}: {exc}"
            ),
        )
        self.interval = self.number("pollInterval") or 1.0
        self._start_polling({})

    async def _load(self) -> dict[str, ConfigItem]:
        url = f"/api/v1/namespaces/{self.namespace}/configmaps/{self.meta['configMapName']}"
        if self.client is None:
            raise RuntimeError(f"component {self.name!r} is used before init()")
        resp = await self.client.get(url)
        if resp.status_code == 404:
            return {}
        resp.raise_for_status()
        obj = resp.json()
        version = str((obj.get("metadata") or {}).get("resourceVersion", ""))
        return {str(k): ConfigItem(str(v), version) for k, v in (obj.get("data") or {}).items()}

    def _differs(self, old: ConfigItem | None, new: ConfigItem) -> bool:
        # Every item carries the ConfigMap's resourceVersion: only a new value is a change.
        return (old or ConfigItem("")).value != new.value

    async def _before_watch(self) -> None:
        with contextlib.suppress(Exception):
            self._items = await self._load()

    async def close(self) -> None:
        await super().close()
        if self.client is not None:
            await self.client.aclose()
