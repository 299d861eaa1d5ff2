"""Owner references as the controllers that own objects write them."""

from __future__ import annotations

from typing import Any

__all__ = ["controller_ref"]


def controller_ref(owner: dict[str, Any], api_version: str = "", kind: str = "") -> dict[str, Any]:
    """The ``ownerReferences`` entry by which ``owner`` controls a child (``controller`` and
    ``blockOwnerDeletion`` set, as Kubernetes' controllers set them)."""
    meta = owner["metadata"]
    return {
        "apiVersion": api_version or owner["apiVersion"],
        "kind": kind or owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
