"""A container's environment: ``env`` (value, valueFrom), ``envFrom`` and ``$(VAR)`` expansion.

ConfigMaps and Secrets come through a ``Lookup`` callable so this module needs no store.
Downward-API ``fieldRef`` values are the local equivalents of a pod's fields.
"""

from __future__ import annotations

import base64
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wonderland.errors import InvalidError, NotFoundError

__all__ = ["POD_NAME_PLACEHOLDER", "Lookup", "PodInfo", "container_env", "expand", "proxy_env"]

# Stands for the replica's name in a revision-wide environment; the supervisor fills it in.
POD_NAME_PLACEHOLDER = "__WONDERLAND_POD_NAME__"

# lookup(resource, namespace, name) -> the object (ConfigMap or Secret) or None
Lookup = Callable[[str, str, str], "Mapping[str, Any] | None"]

_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


@dataclass(frozen=True)
class PodInfo:
    """What the downward API exposes about a replica (its "pod")."""

    name: str
    namespace: str
    uid: str = ""
    ip: str = "127.0.0.1"
    node_name: str = ""
    service_account: str = "default"
    labels: Mapping[str, str] | None = None
    annotations: Mapping[str, str] | None = None

    def field(self, path: str, where: str) -> str:
        node = self.node_name or socket.gethostname()
        simple = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "status.podIP": self.ip,
            "status.podIPs": self.ip,
            "status.hostIP": "127.0.0.1",
            "status.hostIPs": "127.0.0.1",
            "spec.nodeName": node,
            "spec.serviceAccountName": self.service_account,
        }
        if path in simple:
            return simple[path]
        match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
        if match:
            source = self.labels if match.group(1) == "labels" else self.annotations
            return (source or {}).get(match.group(2), "")
        raise InvalidError(
            where,
            f"fieldRef {path!r} is not supported; use metadata.name, metadata.namespace, "
            "metadata.uid, metadata.labels['k'], metadata.annotations['k'], status.podIP, "
            "status.hostIP, spec.nodeName or spec.serviceAccountName",
        )


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: known variables are replaced, ``$$`` escapes."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR.sub(sub, text)


def _data(obj: Mapping[str, Any], resource: str) -> dict[str, str]:
    out: dict[str, str] = {}
    if resource == "secrets":
        for key, value in (obj.get("data") or {}).items():
            out[key] = base64.b64decode(str(value)).decode("utf-8", "replace")
        for key, value in (obj.get("stringData") or {}).items():
            out[key] = str(value)
    else:
        out.update({k: str(v) for k, v in (obj.get("data") or {}).items()})
    return out


def _ref(
    lookup: Lookup, resource: str, namespace: str, ref: Mapping[str, Any], where: str
) -> dict[str, str] | None:
    name = ref.get("name") or ""
    obj = lookup(resource, namespace, name)
    if obj is None:
        if ref.get("optional"):
            return None
        lower, title = ("secret", "Secret") if resource == "secrets" else ("configmap", "ConfigMap")
        # the kubelet's words first, then where and what to do
        raise NotFoundError(
            f'{lower} "{name}" not found ({where}: apply the {title} {namespace}/{name}, '
            "or mark the reference optional: true)"
        )
    return _data(obj, resource)


def container_env(
    container: Mapping[str, Any],
    pod: PodInfo,
    lookup: Lookup,
    where: str = "spec.containers[0]",
    resource_field: Callable[[Mapping[str, Any]], str] | None = None,
) -> dict[str, str]:
    """The variables a container declares, in Kubernetes order (envFrom first, then env)."""
    env: dict[str, str] = {}
    for i, source in enumerate(container.get("envFrom") or []):
        prefix = source.get("prefix") or ""
        for resource, key in (("configmaps", "configMapRef"), ("secrets", "secretRef")):
            ref = source.get(key)
            if ref:
                data = _ref(lookup, resource, pod.namespace, ref, f"{where}.envFrom[{i}].{key}")
                for k, v in (data or {}).items():
                    env[prefix + k] = v
    for i, var in enumerate(container.get("env") or []):
        name = var["name"]
        at = f"{where}.env[{i}]"
        source = var.get("valueFrom")
        if not source:
            env[name] = expand(str(var.get("value") or ""), env)
            continue
        if source.get("fieldRef"):
            env[name] = pod.field(source["fieldRef"]["fieldPath"], f"{at}.valueFrom.fieldRef")
            continue
        if source.get("resourceFieldRef") and resource_field is not None:
            env[name] = resource_field(source["resourceFieldRef"])
            continue
        for resource, key in (("configmaps", "configMapKeyRef"), ("secrets", "secretKeyRef")):
            ref = source.get(key)
            if not ref:
                continue
            data = _ref(lookup, resource, pod.namespace, ref, f"{at}.valueFrom.{key}")
            if data is None:
                break
            if ref["key"] not in data:
                if ref.get("optional"):
                    break
                kind = "Secret" if resource == "secrets" else "ConfigMap"
                raise NotFoundError(
                    f"couldn't find key {ref['key']} in {kind} {pod.namespace}/{ref.get('name')} "
                    f"({at}.valueFrom.{key}; keys there: {', '.join(sorted(data)) or '(none)'})"
                )
            env[name] = data[ref["key"]]
            break
        else:
            raise InvalidError(
                f"{at}.valueFrom",
                "only fieldRef, resourceFieldRef, configMapKeyRef and secretKeyRef run on "
                "one machine; set the value directly instead",
            )
    return env


def proxy_env(gateway_url: str) -> dict[str, str]:
    """What points a process's HTTP and gRPC clients at the gateway for cluster-local URLs
    (``http://<svc>.<ns>.svc.cluster.local``); loopback stays direct."""
    if not gateway_url:
        return {}
    return {
        "HTTP_PROXY": gateway_url,
        "http_proxy": gateway_url,
        # gRPC (grpcio) reads grpc_proxy, then https_proxy, then http_proxy, and tunnels
        # with HTTP CONNECT, which the gateway answers for routed hosts
        "grpc_proxy": gateway_url,
        "NO_PROXY": "127.0.0.1,localhost,::1",
        "no_proxy": "127.0.0.1,localhost,::1",
    }
