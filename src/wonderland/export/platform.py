"""The objects the running platform holds, read through its API (as ``wonderland get``)."""

from __future__ import annotations

from typing import Any, Protocol

from wonderland.api import registry
from wonderland.control.client import object_path
from wonderland.export.tree import SourceObject

__all__ = ["EXPORTED_RESOURCES", "ObjectReader", "platform_objects"]

# What a user writes and applies; the objects controllers make from them are left out.
EXPORTED_RESOURCES = (
    "namespaces",
    "configmaps",
    "secrets",
    "persistentvolumeclaims",
    "components.dapr.io",
    "configurations.dapr.io",
    "resiliencies.dapr.io",
    "subscriptions.dapr.io",
    "servingruntimes.serving.kserve.io",
    "clusterservingruntimes.serving.kserve.io",
    "inferenceservices.serving.kserve.io",
    "services.serving.knative.dev",
    "trainingruntimes.trainer.kubeflow.org",
    "clustertrainingruntimes.trainer.kubeflow.org",
    "trainjobs.trainer.kubeflow.org",
    "experiments.kubeflow.org",
    "jobsets.jobset.x-k8s.io",
    "jobs.batch",
    "cronjobs.batch",
)


class ObjectReader(Protocol):
    """The one call of the control API's client that listing needs."""

    def request(
        self, method: str, path: str, body: Any = None, *, params: dict[str, str] | None = None
    ) -> Any: ...


def platform_objects(client: ObjectReader) -> list[SourceObject]:
    """Every object of :data:`EXPORTED_RESOURCES` in every namespace."""
    out: list[SourceObject] = []
    for resource in EXPORTED_RESOURCES:
        kind = registry.lookup(resource)
        api_version = f"{kind.group}/{kind.version}" if kind.group else kind.version
        listing = client.request("GET", object_path(kind, None))
        for item in listing.get("items") or []:
            obj = {"apiVersion": api_version, "kind": kind.kind, **item}
            out.append(SourceObject(obj, f"the platform's {kind.plural}"))
    return out
