"""Field docs: what a field of a kind holds, as ``kubectl explain`` tells it.

``GET /fields?apiVersion=serving.knative.dev/v1&kind=Service&field=spec.traffic[0].tag``
shows the field's description, type, default, allowed values and whether it is required,
and its sub-fields with their descriptions, each linked to its own page. The schema is the
one the platform validates with (:data:`wonderland.api.schemas.SCHEMAS`), or else the
upstream CRD or OpenAPI schema vendored for ``wonderland export --check``
(:mod:`wonderland.export.catalog`); the descriptions are the upstream CRD's (the core
kinds' and ObjectMeta's from the Kubernetes client's models), vendored beside those
schemas, none where the upstream schema has none (KServe's, Katib's). The Apply page and
an object's edit form link every refused field here, and an object's page links its
kind's top level.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from wonderland.api.schemas import SCHEMAS
from wonderland.console.pages import Answer, Refused, Rendered, Request
from wonderland.export.catalog import (
    default_catalog,
    descriptions_source,
    field_descriptions,
)

__all__ = ["FieldDoc", "FieldDocPages", "FieldRow", "field_doc", "field_url"]

_INDEX = re.compile(r"\[[^\]]*\]")
MAX_PATH = 40  # segments; a longer path is not a field of any kind here


@dataclass(frozen=True)
class FieldRow:
    """A sub-field: its name, type and whether it is required."""

    name: str
    type: str
    required: bool
    path: str  # the sub-field's own path, for its link
    description: str = ""


@dataclass(frozen=True)
class FieldDoc:
    api_version: str
    kind: str
    path: str  # "" for the kind's top level
    found: str  # the deepest part of ``path`` the schema has
    missing: str  # the first segment it does not have ("" when every one is known)
    type: str
    required: bool
    default: str
    allowed: list[str]
    fields: list[FieldRow] = field(default_factory=list)
    source: str = ""  # whose schema this is
    open_map: bool = False  # any key is accepted (a map, or a field left unchecked)
    description: str = ""  # upstream's, when its schema has one
    described_by: str = ""  # whose descriptions these are

    @property
    def crumbs(self) -> list[tuple[str, str]]:
        """(label, path) of the kind and of each field on the way to this one."""
        out = [(self.kind, "")]
        segments = _segments(self.found)
        for i, seg in enumerate(segments):
            if seg != "[]":
                out.append((seg, _join(segments[: i + 1])))
        return out

    @property
    def command(self) -> str:
        resource = self.kind.lower()
        return f"kubectl explain {resource}" + (f".{self.found}" if self.found else "")


def field_url(api_version: str, kind: str, path: str = "") -> str:
    """The field docs page of ``path`` (``spec.traffic[0].tag``) of a kind."""
    args = {"apiVersion": api_version, "kind": kind}
    if path:
        args["field"] = path
    return "/fields?" + urlencode(args)


@lru_cache(maxsize=64)  # keyed by what a URL names: bounded
def _schema(api_version: str, kind: str) -> tuple[dict[str, Any], dict[str, Any], str] | None:
    """(root schema, its definitions, whose it is) of a kind, or None; built once per kind
    (a pydantic model's JSON schema takes tens of milliseconds)."""
    model = SCHEMAS.get((api_version, kind))
    if model is not None:
        doc = model.model_json_schema(by_alias=True)
        return doc, doc.get("$defs") or {}, "the platform's validation schema"
    vendored = default_catalog().get(api_version, kind)
    if vendored is not None:
        source = vendored.source
        return vendored.schema, vendored.defs, f"{source.repo} {source.tag} (upstream)"
    return None


def _resolve(node: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    """``node`` with ``$ref``s followed and an optional (``anyOf`` with null) unwrapped."""
    for _ in range(32):  # refs may chain; a cycle stops here
        ref = node.get("$ref")
        if isinstance(ref, str):
            target = defs.get(ref.rsplit("/", 1)[-1])
            node = target if isinstance(target, dict) else {}
            continue
        branches = node.get("anyOf") or node.get("oneOf")
        if isinstance(branches, list):
            real = [b for b in branches if isinstance(b, dict) and b.get("type") != "null"]
            if len(real) == 1:
                merged = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}
                node = {**real[0], **merged}
                continue
        return node
    return node


def _type(node: Mapping[str, Any], defs: Mapping[str, Any]) -> str:
    node = _resolve(node, defs)
    kind = node.get("type")
    if kind == "array":
        items = node.get("items")
        return "[]" + (_type(items, defs) if isinstance(items, dict) else "any")
    if kind == "object" or "properties" in node:
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and not node.get("properties"):
            return "map[string]" + _type(extra, defs)
        return "object"
    if isinstance(kind, str):
        return kind
    if isinstance(node.get("anyOf"), list):
        return " or ".join(
            sorted({_type(b, defs) for b in node["anyOf"] if isinstance(b, dict)} - {"null"})
        )
    return "any"


def _segments(path: str) -> list[str]:
    """``spec.traffic[0].tag`` -> ``["spec", "traffic", "[]", "tag"]``."""
    out: list[str] = []
    for part in path.split("."):
        name = _INDEX.sub("", part)
        if name:
            out.append(name)
        out.extend("[]" for _ in _INDEX.findall(part))
    return out


def _key(segments: list[str]) -> str:
    """The descriptions' key of a walked path: ``spec.traffic[].tag``, ``*`` a map key."""
    text = ""
    for seg in segments:
        text += "[]" if seg == "[]" else (f".{seg}" if text else seg)
    return text


def _join(segments: list[str]) -> str:
    text = ""
    for seg in segments:
        text += "[0]" if seg == "[]" else (f".{seg}" if text else seg)
    return text


def field_doc(api_version: str, kind: str, path: str = "") -> FieldDoc | None:
    """The docs of ``path`` of a kind, or None when no schema of the kind is known."""
    found = _schema(api_version, kind)
    if found is None:
        return None
    root, defs, source = found
    node = _resolve(root, defs)
    required = False
    walked: list[str] = []
    keyed: list[str] = []  # as walked, with "*" for a key of a map
    missing = ""
    for seg in _segments(path)[:MAX_PATH]:
        if seg == "[]":
            items = node.get("items")
            if not isinstance(items, dict):
                missing = "[]"
                break
            node, required = _resolve(items, defs), False
            keyed.append("[]")
        else:
            props = node.get("properties") or {}
            extra = node.get("additionalProperties")
            if isinstance(props, dict) and seg in props:
                required = seg in (node.get("required") or [])
                node = _resolve(props[seg], defs)
                keyed.append(seg)
            elif isinstance(extra, dict):
                node, required = _resolve(extra, defs), False
                keyed.append("*")
            else:
                missing = seg
                break
        walked.append(seg)
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        shown = _resolve(node["items"], defs)  # a list's fields are its items'
        prefix, key_prefix = [*walked, "[]"], [*keyed, "[]"]
    else:
        shown, prefix, key_prefix = node, walked, keyed
    described = field_descriptions(api_version, kind)
    props = shown.get("properties") or {}
    needed = set(shown.get("required") or [])
    rows = [
        FieldRow(
            name,
            _type(sub, defs),
            name in needed,
            _join([*prefix, name]),
            described.get(_key([*key_prefix, name]), ""),
        )
        for name, sub in sorted(props.items())
        if isinstance(sub, dict)
    ]
    default = node.get("default")
    allowed = node.get("enum") or []
    return FieldDoc(
        api_version,
        kind,
        path,
        _join(walked),
        missing,
        _type(node, defs),
        required,
        "" if default is None else str(default),
        [str(a) for a in allowed],
        rows,
        source,
        open_map=not props
        and (
            node.get("additionalProperties") not in (None, False)
            or bool(node.get("x-kubernetes-preserve-unknown-fields"))
        ),
        description=described.get(_key(keyed), ""),
        described_by=descriptions_source(api_version, kind) if described else "",
    )


class FieldDocPages:
    """``GET /fields`` (see the module docstring)."""

    async def answer(self, request: Request) -> Answer | None:
        if request.path != "/fields" or request.method != "GET":
            return None
        api_version, kind = request.arg("apiVersion"), request.arg("kind")
        if not api_version or not kind:
            return Refused(400, "name a kind: /fields?apiVersion=V&kind=K&field=spec.x")
        doc = field_doc(api_version, kind, request.arg("field"))
        if doc is None:
            return Refused(
                404,
                f"no schema of {kind} ({api_version}) is known here; "
                "`wonderland api-resources` lists the kinds the platform serves",
            )
        context = {"nav": "objects", "doc": doc, "field_url": field_url}
        return Rendered("fields.html", context)
