"""Revision -> replicas (built image, env, probes), gateway target and the autoscaler."""

from __future__ import annotations

import asyncio

from wonderland.autoscaler import RevisionScaler, ScalingSpec
from wonderland.autoscaler.config import parse_duration
from wonderland.controllers import Result, events
from wonderland.errors import NotFoundError, WonderlandError
from wonderland.runtime.images import BuiltImage
from wonderland.runtime.supervisor import ReplicaTemplate
from wonderland.serving._common import (
    L_CONFIG,
    L_SERVICE,
    Obj,
    _annotations,
    _get,
    _owner,
    _write_status,
    log,
)
from wonderland.serving.conditions import get_condition, is_true, set_condition
from wonderland.serving.system import (
    REVISIONS,
    BuildState,
    RevisionRuntime,
    ServingSystem,
)
from wonderland.serving.validation import serving_container

__all__ = ["RevisionReconciler"]

# A replica's pod waits in these states and starts once the cause is gone (a Secret or
# ConfigMap applied, resources freed); the revision reports them without giving up.
WAITING_REASONS = frozenset(
    {"CreateContainerConfigError", "Unschedulable", "ErrImagePull", "ImagePullBackOff"}
)


class RevisionReconciler:
    """Builds the image if needed, runs replicas through the supervisor at the scale the
    autoscaler wants, configures the gateway target and reports Knative's conditions."""

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
        _, container = serving_container(spec)
        ports = container.get("ports") or []
        cc = int(spec.get("containerConcurrency") or 0)
        target = system.table.revision(namespace, name)
        target.container_concurrency = cc
        labels = meta.get("labels") or {}
        target.service = str(labels.get("serving.knative.dev/service", ""))
        target.configuration = str(labels.get("serving.knative.dev/configuration", ""))
        # Knative's queue-proxy answers 504 when nothing was written by the first of
        # timeoutSeconds, responseStartTimeoutSeconds and idleTimeoutSeconds to expire
        total = float(spec.get("timeoutSeconds") or system.config.revision_timeout_seconds)
        starts = [
            float(spec[k])
            for k in ("responseStartTimeoutSeconds", "idleTimeoutSeconds")
            if spec.get(k)
        ]
        target.timeout = min([total, *starts])
        target.idle_timeout = float(spec.get("idleTimeoutSeconds") or 0)
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
                needs_build = self._resolvable(container["image"]) or not (
                    container.get("command") or self._provided(container["image"])
                )
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
                    rt.failed = ("ContainerMissing", str(exc))
        if rt.failed is not None:
            system.scale(key, 0)
            return self._fail(rev, *rt.failed)

        if rt.scaled_to < 0:
            system.scale(key, rt.scaler.desired)
        ready = len(system.supervisor.ready_endpoints(key))
        failure = system.supervisor.failure(key)
        if failure is not None and not was_ready:
            if failure[0] in WAITING_REASONS:
                # the pod waits (for a ConfigMap, for room on the node) and starts by itself
                return self._fail(rev, *failure)
            rt.failed = failure
            system.scale(key, 0)
            return self._fail(rev, *failure)
        if ready > 0:
            conditions = set_condition(conditions, "ResourcesAvailable", "True")
            conditions = set_condition(conditions, "ContainerHealthy", "True")
            conditions = set_condition(conditions, "Active", "True")
            conditions = set_condition(conditions, "Ready", "True")
        elif was_ready or (rt.scaler.spec.initial_scale == 0 and rt.scaler.desired == 0):
            # (initial-scale 0, allowed by config-autoscaler: Ready without a replica)
            if not was_ready:
                conditions = set_condition(conditions, "ResourcesAvailable", "True")
                conditions = set_condition(conditions, "ContainerHealthy", "True")
                conditions = set_condition(conditions, "Ready", "True")
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

    def _provided(self, image: str) -> bool:
        """Whether a plugin provides ``image`` (the kubelet runs it; nothing to build)."""
        try:
            return self.system.resolver.provided(image) is not None
        except WonderlandError:
            return True  # the kubelet's pod says what this machine lacks (ErrImagePull)

    async def _build(self, key: str, image: str, state: BuildState) -> None:
        def progress(line: str) -> None:
            state.progress = line
            log.info("%s: %s", key, line)
            self.system.enqueue_revision(key)

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
        """The pod template of the revision's replicas (the kubelet resolves env per pod)."""
        meta = rev["metadata"]
        spec = rev.get("spec") or {}
        labels = dict(meta.get("labels") or {})
        if not container.get("command") and built is None and not container.get("image"):
            raise NotFoundError(f"no way to run image {container.get('image')!r}")
        index, _ = serving_container(spec)
        sidecars = [dict(c) for i, c in enumerate(spec.get("containers") or []) if i != index]
        for i, side in enumerate(sidecars):
            side.setdefault("name", f"sidecar-{i}")
        ports = container.get("ports") or []
        timeout = float(spec.get("timeoutSeconds") or 300)
        annotations = _annotations(meta)
        deadline = annotations.get("serving.knative.dev/progress-deadline")
        serving = dict(container)
        serving.setdefault("name", "user-container")
        return ReplicaTemplate(
            namespace=meta["namespace"],
            revision=meta["name"],
            service=labels.get(L_SERVICE, ""),
            configuration=labels.get(L_CONFIG, ""),
            container=serving,
            labels=labels,
            annotations=annotations,
            owner=_owner(rev),
            sidecars=sidecars,
            volumes=list(spec.get("volumes") or []),
            service_account=spec.get("serviceAccountName"),
            automount_token=spec.get("automountServiceAccountToken"),
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
        if (get_condition(rev, "Ready") or {}).get("reason") != reason:
            events.record(self.system.store, rev, "Warning", reason, message, "revision-controller")
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
