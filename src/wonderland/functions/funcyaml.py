"""``func.yaml``: the function descriptor Knative's ``func`` reads and writes.

The schema follows knative/func ``schema/func_yaml-schema.json`` and
``docs/reference/func_yaml.md``. Every field Knative knows is accepted; a field it does
not know is rejected with the file, line and field path, never silently ignored.
Values are kept as they are written (``created`` stays a string), so a folder that
wonderland reads still works with Knative's ``func``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wonderland.errors import InvalidError, NotFoundError

__all__ = [
    "FUNC_YAML",
    "LATEST_SPEC_VERSION",
    "FunctionConfig",
    "load_config",
    "parse_config",
]

FUNC_YAML = "func.yaml"
LATEST_SPEC_VERSION = "0.36.0"
SUPPORTED_RUNTIMES = ("python",)

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENVNAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_QUANTITY_RE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_LABEL_KEY_RE = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$"
)
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


# --- a small schema language, enough for func.yaml --------------------------------------


class _Str:
    __slots__ = ("enum", "hint", "pattern")

    def __init__(
        self, pattern: re.Pattern[str] | None = None, enum: tuple[str, ...] = (), hint: str = ""
    ) -> None:
        self.pattern, self.enum, self.hint = pattern, enum, hint


class _Int:
    __slots__ = ("minimum",)

    def __init__(self, minimum: int | None = None) -> None:
        self.minimum = minimum


class _Num:
    __slots__ = ("maximum", "minimum")

    def __init__(self, minimum: float | None = None, maximum: float | None = None) -> None:
        self.minimum, self.maximum = minimum, maximum


class _Bool:
    __slots__ = ()


class _StrMap:
    """A mapping of string keys to string values (annotations, filters)."""

    __slots__ = ()


class _Any:
    """Accepted as written (nested structures Knative passes through)."""

    __slots__ = ()


class _List:
    __slots__ = ("item",)

    def __init__(self, item: _Spec) -> None:
        self.item = item


class _Obj:
    __slots__ = ("fields", "required")

    def __init__(self, fields: dict[str, _Spec], required: tuple[str, ...] = ()) -> None:
        self.fields, self.required = fields, required


_Spec = _Str | _Int | _Num | _Bool | _StrMap | _Any | _List | _Obj

_QUANTITY = _Str(_QUANTITY_RE, hint="a Kubernetes quantity such as 500m or 128Mi")
_ENV = _Obj({"name": _Str(_ENVNAME_RE, hint="letters, digits, '-', '.', '_'"), "value": _Str()})
_VOLUME = _Obj(
    {
        "secret": _Str(),
        "configMap": _Str(),
        "persistentVolumeClaim": _Obj({"claimName": _Str(), "readOnly": _Bool()}),
        "emptyDir": _Obj({"medium": _Str(), "sizeLimit": _Str()}),
        "path": _Str(),
    }
)

SCHEMA = _Obj(
    {
        "specVersion": _Str(),
        "name": _Str(NAME_RE, hint="lower-case letters, digits and '-'"),
        "runtime": _Str(),
        "registry": _Str(),
        "registryInsecure": _Bool(),
        "image": _Str(),
        "imageDigest": _Str(),
        "namespace": _Str(),
        "domain": _Str(),
        "deployer": _Str(),
        "invoke": _Str(enum=("http", "cloudevent")),
        "created": _Str(),
        "build": _Obj(
            {
                "builder": _Str(enum=("pack", "s2i", "host")),
                "buildEnvs": _List(_ENV),
                "buildpacks": _List(_Str()),
                "builderImages": _StrMap(),
                "git": _Obj({"url": _Str(), "revision": _Str(), "contextDir": _Str()}),
                "baseImage": _Str(),
                "pvcSize": _Str(),
                "remoteStorageClass": _Str(),
                "volumes": _List(_VOLUME),
            }
        ),
        "run": _Obj(
            {
                "envs": _List(_ENV),
                "volumes": _List(_VOLUME),
                "startTimeout": _Int(minimum=0),
                "kafka": _Any(),
                "podSecurityContext": _Any(),
            }
        ),
        "deploy": _Obj(
            {
                "namespace": _Str(),
                "remote": _Bool(),
                "image": _Str(),
                "annotations": _StrMap(),
                "labels": _List(
                    _Obj(
                        {
                            "key": _Str(_LABEL_KEY_RE, hint="a Kubernetes label key"),
                            "value": _Str(_LABEL_VALUE_RE, hint="a Kubernetes label value"),
                        },
                        required=("key",),
                    )
                ),
                "options": _Obj(
                    {
                        "scale": _Obj(
                            {
                                "min": _Int(minimum=0),
                                "max": _Int(minimum=0),
                                "metric": _Str(enum=("concurrency", "rps")),
                                "target": _Num(minimum=0),
                                "utilization": _Num(minimum=1, maximum=100),
                            }
                        ),
                        "resources": _Obj(
                            {
                                "requests": _Obj({"cpu": _QUANTITY, "memory": _QUANTITY}),
                                "limits": _Obj(
                                    {
                                        "cpu": _QUANTITY,
                                        "memory": _QUANTITY,
                                        "concurrency": _Int(minimum=0),
                                    }
                                ),
                            }
                        ),
                    }
                ),
                "healthEndpoints": _Obj({"liveness": _Str(), "readiness": _Str()}),
                "serviceAccountName": _Str(),
                "imagePullSecret": _Str(),
                "subscriptions": _List(
                    _Obj({"source": _Str(), "filters": _StrMap()}, required=("source",))
                ),
                "deployer": _Str(enum=("knative", "raw", "keda")),
                "managementDisabled": _Bool(),
            }
        ),
    },
    required=("specVersion", "created"),
)


class _Validator:
    """Walks the YAML node tree so that every error can name its line."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[str] = []

    def fail(self, node: yaml.Node, path: str, message: str) -> None:
        where = f"{self.source}:{node.start_mark.line + 1}"
        self.errors.append(f"{where}: {path or '<top>'}: {message}")

    def convert(self, node: yaml.Node, spec: _Spec, path: str) -> Any:
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return None
        if isinstance(spec, _Obj):
            return self._object(node, spec, path)
        if isinstance(spec, _List):
            if not isinstance(node, yaml.SequenceNode):
                self.fail(node, path, "must be a list")
                return None
            return [
                self.convert(item, spec.item, f"{path}[{i}]") for i, item in enumerate(node.value)
            ]
        if isinstance(spec, _StrMap):
            if not isinstance(node, yaml.MappingNode):
                self.fail(node, path, "must be a mapping of strings to strings")
                return None
            out: dict[str, str] = {}
            for key_node, value_node in node.value:
                if not isinstance(value_node, yaml.ScalarNode):
                    self.fail(value_node, f"{path}.{key_node.value}", "must be a string")
                    continue
                out[str(key_node.value)] = str(value_node.value)
            return out
        if isinstance(spec, _Any):
            return yaml.safe_load(yaml.serialize(node))
        if not isinstance(node, yaml.ScalarNode):
            self.fail(node, path, "must be a single value, not a list or mapping")
            return None
        return self._scalar(node, spec, path)

    def _object(self, node: yaml.Node, spec: _Obj, path: str) -> dict[str, Any] | None:
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, path, "must be a mapping")
            return None
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = f"{path}.{key}" if path else key
            if key not in spec.fields:
                known = ", ".join(sorted(spec.fields))
                self.fail(key_node, child, f"unknown field; known fields here: {known}")
                continue
            if key in out:
                self.fail(key_node, child, "appears twice")
                continue
            out[key] = self.convert(value_node, spec.fields[key], child)
        for key in spec.required:
            if out.get(key) is None:
                self.fail(node, f"{path}.{key}" if path else key, "is required")
        return out

    def _scalar(self, node: yaml.ScalarNode, spec: _Spec, path: str) -> Any:
        tag = node.tag
        text = str(node.value)
        if isinstance(spec, _Bool):
            if tag != "tag:yaml.org,2002:bool":
                self.fail(node, path, f"must be true or false, got {text!r}")
                return None
            return text.lower() in ("true", "yes", "on")
        if isinstance(spec, _Int):
            if tag != "tag:yaml.org,2002:int":
                self.fail(node, path, f"must be an integer, got {text!r}")
                return None
            value = int(text, 0)
            if spec.minimum is not None and value < spec.minimum:
                self.fail(node, path, f"must be >= {spec.minimum}, got {value}")
            return value
        if isinstance(spec, _Num):
            if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float"):
                self.fail(node, path, f"must be a number, got {text!r}")
                return None
            number = float(text)
            if spec.minimum is not None and number < spec.minimum:
                self.fail(node, path, f"must be >= {spec.minimum:g}, got {text}")
            if spec.maximum is not None and number > spec.maximum:
                self.fail(node, path, f"must be <= {spec.maximum:g}, got {text}")
            return int(number) if tag == "tag:yaml.org,2002:int" else number
        assert isinstance(spec, _Str)
        if spec.enum and text not in spec.enum:
            self.fail(node, path, f"must be one of {', '.join(spec.enum)}; got {text!r}")
        elif spec.pattern is not None and not spec.pattern.match(text):
            hint = f" ({spec.hint})" if spec.hint else ""
            self.fail(node, path, f"{text!r} is not valid{hint}")
        return text


