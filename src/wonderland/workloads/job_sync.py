"""One reconcile of a batch/v1 Job: ``syncJob`` of kube-controller-manager's
``pkg/controller/job/job_controller.go`` (Kubernetes 1.32, its feature gates at their
defaults).

The pods' outcomes are counted through the ``batch.kubernetes.io/job-tracking`` finalizer and
``status.uncountedTerminatedPods``; the finish criteria are evaluated in upstream's order (an
earlier SuccessCriteriaMet or FailureTarget, the pod failure policy, backoffLimit,
activeDeadlineSeconds, backoffLimitPerIndex and maxFailedIndexes, successPolicy,
completions); missing pods are created from the template (after the pod-failure back-off) or
extra ones deleted; and the status is written: ``FailureTarget``/``SuccessCriteriaMet``
first, ``Failed``/``Complete`` once no pod is terminating any more.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from wonderland.api.schemas.batch import JobObject
from wonderland.controllers import Result
from wonderland.errors import NotFoundError, WonderlandError
from wonderland.settings import Settings
from wonderland.store import Store
from wonderland.tracking.runs import add_run_env
from wonderland.workloads.job_indexes import Indexes, first_pending, match_success_policy
from wonderland.workloads.job_pods import (
    TRACKING_FINALIZER,
    BackoffRecord,
    BackoffStore,
    JobPod,
    build_pod,
    match_pod_failure_policy,
    new_failure_counts,
    only_replace_failed,
    pods_for_removal,
    remaining_backoff,
)
from wonderland.workloads.job_status import (
    COMPLETE,
    FAILED,
    FAILURE_TARGET,
    SUCCESS_CRITERIA_MET,
    SUSPENDED,
    JobStatus,
    new_condition,
)
from wonderland.workloads.views import ConditionView, ObjectMetaView, format_time, parse_time

__all__ = ["MAX_POD_BACKOFF", "JobController", "JobSync"]

Obj = dict[str, Any]
PODS = "pods"
# MaxJobPodFailureBackOff of job_controller.go: the longest wait before a failed pod is
# replaced (the first wait is Settings.backoff_seconds, DefaultJobPodFailureBackOff).
MAX_POD_BACKOFF = 600.0
MAX_CREATE_DELETE_PER_SYNC = 500
MAX_UNCOUNTED_PODS = 500


class JobController(Protocol):
    """What a sync needs from the Job controller that runs it."""

    store: Store
    settings: Settings
    clock: Callable[[], datetime]
    backoff: BackoffStore
    settled: dict[str, set[str]]

    def event(self, obj: Obj, type: str, reason: str, message: str) -> None: ...

    def remove_finalizer(self, pod: JobPod) -> bool: ...

    def claim_pods(self, job: JobObject, meta: ObjectMetaView) -> list[JobPod]: ...


class JobSync:
    """One ``syncJob`` of one unfinished Job: its state is syncJobCtx's."""

    def __init__(
        self,
        ctl: JobController,
        raw: Obj,
        job: JobObject,
        meta: ObjectMetaView,
        status: JobStatus,
        run_id: str | None = None,
    ) -> None:
        self.ctl = ctl
        self.run_id = run_id  # the MLflow run the pods continue (MLFLOW_RUN_ID)
        self.store = ctl.store
        self.raw = raw
        self.job = job
        self.spec = job.spec
        self.meta = meta
        self.status = status
        self.key = f"{self.meta.namespace}/{self.meta.name}"
        self.now = ctl.clock()
        self.indexed = self.spec.completionMode == "Indexed"
        self.per_index = self.indexed and self.spec.backoffLimitPerIndex is not None
        self.completions = self.spec.completions if self.spec.completions is not None else 0
        self.requeue: list[float] = []
        self.errors: list[str] = []
        self.pods: list[JobPod] = []
        self.active_pods: list[JobPod] = []
        self.succeeded = self.failed = self.ready = self.terminating = 0
        self.uncounted_succeeded: set[str] = set()
        self.uncounted_failed: set[str] = set()
        self.finished: ConditionView | None = None
        self.prev_succeeded = Indexes()
        self.succeeded_indexes = Indexes()
        self.failed_indexes: Indexes | None = None
        self.delayed: dict[int, JobPod] = {}
        self.backoff_record = BackoffRecord(self.key)
        self.stopping: set[str] = set()  # pods deleted in this sync that still run

    # -- the sync ----------------------------------------------------------------------

    def run(self) -> Result | None:
        """The sync; raises WonderlandError (to retry) when pods could not be made or removed."""
        spec, status = self.spec, self.status
        self.pods = self.ctl.claim_pods(self.job, self.meta)
        settled = self.ctl.settled.get(self.key, set()) & {p.uid for p in self.pods}
        for pod in self.pods:
            pod.settled = pod.uid in settled
        self.active_pods = [p for p in self.pods if p.is_active()]
        self.ready = sum(1 for p in self.active_pods if p.is_ready())
        uncounted = status.uncountedTerminatedPods
        self.uncounted_succeeded = set(uncounted.succeeded)
        self.uncounted_failed = set(uncounted.failed)
        self.terminating = sum(1 for p in self.pods if p.is_terminating())
        active = len(self.active_pods)
        new_succeeded = self._new_finished(
            self.uncounted_succeeded, lambda p: p.phase == "Succeeded"
        )
        new_failed = self._new_finished(self.uncounted_failed, lambda p: p.is_failed(self.job))
        self.succeeded = status.succeeded + len(new_succeeded) + len(self.uncounted_succeeded)
        counted_failed = [p for p in new_failed if self._counts(p)]
        self.failed = status.failed + len(counted_failed) + len(self.uncounted_failed)
        if status.startTime is None and not spec.suspend:
            status.startTime = format_time(self.now)
        self.backoff_record = self.ctl.backoff.new_record(self.key, new_succeeded, new_failed)
        self._evaluate_failure()
        if self.indexed:
            self._evaluate_indexes()
        suspend_changed = False
        if self.finished is not None:
            ready, deleted = self._delete_pods(self.active_pods, keep_finalizer=True)
            if deleted != active:
                self.finished = None  # not every pod is on its way out yet
            active -= deleted
            self.terminating += deleted
            self.ready -= ready
        else:
            managed = False
            if self.meta.deletionTimestamp is None:
                active = self._manage(active)
                managed = True
            if spec.completions is None:
                complete = self.succeeded > 0 and active == 0
            else:
                complete = self.succeeded >= spec.completions and active == 0
            if complete:
                self.finished = new_condition(
                    SUCCESS_CRITERIA_MET,
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    self.now,
                )
            elif managed:
                suspend_changed = self._suspend_condition()
        needs_flush = suspend_changed or (active, self.ready, self.terminating) != (
            status.active,
            status.ready,
            status.terminating,
        )
        status.active = active
        status.ready = self.ready
        status.terminating = self.terminating
        self._track(needs_flush)
        if self.errors:
            raise WonderlandError(f"job {self.key}: " + "; ".join(self.errors))
        return Result(requeue_after=max(min(self.requeue), 0.0)) if self.requeue else None

    def _evaluate_failure(self) -> None:
        spec, status, now = self.spec, self.status, self.now
        met = status.true(SUCCESS_CRITERIA_MET)
        self.finished = met.model_copy() if met is not None else None
        # With SuccessCriteriaMet already set, the Job succeeds whatever its pods do now.
        if self.finished is None:
            target = status.true(FAILURE_TARGET)
            message = self._fail_job_message()
            if target is not None:
                self.finished = new_condition(FAILED, "True", target.reason, target.message, now)
            elif message is not None:
                self.finished = new_condition(
                    FAILURE_TARGET, "True", "PodFailurePolicy", message, now
                )
        if self.finished is not None:
            return
        limit = spec.backoffLimit if spec.backoffLimit is not None else 6
        deadline = spec.activeDeadlineSeconds
        started = parse_time(status.startTime)
        if self.failed > limit or self._past_backoff_limit_on_failure(limit):
            self.finished = new_condition(
                FAILURE_TARGET,
                "True",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
                now,
            )
        elif deadline is not None and started is not None and not spec.suspend:
            elapsed = (now - started).total_seconds()
            if elapsed >= deadline:
                self.finished = new_condition(
                    FAILURE_TARGET,
                    "True",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                    now,
                )
            else:
                self.requeue.append(deadline - elapsed)

    def _evaluate_indexes(self) -> None:
        spec, completions = self.spec, self.completions
        self.prev_succeeded = Indexes.parse(self.status.completedIndexes, completions)
        self.succeeded_indexes = self.prev_succeeded.with_indexes(
            p.completion_index()
            for p in self.pods
            if p.phase == "Succeeded" and p.tracked and 0 <= p.completion_index() < completions
        )
        self.succeeded = self.succeeded_indexes.total()
        if self.per_index:
            previous = Indexes()
            if self.status.failedIndexes is not None:
                previous = Indexes.parse(self.status.failedIndexes, completions)
            self.failed_indexes = previous.with_indexes(
                p.completion_index()
                for p in self.pods
                if p.tracked and 0 <= p.completion_index() < completions and self._index_failed(p)
            )
            failed = self.failed_indexes.total()
            if self.finished is None:
                if spec.maxFailedIndexes is not None and failed > spec.maxFailedIndexes:
                    self.finished = new_condition(
                        FAILURE_TARGET,
                        "True",
                        "MaxFailedIndexesExceeded",
                        "Job has exceeded the specified maximal number of failed indexes",
                        self.now,
                    )
                elif failed > 0 and failed + self.succeeded_indexes.total() >= completions:
                    self.finished = new_condition(
                        FAILURE_TARGET, "True", "FailedIndexes", "Job has failed indexes", self.now
                    )
            self.delayed = self._delayed_deletions()
        if self.finished is None:
            message = match_success_policy(spec.successPolicy, completions, self.succeeded_indexes)
            if message is not None:
                self.finished = new_condition(
                    SUCCESS_CRITERIA_MET, "True", "SuccessPolicy", message, self.now
                )

    def _suspend_condition(self) -> bool:
        status, now = self.status, self.now
        if self.spec.suspend:
            if status.ensure(SUSPENDED, "True", "JobSuspended", "Job suspended", now):
                self.ctl.event(self.raw, "Normal", "Suspended", "Job suspended")
                return True
            return False
        if status.ensure(SUSPENDED, "False", "JobResumed", "Job resumed", now):
            self.ctl.event(self.raw, "Normal", "Resumed", "Job resumed")
            # activeDeadlineSeconds counts the time a Job is continuously active.
            status.startTime = format_time(now)
            return True
        return False

    # -- pods --------------------------------------------------------------------------

    def _new_finished(
        self, uncounted: set[str], finished: Callable[[JobPod], bool]
    ) -> list[JobPod]:
        """Finished pods not counted yet (getValidPodsWithFilter)."""
        out = []
        for pod in self.pods:
            if not pod.tracked or pod.uid in uncounted:
                continue
            if self.indexed and not 0 <= pod.completion_index() < self.completions:
                continue
            if finished(pod):
                out.append(pod)
        return out

    def _indexes_range(self) -> int | None:
        return self.completions if self.indexed else None

    def _counts(self, pod: JobPod) -> bool:
        return match_pod_failure_policy(self.spec.podFailurePolicy, pod).count

    def _fail_job_message(self) -> str | None:
        if self.spec.podFailurePolicy is None:
            return None
        for pod in self.pods:
            if pod.is_failed(self.job):
                message = match_pod_failure_policy(self.spec.podFailurePolicy, pod).message
                if message is not None:
                    return message
        return None

    def _past_backoff_limit_on_failure(self, limit: int) -> bool:
        """With restartPolicy OnFailure, container restarts of running pods count."""
        if self.spec.template.spec.restartPolicy != "OnFailure":
            return False
        restarts = sum(p.restarts() for p in self.pods if p.phase in ("Running", "Pending"))
        return restarts > 0 if limit == 0 else restarts >= limit

    def _index_failed(self, pod: JobPod) -> bool:
        counted = False
        if pod.is_failed(self.job):
            match = match_pod_failure_policy(self.spec.podFailurePolicy, pod)
            if match.action == "FailIndex":
                return True
            counted = match.count
        limit = self.spec.backoffLimitPerIndex or 0
        return counted and pod.index_failure_count() >= limit

    def _delayed_deletions(self) -> dict[int, JobPod]:
        """Per index, the failed pod kept until its replacement exists: the replacement
        inherits its failure count (getPodsWithDelayedDeletionPerIndex)."""
        active = {p.completion_index() for p in self.active_pods}
        failed = self.failed_indexes or Indexes()
        out: dict[int, JobPod] = {}
        for pod in self.pods:
            index = pod.completion_index()
            if not pod.tracked or not 0 <= index < self.completions or not pod.is_failed(self.job):
                continue
            if index in self.succeeded_indexes or index in failed or index in active:
                continue
            last = out.get(index)
            if last is None or (
                last.absolute_failure_count() <= pod.absolute_failure_count()
                and not pod.finished_time() < last.finished_time()
            ):
                out[index] = pod
        return out

    def _delete_pods(self, pods: list[JobPod], keep_finalizer: bool) -> tuple[int, int]:
        """Delete ``pods``; (ready ones deleted, deleted). Without ``keep_finalizer`` their
        outcome is not counted (suspension, scale-down)."""
        ready = deleted = 0
        for pod in pods:
            if not keep_finalizer and pod.tracked and not self.ctl.remove_finalizer(pod):
                self.errors.append(f"removing the finalizer of pod {pod.name} failed")
                continue
            try:
                self.store.delete(PODS, pod.meta.namespace, pod.name)
            except NotFoundError:
                pass
            except WonderlandError as exc:
                self.ctl.event(self.raw, "Warning", "FailedDelete", f"Error deleting: {exc}")
                self.errors.append(str(exc))
                continue
            self.ctl.event(self.raw, "Normal", "SuccessfulDelete", f"Deleted pod: {pod.name}")
            if pod.pod.spec.nodeName and not pod.is_terminal():
                self.stopping.add(pod.uid)
            deleted += 1
            ready += 1 if pod.is_ready() else 0
        return ready, deleted

    def _manage(self, active: int) -> int:
        """Create missing pods or delete extra ones (manageJob); the new active count."""
        spec = self.spec
        parallelism = spec.parallelism if spec.parallelism is not None else 1
        if spec.suspend:
            ready, removed = self._delete_pods(
                pods_for_removal(self.active_pods, active, self._indexes_range()), False
            )
            self.terminating += removed
            self.ready -= ready
            return active - removed
        if spec.completions is None:
            want = active if self.succeeded > 0 else parallelism
        else:
            want = max(0, min(spec.completions - self.succeeded, parallelism))
        extra = pods_for_removal(self.active_pods, max(active - want, 0), self._indexes_range())
        if extra:
            ready, removed = self._delete_pods(extra[:MAX_CREATE_DELETE_PER_SYNC], False)
            self.terminating += removed
            self.ready -= ready
            return active - removed
        terminating = self.terminating if only_replace_failed(self.job) else 0
        missing = min(want - terminating - active, MAX_CREATE_DELETE_PER_SYNC)
        if missing <= 0:
            return active
        base, cap = self.ctl.settings.backoff_seconds, MAX_POD_BACKOFF
        if not self.per_index:
            wait = self.backoff_record.remaining(self.now, base, cap)
            if wait > 0:
                # Upstream reports active: 0 while it waits; the pods still running are kept.
                self.requeue.append(wait)
                return active
        indexes: list[int | None] = [None] * missing
        if self.indexed:
            pending = self._first_pending(missing)
            if self.per_index:
                pending, wait = self._creatable_now(pending, base, cap)
                if wait > 0:
                    self.requeue.append(wait)
                    return active
            indexes = list(pending)
        for index in indexes:
            counts = None
            if self.per_index and index is not None:
                counts = new_failure_counts(spec.podFailurePolicy, self.delayed.get(index))
            pod = build_pod(self.job, index, counts)
            if self.run_id is not None:
                add_run_env(pod["spec"], self.run_id)
            try:
                made = self.store.create(pod)
            except WonderlandError as exc:
                self.ctl.event(self.raw, "Warning", "FailedCreate", f"Error creating: {exc}")
                self.errors.append(f"creating a pod failed: {exc}")
                break  # the later ones would fail the same way (the slow start)
            self.ctl.event(
                self.raw, "Normal", "SuccessfulCreate", f"Created pod: {made['metadata']['name']}"
            )
            active += 1
        return active

    def _first_pending(self, count: int) -> list[int]:
        taken = self.succeeded_indexes.with_indexes(
            p.completion_index() for p in self.active_pods if p.completion_index() >= 0
        )
        if only_replace_failed(self.job):
            taken = taken.with_indexes(
                p.completion_index()
                for p in self.pods
                if p.is_terminating() and p.completion_index() >= 0
            )
        if self.failed_indexes is not None:
            taken = taken.merge(self.failed_indexes)
        return first_pending(taken, count, self.completions)

    def _creatable_now(
        self, indexes: list[int], base: float, cap: float
    ) -> tuple[list[int], float]:
        """The indexes whose own back-off is over, else the shortest wait of the others."""
        now: list[int] = []
        waits: list[float] = []
        for index in indexes:
            last = self.delayed.get(index)
            wait = 0.0
            if last is not None:
                wait = remaining_backoff(
                    self.now, base, cap, last.absolute_failure_count() + 1, last.finished_time()
                )
            if wait == 0:
                now.append(index)
            else:
                waits.append(wait)
        return (now, 0.0) if now else ([], min(waits, default=0.0))

    # -- status ------------------------------------------------------------------------

    def _can_remove_finalizer(self, pod: JobPod, failed: bool) -> bool:
        if self.meta.deletionTimestamp or self.finished is not None or pod.phase == "Succeeded":
            return True
        if not failed:
            return False
        kept = self.delayed.get(pod.completion_index())
        return not (self.per_index and kept is not None and kept.uid == pod.uid)

    def _clean_uncounted(self, with_finalizer: set[str]) -> bool:
        """Count the uncounted pods whose finalizer is gone."""
        status = self.status
        uncounted = status.uncountedTerminatedPods
        succeeded = [uid for uid in uncounted.succeeded if uid in with_finalizer]
        failed = [uid for uid in uncounted.failed if uid in with_finalizer]
        changed = False
        if len(succeeded) != len(uncounted.succeeded):
            status.succeeded += len(uncounted.succeeded) - len(succeeded)
            uncounted.succeeded = succeeded
            changed = True
        if len(failed) != len(uncounted.failed):
            status.failed += len(uncounted.failed) - len(failed)
            uncounted.failed = failed
            changed = True
        return changed

    def _track(self, needs_flush: bool) -> None:
        """trackJobStatusAndRemoveFinalizers: note finished pods as uncounted, write that,
        drop their finalizers, count them, then mark the Job finished when it is."""
        status, job, completions = self.status, self.job, self.completions
        uncounted = status.uncountedTerminatedPods
        pods = sorted(self.pods, key=JobPod.completion_index) if self.indexed else self.pods
        # The finalizer as stored: a settled pod stays uncounted until it is really released,
        # so a restart of the daemon in between cannot count it twice.
        with_finalizer = {p.uid for p in pods if TRACKING_FINALIZER in p.meta.finalizers}
        needs_flush = self._clean_uncounted(with_finalizer) or needs_flush
        to_release: list[JobPod] = []
        new_indexes: list[int] = []
        full = False
        failing = self.finished is not None and self.finished.type != SUCCESS_CRITERIA_MET
        for pod in pods:
            if not pod.tracked:
                continue
            failed = pod.is_failed(job)
            if not self._can_remove_finalizer(pod, failed):
                continue
            to_release.append(pod)
            index = pod.completion_index()
            if pod.phase == "Succeeded" and pod.uid not in self.uncounted_failed:
                if self.indexed:
                    if 0 <= index < completions and index not in self.prev_succeeded:
                        new_indexes.append(index)
                        needs_flush = True
                elif pod.uid not in self.uncounted_succeeded:
                    uncounted.succeeded.append(pod.uid)
                    needs_flush = True
            elif failed or failing:
                # When the Job fails, every pod not finished yet counts as failed.
                valid = not self.indexed or 0 <= index < completions
                if pod.uid not in self.uncounted_failed and valid and self._counts(pod):
                    uncounted.failed.append(pod.uid)
                    needs_flush = True
            if (
                len(new_indexes) + len(uncounted.succeeded) + len(uncounted.failed)
                >= MAX_UNCOUNTED_PODS
            ):
                full = True  # the next sync goes on; keeps the status small
                break
        if self.indexed:
            self.succeeded_indexes = self.succeeded_indexes.with_indexes(new_indexes)
            text = str(self.succeeded_indexes)
            needs_flush = needs_flush or text != status.completedIndexes
            status.succeeded = self.succeeded_indexes.total()
            status.completedIndexes = text
            failed_text = str(self.failed_indexes) if self.failed_indexes is not None else None
            if failed_text != status.failedIndexes:
                status.failedIndexes = failed_text
                needs_flush = True
        finished = self.finished
        if finished is not None and finished.type == FAILURE_TARGET:
            status.conditions.append(finished)
            needs_flush = True
            self.finished = new_condition(
                FAILED, "True", finished.reason, finished.message, self.now
            )
        elif finished is not None and finished.type == SUCCESS_CRITERIA_MET:
            if status.true(SUCCESS_CRITERIA_MET) is None:
                status.conditions.append(finished)
                needs_flush = True
            self.finished = new_condition(
                COMPLETE, "True", finished.reason, finished.message, self.now
            )
        if needs_flush:
            # The uncounted UIDs are stored before the finalizers go: a crash in between
            # neither loses nor double-counts a pod.
            self._write_status()
            self.ctl.backoff.update(self.backoff_record)
            needs_flush = False
        settled = self.ctl.settled.setdefault(self.key, set())
        for pod in [*to_release, *(p for p in self.pods if p.settled)]:
            if self._still_stopping(pod):
                settled.add(pod.uid)
            elif self.ctl.remove_finalizer(pod):
                settled.discard(pod.uid)
                with_finalizer.discard(pod.uid)
            else:
                self.errors.append(f"removing the finalizer of pod {pod.name} failed")
        needs_flush = self._clean_uncounted(with_finalizer) or needs_flush
        done = not full and self._enact_finished()
        if needs_flush or done:
            self._write_status()
        if done and self.finished is not None:
            self._record_finished(self.finished)

    def _still_stopping(self, pod: JobPod) -> bool:
        """Being deleted while its containers run on the node."""
        deleted = pod.meta.deletionTimestamp is not None or pod.uid in self.stopping
        return bool(pod.pod.spec.nodeName) and not pod.is_terminal() and deleted

    def _enact_finished(self) -> bool:
        finished, status = self.finished, self.status
        if finished is None:
            return False
        uncounted = status.uncountedTerminatedPods
        if uncounted.succeeded or uncounted.failed or self.terminating > 0:
            return False  # the terminal condition waits for every pod to be counted and gone
        status.ensure(finished.type, finished.status, finished.reason, finished.message, self.now)
        if finished.type == COMPLETE:
            status.completionTime = finished.lastTransitionTime
        return True

    def _record_finished(self, finished: ConditionView) -> None:
        if finished.type == COMPLETE:
            completions = self.spec.completions
            if completions is not None and self.status.succeeded > completions:
                self.ctl.event(
                    self.raw,
                    "Warning",
                    "TooManySucceededPods",
                    "Too many succeeded pods running after completion count reached",
                )
            self.ctl.event(self.raw, "Normal", "Completed", "Job completed")
        else:
            self.ctl.event(self.raw, "Warning", finished.reason, finished.message)

    def _write_status(self) -> None:
        body = dict(self.raw)
        body["status"] = self.status.to_dict()
        self.raw = self.store.update_status(body)
