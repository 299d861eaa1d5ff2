"""``run.envs`` value templates: ``{{ env:VAR }}``, ``{{ secret:name:key }}``,
``{{ configMap:name:key }}`` and the whole-object ``{{ secret:name }}`` /
``{{ configMap:name }}`` (an entry without ``name``), as in Knative's ``func``.

For ``func run`` every template becomes a literal value. For ``func deploy`` the
``env`` templates become literals (read on the deploying machine) while secret and
ConfigMap references become ``valueFrom`` / ``envFrom`` in the Service, so the platform
resolves them when a replica starts, exactly as on a cluster.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from wonderland.errors import ConfigError, NotFoundError

__all__ = [
    "EnvTemplate",
    "ResourceLookup",
    "parse_template",
    "resolve_envs",
    "to_container_env",
]

_TEMPLATE_RE = re.compile(
    r"^\{\{\s*(?P<kind>env|secret|configMap|configmap)\s*:\s*(?P<name>[^:}\s]+)"
    r"(?:\s*:\s*(?P<key>[^}\s]+))?\s*\}\}$"
)


@dataclass(frozen=True)
class EnvTemplate:
    """A parsed ``{{ kind:name[:key] }}``; ``key`` is None for whole-object references."""

    kind: str  # "env", "secret" or "configMap"
    name: str
    key: str | None


class ResourceLookup(Protocol):
    """Reads a Secret or ConfigMap from the platform (``kind`` is ``Secret`` or ``ConfigMap``).

    Returns the decoded string data, or raises NotFoundError."""

    def __call__(self, kind: str, namespace: str, name: str) -> Mapping[str, str]: ...


def parse_template(value: str) -> EnvTemplate | None:
    """The template in ``value``, or None when it is a literal."""
    match = _TEMPLATE_RE.match(value.strip())
    if match is None:
        return None
    kind = "configMap" if match["kind"].lower() == "configmap" else match["kind"]
    if kind == "env" and match["key"]:
        return None
    return EnvTemplate(kind=kind, name=match["name"], key=match["key"])


def decode_secret_data(obj: Mapping[str, Any]) -> dict[str, str]:
    """The string values of a Secret manifest (``data`` is base64, ``stringData`` plain)."""
    out = {k: base64.b64decode(v).decode("utf-8") for k, v in (obj.get("data") or {}).items()}
    out.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
    return out


def _where(index: int, entry: Mapping[str, Any]) -> str:
    return f"func.yaml run.envs[{index}]" + (f" ({entry['name']})" if entry.get("name") else "")


def resolve_envs(
    envs: list[dict[str, Any]],
    environ: Mapping[str, str],
    lookup: ResourceLookup | None,
    namespace: str,
) -> dict[str, str]:
    """Every ``run.envs`` entry as a literal value (for ``func run``)."""
    out: dict[str, str] = {}
    for index, entry in enumerate(envs):
        name = entry.get("name")
        raw = str(entry.get("value") or "")
        template = parse_template(raw)
        where = _where(index, entry)
        if template is None:
            if not name:
                raise ConfigError(f"{where}: an entry needs a name (or a whole-object template)")
            out[str(name)] = raw
            continue
        if template.kind == "env":
            if template.name not in environ:
                raise ConfigError(
                    f"{where}: {raw} needs the environment variable {template.name}, which is "
                    "not set; export it and run again"
                )
            if not name:
                raise ConfigError(f"{where}: an {{{{ env:... }}}} entry needs a name")
            out[str(name)] = environ[template.name]
            continue
        kind = "Secret" if template.kind == "secret" else "ConfigMap"
        if lookup is None:
            raise ConfigError(
                f"{where}: {raw} refers to {kind} {namespace}/{template.name}, but no platform "
                "is reachable to read it; start it with `wonderland up`, or use a literal value"
            )
        data = lookup(kind, namespace, template.name)
        if template.key is None:
            if name:
                raise ConfigError(
                    f"{where}: {raw} imports every key of the {kind}; remove `name:` from this "
                    "entry or name a key ({{ " + template.kind + ":" + template.name + ":KEY }})"
                )
            out.update(data)
            continue
        if template.key not in data:
            raise NotFoundError(
                f"{where}: {kind} {namespace}/{template.name} has no key {template.key!r} "
                f"(keys: {', '.join(sorted(data)) or 'none'})"
            )
        if not name:
            raise ConfigError(f"{where}: an entry with a single key needs a name")
        out[str(name)] = data[template.key]
    return out


def to_container_env(
    envs: list[dict[str, Any]], environ: Mapping[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``run.envs`` as a container's ``env`` and ``envFrom`` (for ``func deploy``)."""
    env: list[dict[str, Any]] = []
    env_from: list[dict[str, Any]] = []
    for index, entry in enumerate(envs):
        name = entry.get("name")
        raw = str(entry.get("value") or "")
        template = parse_template(raw)
        where = _where(index, entry)
        if template is None:
            if not name:
                raise ConfigError(f"{where}: an entry needs a name (or a whole-object template)")
            env.append({"name": str(name), "value": raw})
        elif template.kind == "env":
            if template.name not in environ:
                raise ConfigError(
                    f"{where}: {raw} needs the environment variable {template.name}, which is "
                    "not set; export it and deploy again"
                )
            env.append({"name": str(name), "value": environ[template.name]})
        elif template.key is None:
            ref = "secretRef" if template.kind == "secret" else "configMapRef"
            env_from.append({ref: {"name": template.name}})
        else:
            ref = "secretKeyRef" if template.kind == "secret" else "configMapKeyRef"
            if not name:
                raise ConfigError(f"{where}: an entry with a single key needs a name")
            env.append(
                {
                    "name": str(name),
                    "valueFrom": {ref: {"name": template.name, "key": template.key}},
                }
            )
    return env, env_from


def referenced_resources(envs: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    """(kind, name, key) of every Secret/ConfigMap ``run.envs`` refers to."""
    out: list[tuple[str, str, str | None]] = []
    for entry in envs:
        template = parse_template(str(entry.get("value") or ""))
        if template is not None and template.kind != "env":
            kind = "Secret" if template.kind == "secret" else "ConfigMap"
            out.append((kind, template.name, template.key))
    return out
