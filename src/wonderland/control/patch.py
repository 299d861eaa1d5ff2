"""The patch formats kubectl and the kubernetes client send: JSON merge patch (RFC 7386),
strategic merge patch (as merge patch with its ``$`` directives dropped) and JSON patch
(RFC 6902)."""

from __future__ import annotations

import copy
from typing import Any

from wonderland.api.merge import merge_patch
from wonderland.errors import InvalidError

__all__ = ["apply_patch", "json_patch", "merge_patch", "strip_directives"]

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"


def strip_directives(patch: Any) -> Any:
    """Drop strategic-merge directives (``$patch``, ``$setElementOrder/...``, ...)."""
    if isinstance(patch, dict):
        return {k: strip_directives(v) for k, v in patch.items() if not str(k).startswith("$")}
    if isinstance(patch, list):
        return [strip_directives(v) for v in patch]
    return patch


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise InvalidError("patch", f'JSON pointer "{path}" must start with "/"')
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise InvalidError("patch", f'path "{path}" does not exist')
    return node, parts[-1]


def json_patch(doc: Any, operations: Any) -> Any:
    """RFC 6902 add, remove, replace, move, copy and test."""
    if not isinstance(operations, list):
        raise InvalidError("patch", "a JSON patch is a list of operations")
    doc = copy.deepcopy(doc)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise InvalidError("patch", "each JSON patch operation needs op and path")
        kind, path = op["op"], op["path"]
        if kind in ("move", "copy"):
            src_parent, src_key = _parent(doc, _pointer(op["from"]), op["from"])
            value = (
                src_parent[int(src_key)] if isinstance(src_parent, list) else src_parent[src_key]
            )
            if kind == "move":
                del src_parent[int(src_key) if isinstance(src_parent, list) else src_key]
            op = {"op": "add", "path": path, "value": copy.deepcopy(value)}
            kind = "add"
        parts = _pointer(path)
        if not parts:
            if kind in ("add", "replace"):
                doc = copy.deepcopy(op.get("value"))
                continue
            raise InvalidError("patch", f'cannot "{kind}" the whole document')
        parent, key = _parent(doc, parts, path)
        if isinstance(parent, list):
            index = len(parent) if key == "-" else int(key) if key.isdigit() else -1
            if kind == "add" and 0 <= index <= len(parent):
                parent.insert(index, copy.deepcopy(op.get("value")))
            elif kind in ("remove", "replace", "test") and 0 <= index < len(parent):
                if kind == "remove":
                    del parent[index]
                elif kind == "replace":
                    parent[index] = copy.deepcopy(op.get("value"))
                elif parent[index] != op.get("value"):
                    raise InvalidError("patch", f'test failed at "{path}"')
            else:
                raise InvalidError("patch", f'path "{path}" does not exist')
        elif isinstance(parent, dict):
            if kind == "add":
                parent[key] = copy.deepcopy(op.get("value"))
            elif key not in parent:
                raise InvalidError("patch", f'path "{path}" does not exist')
            elif kind == "remove":
                del parent[key]
            elif kind == "replace":
                parent[key] = copy.deepcopy(op.get("value"))
            elif kind == "test":
                if parent[key] != op.get("value"):
                    raise InvalidError("patch", f'test failed at "{path}"')
            else:
                raise InvalidError("patch", f'unknown JSON patch operation "{kind}"')
        else:
            raise InvalidError("patch", f'path "{path}" does not exist')
    return doc


def apply_patch(content_type: str, current: Any, patch: Any) -> Any:
    """The patched document for ``content_type``."""
    if content_type == JSON_PATCH:
        return json_patch(current, patch)
    if content_type == STRATEGIC:
        return merge_patch(current, strip_directives(patch))
    return merge_patch(current, patch)
