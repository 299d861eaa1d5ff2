"""Service -> Configuration + Route of the same name, and the Service's status."""

from __future__ import annotations

import copy
from typing import Any

from wonderland.controllers import Result, events
from wonderland.errors import AlreadyExistsError
from wonderland.serving._common import (
    API,
    L_SERVICE,
    Obj,
    _annotations,
    _get,
    _owner,
    _ready_of,
    _write_status,
)
from wonderland.serving.conditions import set_condition
from wonderland.serving.system import (
    CONFIGURATIONS,
    ROUTES,
    SERVICES,
    ServingSystem,
)

__all__ = ["ServiceReconciler"]


class ServiceReconciler:
    """Keeps a Service's Configuration and Route (same name) in line with its spec and
    reports their readiness as ``ConfigurationsReady``/``RoutesReady``/``Ready``."""

    resource: str = SERVICES
    owns: tuple[str, ...] = (CONFIGURATIONS, ROUTES)
    watches: tuple[str, ...] = ()

    def __init__(self, system: ServingSystem) -> None:
        self.system = system

    async def reconcile(self, namespace: str, name: str) -> Result | None:
        system = self.system
        svc = _get(system, SERVICES, namespace, name)
        if svc is None:
            return None
        meta = svc["metadata"]
        spec = svc.get("spec") or {}
        labels = {**(meta.get("labels") or {}), L_SERVICE: name}
        annotations = _annotations(meta)
        template = copy.deepcopy(spec.get("template") or {})
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), L_SERVICE: name}

        def child(kind: str, child_spec: dict[str, Any]) -> dict[str, Any]:
            # The Configuration and the Route share the Service's name, labels and annotations.
            child_meta: dict[str, Any] = {
                "name": name,
                "namespace": namespace,
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [_owner(svc)],
            }
            return {"apiVersion": API, "kind": kind, "metadata": child_meta, "spec": child_spec}

        desired_cfg = child("Configuration", {"template": template})
        traffic = []
        for t in spec.get("traffic") or [{"latestRevision": True, "percent": 100}]:
            entry = dict(t)
            if not entry.get("revisionName"):
                entry["configurationName"] = name
                entry["latestRevision"] = True
            traffic.append(entry)
        desired_route = child("Route", {"traffic": traffic})
        cfg = self._converge(CONFIGURATIONS, desired_cfg, svc)
        route = self._converge(ROUTES, desired_route, svc)

        status = dict(svc.get("status") or {})
        conditions = status.get("conditions")
        cstatus, creason, cmsg = _ready_of(cfg)
        if (cfg.get("status") or {}).get("observedGeneration") != cfg["metadata"]["generation"]:
            cstatus, creason, cmsg = "Unknown", "OutOfDate", "The Configuration is still working"
        rstatus, rreason, rmsg = _ready_of(route)
        if (route.get("status") or {}).get("observedGeneration") != route["metadata"]["generation"]:
            rstatus, rreason, rmsg = "Unknown", "OutOfDate", "The Route is still working"
        conditions = set_condition(conditions, "ConfigurationsReady", cstatus, creason, cmsg)
        conditions = set_condition(conditions, "RoutesReady", rstatus, rreason, rmsg)
        if cstatus == "True" and rstatus == "True":
            ready = ("True", "", "")
        elif "False" in (cstatus, rstatus):
            ready = ("False", creason, cmsg) if cstatus == "False" else ("False", rreason, rmsg)
        else:
            ready = ("Unknown", creason or rreason, cmsg or rmsg)
        conditions = set_condition(conditions, "Ready", *ready)
        cst = cfg.get("status") or {}
        rst = route.get("status") or {}
        new_status: Obj = {
            "observedGeneration": meta.get("generation", 1),
            "conditions": conditions,
        }
        for key in ("latestCreatedRevisionName", "latestReadyRevisionName"):
            if cst.get(key):
                new_status[key] = cst[key]
        for key in ("url", "address", "traffic"):
            if rst.get(key):
                new_status[key] = rst[key]
        _write_status(system, svc, new_status)
        return None

    def _converge(self, resource: str, desired: Obj, owner: Obj | None = None) -> Obj:
        store = self.system.store
        meta = desired["metadata"]
        current = _get(self.system, resource, meta["namespace"], meta["name"])
        if current is None:
            try:
                created = store.create(desired)
            except AlreadyExistsError:
                current = store.get(resource, meta["namespace"], meta["name"])
            else:
                if owner is not None:
                    events.record(
                        store,
                        owner,
                        "Normal",
                        "Created",
                        f'Created {desired["kind"]} "{meta["name"]}"',
                        "service-controller",
                    )
                return created
        cur_meta = current["metadata"]
        if (
            current.get("spec") == desired["spec"]
            and (cur_meta.get("labels") or {}) == meta["labels"]
            and (cur_meta.get("annotations") or {}) == meta["annotations"]
            and cur_meta.get("ownerReferences") == meta["ownerReferences"]
        ):
            return current
        body = copy.deepcopy(current)
        body["spec"] = desired["spec"]
        body["metadata"]["labels"] = meta["labels"]
        body["metadata"]["annotations"] = meta["annotations"]
        body["metadata"]["ownerReferences"] = meta["ownerReferences"]
        return store.update(body)
