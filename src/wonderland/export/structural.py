"""Validation against a Kubernetes structural schema, as the API server does it.

The rules are those of a CRD's ``openAPIV3Schema`` (and of the built-in kinds' OpenAPI)
under ``kubectl apply``'s strict field validation:

- a field the schema does not declare is an error ("unknown field"), unless the object has
  ``x-kubernetes-preserve-unknown-fields: true`` or ``additionalProperties``; an object
  with neither ``properties`` nor ``additionalProperties`` keeps no field at all;
- ``x-kubernetes-embedded-resource`` objects also keep ``apiVersion``, ``kind`` and
  ``metadata``;
- ``x-kubernetes-int-or-string`` takes an integer or a string;
- ``null`` counts as absent unless the field is ``nullable`` (the server prunes it), so a
  required field set to ``null`` is missing;
- ``type``, ``enum``, ``required``, string, number, list and map limits, ``pattern``
  (searched, as Go's ``regexp.MatchString`` does), ``format: byte`` (base64),
  ``x-kubernetes-list-type`` ``set`` and ``map`` (no duplicates), and ``allOf`` /
  ``anyOf`` / ``oneOf`` / ``not`` as value checks that never declare fields.

CEL rules (``x-kubernetes-validations``) and defaults are not evaluated.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = ["SchemaProblem", "StructuralValidator", "child_path", "item_path"]

_EMBEDDED_FIELDS = ("apiVersion", "kind", "metadata")
_TYPE_NAMES = {
    "object": "an object (mapping)",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean (true or false)",
}


@dataclass(frozen=True)
class SchemaProblem:
    """One field that does not validate: its path (``spec.containers[0].image``) and why."""

    path: str
    message: str


def child_path(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def item_path(path: str, index: int) -> str:
    return f"{path}[{index}]"


def _found(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value:g})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f'a string ("{shown}")'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object (mapping)"
    return type(value).__name__


def _is_type(value: Any, kind: str) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        if isinstance(value, bool):
            return False
        # JSON has one number type: the server reads 3.0 as the integer 3.
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


@lru_cache(maxsize=512)
def _pattern(text: str) -> re.Pattern[str] | None:
    try:
        return re.compile(text)
    except re.error:
        return None  # an RE2 construct Python does not know: leave the value unchecked


def _show(values: list[Any]) -> str:
    return ", ".join(json.dumps(v) for v in values)


class StructuralValidator:
    """Checks values against schemas whose ``$ref``s resolve in ``defs``."""

    def __init__(self, defs: Mapping[str, Any]) -> None:
        self._defs = defs

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in schema:
            name = str(schema["$ref"]).rsplit("/", 1)[-1]
            target = self._defs[name]
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **rest} if rest else target
        return schema

    def validate(
        self, value: Any, schema: Mapping[str, Any], path: str = ""
    ) -> list[SchemaProblem]:
        out: list[SchemaProblem] = []
        self._check(value, schema, path, out, fields=True)
        return out

    def _check(
        self,
        value: Any,
        schema: Mapping[str, Any],
        path: str,
        out: list[SchemaProblem],
        fields: bool,
    ) -> None:
        schema = self.resolve(schema)
        if value is None:
            return  # pruned unless nullable; a required null is reported by the parent
        if schema.get("x-kubernetes-int-or-string"):
            if not (_is_type(value, "integer") or isinstance(value, str)):
                hint = ""
                if isinstance(value, float):
                    hint = f' (quote it: "{value:g}", or write a quantity such as "500m")'
                out.append(
                    SchemaProblem(
                        path, f"expected an integer or a string, found {_found(value)}{hint}"
                    )
                )
                return
        else:
            declared = schema.get("type")
            if isinstance(declared, str) and not _is_type(value, declared):
                out.append(
                    SchemaProblem(
                        path,
                        f"expected {_TYPE_NAMES.get(declared, declared)}, found {_found(value)}",
                    )
                )
                return
        if "enum" in schema and value not in schema["enum"]:
            out.append(
                SchemaProblem(
                    path,
                    f"unsupported value {json.dumps(value)}: must be one of {_show(schema['enum'])}",
                )
            )
        if isinstance(value, str):
            self._string(value, schema, path, out)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self._number(value, schema, path, out)
        elif isinstance(value, list):
            self._array(value, schema, path, out, fields)
        elif isinstance(value, dict):
            self._object(value, schema, path, out, fields)
        self._junctors(value, schema, path, out)

    def _string(
        self, value: str, schema: Mapping[str, Any], path: str, out: list[SchemaProblem]
    ) -> None:
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append(
                SchemaProblem(
                    path, f"too long: at most {schema['maxLength']} characters, found {len(value)}"
                )
            )
        if "minLength" in schema and len(value) < schema["minLength"]:
            out.append(
                SchemaProblem(
                    path,
                    f"too short: at least {schema['minLength']} characters, found {len(value)}",
                )
            )
        if "pattern" in schema:
            compiled = _pattern(schema["pattern"])
            if compiled is not None and compiled.search(value) is None:
                out.append(
                    SchemaProblem(path, f'"{value}" does not match the pattern {schema["pattern"]}')
                )
        if schema.get("format") == "byte":
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                out.append(
                    SchemaProblem(
                        path, "not valid base64: encode the value (base64 -w0), or use stringData"
                    )
                )

    def _number(
        self, value: float, schema: Mapping[str, Any], path: str, out: list[SchemaProblem]
    ) -> None:
        low = schema.get("minimum")
        if low is not None and (value <= low if schema.get("exclusiveMinimum") else value < low):
            bound = "greater than" if schema.get("exclusiveMinimum") else "at least"
            out.append(SchemaProblem(path, f"must be {bound} {low}, found {value}"))
        high = schema.get("maximum")
        if high is not None and (value >= high if schema.get("exclusiveMaximum") else value > high):
            bound = "less than" if schema.get("exclusiveMaximum") else "at most"
            out.append(SchemaProblem(path, f"must be {bound} {high}, found {value}"))

    def _array(
        self,
        value: list[Any],
        schema: Mapping[str, Any],
        path: str,
        out: list[SchemaProblem],
        fields: bool,
    ) -> None:
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(
                SchemaProblem(
                    path, f"too many items: at most {schema['maxItems']}, found {len(value)}"
                )
            )
        if "minItems" in schema and len(value) < schema["minItems"]:
            out.append(
                SchemaProblem(
                    path, f"too few items: at least {schema['minItems']}, found {len(value)}"
                )
            )
        items = schema.get("items")
        if isinstance(items, Mapping):
            for i, item in enumerate(value):
                self._check(item, items, item_path(path, i), out, fields)
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "set":
            seen: set[str] = set()
            for i, item in enumerate(value):
                key = json.dumps(item, sort_keys=True)
                if key in seen:
                    out.append(SchemaProblem(item_path(path, i), f"duplicate value {key} in a set"))
                seen.add(key)
        elif list_type == "map":
            keys = schema.get("x-kubernetes-list-map-keys") or []
            seen_keys: set[str] = set()
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    continue
                key = json.dumps({k: item.get(k) for k in keys}, sort_keys=True)
                if key in seen_keys:
                    out.append(
                        SchemaProblem(
                            item_path(path, i), f"duplicate entry: another item has {key}"
                        )
                    )
                seen_keys.add(key)

    def _object(
        self,
        value: dict[str, Any],
        schema: Mapping[str, Any],
        path: str,
        out: list[SchemaProblem],
        fields: bool,
    ) -> None:
        properties: Mapping[str, Any] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            out.append(
                SchemaProblem(
                    path, f"too many fields: at most {schema['maxProperties']}, found {len(value)}"
                )
            )
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            out.append(
                SchemaProblem(
                    path, f"too few fields: at least {schema['minProperties']}, found {len(value)}"
                )
            )
        for name in schema.get("required") or ():
            sub = properties.get(name)
            nullable = sub is not None and self.resolve(sub).get("nullable")
            if name not in value or (value[name] is None and not nullable):
                out.append(SchemaProblem(child_path(path, name), "required field is missing"))
        keeps_unknown = extra is True or bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        keeps_unknown = keeps_unknown or not fields
        embedded = bool(schema.get("x-kubernetes-embedded-resource"))
        for name, item in value.items():
            key = str(name)
            where = child_path(path, key)
            if key in properties:
                self._check(item, properties[key], where, out, fields)
            elif isinstance(extra, Mapping):
                self._check(item, extra, where, out, fields)
            elif not keeps_unknown and not (embedded and key in _EMBEDDED_FIELDS):
                out.append(SchemaProblem(where, self._unknown(key, properties)))

    @staticmethod
    def _unknown(name: str, properties: Mapping[str, Any]) -> str:
        if not properties:
            return f'unknown field "{name}": this object takes no fields here'
        known = sorted(properties)
        close = [k for k in known if k.lower() == name.lower()]
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
        return f'unknown field "{name}"{hint}; the fields here are: {shown}'

    def _junctors(
        self, value: Any, schema: Mapping[str, Any], path: str, out: list[SchemaProblem]
    ) -> None:
        # Inside allOf/anyOf/oneOf/not a structural schema only restricts values: fields
        # are declared by the enclosing schema, so unknown fields are not checked there.
        for sub in schema.get("allOf") or ():
            self._check(value, sub, path, out, fields=False)
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if not options:
                continue
            passing = 0
            for sub in options:
                trial: list[SchemaProblem] = []
                self._check(value, sub, path, trial, fields=False)
                passing += not trial
            if key == "anyOf" and passing == 0:
                out.append(SchemaProblem(path, f"must match one of: {self._describe(options)}"))
            elif key == "oneOf" and passing != 1:
                out.append(
                    SchemaProblem(path, f"must match exactly one of: {self._describe(options)}")
                )
        negated = schema.get("not")
        if isinstance(negated, Mapping):
            trial = []
            self._check(value, negated, path, trial, fields=False)
            if not trial:
                out.append(SchemaProblem(path, "is a value this field does not allow"))

    def _describe(self, options: list[Any]) -> str:
        parts = []
        for sub in options:
            resolved = self.resolve(sub)
            if set(resolved) == {"type"}:
                parts.append(_TYPE_NAMES.get(resolved["type"], str(resolved["type"])))
            elif set(resolved) == {"required"}:
                parts.append("an object with " + ", ".join(resolved["required"]))
            else:
                parts.append(json.dumps(resolved, sort_keys=True)[:80])
        return "; ".join(parts)
