"""Service -> Configuration + Route -> Revisions, reconciled as Knative Serving does.

Each reconciler is level-triggered: it reads the object and its children from the
store, converges them, and writes ``status`` with Knative's conditions and reasons.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
from typing import Any

from wonderland.autoscaler import RevisionScaler, ScalingSpec
from wonderland.autoscaler.config import parse_duration
from wonderland.controllers import Result
from wonderland.errors import AlreadyExistsError, NotFoundError, WonderlandError
from wonderland.gateway import HostRoute
from wonderland.runtime import BuiltImage, PodInfo, ReplicaTemplate, container_env
from wonderland.runtime.env import POD_NAME_PLACEHOLDER
from wonderland.serving.conditions import get_condition, is_true, set_condition
from wonderland.serving.config import CONFIG_MAPS, SYSTEM_NAMESPACE, ServingConfig
from wonderland.serving.system import (
    CONFIGURATIONS,
    REVISIONS,
    ROUTES,
    SERVICES,
    BuildState,
    RevisionRuntime,
    Rollout,
    ServingSystem,
)
from wonderland.serving.validation import ROLLOUT_ALIAS, ROLLOUT_DURATION

__all__ = [
    "ConfigMapReconciler",
    "ConfigurationReconciler",
    "RevisionReconciler",
    "RouteReconciler",
    "ServiceReconciler",
]

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
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


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


# --------------------------------------------------------------------------- Service


class ServiceReconciler:
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
        desired_cfg = {
            "apiVersion": API,
            "kind": "Configuration",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [_owner(svc)],
            },
            "spec": {"template": template},
        }
        traffic = []
        for t in spec.get("traffic") or [{"latestRevision": True, "percent": 100}]:
            entry = dict(t)
            if not entry.get("revisionName"):
                entry["configurationName"] = name
                entry["latestRevision"] = True
            traffic.append(entry)
        desired_route = {
            "apiVersion": API,
            "kind": "Route",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [_owner(svc)],
            },
            "spec": {"traffic": traffic},
        }
        cfg = self._converge(CONFIGURATIONS, desired_cfg)
        route = self._converge(ROUTES, desired_route)

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

    def _converge(self, resource: str, desired: Obj) -> Obj:
        store = self.system.store
        meta = desired["metadata"]
        current = _get(self.system, resource, meta["namespace"], meta["name"])
        if current is None:
            try:
                return store.create(desired)
            except AlreadyExistsError:
                current = store.get(resource, meta["namespace"], meta["name"])
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


# --------------------------------------------------------------------------- Configuration


class ConfigurationReconciler:
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
            c = containers[0]
            c.setdefault("name", "user-container")
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
            return self.system.store.create(revision)
        except AlreadyExistsError:
            return self.system.store.get(REVISIONS, namespace, rev_name)


# --------------------------------------------------------------------------- Revision


class RevisionReconciler:
    resource: str = REVISIONS
    owns: tuple[str, ...] = ()
    watches: tuple[str, ...] = ()

    def __init__(self, system: ServingSystem) -> None:
        self.system = system

    async def reconcile(self, namespace: str, name: str) -> Result | None:
        system = self.system
        key = f"{namespace}/{name}"
        rev = _get(system, REVISIONS, namespace, name)
        if rev is None:
            system.forget_revision(key)
            return None
        spec = rev.get("spec") or {}
        meta = rev["metadata"]
        container = (spec.get("containers") or [{}])[0]
        ports = container.get("ports") or []
        cc = int(spec.get("containerConcurrency") or 0)
        target = system.table.revision(namespace, name)
        target.container_concurrency = cc
        timeout = spec.get("responseStartTimeoutSeconds") or spec.get("timeoutSeconds")
        target.timeout = float(timeout or system.config.revision_timeout_seconds)
        target.h2c = bool(ports and ports[0].get("name") == "h2c")
        status = dict(rev.get("status") or {})
        conditions = status.get("conditions")
        was_ready = is_true(rev)

        rt = system.runtimes.get(key)
        try:
            scaling = ScalingSpec.from_revision(
                system.config.autoscaler, meta.get("annotations") or {}, cc
            )
        except WonderlandError as exc:
            return self._fail(rev, "InvalidAnnotation", str(exc))
        if rt is None:
            rt = RevisionRuntime(RevisionScaler(scaling, system.clock()))
            system.runtimes[key] = rt
        else:
            rt.scaler.update_spec(scaling)

        if rt.template is None and rt.failed is None:
            built = None
            if container.get("image"):
                state = system.builds.get(key)
                needs_build = not container.get("command") or self._resolvable(container["image"])
                if needs_build:
                    if state is None:
                        state = BuildState()
                        system.builds[key] = state
                        state.task = asyncio.get_running_loop().create_task(
                            self._build(key, container["image"], state)
                        )
                    if state.error is not None:
                        rt.failed = state.error
                    elif state.image is None:
                        return self._deploying(rev, state.progress or "Building the image")
                    else:
                        built = state.image
            if rt.failed is None:
                try:
                    rt.template = self._template(rev, container, built)
                except WonderlandError as exc:
                    rt.failed = ("CreateContainerConfigError", str(exc))
        if rt.failed is not None:
            system.scale(key, 0)
            return self._fail(rev, *rt.failed)

        if rt.scaled_to < 0:
            system.scale(key, rt.scaler.desired)
        ready = len(system.supervisor.ready_endpoints(key))
        failure = system.supervisor.failure(key)
        if failure is not None and not was_ready:
            rt.failed = failure
            system.scale(key, 0)
            return self._fail(rev, *failure)
        if ready > 0:
            conditions = set_condition(conditions, "ResourcesAvailable", "True")
            conditions = set_condition(conditions, "ContainerHealthy", "True")
            conditions = set_condition(conditions, "Active", "True")
            conditions = set_condition(conditions, "Ready", "True")
        elif was_ready:
            if rt.scaler.desired == 0:
                conditions = set_condition(
                    conditions,
                    "Active",
                    "False",
                    "NoTraffic",
                    "The target is not receiving traffic.",
                )
            else:
                conditions = set_condition(
                    conditions,
                    "Active",
                    "Unknown",
                    "Activating",
                    "Waiting for a replica to be ready",
                )
        else:
            return self._deploying(rev, "")
        new_status = {
            **status,
            "observedGeneration": meta.get("generation", 1),
            "conditions": conditions,
            "actualReplicas": ready,
            "desiredReplicas": rt.scaler.desired,
            "containerStatuses": [
                {
                    "name": container.get("name", "user-container"),
                    "imageDigest": container.get("image", ""),
                }
            ],
        }
        _write_status(system, rev, new_status)
        return None

    def _resolvable(self, image: str) -> bool:
        try:
            self.system.resolver.resolve(image)
        except WonderlandError:
            return False
        return True

    async def _build(self, key: str, image: str, state: BuildState) -> None:
        def progress(line: str) -> None:
            state.progress = line
            log.info("%s: %s", key, line)

        try:
            state.image = await self.system.resolver.build(image, progress)
        except NotFoundError as exc:
            state.error = ("ContainerMissing", str(exc))
        except WonderlandError as exc:
            state.error = ("BuildFailed", str(exc))
        except Exception as exc:
            state.error = ("BuildFailed", f"building image {image!r} failed: {exc}")
        self.system.enqueue_revision(key)

    def _template(self, rev: Obj, container: Obj, built: BuiltImage | None) -> ReplicaTemplate:
        meta = rev["metadata"]
        spec = rev.get("spec") or {}
        ns = meta["namespace"]
        labels = meta.get("labels") or {}
        store = self.system.store

        def lookup(resource: str, namespace: str, name: str) -> Obj | None:
            try:
                return store.get(resource, namespace, name)
            except NotFoundError:
                return None

        pod = PodInfo(
            name=POD_NAME_PLACEHOLDER,
            namespace=ns,
            uid=meta.get("uid", ""),
            service_account=spec.get("serviceAccountName") or "default",
            labels=labels,
            annotations=meta.get("annotations") or {},
        )
        env = container_env(container, pod, lookup, "spec.containers[0]")
        if container.get("command"):
            argv = [*container["command"], *(container.get("args") or [])]
        elif built is not None:
            argv = [*built.argv, *(container.get("args") or [])]
        else:
            raise NotFoundError(f"no way to run image {container.get('image')!r}")
        base_env = dict(built.env) if built is not None else {}
        ports = container.get("ports") or []
        timeout = float(spec.get("timeoutSeconds") or 300)
        annotations = meta.get("annotations") or {}
        deadline = annotations.get("serving.knative.dev/progress-deadline")
        return ReplicaTemplate(
            namespace=ns,
            revision=meta["name"],
            service=labels.get(L_SERVICE, ""),
            configuration=labels.get(L_CONFIG, ""),
            argv=argv,
            env={**base_env, **env},
            cwd=container.get("workingDir") or (str(built.context) if built else None),
            readiness=_probe(container.get("readinessProbe")),
            liveness=container.get("livenessProbe"),
            port_name=(ports[0].get("name") or "") if ports else "",
            grace_period=min(timeout, 30.0),
            progress_deadline=(
                parse_duration(deadline, "serving.knative.dev/progress-deadline")
                if deadline
                else 600.0
            ),
            revision_object=rev,
        )

    def _deploying(self, rev: Obj, message: str) -> Result | None:
        status = dict(rev.get("status") or {})
        conditions = status.get("conditions")
        for ctype in ("ResourcesAvailable", "ContainerHealthy", "Ready"):
            conditions = set_condition(conditions, ctype, "Unknown", "Deploying", message)
        rt = self.system.runtimes.get(f"{rev['metadata']['namespace']}/{rev['metadata']['name']}")
        _write_status(
            self.system,
            rev,
            {
                **status,
                "observedGeneration": rev["metadata"].get("generation", 1),
                "conditions": conditions,
                "actualReplicas": 0,
                "desiredReplicas": rt.scaler.desired if rt else 0,
            },
        )
        return None

    def _fail(self, rev: Obj, reason: str, message: str) -> Result | None:
        status = dict(rev.get("status") or {})
        conditions = status.get("conditions")
        if reason == "ProgressDeadlineExceeded":
            conditions = set_condition(conditions, "ResourcesAvailable", "False", reason, message)
            conditions = set_condition(conditions, "ContainerHealthy", "Unknown", "Deploying")
        else:
            conditions = set_condition(conditions, "ContainerHealthy", "False", reason, message)
            conditions = set_condition(conditions, "ResourcesAvailable", "False", reason, message)
        conditions = set_condition(conditions, "Ready", "False", reason, message)
        _write_status(
            self.system,
            rev,
            {
                **status,
                "observedGeneration": rev["metadata"].get("generation", 1),
                "conditions": conditions,
                "actualReplicas": 0,
                "desiredReplicas": 0,
            },
        )
        return None


def _probe(probe: Obj | None) -> Obj | None:
    """Knative's defaulted ``tcpSocket: {port: 0}`` is the plain default TCP probe."""
    if not probe:
        return None
    return probe


