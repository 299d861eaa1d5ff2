"""Features that work on this machine but not (or not the same way) on a cluster.

Each rule looks at one object and names, per field, the local-only feature it uses and what
a cluster needs instead. ``wonderland export --check`` reports them as warnings: the
object is valid, but it will not behave on a cluster as it does here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from wonderland.export.structural import SchemaProblem, child_path, item_path

__all__ = ["LOCAL_ONLY_RULES", "LocalOnlyRule", "dapr_component_types", "kserve_storage_uris"]


class LocalOnlyRule(Protocol):
    """A check of one object for features that only this machine has."""

    def __call__(self, obj: dict[str, Any]) -> Iterator[SchemaProblem]: ...


# Component types Dapr has, but whose data stays inside one sidecar (or one pod's files).
_PER_SIDECAR = {
    "state.in-memory": "keeps state inside one sidecar: replicas do not share it and a restart "
    "loses it; use state.redis or state.postgresql on a cluster",
    "pubsub.in-memory": "delivers only inside one sidecar: other apps never see the messages; "
    "use pubsub.redis, pubsub.kafka, pubsub.rabbitmq or pubsub.jetstream on a cluster",
    "state.sqlite": "keeps state in a file inside the pod: replicas do not share it; use "
    "state.redis or state.postgresql on a cluster",
    "secretstores.local.file": "reads a file inside the pod; use secretstores.kubernetes "
    "(Kubernetes Secrets) on a cluster",
    "secretstores.local.env": "reads the sidecar's environment; use secretstores.kubernetes "
    "(Kubernetes Secrets) on a cluster",
}
# Component types only wonderland has.
_WONDERLAND_ONLY = {
    "configuration.wonderland.file": "wonderland's file configuration store; Dapr has no such "
    "component: use configuration.redis or configuration.postgresql on a cluster",
    "configuration.wonderland.configmap": "wonderland's ConfigMap configuration store; Dapr has "
    "no such component: use configuration.redis or configuration.postgresql on a cluster",
}


def dapr_component_types(obj: dict[str, Any]) -> Iterator[SchemaProblem]:
    """Dapr Components of a type that is local-only (or wonderland's own)."""
    if obj.get("kind") != "Component" or not str(obj.get("apiVersion", "")).startswith("dapr.io/"):
        return
    spec = obj.get("spec")
    kind = spec.get("type") if isinstance(spec, dict) else None
    if not isinstance(kind, str):
        return
    if kind in _WONDERLAND_ONLY:
        yield SchemaProblem("spec.type", f'local-only feature "{kind}": {_WONDERLAND_ONLY[kind]}')
    elif kind in _PER_SIDECAR:
        yield SchemaProblem("spec.type", f'local-only feature "{kind}": {_PER_SIDECAR[kind]}')


# The schemes KServe's storage initializer (or its PVC mount and modelcar) can read.
_CLUSTER_SCHEMES = (
    "gs://",
    "s3://",
    "pvc://",
    "hf://",
    "oci://",
    "https://",
    "http://",
    "hdfs://",
    "webhdfs://",
)


def _storage_uris(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            where = child_path(path, str(key))
            if key == "storageUri" and isinstance(value, str):
                yield where, value
            elif key == "storageUris" and isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, dict) and isinstance(item.get("uri"), str):
                        yield child_path(item_path(where, i), "uri"), item["uri"]
            else:
                yield from _storage_uris(value, where)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _storage_uris(item, item_path(path, i))


def kserve_storage_uris(obj: dict[str, Any]) -> Iterator[SchemaProblem]:
    """KServe storage URIs that only this machine can read (``file://``, ``models:/``)."""
    if not str(obj.get("apiVersion", "")).startswith("serving.kserve.io/"):
        return
    for path, uri in _storage_uris(obj.get("spec"), "spec"):
        if uri.startswith(_CLUSTER_SCHEMES):
            continue
        if uri.startswith("models:/"):
            what = "an MLflow registry URI, which wonderland resolves on this machine"
        elif uri.startswith("file://") or "://" not in uri:
            what = "a path on this machine"
        else:
            what = f"the scheme {uri.split('://', 1)[0]}://, which KServe does not read"
        yield SchemaProblem(
            path,
            f'local-only feature "{uri}": {what}; on a cluster use pvc://, s3://, gs://, hf:// '
            "or oci:// (the model copied there)",
        )


LOCAL_ONLY_RULES: tuple[LocalOnlyRule, ...] = (dapr_component_types, kserve_storage_uris)
