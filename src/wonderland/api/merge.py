"""Client-side apply as kubectl does it for custom resources: a three-way JSON merge.

The manifest last applied is kept in the ``kubectl.kubernetes.io/last-applied-configuration``
annotation. Applying a new manifest sets what it says, removes what the previous
manifest said and this one does not, and keeps what others added (labels a controller
set, fields a default filled), so ``wonderland apply`` and ``kubectl apply`` can take
turns on the same objects.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import orjson

__all__ = ["LAST_APPLIED", "last_applied_value", "merge_patch", "three_way_apply"]

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _changes(live: Any, new: dict[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key, value in new.items():
        current = live.get(key) if isinstance(live, dict) else None
        if isinstance(value, dict) and isinstance(current, dict):
            inner = _changes(current, value)
            if inner:
                patch[key] = inner
        elif current != value:
            patch[key] = copy.deepcopy(value)
    return patch


def _deletions(last: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key, value in last.items():
        if key not in new:
            patch[key] = None
        elif isinstance(value, dict) and isinstance(new[key], dict):
            inner = _deletions(value, new[key])
            if inner:
                patch[key] = inner
    return patch


def _combine(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _combine(out[key], value)
        elif key not in out:
            out[key] = value
    return out


def last_applied_value(manifest: dict[str, Any], namespace: str | None = None) -> str:
    """The annotation value as kubectl writes it: the manifest with its namespace, without
    the annotation (an empty ``annotations`` map stays), as compact JSON, keys sorted."""
    clean = copy.deepcopy(manifest)
    meta = clean.setdefault("metadata", {})
    if namespace:
        meta["namespace"] = namespace
    if clean.get("kind") == "Secret" and clean.get("apiVersion") == "v1":
        # Unlike kubectl, keep secret values out of an annotation anyone who can read the
        # object sees; only the keys matter for working out what a later apply removes.
        for field in ("data", "stringData"):
            if isinstance(clean.get(field), dict):
                clean[field] = {
                    k: "sha256:" + hashlib.sha256(str(v).encode()).hexdigest()
                    for k, v in clean[field].items()
                }
    annotations = meta.setdefault("annotations", {})
    if isinstance(annotations, dict):
        annotations.pop(LAST_APPLIED, None)
    return orjson.dumps(clean, option=orjson.OPT_SORT_KEYS).decode() + "\n"


def three_way_apply(
    live: dict[str, Any], manifest: dict[str, Any], namespace: str | None = None
) -> dict[str, Any]:
    """``live`` with ``manifest`` applied on top, recording it as the last applied."""
    annotations = live.get("metadata", {}).get("annotations") or {}
    try:
        last = orjson.loads(annotations[LAST_APPLIED]) if LAST_APPLIED in annotations else {}
    except orjson.JSONDecodeError:
        last = {}
    value = last_applied_value(manifest, namespace)
    new = copy.deepcopy(manifest)
    new.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = value
    last = last if isinstance(last, dict) else {}
    patch = _combine(_changes(live, new), _deletions(last, new))
    result: dict[str, Any] = merge_patch(live, patch)
    if manifest.get("kind") == "Secret":
        # stringData is folded into data when stored: a key the last manifest had under
        # either and the new one has under neither goes from data.
        keys = set(manifest.get("data") or {}) | set(manifest.get("stringData") or {})
        before = set(last.get("data") or {}) | set(last.get("stringData") or {})
        data = result.get("data")
        if isinstance(data, dict):
            for key in before - keys:
                data.pop(key, None)
    return result
