"""Dapr's multi-app run template (``dapr run -f dapr.yaml``) for ``wonderland sidecar -f``.

::

    version: 1
    common:                       # applies to every app
      resourcesPath: ./components
      env: {DEBUG: "true"}
    apps:
      - appID: orders
        appDirPath: ./orders       # the command runs here
        appPort: 8001
        command: ["python", "app.py"]
      - appID: checkout
        appDirPath: ./checkout
        daprHTTPPort: 3501
        command: ["python", "app.py"]

Paths are relative to the template's folder. Each app gets its own sidecar (all in one
process) on free ports unless ``daprHTTPPort``/``daprGRPCPort`` are given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from wonderland.dapr.errors import ResourceError
from wonderland.dapr.launcher import AppRun
from wonderland.dapr.resources import ResourceSet, load_resources
from wonderland.dapr.runtime import RuntimeOptions, default_state_dir

__all__ = ["load_run_file"]

_COMMON = {
    "resourcesPath",
    "resourcesPaths",
    "env",
    "configFilePath",
    "appProtocol",
    "appHealthCheckPath",
    "daprdLogDestination",
    "appLogDestination",
    "logLevel",
    "enableApiLogging",
}
_APP = _COMMON | {
    "appID",
    "appDirPath",
    "appPort",
    "command",
    "daprHTTPPort",
    "daprGRPCPort",
    "appChannelAddress",
    "metricsPort",
    "enableAppHealthCheck",
    "appHealthProbeInterval",
    "appHealthProbeTimeout",
    "appHealthThreshold",
}


def _check(obj: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ResourceError(f"{where}: expected a mapping")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ResourceError(
            f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    return obj


def _paths(section: dict[str, Any], base: Path) -> list[str] | None:
    if "resourcesPaths" in section:
        return [str(base / p) for p in section["resourcesPaths"] or []]
    if "resourcesPath" in section:
        return [str(base / section["resourcesPath"])]
    return None


def load_run_file(path: str | Path) -> list[AppRun]:
    """Parse a run template into one :class:`AppRun` per app."""
    file = Path(path).expanduser()
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ResourceError(f"-f {file}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ResourceError(f"{file}: not valid YAML: {exc}") from None
    doc = _check(doc, {"version", "common", "apps"}, str(file))
    if str(doc.get("version", "1")) != "1":
        raise ResourceError(f"{file}: version: only version 1 templates exist")
    base = file.parent.resolve()
    common = _check(doc.get("common") or {}, _COMMON, f"{file}: common")
    apps = doc.get("apps") or []
    if not isinstance(apps, list) or not apps:
        raise ResourceError(f"{file}: apps: list at least one app with an appID")
    state_dir = default_state_dir()
    namespace = os.environ.get("NAMESPACE", "")
    out: list[AppRun] = []
    seen: set[str] = set()
    for i, raw in enumerate(apps):
        where = f"{file}: apps[{i}]"
        app = _check(raw, _APP, where)
        app_id = str(app.get("appID") or "")
        if not app_id:
            raise ResourceError(f"{where}: appID is required")
        if app_id in seen:
            raise ResourceError(f"{where}: appID {app_id!r} appears twice")
        seen.add(app_id)
        protocol = str(app.get("appProtocol") or common.get("appProtocol") or "http")
        if protocol != "http":
            raise ResourceError(f"{where}: appProtocol {protocol!r} is not supported; use http")
        app_dir = base / str(app.get("appDirPath") or ".")
        paths = _paths(app, base) or _paths(common, base)
        config = app.get("configFilePath") or common.get("configFilePath")
        if paths is None:
            resources = ResourceSet()
            from wonderland.dapr.sidecar import default_resources

            resources.components = default_resources(state_dir).components
            if config:
                resources.configuration = load_resources([], base / str(config)).configuration
        else:
            resources = load_resources(paths, base / str(config) if config else None)
        command = app.get("command") or []
        if not isinstance(command, list):
            raise ResourceError(f'{where}: command must be a list such as ["python", "app.py"]')
        env = {
            str(k): str(v)
            for k, v in {**(common.get("env") or {}), **(app.get("env") or {})}.items()
        }
        options = RuntimeOptions(
            app_id=app_id,
            app_port=int(app["appPort"]) if app.get("appPort") else None,
            app_channel_address=str(app.get("appChannelAddress") or "127.0.0.1"),
            http_port=int(app.get("daprHTTPPort") or 0),
            grpc_port=int(app.get("daprGRPCPort") or 0),
            # several sidecars share the machine: a free port unless the template names one
            metrics_port=int(app.get("metricsPort") or common.get("metricsPort") or 0),
            namespace=namespace,
            api_token=os.environ.get("DAPR_API_TOKEN", ""),
            app_api_token=os.environ.get("APP_API_TOKEN", ""),
            state_dir=state_dir,
            resources=resources.for_app(app_id, namespace),
        )
        out.append(AppRun(options, [str(c) for c in command], str(app_dir), env))
    return out
