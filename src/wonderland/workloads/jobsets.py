"""The JobSet controller (``jobset.x-k8s.io/v1alpha2``): ``pkg/controllers/jobset_controller.go``
of kubernetes-sigs/jobset v0.12 on one machine, on top of the batch/v1 Job controller.

Each reconcile of a JobSet (not being deleted, not managed by another controller) reads the
Jobs it controls and sorts them: those of an older restart attempt (label
``jobset.sigs.k8s.io/restart-attempt`` below ``status.restarts``) are deleted; the others are
active, succeeded or failed. It writes ``status.replicatedJobsStatus``, then, in upstream's
order: a finished JobSet deletes its active Jobs and waits for ``ttlSecondsAfterFinished``;
a failed Job runs the failure policy (fail, or restart: ``status.restarts`` goes up and the
next reconcile recreates every Job); enough succeeded Jobs complete it (success policy);
otherwise the claims of ``volumeClaimPolicies`` are created, missing Jobs are created
(``dependsOn`` and ``startupPolicy: InOrder`` permitting) and ``suspend`` is passed on to the
Jobs. The status is written once per reconcile and the events of its changes follow it.

Jobs are deleted as the garbage collector's foreground deletion does: the Job is marked
(``deletionTimestamp`` and the ``foregroundDeletion`` finalizer), its pods are deleted
gracefully, and the Job goes once they are gone; so the pods of a restarted Job stop before
the Job is created again under the same name.

No headless Service is made: the platform has no Service networking (every pod shares this
machine's network); pods get ``hostname`` and ``subdomain`` as on a cluster.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from wonderland.api.schemas.jobset import JobSetObject
from wonderland.controllers import Result
from wonderland.controllers.events import EventRecorder
from wonderland.errors import ConflictError, NotFoundError, WonderlandError
from wonderland.store import Store
from wonderland.workloads.jobset_jobs import (
    JOB_INDEX_KEY,
    JOB_RESTART_ATTEMPT_KEY,
    JOBSET_CONTROLLER,
    RESTARTS_KEY,
    ChildJob,
    JobSetView,
    build_claim,
    build_job,
    claim_name,
    job_name,
    job_restart_attempts,
    replicas_of,
)
from wonderland.workloads.jobset_policies import (
    OwnedJobs,
    all_replicas_started,
    dependency_reached,
    execute_failure_policy,
    execute_success_policy,
    in_order,
)
from wonderland.workloads.jobset_status import (
    JOB_CREATION_FAILED_REASON,
    PVC_CREATION_FAILED_REASON,
    RESTARTING_JOBS_READY_MESSAGE,
    RESTARTING_JOBS_READY_REASON,
    JobSetStatus,
    ReplicatedJobStatus,
    StatusUpdate,
)
from wonderland.workloads.views import ObjectMetaView, parse_time

__all__ = ["FOREGROUND_DELETION", "JOBSETS", "JobSetReconciler"]

log = logging.getLogger("wonderland.workloads.jobsets")

Obj = dict[str, Any]
JOBSETS = "jobsets.jobset.x-k8s.io"
JOBS = "jobs.batch"
PODS = "pods"
CLAIMS = "persistentvolumeclaims"
COMPONENT = "jobset"
FOREGROUND_DELETION = "foregroundDeletion"
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
# How often a reconcile looks again while pods of a deleted Job are still stopping.
DELETION_POLL = 0.25


def _utcnow() -> datetime:
    return datetime.now(UTC)


class JobSetReconciler:
    """Runs every JobSet whose ``managedBy`` is unset or the JobSet controller's (see the
    module docstring). ``restart_job`` is the ``RestartJob`` feature gate (off in v0.12);
    ``clock`` replaces the wall clock in tests."""

    resource: str = JOBSETS
    owns: tuple[str, ...] = (JOBS,)
    watches: tuple[str, ...] = ()

    def __init__(
        self,
        store: Store,
        record: EventRecorder,
        clock: Callable[[], datetime] = _utcnow,
        restart_job: bool = False,
    ) -> None:
        self.store = store
        self.record = record
        self.clock = clock
        self.restart_job = restart_job

    async def reconcile(self, namespace: str, name: str) -> Result | None:
        try:
            raw = self.store.get(JOBSETS, namespace, name)
        except NotFoundError:
            return None  # its Jobs, pods and owned claims went with it
        meta = ObjectMetaView.model_validate(raw["metadata"])
        if meta.deletionTimestamp is not None:
            return None
        js = JobSetObject.model_validate(raw)
        manager = js.spec.managedBy
        if manager is not None and manager != JOBSET_CONTROLLER:
            return None  # another controller owns this JobSet's Jobs and status
        return _JobSetSync(self, raw, js, meta).run()

    def event(self, obj: Obj, type: str, reason: str, message: str) -> None:
        self.record(self.store, obj, type, reason, message, COMPONENT)


class _JobSetSync:
    """One reconcile of one JobSet."""

    def __init__(self, ctl: JobSetReconciler, raw: Obj, js: JobSetObject, meta: ObjectMetaView):
        self.ctl = ctl
        self.store = ctl.store
        self.raw = raw
        self.js = js
        self.meta = meta
        self.now = ctl.clock()
        self.status = JobSetStatus.parse(raw.get("status"))
        self.update = StatusUpdate(self.status, self.now)
        self.restart_job = ctl.restart_job
        self.requeue: list[float] = []
        self.key = f"{meta.namespace}/{meta.name}"

    def view(self) -> JobSetView:
        restarts = {s.name: list(s.jobRestarts or []) for s in self.status.replicatedJobsStatus}
        return JobSetView(self.js, self.meta, self.status.restarts, restarts)

    def suspended(self) -> bool:
        return bool(self.js.spec.suspend)

    def run(self) -> Result | None:
        owned = self._child_jobs()
        if self._progress_deletions(owned.all()):
            self.requeue.append(DELETION_POLL)
        statuses = self._replicated_statuses(owned)
        if _statuses_key(self.status.replicatedJobsStatus) != _statuses_key(statuses):
            self.status.replicatedJobsStatus = statuses
            self.update.should_update = True
        if self.status.finished() is not None:
            self._delete_jobs(owned.active)
            if not self._expire():
                return None  # deleted: nothing left to write
        else:
            self._sync(owned, statuses)
        self._write_status()
        return Result(requeue_after=max(min(self.requeue), 0.0)) if self.requeue else None

    def _sync(self, owned: OwnedJobs, statuses: list[ReplicatedJobStatus]) -> None:
        self._delete_jobs(owned.previous)
        if not self.suspended() and self._all_jobs_ready(statuses):
            self.update.restarting_false(
                RESTARTING_JOBS_READY_REASON, RESTARTING_JOBS_READY_MESSAGE
            )
        if owned.failed:
            execute_failure_policy(self.js, owned.failed, self.update, self.restart_job)
            return
        if owned.successful and execute_success_policy(self.js, owned.successful, self.update):
            return
        if self.js.spec.volumeClaimPolicies:
            self._claims()
        self._replicated_jobs(owned, statuses)
        if self.suspended():
            self._suspend(owned.active)
        else:
            self._resume(owned.active, statuses)

    # -- the Jobs ------------------------------------------------------------------------

    def _child_jobs(self) -> OwnedJobs:
        """getChildJobs: the Jobs this JobSet controls, sorted by attempt and state."""
        items, _ = self.store.list(JOBS, self.meta.namespace)
        owned = OwnedJobs()
        for raw in items:
            job = ChildJob.parse(raw)
            ref = job.meta.controller()
            if ref is None or ref.uid != self.meta.uid or ref.kind != "JobSet":
                continue
            attempt = job.meta.labels.get(RESTARTS_KEY, "")
            if not attempt.isdigit():
                raise WonderlandError(
                    f"jobset {self.key}: job {job.name} has an invalid value for label "
                    f"{RESTARTS_KEY}, must be integer"
                )
            if int(attempt) < self.status.restarts or self._older_job_attempt(job):
                owned.previous.append(job)
                continue
            finished = job.finished()
            if finished == "Failed":
                owned.failed.append(job)
            elif finished == "Complete":
                owned.successful.append(job)
            else:
                owned.active.append(job)
        return owned

    def _older_job_attempt(self, job: ChildJob) -> bool:
        """With RestartJob: the Job's own restart attempt is below its target."""
        if not self.restart_job:
            return False
        attempt = job.meta.labels.get(JOB_RESTART_ATTEMPT_KEY)
        if attempt is None:
            return False  # made before the gate was on; kept, as upstream
        index = job.meta.labels.get(JOB_INDEX_KEY, "")
        rjob = next(
            (r for r in self.js.spec.replicatedJobs or [] if r.name == job.replicated_job), None
        )
        if not attempt.isdigit() or not index.isdigit() or rjob is None:
            raise WonderlandError(
                f"jobset {self.key}: job {job.name} has invalid labels {JOB_RESTART_ATTEMPT_KEY} "
                f"or {JOB_INDEX_KEY}"
            )
        targets = job_restart_attempts(self.view(), rjob)
        if int(index) >= len(targets):
            raise WonderlandError(
                f"job index {index} is out of bounds for replicated job {rjob.name}"
            )
        return int(attempt) < targets[int(index)]

    def _replicated_statuses(self, owned: OwnedJobs) -> list[ReplicatedJobStatus]:
        """calculateReplicatedJobStatuses, in the order of the spec."""
        out: dict[str, ReplicatedJobStatus] = {}
        for rjob in self.js.spec.replicatedJobs or []:
            entry = ReplicatedJobStatus(name=rjob.name)
            previous = self.status.replicated(rjob.name)
            if self.restart_job and previous is not None:
                entry.jobRestarts = previous.jobRestarts
                entry.jobRestartsCountTowardsMax = previous.jobRestartsCountTowardsMax
            out[rjob.name] = entry
        for job in owned.active:
            entry_or_none = out.get(job.replicated_job)
            if entry_or_none is None:
                continue
            entry_or_none.ready += 1 if job.ready() else 0
            entry_or_none.active += 1 if job.status.active > 0 else 0
            entry_or_none.suspended += 1 if job.suspended() else 0
        for job in owned.successful:
            if job.replicated_job in out:
                out[job.replicated_job].succeeded += 1
        for job in owned.failed:
            if job.replicated_job in out:
                out[job.replicated_job].failed += 1
        return list(out.values())

    def _all_jobs_ready(self, statuses: list[ReplicatedJobStatus]) -> bool:
        total = sum(replicas_of(r) for r in self.js.spec.replicatedJobs or [])
        return total == sum(s.ready + s.succeeded for s in statuses)

    def _replicated_jobs(self, owned: OwnedJobs, statuses: list[ReplicatedJobStatus]) -> None:
        """reconcileReplicatedJobs: create the missing Jobs of every replicated job whose
        dependencies are met, one replicated job at a time with InOrder."""
        view = self.view()
        existing = {job.name for job in owned.all()}
        blocking = self.js.spec.failurePolicy is not None and (
            self.js.spec.failurePolicy.restartStrategy == "BlockingRecreate"
        )
        replicas: dict[str, int] = {}
        ordered = in_order(self.js) and not self.suspended()
        for rjob in view.replicated_jobs:
            replicas[rjob.name] = replicas_of(rjob)
            status = next((s for s in statuses if s.name == rjob.name), None)
            if not dependency_reached(rjob, replicas, statuses):
                continue
            if ordered and all_replicas_started(replicas_of(rjob), status):
                continue
            if not (blocking and owned.previous):
                missing = [
                    index
                    for index in range(replicas_of(rjob))
                    if job_name(self.meta.name, rjob.name, index) not in existing
                ]
                errors = []
                for index in missing:
                    body = build_job(view, rjob, index, self.restart_job)
                    try:
                        self.store.create(body)
                    except WonderlandError as exc:
                        name = body["metadata"]["name"]
                        errors.append(f'job "{name}" creation failed with error: {exc}')
                if errors:
                    message = "\n".join(errors)
                    self.ctl.event(self.raw, "Warning", JOB_CREATION_FAILED_REASON, message)
                    raise WonderlandError(f"jobset {self.key}: {message}")
            if ordered:
                self.update.in_order_in_progress()
                return
        if ordered:
            self.update.in_order_completed()

    def _suspend(self, active: list[ChildJob]) -> None:
        for job in active:
            if not job.suspended():
                self._update_job(job, lambda body: body["spec"].__setitem__("suspend", True))
        self.update.suspended()

    def _resume(self, active: list[ChildJob], statuses: list[ReplicatedJobStatus]) -> None:
        """resumeJobsIfNecessary: resume the suspended Jobs of every replicated job whose
        dependencies are met (one replicated job at a time with InOrder)."""
        by_rjob: dict[str, list[ChildJob]] = {}
        for job in active:
            by_rjob.setdefault(job.replicated_job, []).append(job)
        replicas: dict[str, int] = {}
        ordered = in_order(self.js)
        for rjob in self.js.spec.replicatedJobs or []:
            replicas[rjob.name] = replicas_of(rjob)
            status = next((s for s in statuses if s.name == rjob.name), None)
            if not dependency_reached(rjob, replicas, statuses):
                continue
            if ordered and all_replicas_started(replicas_of(rjob), status):
                continue
            template = rjob.template.spec.template.model_dump(exclude_none=True)
            for job in by_rjob.get(rjob.name, []):
                if job.suspended():
                    self._resume_job(job, template)
            if ordered:
                self.update.in_order_in_progress()
                return
        self.update.resumed()

    def _resume_job(self, job: ChildJob, template: Obj) -> None:
        """resumeJob: clear its startTime, bring in what may have changed in the pod template
        while suspended (labels, annotations, nodeSelector, tolerations, schedulingGates) and
        resume it."""
        if job.status.startTime is not None:
            current = job.raw
            for _ in range(3):
                body = dict(current)
                body["status"] = {k: v for k, v in (current.get("status") or {}).items()}
                body["status"].pop("startTime", None)
                try:
                    job.raw = self.store.update_status(body)
                    break
                except ConflictError:
                    current = self.store.get(JOBS, job.meta.namespace, job.name)
            else:
                raise ConflictError(f"job {job.name}: could not clear status.startTime")
        wanted_meta = template.get("metadata") or {}
        wanted_spec = template.get("spec") or {}

        def resume(body: Obj) -> None:
            pod = body["spec"]["template"]
            meta = pod.setdefault("metadata", {})
            for key in ("labels", "annotations"):
                meta[key] = {**(meta.get(key) or {}), **(wanted_meta.get(key) or {})}
            spec = pod["spec"]
            spec["nodeSelector"] = {
                **(spec.get("nodeSelector") or {}),
                **(wanted_spec.get("nodeSelector") or {}),
            }
            if not spec["nodeSelector"]:
                del spec["nodeSelector"]
            for key in ("tolerations", "schedulingGates"):
                merged = list(spec.get(key) or [])
                merged += [item for item in wanted_spec.get(key) or [] if item not in merged]
                if merged:
                    spec[key] = merged
            body["spec"]["suspend"] = False

        self._update_job(job, resume)

    def _update_job(self, job: ChildJob, change: Callable[[Obj], None]) -> None:
        """Apply ``change`` to the Job and store it, reading it again after a conflict (the
        Job controller writes its status meanwhile)."""
        current = job.raw
        for _ in range(3):
            body = copy.deepcopy(current)
            change(body)
            try:
                job.raw = self.store.update(body)
                return
            except ConflictError:
                current = self.store.get(JOBS, job.meta.namespace, job.name)
        raise ConflictError(f"job {job.name} changed too often while being updated")

    # -- deletion (the garbage collector's foreground deletion) -----------------------------

    def _delete_jobs(self, jobs: list[ChildJob]) -> None:
        """deleteJobs: mark each Job for foreground deletion; its pods go first."""
        for job in jobs:
            if job.meta.deletionTimestamp is not None:
                continue
            try:
                with self.store.transaction():
                    self._update_job(job, _add_foreground_finalizer)
                    job.raw = self.store.delete(JOBS, job.meta.namespace, job.name)
            except NotFoundError:
                continue
            job.meta = ObjectMetaView.model_validate(job.raw["metadata"])
            log.info(
                "jobset %s: deleting job %s (restart attempt %s)",
                self.key,
                job.name,
                job.meta.labels.get(RESTARTS_KEY),
            )
            if self._progress_deletions([job]):
                self.requeue.append(DELETION_POLL)

    def _progress_deletions(self, jobs: list[ChildJob]) -> bool:
        """Delete the pods of Jobs marked for foreground deletion and let each Job go once it
        has none left; True while some pods are still stopping."""
        pending = False
        for job in jobs:
            meta = job.meta
            if meta.deletionTimestamp is None or FOREGROUND_DELETION not in meta.finalizers:
                continue
            pods, _ = self.store.list(PODS, meta.namespace, {CONTROLLER_UID: meta.uid})
            for pod in pods:
                if pod["metadata"].get("deletionTimestamp"):
                    continue
                try:
                    self.store.delete(PODS, meta.namespace, pod["metadata"]["name"])
                except NotFoundError:
                    continue
            remaining, _ = self.store.list(PODS, meta.namespace, {CONTROLLER_UID: meta.uid})
            if remaining:
                pending = True
                continue
            try:
                self._update_job(job, _drop_foreground_finalizer)
            except NotFoundError:
                continue
        return pending

    # -- claims, TTL, status ---------------------------------------------------------------

    def _claims(self) -> None:
        """createPVCsIfNecessary: the claim of every volume claim template."""
        view = self.view()
        for policy in self.js.spec.volumeClaimPolicies or []:
            retention = policy.retentionPolicy.whenDeleted if policy.retentionPolicy else None
            for template in policy.templates or []:
                name = claim_name(
                    self.meta.name, (template.metadata.name if template.metadata else None) or ""
                )
                try:
                    self.store.get(CLAIMS, self.meta.namespace, name)
                    continue
                except NotFoundError:
                    pass
                try:
                    self.store.create(build_claim(view, template, retention == "Delete"))
                except WonderlandError as exc:
                    if isinstance(exc, ConflictError) and "already exists" in str(exc):
                        continue
                    self.ctl.event(self.raw, "Warning", PVC_CREATION_FAILED_REASON, str(exc))
                    raise

    def _expire(self) -> bool:
        """executeTTLAfterFinishedPolicy; False once the JobSet was deleted."""
        ttl = self.js.spec.ttlSecondsAfterFinished
        finished = self.status.finished()
        if ttl is None or finished is None:
            return True
        at = parse_time(finished.lastTransitionTime)
        if at is None:
            raise WonderlandError(f"unable to find the time when the JobSet {self.key} finished")
        left = (at + timedelta(seconds=ttl) - self.now).total_seconds()
        if left > 0:
            self.requeue.append(left)
            return True
        try:
            self.store.delete(JOBSETS, self.meta.namespace, self.meta.name)
        except NotFoundError:
            pass
        log.info("jobset %s deleted %ds after it finished (ttlSecondsAfterFinished)", self.key, ttl)
        return False

    def _write_status(self) -> None:
        """updateJobSetStatus: one write, then the events of what it changed."""
        if not self.update.should_update:
            return
        body = dict(self.raw)
        body["status"] = self.status.to_dict()
        self.raw = self.store.update_status(body)
        for event in self.update.events:
            self.ctl.event(self.raw, event.type, event.reason, event.message)


def _add_foreground_finalizer(body: Obj) -> None:
    finalizers = list(body["metadata"].get("finalizers") or [])
    if FOREGROUND_DELETION not in finalizers:
        body["metadata"]["finalizers"] = [*finalizers, FOREGROUND_DELETION]


def _drop_foreground_finalizer(body: Obj) -> None:
    finalizers = [f for f in body["metadata"].get("finalizers") or [] if f != FOREGROUND_DELETION]
    body["metadata"]["finalizers"] = finalizers


def _statuses_key(statuses: list[ReplicatedJobStatus]) -> list[Obj]:
    return sorted((s.to_dict() for s in statuses), key=lambda s: str(s["name"]))
