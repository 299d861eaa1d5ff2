"""Helpers shared by the serving reconcilers."""

from __future__ import annotations

import logging
from typing import Any

from wonderland.api.owners import controller_ref
from wonderland.errors import NotFoundError
from wonderland.serving.conditions import get_condition
from wonderland.serving.system import (
    ServingSystem,
)

__all__ = ["API", "L_CONFIG", "L_CONFIG_GEN", "L_SERVICE", "VISIBILITY"]

log = logging.getLogger("wonderland.serving")

Obj = dict[str, Any]
API = "serving.knative.dev/v1"
L_SERVICE = "serving.knative.dev/service"
L_CONFIG = "serving.knative.dev/configuration"
L_CONFIG_GEN = "serving.knative.dev/configurationGeneration"
L_ROUTE = "serving.knative.dev/route"
VISIBILITY = "networking.knative.dev/visibility"
_SKIP_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def _get(system: ServingSystem, resource: str, ns: str, name: str) -> Obj | None:
    try:
        return system.store.get(resource, ns, name)
    except NotFoundError:
        return None


def _owner(obj: Obj) -> Obj:
    return controller_ref(obj)


def _write_status(system: ServingSystem, obj: Obj, status: Obj) -> None:
    if obj.get("status") == status:
        return
    fresh = dict(obj)
    fresh["status"] = status
    system.store.update_status(fresh)


def _ready_of(obj: Obj | None) -> tuple[str, str, str]:
    cond = get_condition(obj, "Ready")
    if cond is None:
        return "Unknown", "", ""
    return cond.get("status", "Unknown"), cond.get("reason", ""), cond.get("message", "")


def _annotations(meta: Obj) -> dict[str, str]:
    return {k: v for k, v in (meta.get("annotations") or {}).items() if k not in _SKIP_ANNOTATIONS}
