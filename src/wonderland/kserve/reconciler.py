"""InferenceService -> Knative Services ``<name>-predictor`` (``-transformer``,
``-explainer``), a Route ``<name>`` for the InferenceService's own URL, and status."""

from __future__ import annotations

import asyncio
import copy
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wonderland.controllers import Result
from wonderland.errors import AlreadyExistsError, NotFoundError, WonderlandError
from wonderland.kserve.components import (
    ISVC_LABEL,
    MOUNT,
    ComponentSpecError,
    component_ksvc,
    custom_container,
    logger_env,
    model_container,
    transformer_container,
)
from wonderland.kserve.forkserver import SOCKET_ENV, ForkServerService
from wonderland.kserve.model_pins import ModelPins, Pin, PinError
from wonderland.kserve.runtimes import (
    CLUSTER_RUNTIMES,
    MANAGED_BY,
    NAMESPACE_RUNTIMES,
    RuntimeSelectionError,
    select_runtime,
)
from wonderland.serving.conditions import get_condition, set_condition
from wonderland.tracking.access import TRACKING_URI_ENV
from wonderland.tracking.uris import is_tracking_uri
from wonderland.workloads.storage import claim_path

__all__ = ["ISVCS", "InferenceServiceReconciler"]

log = logging.getLogger("wonderland.kserve")

Obj = dict[str, Any]
ISVCS = "inferenceservices.serving.kserve.io"
KSVCS = "services.serving.knative.dev"
ROUTES = "routes.serving.knative.dev"
COMPONENTS = ("predictor", "transformer", "explainer")
STORAGE_RETRY_SECONDS = 10.0
# Reasons after which the InferenceService is looked at again in STORAGE_RETRY_SECONDS.
RETRIED = ("ModelLoadFailed", "ModelNotFound", "RegistryUnavailable")
WONDERLAND_SERVE = ["wonderland", "serve"]
SCRAPING = "serving.kserve.io/enable-prometheus-scraping"


@dataclass
class _Download:
    """A storageUri being fetched in a worker thread (one per URI and settings)."""

    task: asyncio.Task[Path] | None = None
    progress: str = ""
    path: Path | None = None
    error: str | None = None
    failed_at: float = 0.0