# --- the typed view ------------------------------------------------------------------------


@dataclass
class FunctionConfig:
    """A validated ``func.yaml``. ``data`` keeps every field as written."""

    data: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def name(self) -> str:
        return str(self.data.get("name") or "")

    @property
    def runtime(self) -> str:
        return str(self.data.get("runtime") or "")

    @property
    def invoke(self) -> str:
        return str(self.data.get("invoke") or "http")

    @property
    def namespace(self) -> str:
        deploy = self.section("deploy")
        return str(deploy.get("namespace") or self.data.get("namespace") or "default")

    def section(self, name: str) -> dict[str, Any]:
        value = self.data.get(name)
        return value if isinstance(value, dict) else {}

    def check_runnable_here(self) -> None:
        """Refuse what a Knative cluster would do but this machine cannot (rather than
        silently ignoring it)."""
        if self.section("run").get("volumes"):
            where = f"{self.path or FUNC_YAML}"
            raise InvalidError(
                f"{where}: run.volumes: mounting Secrets, ConfigMaps and volumes is not "
                "supported on one machine yet; read them as environment variables with "
                "run.envs ({{ secret:name:key }}, {{ configMap:name }}) instead"
            )

    @property
    def run_envs(self) -> list[dict[str, str]]:
        return list(self.section("run").get("envs") or [])

    @property
    def scale(self) -> dict[str, Any]:
        options = self.section("deploy").get("options") or {}
        return dict(options.get("scale") or {})

    @property
    def concurrency(self) -> int | None:
        options = self.section("deploy").get("options") or {}
        limits = (options.get("resources") or {}).get("limits") or {}
        value = limits.get("concurrency")
        return int(value) if value is not None else None

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.section("deploy").get("annotations") or {})

    @property
    def labels(self) -> list[dict[str, str]]:
        return list(self.section("deploy").get("labels") or [])

    @property
    def subscriptions(self) -> list[dict[str, Any]]:
        return list(self.section("deploy").get("subscriptions") or [])


def parse_config(text: str, source: str = FUNC_YAML) -> FunctionConfig:
    """Parse and validate ``func.yaml`` text; raise InvalidError listing every problem."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise InvalidError(
            f"{source}{line}: not valid YAML ({getattr(exc, 'problem', exc)}); fix the syntax"
        ) from exc
    if node is None:
        raise InvalidError(
            f"{source}: the file is empty; it needs at least specVersion, name, runtime and "
            "created (run `wonderland func create` to write one)"
        )
    validator = _Validator(source)
    data = validator.convert(node, SCHEMA, "")
    if not validator.errors and isinstance(data, dict):
        runtime = data.get("runtime")
        if runtime is not None and runtime not in SUPPORTED_RUNTIMES:
            validator.errors.append(
                f"{source}: runtime: {runtime!r} is not supported here; wonderland runs "
                f"{', '.join(SUPPORTED_RUNTIMES)} functions (set runtime: python)"
            )
    if validator.errors:
        raise InvalidError(
            "func.yaml does not validate:\n  "
            + "\n  ".join(validator.errors)
            + "\nSee https://github.com/knative/func/blob/main/docs/reference/func_yaml.md"
        )
    return FunctionConfig(data=data if isinstance(data, dict) else {})


def load_config(root: Path) -> FunctionConfig:
    """Read ``<root>/func.yaml``; a folder without one is not a function."""
    path = root / FUNC_YAML
    if not path.is_file():
        raise NotFoundError(
            f"{root}: no {FUNC_YAML} here, so this folder is not a function; run "
            f"`wonderland func create -l python {root}` or pass --path to a function folder"
        )
    config = parse_config(path.read_text(encoding="utf-8"), source=str(path))
    config.path = path
    return config