# --------------------------------------------------------------------------- Route


class RouteReconciler:
    resource: str = ROUTES
    owns: tuple[str, ...] = ()
    watches: tuple[str, ...] = (REVISIONS, CONFIGURATIONS)

    def __init__(self, system: ServingSystem) -> None:
        self.system = system

    async def reconcile(self, namespace: str, name: str) -> Result | None:
        system = self.system
        route_key = f"{namespace}/{name}"
        route = _get(system, ROUTES, namespace, name)
        if route is None:
            system.table.remove_route(route_key)
            system.reachable.pop(route_key, None)
            for k in [k for k in system.rollouts if k[0] == route_key]:
                del system.rollouts[k]
            return None
        meta = route["metadata"]
        labels = meta.get("labels") or {}
        traffic = (route.get("spec") or {}).get("traffic") or [
            {"configurationName": name, "latestRevision": True, "percent": 100}
        ]
        status = dict(route.get("status") or {})
        conditions = status.get("conditions")
        config = system.config
        domain = config.domain_for(labels)
        cluster_local = labels.get(VISIBILITY) == "cluster-local" or domain == "svc.cluster.local"
        requeue: float | None = None
        resolved: list[tuple[Obj, str]] = []  # (target, revision name)
        missing: tuple[str, str] | None = None
        for t in traffic:
            rev_name = t.get("revisionName")
            if rev_name:
                rev = _get(system, REVISIONS, namespace, rev_name)
                if rev is None:
                    missing = (
                        "RevisionMissing",
                        f'Revision "{rev_name}" referenced in traffic not found.',
                    )
                    break
                if not is_true(rev):
                    rstatus, _, rmsg = _ready_of(rev)
                    reason = "RevisionFailed" if rstatus == "False" else "RevisionMissing"
                    missing = (reason, f'Revision "{rev_name}" is not ready. {rmsg}'.strip())
                    break
                resolved.append((t, rev_name))
                continue
            cfg_name = t.get("configurationName") or name
            cfg = _get(system, CONFIGURATIONS, namespace, cfg_name)
            latest_ready = ((cfg or {}).get("status") or {}).get("latestReadyRevisionName")
            if cfg is None:
                missing = (
                    "ConfigurationMissing",
                    f'Configuration "{cfg_name}" referenced in traffic not found.',
                )
                break
            if not latest_ready:
                cstatus, _, _cmsg = _ready_of(cfg)
                reason = "RevisionFailed" if cstatus == "False" else "RevisionMissing"
                missing = (reason, f'Configuration "{cfg_name}" does not have any ready Revision.')
                break
            resolved.append((t, latest_ready))

        if missing is not None:
            ready_status = "Unknown" if missing[0] == "RevisionMissing" else "False"
            conditions = set_condition(conditions, "AllTrafficAssigned", ready_status, *missing)
            conditions = set_condition(conditions, "Ready", ready_status, *missing)
            _write_status(
                system,
                route,
                {
                    **status,
                    "observedGeneration": meta.get("generation", 1),
                    "conditions": conditions,
                },
            )
            return None

        # Expand configuration targets into (revision, percent) pairs, rolling out gradually
        # when serving.knative.dev/rollout-duration is set.
        annotations = meta.get("annotations") or {}
        raw_duration = annotations.get(ROLLOUT_DURATION, annotations.get(ROLLOUT_ALIAS))
        duration = parse_duration(str(raw_duration), ROLLOUT_DURATION) if raw_duration else 0.0
        prev_latest: dict[str, str] = {}
        for e in status.get("traffic") or []:
            if e.get("latestRevision") and e.get("percent"):
                prev_latest.setdefault(e.get("tag") or "", e["revisionName"])
        entries: list[Obj] = []
        now = system.clock()
        for t, rev_name in resolved:
            percent = int(t.get("percent") or 0)
            tag = t.get("tag") or ""
            latest = bool(t.get("latestRevision", not t.get("revisionName")))
            rk = (route_key, f"{t.get('configurationName') or ''}/{tag}")
            old = prev_latest.get(tag) if latest else None
            rollout = system.rollouts.get(rk)
            if latest and duration > 0 and percent > 0:
                if rollout is not None and rollout.new != rev_name:
                    rollout = None
                if (
                    rollout is None
                    and old
                    and old != rev_name
                    and _get(system, REVISIONS, namespace, old)
                ):
                    rollout = Rollout(old, rev_name, now, duration)
                    system.rollouts[rk] = rollout
            else:
                rollout = None
            if rollout is not None:
                frac = (now - rollout.started) / rollout.duration
                if frac >= 1:
                    del system.rollouts[rk]
                else:
                    new_pct = max(1, math.floor(percent * frac)) if frac > 0 else 1
                    new_pct = min(new_pct, percent - 1)
                    entries.append(
                        self._entry(
                            rollout.old,
                            percent - new_pct,
                            tag,
                            True,
                            name,
                            namespace,
                            domain,
                            cluster_local,
                            with_tag=False,
                        )
                    )
                    entries.append(
                        self._entry(
                            rev_name, new_pct, tag, True, name, namespace, domain, cluster_local
                        )
                    )
                    step = max(0.2, rollout.duration / max(percent, 1))
                    requeue = min(requeue or step, step)
                    continue
            entries.append(
                self._entry(rev_name, percent, tag, latest, name, namespace, domain, cluster_local)
            )

        # Program the gateway.
        split: dict[str, int] = {}
        tags: dict[str, str] = {}
        for e in entries:
            split[e["revisionName"]] = split.get(e["revisionName"], 0) + e["percent"]
            if e.get("tag"):
                tags[e["tag"]] = e["revisionName"]
        table = system.table
        targets = [(table.revision(namespace, r), p) for r, p in split.items()]
        tag_targets = {tg: table.revision(namespace, r) for tg, r in tags.items()}
        main = HostRoute(route_key, targets, tag_targets)
        hosts: dict[str, HostRoute] = {}
        local_names = [
            f"{name}.{namespace}.svc.cluster.local",
            f"{name}.{namespace}.svc",
            f"{name}.{namespace}",
        ]
        for h in local_names:
            hosts[h] = main
        if not cluster_local:
            hosts[f"{name}.{namespace}.{domain}"] = main
        for tg, target in tag_targets.items():
            tag_route = HostRoute(route_key, [(target, 100)])
            hosts[f"{tg}-{name}.{namespace}.svc.cluster.local"] = tag_route
            if not cluster_local:
                hosts[f"{tg}-{name}.{namespace}.{domain}"] = tag_route
        table.set_route(route_key, hosts)
        system.reachable[route_key] = {f"{namespace}/{r}" for r in [*split, *tags.values()]}

        host = (
            f"{name}.{namespace}.svc.cluster.local"
            if cluster_local
            else f"{name}.{namespace}.{domain}"
        )
        conditions = set_condition(conditions, "AllTrafficAssigned", "True")
        conditions = set_condition(conditions, "IngressReady", "True")
        conditions = set_condition(
            conditions, "CertificateProvisioned", "True", "TLSNotEnabled", "autoTLS is not enabled"
        )
        conditions = set_condition(conditions, "Ready", "True")
        new_status = {
            "observedGeneration": meta.get("generation", 1),
            "conditions": conditions,
            "url": f"http://{host}",
            "address": {"url": f"http://{name}.{namespace}.svc.cluster.local"},
            "traffic": entries,
        }
        _write_status(system, route, new_status)
        return Result(requeue_after=requeue) if requeue else None

    @staticmethod
    def _entry(
        rev: str,
        percent: int,
        tag: str,
        latest: bool,
        name: str,
        namespace: str,
        domain: str,
        cluster_local: bool,
        with_tag: bool = True,
    ) -> Obj:
        entry: Obj = {"revisionName": rev, "latestRevision": latest, "percent": percent}
        if tag and with_tag:
            entry["tag"] = tag
            suffix = "svc.cluster.local" if cluster_local else domain
            entry["url"] = f"http://{tag}-{name}.{namespace}.{suffix}"
        return entry


