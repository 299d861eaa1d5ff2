"""Schema and metadata validation of manifests.

Errors name the field path as users write it (``spec.template.spec.containers[0].image``)
so that the manifest loader can add the file and line the field came from.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from wonderland.api import registry
from wonderland.api.kinds import ResourceKind
from wonderland.api.schemas import SCHEMAS
from wonderland.errors import InvalidError, NotFoundError

__all__ = ["format_path", "validate_metadata", "validate_object"]

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

_METADATA_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "labels",
        "annotations",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "ownerReferences",
        "finalizers",
        "managedFields",
        "selfLink",
    }
)

_MESSAGES = {
    "int_type": "expected integer",
    "string_type": "expected string",
    "bool_type": "expected boolean",
    "float_type": "expected number",
    "dict_type": "expected an object (mapping)",
    "model_type": "expected an object (mapping)",
    "model_attributes_type": "expected an object (mapping)",
    "list_type": "expected a list",
    "missing": "required field is missing",
    "extra_forbidden": "unknown field; wonderland does not support it (check the spelling)",
}


def format_path(loc: Sequence[str | int]) -> str:
    """``("spec", "containers", 0, "image")`` -> ``spec.containers[0].image``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _clean_loc(loc: Sequence[str | int]) -> list[str | int]:
    # Unions add their member type names to the path ("int", "str", "function-...").
    cleaned: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and (
            part in {"int", "str", "float", "bool", "none"}
            or part.startswith(("function-", "literal[", "list[", "dict["))
        ):
            continue
        cleaned.append(part)
    return cleaned


def _message(error: Any) -> str:
    kind = error["type"]
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"must be one of {expected}"
    return str(error["msg"])


def validate_metadata(obj: dict[str, Any], kind: ResourceKind) -> None:
    metadata = obj.get("metadata")
    if metadata is None:
        raise InvalidError("metadata", "required field is missing")
    if not isinstance(metadata, dict):
        raise InvalidError("metadata", "expected an object (mapping)")
    for key in metadata:
        if key not in _METADATA_FIELDS:
            raise InvalidError(
                f"metadata.{key}",
                "unknown field; wonderland does not support it (check the spelling)",
            )
    name = metadata.get("name")
    generate = metadata.get("generateName")
    if name is None and generate is None:
        raise InvalidError(
            "metadata.name", "required field is missing (or set metadata.generateName)"
        )
    if name is not None:
        if not isinstance(name, str):
            raise InvalidError("metadata.name", "expected string")
        if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
            raise InvalidError(
                "metadata.name",
                f'"{name}" is not a valid name: use lower-case letters, digits, "-" and "."; '
                "start and end with a letter or digit",
            )
    if generate is not None and not isinstance(generate, str):
        raise InvalidError("metadata.generateName", "expected string")
    namespace = metadata.get("namespace")
    if namespace is not None:
        if not isinstance(namespace, str):
            raise InvalidError("metadata.namespace", "expected string")
        if namespace and (len(namespace) > 63 or not _DNS_LABEL.match(namespace)):
            raise InvalidError(
                "metadata.namespace",
                f'"{namespace}" is not a valid namespace: use at most 63 lower-case letters, '
                'digits and "-"',
            )
        if namespace and not kind.namespaced:
            raise InvalidError(
                "metadata.namespace", f"{kind.kind} is cluster-scoped: remove the namespace"
            )
    for field in ("labels", "annotations"):
        values = metadata.get(field)
        if values is None:
            continue
        if not isinstance(values, dict):
            raise InvalidError(f"metadata.{field}", "expected an object (mapping)")
        for key, value in values.items():
            path = f"metadata.{field}.{key}"
            if not isinstance(value, str):
                raise InvalidError(path, "expected string (quote numbers and booleans)")
            if field == "labels":
                prefix, _, label = str(key).rpartition("/")
                if len(label) > 63 or not _LABEL_NAME.match(label):
                    raise InvalidError(path, "is not a valid label name")
                if prefix and not _DNS_SUBDOMAIN.match(prefix):
                    raise InvalidError(path, "has an invalid prefix")
                if len(value) > 63 or not _LABEL_VALUE.match(value):
                    raise InvalidError(
                        path, f'"{value}" is not a valid label value (at most 63 characters)'
                    )
    owners = metadata.get("ownerReferences")
    if owners is not None:
        if not isinstance(owners, list):
            raise InvalidError("metadata.ownerReferences", "expected a list")
        for i, ref in enumerate(owners):
            path = f"metadata.ownerReferences[{i}]"
            if not isinstance(ref, dict):
                raise InvalidError(path, "expected an object (mapping)")
            for required in ("apiVersion", "kind", "name", "uid"):
                if not isinstance(ref.get(required), str):
                    raise InvalidError(f"{path}.{required}", "required string is missing")


def validate_object(obj: Any) -> ResourceKind:
    """Check ``obj`` against its kind's schema; return the kind or raise InvalidError."""
    if not isinstance(obj, dict):
        raise InvalidError("expected a Kubernetes object (a mapping with apiVersion and kind)")
    api_version = obj.get("apiVersion")
    kind_name = obj.get("kind")
    if not isinstance(api_version, str) or not api_version:
        raise InvalidError("apiVersion", "required field is missing")
    if not isinstance(kind_name, str) or not kind_name:
        raise InvalidError("kind", "required field is missing")
    try:
        kind = registry.for_object(api_version, kind_name)
    except NotFoundError as exc:
        raise InvalidError("kind", str(exc)) from None
    validate_metadata(obj, kind)
    schema = SCHEMAS.get((api_version, kind_name))
    if schema is not None:
        try:
            schema.model_validate(obj)
        except ValidationError as exc:
            error = exc.errors()[0]
            loc = _clean_loc(error["loc"])
            raise InvalidError(format_path(loc) or kind_name, _message(error)) from None
    return kind
