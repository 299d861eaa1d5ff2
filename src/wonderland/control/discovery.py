"""Discovery documents (legacy format) and ``/version``, built from the kind registry."""

from __future__ import annotations

from typing import Any

from wonderland import __version__
from wonderland.api.kinds import ResourceKind

__all__ = ["KUBE_VERSION", "groups", "resource_list"]

KUBE_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0",
    "gitCommit": "wonderland-" + __version__,
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "python",
    "compiler": "cpython",
    "platform": "linux/amd64",
}


def groups(kinds: list[ResourceKind]) -> list[dict[str, Any]]:
    order: dict[str, list[str]] = {}
    preferred: dict[str, str] = {}
    for kind in kinds:
        if not kind.group:
            continue
        versions = order.setdefault(kind.group, [])
        preferred.setdefault(kind.group, kind.version)
        for version in kind.versions:
            if version not in versions:
                versions.append(version)
    groups = []
    for name, versions in order.items():
        first = preferred[name]
        ordered = [first, *(v for v in versions if v != first)]
        groups.append(
            {
                "name": name,
                "versions": [{"groupVersion": f"{name}/{v}", "version": v} for v in ordered],
                "preferredVersion": {"groupVersion": f"{name}/{first}", "version": first},
            }
        )
    return groups


def resource_list(group: str, version: str, kinds: list[ResourceKind]) -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for kind in kinds:
        if kind.group != group or version not in kind.versions:
            continue
        entry: dict[str, Any] = {
            "name": kind.plural,
            "singularName": kind.singular,
            "namespaced": kind.namespaced,
            "kind": kind.kind,
            "verbs": list(kind.verbs),
        }
        if kind.short_names:
            entry["shortNames"] = list(kind.short_names)
        if kind.categories:
            entry["categories"] = list(kind.categories)
        resources.append(entry)
        for sub in kind.subresources:
            resources.append(
                {
                    "name": f"{kind.plural}/{sub}",
                    "singularName": "",
                    "namespaced": kind.namespaced,
                    "kind": kind.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        for sub in kind.read_subresources:
            resources.append(
                {
                    "name": f"{kind.plural}/{sub}",
                    "singularName": "",
                    "namespaced": kind.namespaced,
                    "kind": kind.kind,
                    "verbs": ["get"],
                }
            )
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }
