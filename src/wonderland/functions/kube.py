"""A small client for the platform's Kubernetes-style control API, found through the
kubeconfig the daemon writes into its state directory (or ``$KUBECONFIG``).

Only what ``func`` needs: get, create, replace and list objects by resource path.
"""

from __future__ import annotations

import base64
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from wonderland.errors import ConfigError, ConflictError, InvalidError, NotFoundError

__all__ = ["KubeClient", "find_kubeconfig", "resource_path"]

# kind -> (group/version prefix, plural)
_RESOURCES: dict[str, tuple[str, str]] = {
    "Service": ("/apis/serving.knative.dev/v1", "services"),
    "Revision": ("/apis/serving.knative.dev/v1", "revisions"),
    "Route": ("/apis/serving.knative.dev/v1", "routes"),
    "Configuration": ("/apis/serving.knative.dev/v1", "configurations"),
    "Secret": ("/api/v1", "secrets"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Subscription": ("/apis/dapr.io/v2alpha1", "subscriptions"),
    "Component": ("/apis/dapr.io/v1alpha1", "components"),
}


def resource_path(kind: str, namespace: str, name: str | None = None) -> str:
    prefix, plural = _RESOURCES[kind]
    path = f"{prefix}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path


def find_kubeconfig(environ: Mapping[str, str] | None = None) -> Path | None:
    """The platform's kubeconfig: ``$WONDERLAND_KUBECONFIG``, else the state directory's."""
    env = os.environ if environ is None else environ
    explicit = env.get("WONDERLAND_KUBECONFIG")
    if explicit:
        return Path(explicit)
    home = Path(env.get("WONDERLAND_HOME") or Path("~/.wonderland").expanduser())
    for name in ("kubeconfig", "kubeconfig.yaml"):
        candidate = home / name
        if candidate.is_file():
            return candidate
    return None


@dataclass
class KubeClient:
    """Synchronous JSON calls to the control API with the kubeconfig's token and CA."""

    server: str
    token: str | None
    verify: ssl.SSLContext | bool
    source: str

    @classmethod
    def from_kubeconfig(cls, path: Path) -> KubeClient:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read the kubeconfig ({exc})") from exc
        current = data.get("current-context")
        contexts = {c["name"]: c.get("context", {}) for c in data.get("contexts") or []}
        context: dict[str, Any] = contexts.get(current) or next(iter(contexts.values()), {})
        clusters = {c["name"]: c.get("cluster", {}) for c in data.get("clusters") or []}
        users = {u["name"]: u.get("user", {}) for u in data.get("users") or []}
        cluster: dict[str, Any] = clusters.get(str(context.get("cluster"))) or next(
            iter(clusters.values()), {}
        )
        user: dict[str, Any] = users.get(str(context.get("user"))) or next(iter(users.values()), {})
        server = str(cluster.get("server") or "")
        if not server:
            raise ConfigError(f"{path}: the kubeconfig names no cluster server")
        verify: ssl.SSLContext | bool = True
        if cluster.get("insecure-skip-tls-verify"):
            verify = False
        elif cluster.get("certificate-authority-data"):
            pem = base64.b64decode(cluster["certificate-authority-data"]).decode()
            verify = ssl.create_default_context(cadata=pem)
        elif cluster.get("certificate-authority"):
            verify = ssl.create_default_context(cafile=str(cluster["certificate-authority"]))
        token = user.get("token")
        if not token and user.get("tokenFile"):
            token = Path(user["tokenFile"]).read_text().strip()
        return cls(server.rstrip("/"), token, verify, str(path))

    def _client(self, timeout: float = 10.0) -> httpx.Client:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return httpx.Client(
            base_url=self.server, headers=headers, verify=self.verify, timeout=timeout
        )

    def request(self, method: str, path: str, body: Any = None) -> Any:
        try:
            with self._client() as client:
                response = client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise ConfigError(
                f"cannot reach the platform's control API at {self.server} ({exc}); is "
                "`wonderland up` running? (kubeconfig: " + self.source + ")"
            ) from exc
        if response.status_code < 400:
            return response.json() if response.content else None
        try:
            message = response.json().get("message") or response.text
        except ValueError:
            message = response.text
        where = f"{method} {path}"
        if response.status_code == 404:
            raise NotFoundError(f"{where}: {message}")
        if response.status_code == 409:
            raise ConflictError(f"{where}: {message}")
        if response.status_code in (400, 422):
            raise InvalidError(f"{where}: {message}")
        raise ConfigError(f"{where}: the control API answered {response.status_code}: {message}")

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            result = self.request("GET", resource_path(kind, namespace, name))
        except NotFoundError:
            return None
        return dict(result) if isinstance(result, dict) else None

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create the object, or replace it keeping its resourceVersion."""
        meta = obj["metadata"]
        kind, namespace, name = obj["kind"], meta.get("namespace", "default"), meta["name"]
        current = self.get(kind, namespace, name)
        if current is None:
            result = self.request("POST", resource_path(kind, namespace), obj)
        else:
            merged = dict(obj)
            merged["metadata"] = dict(meta)
            version = current.get("metadata", {}).get("resourceVersion")
            if version:
                merged["metadata"]["resourceVersion"] = version
            result = self.request("PUT", resource_path(kind, namespace, name), merged)
        return dict(result) if isinstance(result, dict) else {}

    def delete(self, kind: str, namespace: str, name: str) -> None:
        try:
            self.request("DELETE", resource_path(kind, namespace, name))
        except NotFoundError:
            pass