class InferenceServiceReconciler:
    """Level-triggered: converge the component Knative Services, then report status."""

    resource: str = ISVCS
    owns: tuple[str, ...] = (KSVCS, ROUTES)
    watches: tuple[str, ...] = (NAMESPACE_RUNTIMES, CLUSTER_RUNTIMES)

    def __init__(self, platform: Any, domain: str) -> None:
        self.platform = platform
        self.store = platform.store
        self.state_dir: Path = platform.state_dir
        self.domain = domain
        self._downloads: dict[tuple[str, ...], _Download] = {}
        # The warm fork server (see forkserver.py); None runs replicas plainly.
        self.forkserver: ForkServerService | None = None
        # Versions of registry models (models:/NAME@ALIAS ...); set by install().
        self.pins: ModelPins | None = None
        # The pin each InferenceService's predictor was built with in this reconcile.
        self._building: dict[tuple[str, str], Pin] = {}
        # The runtime's scrape annotations for a predictor (enable-prometheus-scraping).
        self._scrape: dict[tuple[str, str], dict[str, str]] = {}

    # -- the loop --------------------------------------------------------------------

    async def reconcile(self, namespace: str, name: str) -> Result | None:
        isvc = self._get(ISVCS, namespace, name)
        if isvc is None:
            if self.pins is not None:
                self.pins.forget(namespace, name)
            return None
        self._building.pop((namespace, name), None)
        spec = isvc.get("spec") or {}
        status: Obj = copy.deepcopy(isvc.get("status") or {})
        components_status: Obj = status.get("components") or {}
        conditions = status.get("conditions")
        ready_parts: list[tuple[str, str, str, str]] = []  # (type, status, reason, message)
        failure: tuple[str, str] | None = None
        waiting: str | None = None
        ksvcs: dict[str, Obj] = {}
        latest: tuple[str, str, str, str] | None = None
        detail: list[tuple[str, str, str, str]] = []  # conditions that do not gate Ready
        present = [c for c in COMPONENTS if spec.get(c)]
        for which in present:
            component = spec[which]
            cstatus = dict(components_status.get(which) or {})
            try:
                container = await self._container(isvc, which, component)
                extra_env = logger_env(isvc, which, component)
                if extra_env:
                    names = {e["name"] for e in extra_env}
                    kept = [e for e in container.get("env") or [] if e.get("name") not in names]
                    container["env"] = kept + extra_env
            except (ComponentSpecError, RuntimeSelectionError) as exc:
                reason = getattr(exc, "reason", "InvalidSpec")
                message = getattr(exc, "message", str(exc))
                failure = failure or (reason, message)
                ready_parts.append((_ready_type(which), "False", reason, message))
                continue
            except _StillDownloading as exc:
                waiting = str(exc)
                existing = self._get(KSVCS, namespace, f"{name}-{which}")
                if existing is None:
                    ready_parts.append((_ready_type(which), "Unknown", "Downloading", waiting))
                else:
                    # The running revision keeps serving while the new model downloads.
                    ksvcs[which] = existing
                    components_status[which] = self._component_status(existing, cstatus)
                    ready_parts.append(_ksvc_ready(which, existing))
                    latest = ("LatestDeploymentReady", "Unknown", "Downloading", waiting)
                continue
            desired = component_ksvc(
                isvc, which, component, container, cstatus.get("latestRolledoutRevision")
            )
            scrape = self._scrape.pop((namespace, name), None) if which == "predictor" else None
            if scrape:
                template_meta = desired["spec"]["template"]["metadata"]
                template_meta["annotations"] = {**scrape, **template_meta["annotations"]}
            try:
                ksvc = self._converge(KSVCS, desired)
            except ComponentSpecError as exc:
                failure = failure or (exc.reason, str(exc))
                ready_parts.append((_ready_type(which), "False", exc.reason, str(exc)))
                continue
            ksvcs[which] = ksvc
            components_status[which] = self._component_status(ksvc, cstatus)
            ready_parts.append(_ksvc_ready(which, ksvc))
            if which == "predictor":
                deployed = self._building.pop((namespace, name), None)
                if deployed is not None:
                    status["modelRegistry"] = deployed.status()
                # KServe's finer predictor conditions, from the Knative Service's own.
                for kind, ktype in (
                    ("Configuration", "ConfigurationsReady"),
                    ("Route", "RoutesReady"),
                ):
                    cond = get_condition(ksvc, ktype) or {}
                    detail.append(
                        (
                            f"Predictor{kind}Ready",
                            str(cond.get("status", "Unknown")),
                            str(cond.get("reason", "")),
                            str(cond.get("message", "")),
                        )
                    )
        for which in list(components_status):
            if which not in present:
                del components_status[which]
                self._delete(KSVCS, namespace, f"{name}-{which}")

        # The InferenceService's own host routes to its entry component, as KServe's
        # virtual service does (the transformer when there is one).
        entry = "transformer" if "transformer" in ksvcs else "predictor"
        route = None
        ingress = ("Unknown", "", "")
        if entry in ksvcs and (ksvcs[entry].get("status") or {}).get("traffic"):
            try:
                route = self._converge(ROUTES, self._route(isvc, ksvcs[entry]))
                ingress = _ready_of(route)
            except ComponentSpecError as exc:
                ingress = ("False", exc.reason, str(exc))
        else:
            # A spec that cannot run leaves the last good revision (and its URL) serving.
            route = self._get(ROUTES, namespace, name)
            uid = isvc["metadata"].get("uid")
            refs = (route or {}).get("metadata", {}).get("ownerReferences") or []
            if route is not None and any(r.get("uid") == uid for r in refs):
                ingress = _ready_of(route)
            else:
                route = None

        if latest is None:
            pred = next((p for p in ready_parts if p[0] == "PredictorReady"), None)
            latest = ("LatestDeploymentReady", *(pred[1:] if pred else ("Unknown", "", "")))
        for ctype, cst, reason, message in [*ready_parts, *detail, latest]:
            conditions = set_condition(conditions, ctype, cst, reason, message)
        for which in COMPONENTS:
            if which not in present:
                conditions = [c for c in conditions or [] if c.get("type") != _ready_type(which)]
        conditions = set_condition(conditions, "IngressReady", *ingress)
        statuses = [p[1] for p in ready_parts] + [ingress[0]]
        if all(s == "True" for s in statuses):
            conditions = set_condition(conditions, "Ready", "True")
        else:
            bad = next((p for p in ready_parts if p[1] == "False"), None)
            first = bad or next((p for p in ready_parts if p[1] != "True"), None)
            if first is not None:
                conditions = set_condition(conditions, "Ready", first[1], first[2], first[3])
            else:
                conditions = set_condition(conditions, "Ready", ingress[0], *ingress[1:])

        new_status: Obj = {
            "observedGeneration": isvc["metadata"].get("generation", 1),
            "conditions": conditions,
            "components": components_status,
            "modelStatus": _model_status(failure, waiting, conditions),
        }
        if route is not None:
            rst = route.get("status") or {}
            if rst.get("url"):
                new_status["url"] = rst["url"]
                new_status["address"] = {
                    "url": f"http://{name}.{namespace}.svc.cluster.local",
                }
        new_status["deploymentMode"] = "Serverless"
        uri = str(((spec.get("predictor") or {}).get("model") or {}).get("storageUri") or "")
        registry = status.get("modelRegistry")
        if is_tracking_uri(uri) and isinstance(registry, dict) and registry.get("uri") == uri:
            # the version the predictor was last built with (and the run that made it)
            new_status["modelRegistry"] = registry
        elif self.pins is not None:
            self.pins.forget(namespace, name)
        if isvc.get("status") != new_status:
            fresh = dict(isvc)
            fresh["status"] = new_status
            try:
                self.store.update_status(fresh)
            except NotFoundError:
                return None
        if waiting is not None:
            return Result(requeue_after=0.5)
        if failure is not None and failure[0] in RETRIED:
            return Result(requeue_after=STORAGE_RETRY_SECONDS)
        return None

    # -- components ------------------------------------------------------------------

    async def _container(self, isvc: Obj, which: str, component: Obj) -> Obj:
        if which == "transformer":
            return transformer_container(isvc, component)
        model = component.get("model") if which == "predictor" else None
        if model is None:
            container = custom_container(component, which)
            # KServe's storage initializer also serves custom containers that name their
            # model in STORAGE_URI; they read it from /mnt/models.
            uri = next(
                (
                    str(e.get("value") or "")
                    for e in container.get("env") or []
                    if e.get("name") == "STORAGE_URI"
                ),
                "",
            )
            if uri:
                local = await self._storage(
                    isvc, {"storageUri": uri, "env": container.get("env") or []}
                )
                mount = str(local)
                container["args"] = [
                    str(a).replace(MOUNT, mount) for a in container.get("args") or []
                ]
                container["env"] = [
                    {**e, "value": str(e["value"]).replace(MOUNT, mount)}
                    if e.get("name") != "STORAGE_URI" and "value" in e
                    else e
                    for e in container.get("env") or []
                ]
            return container
        if component.get("containers"):
            raise ComponentSpecError(
                "InvalidPredictorSpec",
                "spec.predictor: give either model or containers, not both",
            )
        namespace = isvc["metadata"]["namespace"]
        ns_runtimes, _ = self.store.list(NAMESPACE_RUNTIMES, namespace)
        cluster_runtimes, _ = self.store.list(CLUSTER_RUNTIMES, None)
        choice = select_runtime(model, list(ns_runtimes), list(cluster_runtimes))
        builtin = (choice.obj["metadata"].get("labels") or {}).get(MANAGED_BY) == "wonderland"
        model_dir = None
        uri = str(model.get("storageUri") or "")
        if is_tracking_uri(uri):
            pin = await self._pin(isvc, uri)
            model = {**model, "storageUri": pin.pinned}
        if model.get("storageUri"):
            model_dir = await self._storage(isvc, model)
        elif builtin:
            raise ComponentSpecError(
                "InvalidPredictorSpec",
                f"spec.predictor.model.storageUri: the {choice.name} runtime loads the model "
                "from storageUri; give a path, file://, pvc://, s3:// or http(s):// URI",
            )
        container = model_container(isvc, model, choice.obj, model_dir, builtin)
        meta_ann = isvc["metadata"].get("annotations") or {}
        if str(meta_ann.get(SCRAPING, "")).lower() == "true":
            # KServe's rule: the runtime's prometheus.kserve.io/* reach the predictor's pods
            runtime_ann = choice.obj["metadata"].get("annotations") or {}
            self._scrape[(isvc["metadata"]["namespace"], isvc["metadata"]["name"])] = {
                k: str(v) for k, v in runtime_ann.items() if k.startswith("prometheus.kserve.io/")
            }
        if builtin and self.forkserver and container.get("command") == WONDERLAND_SERVE:
            self.forkserver.ensure_started()
            container["command"] = [sys.executable, "-m", "wonderland.kserve.forkserver", "serve"]
            container.setdefault("env", []).append(
                {"name": SOCKET_ENV, "value": str(self.forkserver.path)}
            )
        container.setdefault("env", []).append(
            {"name": "STORAGE_URI", "value": str(model.get("storageUri") or "")}
        )
        return container

    async def _pin(self, isvc: Obj, uri: str) -> Pin:
        """The registry version to build the predictor with (see model_pins.py)."""
        meta = isvc["metadata"]
        if self.pins is None:
            raise ComponentSpecError(
                "ModelLoadFailed", f"storageUri {uri}: the model registry is not installed"
            )
        recorded = (isvc.get("status") or {}).get("modelRegistry")
        try:
            pin = await self.pins.pin(meta["namespace"], meta["name"], uri, recorded)
        except PinError as exc:
            raise ComponentSpecError(exc.reason, exc.message) from None
        self._building[(meta["namespace"], meta["name"])] = pin
        return pin

    async def _storage(self, isvc: Obj, model: Obj) -> Path:
        import os
        import time

        from wonderland.inference.storage import StorageContext, fetch
        from wonderland.inference.storage._base import redact

        meta = isvc["metadata"]
        uri = str(model["storageUri"])
        shown = redact(uri)
        annotations = {
            k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith("serving.")
        }
        env = {
            str(e["name"]): str(e["value"])
            for e in model.get("env") or []
            if "value" in e and e.get("name")
        }
        if is_tracking_uri(uri) and self.pins is not None and self.pins.client_uri:
            env.setdefault(TRACKING_URI_ENV, self.pins.client_uri)
        key = (meta["namespace"], uri, *sorted(f"{k}={v}" for k, v in annotations.items()))
        key += tuple(sorted(f"{k}={v}" for k, v in env.items()))
        state = self._downloads.get(key)
        if state is not None and state.task is not None and state.task.done():
            exc = state.task.exception()
            if exc is None:
                state.path = state.task.result()
            else:
                state.error = (
                    str(exc)
                    if isinstance(exc, WonderlandError)
                    else f"storageUri {shown}: {type(exc).__name__}: {exc}"
                )
                state.failed_at = time.monotonic()
            state.task = None
        retry = (
            state is not None
            and state.error is not None
            and time.monotonic() - state.failed_at >= STORAGE_RETRY_SECONDS
        )
        if state is None or retry:
            state = _Download()
            self._downloads[key] = state

            def progress(_uri: str, done: int, total: int | None) -> None:
                pct = f" ({100 * done // total}%)" if total else ""
                state.progress = f"downloading {shown}: {done} bytes{pct}"

            store = self.platform.store
            ctx = StorageContext(
                self.state_dir,
                namespace=meta["namespace"],
                annotations=annotations,
                env={**os.environ, **env},
                progress=progress,
                claims=lambda namespace, claim: claim_path(store, namespace, claim),
            )
            state.task = asyncio.get_running_loop().create_task(
                asyncio.to_thread(fetch, uri, ctx), name=f"storage {shown}"
            )
            state.task.add_done_callback(
                lambda _t: self.platform.controllers.enqueue(ISVCS, meta["namespace"], meta["name"])
            )
            raise _StillDownloading(f"fetching {shown}")
        if state.error is not None:
            raise ComponentSpecError("ModelLoadFailed", state.error)
        if state.path is None:
            raise _StillDownloading(state.progress or f"fetching {shown}")
        if not isinstance(state.path, Path) or not state.path.exists():
            self._downloads.pop(key, None)
            raise _StillDownloading(f"fetching {shown} again")
        return state.path

    @staticmethod
    def _component_status(ksvc: Obj, previous: Obj) -> Obj:
        kst = ksvc.get("status") or {}
        meta = ksvc["metadata"]
        out: Obj = {}
        for key in ("latestReadyRevision", "latestCreatedRevision"):
            value = kst.get(key + "Name")
            if value:
                out[key] = value
        if kst.get("url"):
            out["url"] = kst["url"]
        out["address"] = {"url": f"http://{meta['name']}.{meta['namespace']}.svc.cluster.local"}
        traffic = kst.get("traffic") or []
        if traffic:
            out["traffic"] = traffic
        rolled = previous.get("latestRolledoutRevision")
        prev_rolled = previous.get("previousRolledoutRevision")
        ready = kst.get("latestReadyRevisionName")
        current_gen = (kst.get("observedGeneration") or 0) == meta.get("generation")
        full = [
            t
            for t in traffic
            if t.get("percent") == 100 and t.get("revisionName") == ready and ready
        ]
        latest = ready == kst.get("latestCreatedRevisionName")
        if current_gen and full and latest and rolled != ready:
            prev_rolled, rolled = rolled, ready
        if rolled:
            out["latestRolledoutRevision"] = rolled
        if prev_rolled:
            out["previousRolledoutRevision"] = prev_rolled
        return out

    def _route(self, isvc: Obj, entry: Obj) -> Obj:
        meta = isvc["metadata"]
        traffic = [
            {"revisionName": t["revisionName"], "percent": t.get("percent", 0)}
            for t in (entry.get("status") or {}).get("traffic") or []
            if t.get("revisionName") and t.get("percent")
        ]
        return {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Route",
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "labels": {ISVC_LABEL: meta["name"]},
                "annotations": {},
                "ownerReferences": [
                    {
                        "apiVersion": isvc["apiVersion"],
                        "kind": isvc["kind"],
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {"traffic": traffic},
        }

    # -- store helpers ---------------------------------------------------------------

    def _get(self, resource: str, namespace: str, name: str) -> Obj | None:
        try:
            return dict(self.store.get(resource, namespace, name))
        except NotFoundError:
            return None

    def _delete(self, resource: str, namespace: str, name: str) -> None:
        try:
            self.store.delete(resource, namespace, name)
        except NotFoundError:
            pass

    def _converge(self, resource: str, desired: Obj) -> Obj:
        meta = desired["metadata"]
        current = self._get(resource, meta["namespace"], meta["name"])
        if current is None:
            try:
                return dict(self.store.create(desired))
            except AlreadyExistsError:
                current = dict(self.store.get(resource, meta["namespace"], meta["name"]))
        cur_meta = current["metadata"]
        owned = any(
            r.get("uid") == meta["ownerReferences"][0]["uid"]
            for r in cur_meta.get("ownerReferences") or []
        )
        if not owned:
            kind = desired["kind"]
            raise ComponentSpecError(
                "NameConflict",
                f"a Knative {kind} named {meta['name']} already exists in namespace "
                f"{meta['namespace']} and does not belong to this InferenceService; delete it "
                "or rename the InferenceService",
            )
        if (
            current.get("spec") == desired["spec"]
            and (cur_meta.get("labels") or {}) == meta["labels"]
            and cur_meta.get("ownerReferences") == meta["ownerReferences"]
        ):
            return current
        body = copy.deepcopy(current)
        body["spec"] = desired["spec"]
        body["metadata"]["labels"] = meta["labels"]
        body["metadata"]["ownerReferences"] = meta["ownerReferences"]
        return dict(self.store.update(body))


class _StillDownloading(Exception):
    """The component waits for its storageUri."""


def _ready_type(which: str) -> str:
    return f"{which.capitalize()}Ready"


def _ready_of(obj: Obj | None) -> tuple[str, str, str]:
    cond = get_condition(obj, "Ready")
    if cond is None:
        return "Unknown", "", ""
    return cond.get("status", "Unknown"), cond.get("reason", ""), cond.get("message", "")


def _ksvc_ready(which: str, ksvc: Obj) -> tuple[str, str, str, str]:
    kst = ksvc.get("status") or {}
    if kst.get("observedGeneration") != ksvc["metadata"].get("generation"):
        return _ready_type(which), "Unknown", "OutOfDate", f"{ksvc['metadata']['name']} updating"
    return (_ready_type(which), *_ready_of(ksvc))


def _model_status(failure: tuple[str, str] | None, waiting: str | None, conditions: Any) -> Obj:
    if failure is not None:
        return {
            "transitionStatus": "InvalidSpec"
            if failure[0] != "ModelLoadFailed"
            else "BlockedByFailedLoad",
            "states": {"activeModelState": "", "targetModelState": "FailedToLoad"},
            "lastFailureInfo": {"reason": failure[0], "message": failure[1]},
        }
    pred = next((c for c in conditions or [] if c.get("type") == "PredictorReady"), None)
    if pred is not None and pred.get("status") == "True":
        return {
            "transitionStatus": "UpToDate",
            "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"},
        }
    return {
        "transitionStatus": "InProgress",
        "states": {"activeModelState": "", "targetModelState": "Pending" if waiting else "Loading"},
    }
