"""The platform plugin: one sidecar per replica of a revision with ``dapr.io/enabled: "true"``.

``install(platform)`` registers admission checks for the Dapr kinds (a Component with an
unknown type or metadata field is refused at apply time) and a replica companion. For
each replica the companion writes the namespace's Component, Subscription and Resiliency
resources (with their ``scopes``) into ``<state_dir>/dapr/resources/<namespace>/``, adds
the ``kubernetes`` secret store reading the platform's Secret resources, and starts
``wonderland sidecar`` beside the app. Sidecars register in
``<state_dir>/dapr/apps`` so that service invocation between app ids works across
services. Resources applied later reach a sidecar when its replica next starts, as with
Dapr on Kubernetes without hot reload.

Annotations honoured: ``dapr.io/enabled``, ``dapr.io/app-id`` (default: the Knative
Service name), ``dapr.io/app-port`` (the replica's local port is used: ports are
remapped on one machine), ``dapr.io/app-protocol`` (``http``), ``dapr.io/config``,
``dapr.io/log-level``.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

import wonderland
from wonderland.errors import InvalidError

if TYPE_CHECKING:
    from wonderland.platform import Platform
    from wonderland.runtime.companions import Companion, ReplicaInfo

__all__ = ["DaprPlatform", "install"]

log = logging.getLogger("wonderland.dapr.platform")

KINDS = {
    "components.dapr.io": "components",
    "subscriptions.dapr.io": "subscriptions",
    "resiliencies.dapr.io": "resiliencies",
    "configurations.dapr.io": "configurations",
}
HONOURED = {
    "dapr.io/enabled",
    "dapr.io/app-id",
    "dapr.io/app-port",
    "dapr.io/app-protocol",
    "dapr.io/config",
    "dapr.io/enable-metrics",
    "dapr.io/log-level",
}
_KEEP = ("apiVersion", "kind", "metadata", "spec", "scopes", "auth")
_PACKAGE_ROOT = str(Path(wonderland.__file__).resolve().parent.parent)
# The image the sidecar container stands for, as Dapr's injector names it (never pulled).
DAPRD_IMAGE = "ghcr.io/dapr/daprd:1.17.0"


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    out = {k: obj[k] for k in _KEEP if k in obj}
    meta = obj.get("metadata") or {}
    out["metadata"] = {k: meta[k] for k in ("name", "namespace") if k in meta}
    return out


def check_resource(new: dict[str, Any], old: dict[str, Any] | None) -> None:
    """Admission: parse the object as the sidecar will, and check a Component's type and fields."""
    from wonderland.dapr.components import component_class
    from wonderland.dapr.errors import ResourceError
    from wonderland.dapr.resources import parse_documents

    try:
        res = parse_documents([_clean(new)])
        for comp in res.components:
            cls = component_class(comp.type)
            if comp.version not in cls.VERSIONS:
                raise InvalidError(
                    "spec.version",
                    f"{comp.type} has no version {comp.version!r}; use {', '.join(cls.VERSIONS)}",
                )
            plain = {m.name: "x" for m in comp.metadata}
            unknown = sorted(set(plain) - set(cls.FIELDS))
            if unknown:
                raise InvalidError(
                    "spec.metadata",
                    f"unknown metadata field(s) {', '.join(unknown)} for {comp.type}; "
                    f"accepted: {', '.join(sorted(cls.FIELDS))}",
                )
    except ResourceError as exc:
        raise InvalidError(str(exc).removeprefix("document 0: ").removeprefix(": ")) from None


