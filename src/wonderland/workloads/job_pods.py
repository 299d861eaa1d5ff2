"""A Job's pods as its controller sees them: typed views of the kubelet's status, what makes
a pod active, terminating or failed, the pod failure policy, the pods made from the template
and the back-off before failed pods are replaced.

The rules are those of kube-controller-manager (``job_controller.go``,
``pod_failure_policy.go``, ``backoff_utils.go`` and the ``controller`` package helpers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field

from wonderland.api.owners import controller_ref
from wonderland.api.schemas.batch import JobObject, PodFailurePolicy
from wonderland.api.schemas.core import PodObject
from wonderland.workloads.views import ConditionView, ObjectMetaView, View, parse_time

__all__ = [
    "COMPLETION_INDEX",
    "INDEX_FAILURE_COUNT",
    "INDEX_IGNORED_FAILURE_COUNT",
    "TRACKING_FINALIZER",
    "BackoffRecord",
    "BackoffStore",
    "JobPod",
    "PolicyMatch",
    "build_pod",
    "match_pod_failure_policy",
    "new_failure_counts",
    "only_replace_failed",
    "pods_for_removal",
    "removal_order",
]

Obj = dict[str, Any]

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
INDEX_FAILURE_COUNT = "batch.kubernetes.io/job-index-failure-count"
INDEX_IGNORED_FAILURE_COUNT = "batch.kubernetes.io/job-index-ignored-failure-count"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
# names.MaxGeneratedNameLength: 63 minus the 5 random characters.
MAX_GENERATED_PREFIX = 58
_INT32_MAX = 2**31 - 1
_PHASE_ORDER = {"Pending": 0, "": 0, "Unknown": 1, "Running": 2}


class Terminated(View):
    exitCode: int = 0
    reason: str = ""
    finishedAt: str | None = None


class ContainerState(View):
    terminated: Terminated | None = None


class ContainerStatus(View):
    name: str = ""
    state: ContainerState = Field(default_factory=ContainerState)
    restartCount: int = 0


class PodStatusView(View):
    """The part of a pod's status a Job controller reads."""

    phase: str = ""
    conditions: list[ConditionView] = Field(default_factory=list)
    containerStatuses: list[ContainerStatus] = Field(default_factory=list)
    initContainerStatuses: list[ContainerStatus] = Field(default_factory=list)


