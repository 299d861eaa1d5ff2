"""Configuration -> immutable Revisions, latestCreated/latestReady revision names."""

from __future__ import annotations

import copy

from wonderland.controllers import Result, events
from wonderland.errors import AlreadyExistsError
from wonderland.serving._common import (
    API,
    L_CONFIG,
    L_CONFIG_GEN,
    L_SERVICE,
    Obj,
    _get,
    _owner,
    _ready_of,
    _write_status,
)
from wonderland.serving.conditions import is_true, set_condition
from wonderland.serving.system import (
    CONFIGURATIONS,
    REVISIONS,
    ServingSystem,
)
from wonderland.serving.validation import serving_container

__all__ = ["ConfigurationReconciler"]


class ConfigurationReconciler:
    """Creates one immutable Revision per template generation and tracks
    ``latestCreatedRevisionName``/``latestReadyRevisionName``."""

    resource: str = CONFIGURATIONS
    owns: tuple[str, ...] = (REVISIONS,)
    watches: tuple[str, ...] = ()

    def __init__(self, system: ServingSystem) -> None:
        self.system = system

    async def reconcile(self, namespace: str, name: str) -> Result | None:
        system = self.system
        cfg = _get(system, CONFIGURATIONS, namespace, name)
        if cfg is None:
            return None
        meta = cfg["metadata"]
        generation = int(meta.get("generation", 1))
        template = (cfg.get("spec") or {}).get("template") or {}
        tmeta = template.get("metadata") or {}
        rev_name = tmeta.get("name") or f"{name}-{generation:05d}"
        revisions, _ = system.store.list(REVISIONS, namespace, {L_CONFIG: name})
        latest = next((r for r in revisions if r["metadata"]["name"] == rev_name), None)
        status = dict(cfg.get("status") or {})
        conditions = status.get("conditions")
        if latest is None:
            latest = self._create_revision(cfg, rev_name, generation, template)
            if latest is None:
                conditions = set_condition(
                    conditions,
                    "Ready",
                    "False",
                    "RevisionFailed",
                    f'Revision "{rev_name}" already exists and belongs to another Configuration; '
                    "give spec.template.metadata.name a new value",
                )
                _write_status(
                    system,
                    cfg,
                    {**status, "observedGeneration": generation, "conditions": conditions},
                )
                return None
            revisions.append(latest)

        def gen_of(r: Obj) -> int:
            return int((r["metadata"].get("labels") or {}).get(L_CONFIG_GEN, "0"))

        ready_revs = sorted((r for r in revisions if is_true(r)), key=gen_of, reverse=True)
        latest_ready = status.get("latestReadyRevisionName")
        if is_true(latest):
            latest_ready = rev_name
        elif ready_revs and (
            latest_ready is None or latest_ready not in {r["metadata"]["name"] for r in ready_revs}
        ):
            latest_ready = ready_revs[0]["metadata"]["name"]
        rstatus, _rreason, rmsg = _ready_of(latest)
        if rstatus == "True":
            conditions = set_condition(conditions, "Ready", "True")
        elif rstatus == "False":
            conditions = set_condition(
                conditions,
                "Ready",
                "False",
                "RevisionFailed",
                f'Revision "{rev_name}" failed with message: {rmsg}.',
            )
        else:
            conditions = set_condition(conditions, "Ready", "Unknown")
        new_status: Obj = {
            "observedGeneration": generation,
            "latestCreatedRevisionName": rev_name,
            "conditions": conditions,
        }
        if latest_ready:
            new_status["latestReadyRevisionName"] = latest_ready
        _write_status(system, cfg, new_status)
        return None

    def _create_revision(
        self, cfg: Obj, rev_name: str, generation: int, template: Obj
    ) -> Obj | None:
        meta = cfg["metadata"]
        namespace = meta["namespace"]
        tmeta = template.get("metadata") or {}
        existing = _get(self.system, REVISIONS, namespace, rev_name)
        if existing is not None:
            owner = (existing["metadata"].get("labels") or {}).get(L_CONFIG)
            return existing if owner == meta["name"] else None
        spec = copy.deepcopy(template.get("spec") or {})
        config = self.system.config
        spec.setdefault("timeoutSeconds", config.revision_timeout_seconds)
        spec.setdefault("containerConcurrency", config.container_concurrency)
        containers = spec.get("containers") or []
        if containers:
            index, _ = serving_container(spec)
            for i, c in enumerate(containers):
                c.setdefault("name", "user-container" if i == index else f"sidecar-{i}")
            c = containers[index]
            if not c.get("readinessProbe"):
                c["readinessProbe"] = {"tcpSocket": {"port": 0}, "successThreshold": 1}
        labels = {
            **(tmeta.get("labels") or {}),
            L_CONFIG: meta["name"],
            L_CONFIG_GEN: str(generation),
            "serving.knative.dev/configurationUID": meta["uid"],
            "serving.knative.dev/routingState": "pending",
        }
        if (meta.get("labels") or {}).get(L_SERVICE):
            labels[L_SERVICE] = meta["labels"][L_SERVICE]
        revision = {
            "apiVersion": API,
            "kind": "Revision",
            "metadata": {
                "name": rev_name,
                "namespace": namespace,
                "labels": labels,
                "annotations": dict(tmeta.get("annotations") or {}),
                "ownerReferences": [_owner(cfg)],
            },
            "spec": spec,
        }
        try:
            created = self.system.store.create(revision)
        except AlreadyExistsError:
            return self.system.store.get(REVISIONS, namespace, rev_name)
        events.record(
            self.system.store,
            cfg,
            "Normal",
            "Created",
            f'Created Revision "{rev_name}"',
            "configuration-controller",
        )
        return created