class DaprPlatform:
    """Writes the Dapr resources for sidecars and builds the companion for each replica."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.root = platform.state_dir / "dapr"
        self.apps_dir = self.root / "apps"
        # The module sidecars run with (``python -m <module> sidecar ...``); the platform's
        # in-memory broker swaps in its own (see ``components/pubsub_platform.py``).
        self.sidecar_module = "wonderland"

    def _list(self, resource: str, namespace: str) -> list[dict[str, Any]]:
        items, _rv = self.platform.store.list(resource, namespace)
        return [
            i for i in items if (i.get("metadata") or {}).get("namespace", "") in ("", namespace)
        ]

    def sync_namespace(self, namespace: str) -> Path:
        """Write the namespace's Dapr resources as YAML; returns the folder."""
        folder = self.root / "resources" / namespace
        folder.mkdir(parents=True, exist_ok=True)
        docs: list[dict[str, Any]] = []
        for resource in ("components.dapr.io", "subscriptions.dapr.io", "resiliencies.dapr.io"):
            docs += [_clean(o) for o in self._list(resource, namespace)]
        names = {d["metadata"]["name"] for d in docs if d.get("kind") == "Component"}
        kubeconfig = self._kubeconfig()
        if "kubernetes" not in names:
            docs.append(
                {
                    "apiVersion": "dapr.io/v1alpha1",
                    "kind": "Component",
                    "metadata": {"name": "kubernetes", "namespace": namespace},
                    "spec": {
                        "type": "secretstores.kubernetes",
                        "version": "v1",
                        "metadata": [
                            {"name": "kubeconfigPath", "value": str(kubeconfig)},
                            {"name": "defaultNamespace", "value": namespace},
                        ],
                    },
                }
            )
        target = folder / "resources.yaml"
        tmp = folder / f".resources.{os.getpid()}.tmp"
        tmp.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        tmp.replace(target)
        return folder

    def _kubeconfig(self) -> Path:
        from wonderland.kubeconfig import kubeconfig_path

        return kubeconfig_path(self.platform.state_dir)

    def _configuration(self, namespace: str, name: str) -> Path | None:
        for obj in self._list("configurations.dapr.io", namespace):
            if obj["metadata"]["name"] == name:
                path = self.root / "resources" / f"{namespace}.config.{name}.yaml"
                path.write_text(yaml.safe_dump(_clean(obj), sort_keys=False))
                return path
        log.warning(
            "dapr.io/config names Configuration %r, which does not exist in %s", name, namespace
        )
        return None

    def companion(self, revision: dict[str, Any], replica: ReplicaInfo) -> Companion | None:
        from wonderland.runtime.companions import Companion, CompanionProcess

        ann = (revision.get("metadata") or {}).get("annotations") or {}
        if str(ann.get("dapr.io/enabled", "")).lower() != "true":
            return None
        ignored = sorted(k for k in ann if k.startswith("dapr.io/") and k not in HONOURED)
        if ignored:
            log.warning(
                "revision %s: annotations %s are not supported and have no effect; supported: %s",
                replica.revision,
                ", ".join(ignored),
                ", ".join(sorted(HONOURED)),
            )
        if str(ann.get("dapr.io/app-protocol", "http")) != "http":
            log.warning(
                "revision %s: dapr.io/app-protocol %s is not supported; the sidecar talks HTTP to the app",
                replica.revision,
                ann.get("dapr.io/app-protocol"),
            )
        namespace = replica.namespace or "default"
        app_id = str(ann.get("dapr.io/app-id") or replica.service or replica.revision)
        folder = self.sync_namespace(namespace)
        http_port, grpc_port = replica.free_port(), replica.free_port()
        metrics_on = str(ann.get("dapr.io/enable-metrics", "true")).lower() != "false"
        metrics_port = replica.free_port()
        argv = [
            sys.executable,
            "-m",
            self.sidecar_module,
            "sidecar",
            "--app-id",
            app_id,
            "--app-port",
            str(replica.app_port),
            "--dapr-http-port",
            str(http_port),
            "--dapr-grpc-port",
            str(grpc_port),
            "--resources-path",
            str(folder),
            "--name-resolution-dir",
            str(self.apps_dir),
            "--log-level",
            str(ann.get("dapr.io/log-level", "info")),
            "--metrics-port",
            str(metrics_port),
            "--enable-metrics",
            "true" if metrics_on else "false",
        ]
        config_name = ann.get("dapr.io/config")
        if config_name:
            cfg = self._configuration(namespace, str(config_name))
            if cfg is not None:
                argv += ["--config", str(cfg)]
        env = {
            "NAMESPACE": namespace,
            "WONDERLAND_HOME": str(self.platform.state_dir),
            # daprd is the daemon's own program: it imports the daemon's copy of wonderland
            # (a checkout run with PYTHONPATH included), so its flags match the ones given here
            "PYTHONPATH": _PACKAGE_ROOT,
        }
        return Companion(
            # As a pod has its own filesystem, a sidecar works in the platform's Dapr folder:
            # relative paths in component metadata (a SQLite file) land there.
            processes=[
                CompanionProcess(
                    "daprd",
                    argv,
                    env=env,
                    ready_port=http_port,
                    cwd=str(self.root),
                    image=DAPRD_IMAGE,
                    # daprd's injector names its metrics port dapr-metrics: scrape targets find it
                    ports={"dapr-metrics": metrics_port} if metrics_on else {},
                )
            ],
            app_env={
                "APP_ID": app_id,
                "DAPR_HTTP_PORT": str(http_port),
                "DAPR_GRPC_PORT": str(grpc_port),
                "NAMESPACE": namespace,
            },
        )

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    async def stop(self) -> None:
        return None


def install(platform: Platform) -> DaprPlatform:
    """Add Dapr to ``platform``: admission checks and one sidecar per dapr-enabled replica."""
    from wonderland.api import admission
    from wonderland.runtime import companions

    for resource in KINDS:
        admission.register(resource, check_resource)
    plugin = DaprPlatform(platform)
    companions.register("dapr", plugin.companion)
    platform.add_service(plugin)
    # pubsub.in-memory means "in the platform's memory": one broker for every sidecar.
    from wonderland.dapr.components import pubsub_platform

    pubsub_platform.install(platform, plugin)
    return plugin
