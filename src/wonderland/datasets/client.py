"""The control API as an :class:`~wonderland.datasets.onboard.ObjectWriter`, so the CLI
onboards datasets through the running daemon."""

from __future__ import annotations

from typing import Any

from wonderland.api import registry
from wonderland.control.client import ControlClient, object_path

__all__ = ["ControlObjects"]

Obj = dict[str, Any]


class ControlObjects:
    """get, list, create and delete over a :class:`ControlClient`."""

    def __init__(self, client: ControlClient) -> None:
        self.client = client

    def get(self, resource: str, namespace: str | None, name: str) -> Obj:
        found: Obj = self.client.request(
            "GET", object_path(registry.lookup(resource), namespace, name)
        )
        return found

    def list(self, resource: str | None, namespace: str | None = None) -> tuple[list[Obj], str]:
        if resource is None:
            raise ValueError("list one resource at a time")
        listing = self.client.request("GET", object_path(registry.lookup(resource), namespace))
        return list(listing["items"]), str(listing["metadata"].get("resourceVersion", ""))

    def create(self, obj: Obj) -> Obj:
        kind = registry.for_object(obj["apiVersion"], obj["kind"])
        namespace = obj["metadata"].get("namespace") if kind.namespaced else None
        made: Obj = self.client.request("POST", object_path(kind, namespace), obj)
        return made

    def delete(self, resource: str, namespace: str | None, name: str) -> Any:
        return self.client.request(
            "DELETE", object_path(registry.lookup(resource), namespace, name)
        )