# --------------------------------------------------------------------------- ConfigMaps


class ConfigMapReconciler:
    """Reloads ``config-*`` in ``knative-serving`` and re-reconciles what depends on them."""

    resource: str = "configmaps"
    owns: tuple[str, ...] = ()
    watches: tuple[str, ...] = ()

    def __init__(self, system: ServingSystem) -> None:
        self.system = system

    async def reconcile(self, namespace: str, name: str) -> Result | None:
        if namespace != SYSTEM_NAMESPACE or name not in CONFIG_MAPS:
            return None
        system = self.system
        maps: dict[str, dict[str, str] | None] = {}
        for cm in CONFIG_MAPS:
            obj = _get(system, "configmaps", SYSTEM_NAMESPACE, cm)
            maps[cm] = (obj or {}).get("data")
        try:
            config = ServingConfig.from_configmaps(maps, system.platform.settings.domain)
        except WonderlandError as exc:
            log.error("ignoring the serving ConfigMaps: %s", exc)
            return None
        if config == system.config:
            return None
        system.config = config
        system.table.tag_header_routing = config.tag_header_routing
        for resource in (REVISIONS, ROUTES, SERVICES):
            items, _ = system.store.list(resource)
            for obj in items:
                system.controllers.enqueue(
                    resource, obj["metadata"]["namespace"], obj["metadata"]["name"]
                )
        return None
