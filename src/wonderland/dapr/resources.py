"""Dapr resources read from YAML: Component, Subscription, Resiliency, Configuration.

The same files run on a cluster with Dapr, so a field Dapr does not know is rejected
with the file and the field path instead of being silently ignored.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wonderland.dapr.errors import ResourceError

__all__ = [
    "ComponentResource",
    "ConfigurationResource",
    "MetadataValue",
    "ResiliencyResource",
    "ResourceSet",
    "SubscriptionResource",
    "load_resources",
    "parse_documents",
]

_TOP_FIELDS = {"apiVersion", "kind", "metadata", "spec", "scopes", "auth"}
_COMPONENT_SPEC = {"type", "version", "initTimeout", "ignoreErrors", "metadata"}
_SUB_V2_SPEC = {"pubsubname", "topic", "routes", "deadLetterTopic", "metadata", "bulkSubscribe"}
_SUB_V1_SPEC = {"pubsubname", "topic", "route", "deadLetterTopic", "metadata", "bulkSubscribe"}
_CONFIG_SPEC = {
    "tracing",
    "metrics",
    "logging",
    "httpPipeline",
    "appHttpPipeline",
    "nameResolution",
    "secrets",
    "api",
    "components",
    "accessControl",
    "features",
    "mtls",
    "wasm",
    "workflow",
}


@dataclass(slots=True)
class MetadataValue:
    """One ``spec.metadata`` entry: a plain value, a ``secretKeyRef`` or an ``envRef``."""

    name: str
    value: str | None = None
    secret_name: str | None = None
    secret_key: str | None = None
    env_ref: str | None = None


@dataclass(slots=True)
class ComponentResource:
    """A ``kind: Component``."""

    name: str
    type: str
    version: str
    metadata: list[MetadataValue]
    namespace: str = ""
    scopes: list[str] = field(default_factory=list)
    secret_store: str = ""
    init_timeout: float = 5.0
    ignore_errors: bool = False
    source: str = ""

    @property
    def building_block(self) -> str:
        return self.type.split(".", 1)[0]


@dataclass(slots=True)
class SubscriptionResource:
    """A ``kind: Subscription`` (v1alpha1 ``route`` or v2alpha1 ``routes``)."""

    name: str
    pubsubname: str
    topic: str
    rules: list[tuple[str, str]]
    default_path: str
    dead_letter_topic: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    scopes: list[str] = field(default_factory=list)
    source: str = ""


@dataclass(slots=True)
class ResiliencyResource:
    """A ``kind: Resiliency``: the raw ``spec`` is interpreted by the resiliency engine."""

    name: str
    spec: dict[str, Any]
    scopes: list[str] = field(default_factory=list)
    source: str = ""


@dataclass(slots=True)
class ConfigurationResource:
    """A ``kind: Configuration``; wonderland honours ``secrets.scopes`` and ``features``."""

    name: str
    spec: dict[str, Any]
    source: str = ""


@dataclass(slots=True)
class ResourceSet:
    """Everything loaded for one sidecar."""

    components: list[ComponentResource] = field(default_factory=list)
    subscriptions: list[SubscriptionResource] = field(default_factory=list)
    resiliencies: list[ResiliencyResource] = field(default_factory=list)
    configuration: ConfigurationResource | None = None

    def for_app(self, app_id: str, namespace: str = "") -> ResourceSet:
        """The resources whose ``scopes`` (and namespace) admit ``app_id``."""

        def admits(scopes: list[str]) -> bool:
            return not scopes or app_id in scopes

        return ResourceSet(
            components=[
                c
                for c in self.components
                if admits(c.scopes)
                and (not c.namespace or not namespace or c.namespace == namespace)
            ],
            subscriptions=[s for s in self.subscriptions if admits(s.scopes)],
            resiliencies=[r for r in self.resiliencies if admits(r.scopes)],
            configuration=self.configuration,
        )


def _where(source: str, path: str) -> str:
    return f"{source}: {path}" if source else path


def _check_fields(obj: Mapping[str, Any], allowed: set[str], source: str, path: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ResourceError(
            f"{_where(source, path)}: unknown field(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(allowed))}. Remove or rename them (Dapr would reject them too)."
        )


def _as_str(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _duration_seconds(value: object, source: str, path: str) -> float:
    from wonderland.dapr.resiliency import parse_duration

    try:
        return parse_duration(_as_str(value))
    except ValueError as exc:
        raise ResourceError(f"{_where(source, path)}: {exc}") from None


def _scopes(doc: Mapping[str, Any], source: str) -> list[str]:
    scopes = doc.get("scopes") or []
    if not isinstance(scopes, list):
        raise ResourceError(f"{_where(source, 'scopes')}: must be a list of app ids")
    return [str(s) for s in scopes]


def _parse_component(doc: Mapping[str, Any], source: str) -> ComponentResource:
    meta = doc.get("metadata") or {}
    name = str(meta.get("name") or "")
    if not name:
        raise ResourceError(f"{_where(source, 'metadata.name')}: a Component needs a name")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        raise ResourceError(f"{_where(source, 'spec')}: Component {name!r} needs a spec")
    _check_fields(spec, _COMPONENT_SPEC, source, "spec")
    ctype = str(spec.get("type") or "")
    if "." not in ctype:
        raise ResourceError(
            f"{_where(source, 'spec.type')}: Component {name!r} needs a type such as "
            "state.redis or pubsub.in-memory"
        )
    version = str(spec.get("version") or "")
    if not version:
        raise ResourceError(
            f"{_where(source, 'spec.version')}: Component {name!r} needs a version (v1)"
        )
    items: list[MetadataValue] = []
    for i, entry in enumerate(spec.get("metadata") or []):
        path = f"spec.metadata[{i}]"
        if not isinstance(entry, dict) or "name" not in entry:
            raise ResourceError(f"{_where(source, path)}: each entry needs a name")
        _check_fields(entry, {"name", "value", "secretKeyRef", "envRef"}, source, path)
        item = MetadataValue(name=str(entry["name"]))
        if "secretKeyRef" in entry:
            ref = entry["secretKeyRef"] or {}
            _check_fields(ref, {"name", "key"}, source, f"{path}.secretKeyRef")
            item.secret_name = str(ref.get("name") or "")
            item.secret_key = str(ref.get("key") or item.secret_name)
        elif "envRef" in entry:
            item.env_ref = str(entry["envRef"])
        else:
            raw = entry.get("value")
            item.value = "" if raw is None else _as_str(raw)
        items.append(item)
    auth = doc.get("auth") or {}
    _check_fields(auth, {"secretStore"}, source, "auth")
    return ComponentResource(
        name=name,
        type=ctype,
        version=version,
        metadata=items,
        namespace=str(meta.get("namespace") or ""),
        scopes=_scopes(doc, source),
        secret_store=str(auth.get("secretStore") or ""),
        init_timeout=_duration_seconds(spec.get("initTimeout", "5s"), source, "spec.initTimeout"),
        ignore_errors=_as_str(spec.get("ignoreErrors", False)).lower() == "true",
        source=source,
    )


def _parse_subscription(doc: Mapping[str, Any], source: str) -> SubscriptionResource:
    meta = doc.get("metadata") or {}
    api = str(doc.get("apiVersion") or "")
    spec = doc.get("spec") or {}
    v1 = api.endswith("v1alpha1")
    _check_fields(spec, _SUB_V1_SPEC if v1 else _SUB_V2_SPEC, source, "spec")
    for req in ("pubsubname", "topic"):
        if not spec.get(req):
            raise ResourceError(f"{_where(source, 'spec.' + req)}: a Subscription needs {req}")
    rules: list[tuple[str, str]] = []
    default = ""
    if v1:
        default = str(spec.get("route") or "")
    else:
        routes = spec.get("routes") or {}
        _check_fields(routes, {"rules", "default"}, source, "spec.routes")
        for i, rule in enumerate(routes.get("rules") or []):
            _check_fields(rule, {"match", "path"}, source, f"spec.routes.rules[{i}]")
            rules.append((str(rule.get("match") or ""), str(rule.get("path") or "")))
        default = str(routes.get("default") or "")
    if not rules and not default:
        raise ResourceError(
            f"{_where(source, 'spec.routes')}: Subscription {meta.get('name')!r} has no route; "
            "set routes.default (v2alpha1) or route (v1alpha1)"
        )
    from wonderland.dapr.cel import compile_expression

    for i, (match, _path) in enumerate(rules):
        try:
            compile_expression(match)
        except ValueError as exc:
            raise ResourceError(
                f"{_where(source, f'spec.routes.rules[{i}].match')}: {exc}"
            ) from None
    return SubscriptionResource(
        name=str(meta.get("name") or ""),
        pubsubname=str(spec["pubsubname"]),
        topic=str(spec["topic"]),
        rules=rules,
        default_path=default,
        dead_letter_topic=str(spec.get("deadLetterTopic") or ""),
        metadata={str(k): _as_str(v) for k, v in (spec.get("metadata") or {}).items()},
        scopes=_scopes(doc, source),
        source=source,
    )


def parse_documents(docs: Iterable[Any], source: str = "") -> ResourceSet:
    """Turn parsed YAML documents into resources; other kinds are skipped (Dapr does too)."""
    out = ResourceSet()
    for index, doc in enumerate(docs):
        if doc is None:
            continue
        where = f"{source}[document {index}]" if source else f"document {index}"
        if not isinstance(doc, dict):
            raise ResourceError(f"{where}: expected a mapping with apiVersion and kind")
        kind = doc.get("kind")
        api = str(doc.get("apiVersion") or "")
        if kind not in {"Component", "Subscription", "Resiliency", "Configuration"}:
            continue
        if not api.startswith("dapr.io/"):
            continue
        _check_fields(doc, _TOP_FIELDS, where, "")
        name = str((doc.get("metadata") or {}).get("name") or "")
        if kind == "Component":
            out.components.append(_parse_component(doc, where))
        elif kind == "Subscription":
            out.subscriptions.append(_parse_subscription(doc, where))
        elif kind == "Resiliency":
            spec = doc.get("spec") or {}
            _check_fields(spec, {"policies", "targets"}, where, "spec")
            from wonderland.dapr.resiliency import validate_spec

            validate_spec(spec, where)
            out.resiliencies.append(ResiliencyResource(name, spec, _scopes(doc, where), where))
        else:
            spec = doc.get("spec") or {}
            _check_fields(spec, _CONFIG_SPEC, where, "spec")
            out.configuration = ConfigurationResource(name, spec, where)
    return out


def _merge(into: ResourceSet, other: ResourceSet) -> None:
    into.components.extend(other.components)
    into.subscriptions.extend(other.subscriptions)
    into.resiliencies.extend(other.resiliencies)
    if other.configuration is not None:
        into.configuration = other.configuration


def load_file(path: Path) -> ResourceSet:
    """Read one YAML file with any number of documents."""
    try:
        with path.open("r", encoding="utf-8") as fh:
            docs = list(yaml.safe_load_all(fh))
    except yaml.YAMLError as exc:
        raise ResourceError(f"{path}: not valid YAML: {exc}") from None
    except OSError as exc:
        raise ResourceError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_documents(docs, str(path))


def load_resources(
    paths: Iterable[str | Path], config_file: str | Path | None = None
) -> ResourceSet:
    """Load every ``*.yaml``/``*.yml`` in the resource folders, plus a Configuration file."""
    out = ResourceSet()
    for raw in paths:
        folder = Path(raw).expanduser()
        if folder.is_file():
            _merge(out, load_file(folder))
            continue
        if not folder.is_dir():
            raise ResourceError(
                f"--resources-path {folder}: no such folder; create it or point to the folder "
                "holding your Component YAML files"
            )
        for file in sorted(folder.iterdir()):
            if file.suffix in {".yaml", ".yml"} and file.is_file():
                _merge(out, load_file(file))
    if config_file is not None:
        cfg = load_file(Path(config_file).expanduser())
        if cfg.configuration is None:
            raise ResourceError(f"--config {config_file}: holds no kind: Configuration")
        out.configuration = cfg.configuration
    names: dict[str, str] = {}
    for comp in out.components:
        if comp.name in names:
            raise ResourceError(
                f"{comp.source}: component name {comp.name!r} is already used by {names[comp.name]}; "
                "component names must be unique"
            )
        names[comp.name] = comp.source
    return out


def expand_template(value: str, app_id: str, namespace: str) -> str:
    """Replace Dapr's template tags ``{uuid}``, ``{podName}``, ``{namespace}``, ``{appID}``."""
    if "{" not in value:
        return value
    return (
        value.replace("{uuid}", str(uuid.uuid4()))
        .replace("{podName}", os.environ.get("POD_NAME", app_id))
        .replace("{namespace}", namespace or "default")
        .replace("{appID}", app_id)
    )