@dataclass
class JobPod:
    """One pod of a Job: the stored object and its typed views."""

    raw: Obj
    pod: PodObject
    meta: ObjectMetaView
    status: PodStatusView
    # Counted and released, its finalizer kept only until its containers stop.
    settled: bool = False

    @classmethod
    def parse(cls, raw: Obj) -> JobPod:
        return cls(
            raw,
            PodObject.model_validate(raw),
            ObjectMetaView.model_validate(raw.get("metadata") or {}),
            PodStatusView.model_validate(raw.get("status") or {}),
        )

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def uid(self) -> str:
        return self.meta.uid

    @property
    def phase(self) -> str:
        return self.status.phase

    @property
    def tracked(self) -> bool:
        """Carries the tracking finalizer: its outcome is not counted in the Job yet."""
        return TRACKING_FINALIZER in self.meta.finalizers and not self.settled

    def is_terminal(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    def is_active(self) -> bool:
        """controller.IsPodActive: not finished and not being deleted."""
        return not self.is_terminal() and self.meta.deletionTimestamp is None

    def is_terminating(self) -> bool:
        """Being deleted, its containers not stopped yet."""
        return not self.is_terminal() and self.meta.deletionTimestamp is not None

    def is_failed(self, job: JobObject) -> bool:
        """Failed, or (podReplacementPolicy TerminatingOrFailed) deleted before it succeeded."""
        if self.phase == "Failed":
            return True
        if only_replace_failed(job):
            return False
        return self.meta.deletionTimestamp is not None and self.phase != "Succeeded"

    def condition(self, kind: str) -> ConditionView | None:
        return next((c for c in self.status.conditions if c.type == kind), None)

    def is_ready(self) -> bool:
        ready = self.condition("Ready")
        return ready is not None and ready.status == "True"

    def completion_index(self) -> int:
        """The ``job-completion-index`` annotation; -1 when missing or not a number."""
        value = self.meta.annotations.get(COMPLETION_INDEX)
        try:
            index = int(value) if value is not None else -1
        except ValueError:
            return -1
        return index if index >= 0 else -1

    def _annotation_count(self, key: str) -> int:
        try:
            value = int(self.meta.annotations.get(key, "0"))
        except ValueError:
            return 0
        return value if 0 <= value <= _INT32_MAX else 0

    def index_failure_count(self) -> int:
        return self._annotation_count(INDEX_FAILURE_COUNT)

    def index_ignored_failure_count(self) -> int:
        return self._annotation_count(INDEX_IGNORED_FAILURE_COUNT)

    def absolute_failure_count(self) -> int:
        return self.index_failure_count() + self.index_ignored_failure_count()

    def restarts(self) -> int:
        statuses = [*self.status.initContainerStatuses, *self.status.containerStatuses]
        return sum(s.restartCount for s in statuses)

    def finished_time(self) -> datetime:
        """When the pod finished: its last container, its Ready=False transition, its
        deletion, else its creation (backoff_utils.go getFinishedTime)."""
        ends: list[datetime] = []
        for status in self.status.containerStatuses:
            terminated = status.state.terminated
            finished = parse_time(terminated.finishedAt) if terminated is not None else None
            if finished is None:
                ends = []
                break
            ends.append(finished)
        if ends:
            return max(ends)
        ready = self.condition("Ready")
        if ready is not None and ready.status == "False":
            moment = parse_time(ready.lastTransitionTime)
            if moment is not None:
                return moment
        deleted = parse_time(self.meta.deletionTimestamp)
        if deleted is not None:
            return deleted - timedelta(seconds=self.meta.deletionGracePeriodSeconds or 0)
        created = parse_time(self.meta.creationTimestamp)
        return created if created is not None else datetime.min.replace(tzinfo=UTC)


def only_replace_failed(job: JobObject) -> bool:
    """podReplacementPolicy Failed (the default with a podFailurePolicy): a terminating pod
    is replaced only once it has failed."""
    return job.spec.podReplacementPolicy == "Failed" or job.spec.podFailurePolicy is not None


def removal_order(pod: JobPod) -> tuple[Any, ...]:
    """Sort key of controller.ActivePods: the pods to delete first come first (unscheduled,
    pending, not ready, ready for less time, more restarts, newer)."""
    ready = pod.condition("Ready")
    ready_since = parse_time(ready.lastTransitionTime) if ready and pod.is_ready() else None
    created = parse_time(pod.meta.creationTimestamp)
    statuses = [*pod.status.initContainerStatuses, *pod.status.containerStatuses]
    return (
        1 if pod.pod.spec.nodeName else 0,
        _PHASE_ORDER.get(pod.phase, 0),
        1 if pod.is_ready() else 0,
        -(ready_since.timestamp()) if ready_since else float("-inf"),
        -max((s.restartCount for s in statuses), default=0),
        -(created.timestamp()) if created else float("-inf"),
    )


def pods_for_removal(pods: list[JobPod], at_least: int, completions: int | None) -> list[JobPod]:
    """Active pods to delete (activePodsForRemoval): for an Indexed Job (``completions``
    given) pods with a repeated, missing or too high index, then at least ``at_least`` of
    the least advanced."""
    remove: list[JobPod] = []
    left = pods
    if completions is not None:
        remove, left = [], []
        groups: dict[int, list[JobPod]] = {}
        for pod in pods:
            groups.setdefault(pod.completion_index(), []).append(pod)
        for index, group in sorted(groups.items()):
            if index < 0 or index >= completions:
                remove.extend(group)
                continue
            group = sorted(group, key=removal_order)
            remove.extend(group[:-1])
            left.append(group[-1])
    if len(remove) < at_least:
        left = sorted(left, key=removal_order)
        remove.extend(left[: at_least - len(remove)])
    return remove


@dataclass(frozen=True)
class PolicyMatch:
    """What the pod failure policy says about a failed pod."""

    message: str | None = None  # a FailJob rule matched: the Job's failure message
    count: bool = True  # counts towards backoffLimit (False: an Ignore rule matched)
    action: str | None = None  # the matched rule's action


def _exit_code_match(
    pod: JobPod, container: str | None, operator: str, values: list[int]
) -> ContainerStatus | None:
    for status in [*pod.status.containerStatuses, *pod.status.initContainerStatuses]:
        terminated = status.state.terminated
        if terminated is None or terminated.exitCode == 0:
            continue
        if container is not None and container != status.name:
            continue
        inside = terminated.exitCode in values
        if (operator == "In" and inside) or (operator == "NotIn" and not inside):
            return status
    return None


def match_pod_failure_policy(policy: PodFailurePolicy | None, pod: JobPod) -> PolicyMatch:
    """The first rule of ``policy`` that matches the failed ``pod`` (pod_failure_policy.go)."""
    if policy is None:
        return PolicyMatch()
    namespace, name = pod.meta.namespace, pod.name
    for position, rule in enumerate(policy.rules):
        message = ""
        if rule.onExitCodes is not None:
            codes = rule.onExitCodes
            status = _exit_code_match(pod, codes.containerName, codes.operator, codes.values)
            if status is None:
                continue
            code = status.state.terminated.exitCode if status.state.terminated else 0
            message = (
                f"Container {status.name} for pod {namespace}/{name} failed with exit code "
                f"{code} matching {rule.action} rule at index {position}"
            )
        elif rule.onPodConditions is not None:
            matched = next(
                (
                    condition
                    for condition in pod.status.conditions
                    for pattern in rule.onPodConditions
                    if condition.type == pattern.type
                    and condition.status == (pattern.status or "True")
                ),
                None,
            )
            if matched is None:
                continue
            message = (
                f"Pod {namespace}/{name} has condition {matched.type} matching {rule.action} "
                f"rule at index {position}"
            )
        else:
            continue
        if rule.action == "Ignore":
            return PolicyMatch(count=False, action="Ignore")
        if rule.action == "FailJob":
            return PolicyMatch(message=message, action="FailJob")
        return PolicyMatch(action=rule.action)
    return PolicyMatch()


def new_failure_counts(policy: PodFailurePolicy | None, replaced: JobPod | None) -> tuple[int, int]:
    """The index failure counts (counted, ignored) of the pod replacing ``replaced``."""
    if replaced is None:
        return 0, 0
    failures, ignored = replaced.index_failure_count(), replaced.index_ignored_failure_count()
    if match_pod_failure_policy(policy, replaced).count:
        return failures + 1, ignored
    return failures, ignored + 1


def build_pod(job: JobObject, index: int | None, failures: tuple[int, int] | None) -> Obj:
    """A new pod of ``job`` (controller.GetPodFromTemplate plus what the Job controller
    adds): labels, annotations and finalizers of the template and the tracking finalizer,
    the controller reference, and for an Indexed Job the index annotation and label,
    ``JOB_COMPLETION_INDEX`` in every container and the hostname ``<job>-<index>``."""
    meta = ObjectMetaView.model_validate(job.metadata)
    template = job.spec.template.model_dump(exclude_none=True)
    template_meta = template.get("metadata") or {}
    labels = dict(template_meta.get("labels") or {})
    annotations = dict(template_meta.get("annotations") or {})
    finalizers = list(template_meta.get("finalizers") or [])
    if TRACKING_FINALIZER not in finalizers:
        finalizers.append(TRACKING_FINALIZER)
    spec: Obj = template["spec"]
    prefix = f"{meta.name}-"
    if index is not None:
        annotations[COMPLETION_INDEX] = str(index)
        labels[COMPLETION_INDEX] = str(index)
        for group in ("initContainers", "containers"):
            for container in spec.get(group) or []:
                env = container.setdefault("env", [])
                if not any(var.get("name") == COMPLETION_INDEX_ENV for var in env):
                    path = f"metadata.labels['{COMPLETION_INDEX}']"
                    env.append(
                        {
                            "name": COMPLETION_INDEX_ENV,
                            "valueFrom": {"fieldRef": {"fieldPath": path}},
                        }
                    )
        spec["hostname"] = f"{meta.name}-{index}"
        suffix = f"-{index}-"
        prefix = meta.name + suffix
        if len(prefix) > MAX_GENERATED_PREFIX:
            prefix = prefix[: MAX_GENERATED_PREFIX - len(suffix)] + suffix
        if failures is not None:
            annotations[INDEX_FAILURE_COUNT] = str(failures[0])
            if failures[1] > 0:
                annotations[INDEX_IGNORED_FAILURE_COUNT] = str(failures[1])
    pod_meta: Obj = {
        "generateName": prefix[:MAX_GENERATED_PREFIX],
        "namespace": meta.namespace,
        "labels": labels,
        "finalizers": finalizers,
        "ownerReferences": [
            controller_ref({"metadata": {"name": meta.name, "uid": meta.uid}}, "batch/v1", "Job")
        ],
    }
    if annotations:
        pod_meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


# -- back-off of pod re-creation (backoff_utils.go) ----------------------------------


def remaining_backoff(
    now: datetime, base: float, cap: float, failures: int, last_failure: datetime | None
) -> float:
    """Seconds to wait before creating pods after ``failures`` consecutive failures, the
    last at ``last_failure``: ``base * 2**(failures-1)`` at most ``cap``, minus the time
    passed since."""
    if failures == 0 or last_failure is None:
        return 0.0
    delay = base
    for _ in range(1, failures):
        delay *= 2
        if delay >= cap:
            delay = cap
            break
    elapsed = (now - last_failure).total_seconds()
    return 0.0 if delay < elapsed else delay - elapsed


@dataclass
class BackoffRecord:
    """Failures since the last success of a Job and when the last one happened."""

    key: str
    failures: int = 0
    last_failure: datetime | None = None

    def remaining(self, now: datetime, base: float, cap: float) -> float:
        return remaining_backoff(now, base, cap, self.failures, self.last_failure)


@dataclass
class BackoffStore:
    """The controller's memory of recent pod failures per Job (lost on restart, as on a
    cluster: the first replacement after a restart is not delayed)."""

    records: dict[str, BackoffRecord] = field(default_factory=dict)

    def new_record(self, key: str, succeeded: list[JobPod], failed: list[JobPod]) -> BackoffRecord:
        """The record after the newly finished pods, not stored yet (see :meth:`update`)."""
        old = self.records.get(key)
        record = BackoffRecord(key, old.failures, old.last_failure) if old else BackoffRecord(key)
        succeeded = sorted(succeeded, key=JobPod.finished_time)
        failed = sorted(failed, key=JobPod.finished_time)
        if not succeeded:
            if failed:
                record.failures += len(failed)
                record.last_failure = failed[-1].finished_time()
            return record
        record.failures = 0
        record.last_failure = None
        last_success = succeeded[-1].finished_time()
        for pod in reversed(failed):
            finished = pod.finished_time()
            if finished <= last_success:
                break
            if record.last_failure is None:
                record.last_failure = finished
            record.failures += 1
        return record

    def update(self, record: BackoffRecord) -> None:
        self.records[record.key] = record

    def remove(self, key: str) -> None:
        self.records.pop(key, None)
