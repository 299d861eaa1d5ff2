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

Annotations: those in :data:`HONOURED` change the sidecar as they change daprd (ports,
``dapr.io/app-port`` and ``dapr.io/metrics-port``, are remapped to free local ports, as every
pod has its own network on a cluster); any other ``dapr.io/`` annotation, and a value that
does not parse, has no effect and is reported as a Warning Event on the revision
(``DaprAnnotationIgnored``) and in the daemon's log. ``docs/dapr.md`` lists both.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

import wonderland
from wonderland.api import quantity
from wonderland.api.admission import Admission
from wonderland.controllers import events
from wonderland.dapr.broker import PlatformBroker
from wonderland.dapr.platform_sidecar import SIDECAR_MODULE
from wonderland.errors import InvalidError
from wonderland.settings import Settings

if TYPE_CHECKING:
    from wonderland.platform import Platform
    from wonderland.runtime.companions import Companion, ReplicaInfo

__all__ = ["HONOURED", "DaprPlatform", "install", "sidecar_flags"]

log = logging.getLogger("wonderland.dapr.platform")

KINDS = {
    "components.dapr.io": "components",
    "subscriptions.dapr.io": "subscriptions",
    "resiliencies.dapr.io": "resiliencies",
    "configurations.dapr.io": "configurations",
}
#: ``dapr.io/`` annotations that change the sidecar, and the daprd flag each one sets
#: ("" for those handled here rather than by a flag).
FLAGS = {
    "dapr.io/enabled": "",
    "dapr.io/app-id": "",
    "dapr.io/app-port": "",  # remapped: the replica's own local port
    "dapr.io/metrics-port": "",  # remapped: a free port, named dapr-metrics on the pod
    "dapr.io/app-protocol": "",  # http only
    "dapr.io/config": "",
    "dapr.io/enable-metrics": "",
    "dapr.io/log-level": "",
    "dapr.io/env": "",
    "dapr.io/enable-api-logging": "--enable-api-logging",
    "dapr.io/app-max-concurrency": "--app-max-concurrency",
    "dapr.io/http-max-request-size": "--dapr-http-max-request-size",
    "dapr.io/max-body-size": "--max-body-size",
    "dapr.io/enable-app-health-check": "--enable-app-health-check",
    "dapr.io/app-health-check-path": "--app-health-check-path",
    "dapr.io/app-health-probe-interval": "--app-health-probe-interval",
    "dapr.io/app-health-probe-timeout": "--app-health-probe-timeout",
    "dapr.io/app-health-threshold": "--app-health-threshold",
}
HONOURED = frozenset(FLAGS)
#: Annotations whose value is a whole number.
_INTEGERS = {
    "dapr.io/app-port",
    "dapr.io/metrics-port",
    "dapr.io/app-max-concurrency",
    "dapr.io/http-max-request-size",
    "dapr.io/app-health-probe-interval",
    "dapr.io/app-health-probe-timeout",
    "dapr.io/app-health-threshold",
}
_BOOLEANS = {"dapr.io/enable-api-logging", "dapr.io/enable-app-health-check"}
_LOG_LEVELS = {"debug", "info", "warn", "error"}
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


def _is_size(value: str) -> bool:
    try:
        return quantity.parse(value, "dapr.io/max-body-size") > 0
    except InvalidError:
        return False


def sidecar_flags(ann: dict[str, Any]) -> tuple[list[str], dict[str, str], list[str]]:
    """The daprd flags and environment the ``dapr.io/`` annotations ``ann`` ask for, and a
    line for each annotation that has no effect here (unsupported, or a value that does
    not parse), naming what to do instead."""
    flags: list[str] = ["--log-level", "info"]
    env: dict[str, str] = {}
    problems: list[str] = []
    unsupported = sorted(k for k in ann if k.startswith("dapr.io/") and k not in HONOURED)
    if unsupported:
        problems.append(
            f"annotations {', '.join(unsupported)} are not supported on one machine and have "
            "no effect (see the Dapr page of the docs for the supported ones)"
        )
    for key in sorted(k for k in ann if k in HONOURED):
        value = str(ann[key]).strip()
        if key in _INTEGERS and not (
            value.isdigit() or (value.startswith("-") and value[1:].isdigit())
        ):
            problems.append(f"{key}: {value!r} is not a whole number; the annotation is ignored")
            continue
        if key in _BOOLEANS and value.lower() not in {"true", "false"}:
            problems.append(f"{key}: {value!r} is not true or false; the annotation is ignored")
            continue
        flag = FLAGS[key]
        if key == "dapr.io/log-level":
            if value.lower() not in _LOG_LEVELS:
                problems.append(
                    f"{key}: {value!r} is not one of {', '.join(sorted(_LOG_LEVELS))}; using info"
                )
            else:
                flags[1] = value.lower()
        elif key == "dapr.io/app-protocol" and value != "http":
            problems.append(f"{key}: {value!r} is not supported; the sidecar talks HTTP to the app")
        elif key == "dapr.io/max-body-size" and not _is_size(value):
            problems.append(
                f"{key}: {value!r} is not a size such as 4Mi; the annotation is ignored"
            )
        elif key == "dapr.io/env":
            for item in (i.strip() for i in value.split(",")):
                name, eq, val = item.partition("=")
                if not eq or not name.strip():
                    problems.append(f"{key}: {item!r} is not NAME=VALUE; it is ignored")
                    continue
                env[name.strip()] = val.strip()
        elif key == "dapr.io/enable-app-health-check":
            if value.lower() == "true":
                flags.append(flag)
        elif key == "dapr.io/enable-api-logging":
            flags += [f"{flag}={value.lower()}"]
        elif flag:
            flags += [flag, value]
    return flags, env, problems


class DaprPlatform:
    """Writes the Dapr resources for sidecars and builds the companion for each replica."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.root = platform.state_dir / "dapr"
        self.apps_dir = self.root / "apps"
        # The module sidecars run with (``python -m <module> sidecar ...``); the platform's
        # in-memory broker swaps in its own (see ``wonderland.dapr.broker``).
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
        flags, sidecar_env, problems = sidecar_flags(ann)
        if problems:
            message = "; ".join(problems)
            log.warning("revision %s: %s", replica.revision, message)
            events.record(
                self.platform.store,
                revision,
                "Warning",
                "DaprAnnotationIgnored",
                message,
                component="dapr-sidecar-injector",
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
            "--metrics-port",
            str(metrics_port),
            "--enable-metrics",
            "true" if metrics_on else "false",
            *flags,
        ]
        config_name = ann.get("dapr.io/config")
        if config_name:
            cfg = self._configuration(namespace, str(config_name))
            if cfg is not None:
                argv += ["--config", str(cfg)]
        env = {
            **sidecar_env,
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


def install_admission(into: Admission, settings: Settings) -> None:
    """Register the Dapr resources' checks."""
    for resource in KINDS:
        into.register(resource, check_resource)


def install(platform: Platform) -> DaprPlatform:
    """Add Dapr to ``platform``: admission checks and one sidecar per dapr-enabled replica."""
    from wonderland.runtime import companions

    install_admission(platform.admission, platform.settings)
    plugin = DaprPlatform(platform)
    companions.register("dapr", plugin.companion)
    platform.add_service(plugin)
    # pubsub.in-memory means "in the platform's memory": one broker for every sidecar, which
    # the sidecars reach through their own entry point (see wonderland.dapr.broker).
    platform.add_service(PlatformBroker(plugin.root))
    plugin.sidecar_module = SIDECAR_MODULE
    return plugin
