"""The batch/v1 Job controller: kube-controller-manager's ``job`` and ``ttl-after-finished``
controllers on one machine.

Each reconcile of an unfinished Job is one ``syncJob`` (:mod:`wonderland.workloads.job_sync`)
over the pods the Job claims here: those it controls and its selector matches, orphans the
selector matches (adopted), minus those it controls that no longer match (released). A
finished Job with ``ttlSecondsAfterFinished`` is deleted that long after it finished. Pods a
deleted Job left behind (propagationPolicy Orphan) lose its tracking finalizer.

Finished pods stay (with their logs) until the Job goes; deleting the Job deletes them.

With MLflow tracking (a :class:`~wonderland.tracking.access.TrackingAccess`), a Job that no
controller owns, or that a CronJob owns, gets a run before its first pod
(:mod:`wonderland.tracking.runs`), ended FINISHED or FAILED with the Job; a Job that carries
a run (``tracking.wonderland.dev/run-id``, set by a Trial or inherited from a TrainJob's
JobSet) uses it. Either way its pods get ``MLFLOW_RUN_ID``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from wonderland.api.schemas.batch import JobObject
from wonderland.api.selectors import from_label_selector, matches
from wonderland.controllers import Result
from wonderland.controllers.events import EventRecorder
from wonderland.errors import ConflictError, NotFoundError
from wonderland.settings import Settings
from wonderland.store import Store
from wonderland.tracking.access import TrackingAccess
from wonderland.tracking.runs import (
    RunRequest,
    WorkloadRuns,
    experiment_name,
    opted_out,
    run_pending,
)
from wonderland.workloads.job_pods import TRACKING_FINALIZER, BackoffStore, JobPod
from wonderland.workloads.job_status import JobStatus
from wonderland.workloads.job_sync import MAX_POD_BACKOFF, JobSync
from wonderland.workloads.views import ObjectMetaView, parse_time

__all__ = ["MAX_POD_BACKOFF", "JobReconciler"]

log = logging.getLogger("wonderland.workloads.jobs")

Obj = dict[str, Any]
JOBS = "jobs.batch"
PODS = "pods"
COMPONENT = "job-controller"
JOB_CONTROLLER = "kubernetes.io/job-controller"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
MAX_VIEWS = 20_000


def _utcnow() -> datetime:
    return datetime.now(UTC)


class JobReconciler:
    """Runs every batch/v1 Job whose ``managedBy`` is unset or the job controller's (see the
    module docstring). ``clock`` replaces the wall clock in tests."""

    resource: str = JOBS
    owns: tuple[str, ...] = (PODS,)
    watches: tuple[str, ...] = ()

    def __init__(
        self,
        store: Store,
        settings: Settings,
        record: EventRecorder,
        clock: Callable[[], datetime] = _utcnow,
        tracking: TrackingAccess | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.record = record
        self.clock = clock
        self.runs = (
            WorkloadRuns(tracking, store, record, JOBS, COMPONENT) if tracking is not None else None
        )
        self.backoff = BackoffStore()
        # Per Job, the pods counted and released while their containers still stop: the
        # finalizer stays on them until then, because without it the store would drop a
        # pod being deleted at once, and the Job must not finish before its pods are gone.
        self.settled: dict[str, set[str]] = {}
        # Typed views of pods by uid, kept while their resourceVersion holds: a sync lists
        # every pod of the namespace, and most have not changed since the last one.
        self._views: dict[str, tuple[str, JobPod]] = {}

    async def reconcile(self, namespace: str, name: str) -> Result | None:
        try:
            raw = self.store.get(JOBS, namespace, name)
        except NotFoundError:
            self.backoff.remove(f"{namespace}/{name}")
            self.settled.pop(f"{namespace}/{name}", None)
            self._release_orphans(namespace, name)
            return None
        job = JobObject.model_validate(raw)
        meta = ObjectMetaView.model_validate(raw["metadata"])
        status = JobStatus.parse(raw.get("status"))
        if job.spec.managedBy is not None and job.spec.managedBy != JOB_CONTROLLER:
            return None  # another controller owns this Job's status
        key = f"{namespace}/{name}"
        runs = self.runs if self.runs is not None and self.runs.enabled else None
        finished = status.finished()
        if finished is not None:
            self.backoff.remove(key)
            self.settled.pop(key, None)
            if runs is not None and runs.owns_open_run(raw):
                await runs.end(raw, succeeded=finished.type == "Complete")
            return self._expire(job, meta, status)
        run_id: str | None = None
        if runs is not None:
            if run_pending(raw) and status.startTime is None:
                return None  # its Trial is making the run; the annotation change wakes it
            raw, run_id = await self._run(runs, raw, job, meta, status)
        return JobSync(self, raw, job, meta, status, run_id).run()

    async def _run(
        self,
        runs: WorkloadRuns,
        raw: Obj,
        job: JobObject,
        meta: ObjectMetaView,
        status: JobStatus,
    ) -> tuple[Obj, str | None]:
        """The run the Job's pods continue: the one it carries, else a new one for a Job
        that has not started and that no controller (or a CronJob) owns."""
        carried = runs.run_id(raw)
        if carried is not None or opted_out(meta.annotations):
            return raw, carried
        owner = meta.controller()
        if status.startTime is not None or (owner is not None and owner.kind != "CronJob"):
            return raw, None
        group = owner.name if owner is not None else meta.name
        tags = {"wonderland.cronjob": owner.name} if owner is not None else {}
        containers = job.spec.template.spec.containers
        workdir = containers[0].workingDir if containers else None
        code = Path(workdir) if workdir and PurePosixPath(workdir).is_absolute() else None
        request = RunRequest(
            kind="Job",
            namespace=meta.namespace,
            name=meta.name,
            uid=meta.uid,
            experiment=experiment_name(meta.namespace, group),
            run_name=meta.name,
            tags=tags,
            code=code,
        )
        return await runs.ensure(raw, request)

    def event(self, obj: Obj, type: str, reason: str, message: str) -> None:
        self.record(self.store, obj, type, reason, message, COMPONENT)

    def remove_finalizer(self, pod: JobPod) -> bool:
        """Drop the tracking finalizer of ``pod``; True when done (or the pod is gone)."""
        for _ in range(5):
            try:
                current = self.store.get(PODS, pod.meta.namespace, pod.name)
            except NotFoundError:
                return True
            meta = current["metadata"]
            if meta.get("uid") != pod.uid:
                return True
            finalizers = [f for f in meta.get("finalizers") or [] if f != TRACKING_FINALIZER]
            if finalizers == (meta.get("finalizers") or []):
                return True
            meta["finalizers"] = finalizers
            try:
                self.store.update(current)
            except ConflictError:
                continue
            except NotFoundError:
                return True
            return True
        return False

    def _release_orphans(self, namespace: str, name: str) -> None:
        """The Job is gone but pods it left (deleted with propagationPolicy Orphan) still
        carry its tracking finalizer: drop it so they can be deleted (syncOrphanPod)."""
        items, _ = self.store.list(PODS, namespace, {JOB_NAME_LABEL: name})
        for raw in items:
            pod = JobPod.parse(raw)
            ref = pod.meta.controller()
            if pod.tracked and (ref is None or (ref.kind == "Job" and ref.name == name)):
                self.remove_finalizer(pod)

    def claim_pods(self, job: JobObject, meta: ObjectMetaView) -> list[JobPod]:
        """This Job's pods: those it controls that its selector matches; orphans the selector
        matches are adopted, pods it controls that no longer match are released."""
        items, _ = self.store.list(PODS, meta.namespace)
        selector = job.spec.selector
        requirements = (
            from_label_selector(selector.model_dump(exclude_none=True)) if selector else None
        )
        deleting = meta.deletionTimestamp is not None
        pods: list[JobPod] = []
        for raw in items:
            view = self._view(raw)
            pod_meta = view.meta
            selected = requirements is not None and matches(requirements, pod_meta.labels)
            ref = pod_meta.controller()
            if ref is not None:
                if ref.uid != meta.uid:
                    continue
                if selected:
                    pods.append(view)
                elif not deleting:
                    self._set_owner(raw, meta, adopt=False)
                continue
            if selected and not deleting and pod_meta.deletionTimestamp is None:
                adopted = self._set_owner(raw, meta, adopt=True)
                if adopted is not None:
                    pods.append(JobPod.parse(adopted))
        return pods

    def _view(self, raw: Obj) -> JobPod:
        uid = str(raw["metadata"].get("uid", ""))
        rv = str(raw["metadata"].get("resourceVersion", ""))
        cached = self._views.get(uid)
        if cached is not None and cached[0] == rv:
            return cached[1]
        if len(self._views) >= MAX_VIEWS:
            self._views.clear()
        view = JobPod.parse(raw)
        self._views[uid] = (rv, view)
        return view

    def _set_owner(self, raw: Obj, job: ObjectMetaView, adopt: bool) -> Obj | None:
        meta = raw["metadata"]
        refs = [r for r in meta.get("ownerReferences") or [] if r.get("uid") != job.uid]
        if adopt:
            refs.append(
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": job.name,
                    "uid": job.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            )
            finalizers = list(meta.get("finalizers") or [])
            if TRACKING_FINALIZER not in finalizers:
                meta["finalizers"] = [*finalizers, TRACKING_FINALIZER]
        else:
            # A released pod is nobody's to count: nothing would ever drop the finalizer.
            meta["finalizers"] = [
                f for f in meta.get("finalizers") or [] if f != TRACKING_FINALIZER
            ]
        meta["ownerReferences"] = refs
        try:
            return self.store.update(raw)
        except (ConflictError, NotFoundError):
            return None

    # -- ttl-after-finished ------------------------------------------------------------

    def _expire(self, job: JobObject, meta: ObjectMetaView, status: JobStatus) -> Result | None:
        """Delete a finished Job ``ttlSecondsAfterFinished`` after it finished (the
        ttl-after-finished controller; background propagation: its pods go too)."""
        ttl = job.spec.ttlSecondsAfterFinished
        now = self.clock()
        finished = status.finished()
        if ttl is None or finished is None or meta.deletionTimestamp is not None:
            return None
        at = parse_time(finished.lastTransitionTime) or now
        left = (at + timedelta(seconds=ttl) - now).total_seconds()
        if left > 0:
            return Result(requeue_after=left)
        try:
            self.store.delete(JOBS, meta.namespace, meta.name)
        except NotFoundError:
            pass
        log.info(
            "job %s deleted %ds after it finished (ttlSecondsAfterFinished)",
            f"{meta.namespace}/{meta.name}",
            ttl,
        )
        return None
