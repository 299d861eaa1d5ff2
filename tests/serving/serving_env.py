"""Helpers for the serving tests (imported by name: every area has a conftest)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _support.daemon import wait_until

from wonderland.platform import Platform
from wonderland.serving.system import ServingSystem

APP = str(Path(__file__).parent.parent / "runtime" / "runtime_app.py")
DOMAIN = "127.0.0.1.sslip.io"

KSVC = "services.serving.knative.dev"
REV = "revisions.serving.knative.dev"
CFG = "configurations.serving.knative.dev"
ROUTE = "routes.serving.knative.dev"


def ksvc(name: str, *, env: dict[str, str] | None = None, **template_spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"image": "runtime-app", "command": [sys.executable, APP]}
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    container.update(template_spec.pop("container", {}))
    annotations = template_spec.pop("annotations", None)
    traffic = template_spec.pop("traffic", None)
    template: dict[str, Any] = {"spec": {"containers": [container], **template_spec}}
    if annotations:
        template["metadata"] = {"annotations": annotations}
    obj: dict[str, Any] = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"template": template},
    }
    if traffic is not None:
        obj["spec"]["traffic"] = traffic
    return obj


@dataclass
class Env:
    platform: Platform
    system: ServingSystem

    @property
    def store(self) -> Any:
        return self.platform.store

    @property
    def url(self) -> str:
        return self.system.gateway_url

    def get(self, resource: str, name: str, namespace: str = "default") -> dict[str, Any]:
        return dict(self.store.get(resource, namespace, name))

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        return dict(self.store.apply(obj)[0])

    def cond(self, resource: str, name: str, ctype: str = "Ready") -> dict[str, Any]:
        try:
            obj = self.get(resource, name)
        except Exception:
            return {}
        for c in (obj.get("status") or {}).get("conditions") or []:
            if c["type"] == ctype:
                return dict(c)
        return {}

    async def wait(self, check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
        return await wait_until(check, timeout, what, interval=0.05)

    async def ready(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        await self.wait(
            lambda: (
                self.cond(KSVC, name).get("status") == "True"
                and (self.get(KSVC, name).get("status") or {}).get("observedGeneration")
                == self.get(KSVC, name)["metadata"]["generation"]
            ),
            timeout,
            f"ksvc/{name} Ready",
        )
        return self.get(KSVC, name)

    async def request(
        self, host: str, path: str = "/", headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as client:
            return await client.get(path, headers={"Host": host, **(headers or {})}, **kw)
