"""``secretstores.kubernetes``: Secret resources of the platform (or any Kubernetes API server).

Reads ``/api/v1/namespaces/<ns>/secrets`` with the credentials of ``kubeconfigPath``
(default ``$KUBECONFIG``); under ``wonderland up`` each sidecar gets one named
``kubernetes`` that points at the platform's control API, as Dapr does on a cluster.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from wonderland.dapr.components._kube import KubeApiClient
from wonderland.dapr.components.base import SecretNotFoundError, SecretStoreComponent
from wonderland.dapr.errors import ComponentConfigError

__all__ = ["KubernetesSecretStore"]


def _decode(obj: dict[str, Any]) -> dict[str, str]:
    out = {
        k: base64.b64decode(v).decode("utf-8", "replace")
        for k, v in (obj.get("data") or {}).items()
    }
    out.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
    return out


class KubernetesSecretStore(SecretStoreComponent):
    """See the module docstring."""

    FIELDS = {"kubeconfigPath": "", "defaultNamespace": ""}

    client: KubeApiClient | None = None

    async def init(self) -> None:
        self.path = self.meta["kubeconfigPath"] or os.environ.get("KUBECONFIG", "")
        if not self.path:
            raise ComponentConfigError(
                f"component {self.name!r}: set kubeconfigPath (or KUBECONFIG) to reach the API server"
            )
        self.namespace = self.meta["defaultNamespace"] or self.ctx.namespace or "default"
        self.client = KubeApiClient(
            Path(self.path).expanduser(),
            lambda exc: RuntimeError(f"cannot read kubeconfig {self.path!r}: {exc}"),
        )

    async def _get(self, path: str) -> Any:
        if self.client is None:
            raise RuntimeError(f"component {self.name!r} is used before init()")
        return await self.client.get(path)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    async def get(self, name: str, metadata: dict[str, str]) -> dict[str, str]:
        ns = metadata.get("namespace") or self.namespace
        resp = await self._get(f"/api/v1/namespaces/{ns}/secrets/{name}")
        if resp.status_code == 404:
            raise SecretNotFoundError(name)
        resp.raise_for_status()
        return _decode(resp.json())

    async def bulk_get(self, metadata: dict[str, str]) -> dict[str, dict[str, str]]:
        ns = metadata.get("namespace") or self.namespace
        resp = await self._get(f"/api/v1/namespaces/{ns}/secrets")
        resp.raise_for_status()
        return {item["metadata"]["name"]: _decode(item) for item in resp.json().get("items") or []}
