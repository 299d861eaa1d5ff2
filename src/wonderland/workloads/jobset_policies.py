"""What a JobSet does when its Jobs finish or become ready: the failure policy
(``failure_policy.go``), the success policy (``success_policy.go``), ``dependsOn``
(``depends_on.go``) and the in-order startup policy (``startup_policy.go``) of
kubernetes-sigs/jobset v0.12.

A failed Job is matched against the failure policy's rules in order (failure reason,
message pattern, replicated job); the first rule with a matching Job decides, with the Job
that failed first among those it matches. Without a matching rule the JobSet is restarted
(``RestartJobSet``); without a failure policy it fails.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from wonderland.api.schemas.jobset import (
    FailurePolicy,
    FailurePolicyRule,
    JobSetObject,
    ReplicatedJob,
)
from wonderland.errors import WonderlandError
from wonderland.workloads.jobset_jobs import JOB_INDEX_KEY, ChildJob, replicas_of
from wonderland.workloads.jobset_status import (
    FAILED_JOBS_MESSAGE,
    FAILED_JOBS_REASON,
    REACHED_MAX_RESTARTS_MESSAGE,
    REACHED_MAX_RESTARTS_REASON,
    RESTARTING,
    RESTARTING_DEFAULT_POLICY_REASON,
    RESTARTING_RULE_REASON,
    ReplicatedJobStatus,
    StatusUpdate,
)
from wonderland.workloads.views import parse_time

__all__ = [
    "OwnedJobs",
    "all_replicas_started",
    "dependency_reached",
    "execute_failure_policy",
    "execute_success_policy",
    "in_order",
]

log = logging.getLogger("wonderland.workloads.jobsets")

DEFAULT_ACTION = "RestartJobSet"
_ACTION_EVENTS = {
    "FailJobSet": "FailJobSetFailurePolicyAction",
    "RestartJobSet": "RestartJobSetFailurePolicyAction",
    "RestartJobSetAndIgnoreMaxRestarts": "RestartJobSetAndIgnoreMaxRestartsFailurePolicyAction",
    "RestartJob": "RestartJobFailurePolicyAction",
    "RestartJobAndIgnoreMaxRestarts": "RestartJobAndIgnoreMaxRestartsFailurePolicyAction",
}


@dataclass
class OwnedJobs:
    """The Jobs a JobSet controls (childJobs): those of the current restart attempt by
    state, and those of an earlier attempt, which are deleted."""

    active: list[ChildJob] = field(default_factory=list)
    successful: list[ChildJob] = field(default_factory=list)
    failed: list[ChildJob] = field(default_factory=list)
    previous: list[ChildJob] = field(default_factory=list)

    def all(self) -> list[ChildJob]:
        return [*self.active, *self.successful, *self.failed, *self.previous]


def _with_first(message: str, job: str) -> str:
    return f"{message} (first failed job: {job})"


def _failed_at(job: ChildJob) -> datetime | None:
    failure = job.failure()
    if failure is None:
        return None
    return parse_time(failure[2]) or datetime.min.replace(tzinfo=UTC)


def first_failed(jobs: list[ChildJob]) -> ChildJob | None:
    """The Job whose Failed condition is the oldest (findFirstFailedJob)."""
    first: ChildJob | None = None
    first_at: datetime | None = None
    for job in jobs:
        at = _failed_at(job)
        if at is not None and (first_at is None or at < first_at):
            first, first_at = job, at
    return first


def _any_match(patterns: list[str], message: str) -> bool:
    for pattern in patterns:
        try:
            if re.search(pattern, message):
                return True
        except re.error as exc:
            log.warning("invalid regex %r in onJobFailureMessagePatterns: %s", pattern, exc)
    return False


def _applies(rule: FailurePolicyRule, job: ChildJob, reason: str, message: str) -> bool:
    """ruleIsApplicable: failure reason, message pattern and replicated job all match."""
    if rule.onJobFailureReasons and reason not in rule.onJobFailureReasons:
        return False
    patterns = rule.onJobFailureMessagePatterns
    if patterns and not _any_match(patterns, message):
        return False
    parent = job.replicated_job
    if not parent:
        return False
    return not rule.targetReplicatedJobs or parent in rule.targetReplicatedJobs


def _first_matching(
    rules: list[FailurePolicyRule], failed: list[ChildJob]
) -> tuple[FailurePolicyRule | None, ChildJob | None]:
    """findFirstFailedPolicyRuleAndJob: the first rule some failed Job matches, with the Job
    among those that failed first."""
    for rule in rules:
        matched: ChildJob | None = None
        matched_at: datetime | None = None
        for job in failed:
            failure = job.failure()
            if failure is None:
                continue
            at = _failed_at(job)
            earlier = matched_at is None or (at is not None and at < matched_at)
            if _applies(rule, job, failure[0], failure[1]) and earlier:
                matched, matched_at = job, at
        if matched is not None:
            return rule, matched
    return None, None


def execute_failure_policy(
    js: JobSetObject, failed: list[ChildJob], update: StatusUpdate, restart_job: bool
) -> None:
    """executeFailurePolicy, run when a Job of the current attempt failed."""
    policy = js.spec.failurePolicy
    if policy is None:
        first = first_failed(failed)
        name = first.name if first is not None else ""
        update.failed(FAILED_JOBS_REASON, _with_first(FAILED_JOBS_MESSAGE, name))
        return
    rule, job = _first_matching(policy.rules or [], failed)
    action = rule.action if rule is not None else DEFAULT_ACTION
    if rule is None:
        job = first_failed(failed)
    if job is None:
        return
    _apply(action, js, policy, rule, job, update, restart_job)


def _apply(
    action: str,
    js: JobSetObject,
    policy: FailurePolicy,
    rule: FailurePolicyRule | None,
    job: ChildJob,
    update: StatusUpdate,
    restart_job: bool,
) -> None:
    status = update.status
    limit = policy.maxRestarts or 0
    reason = _ACTION_EVENTS[action]
    message = _with_first(f"applying {action} failure policy action", job.name)
    if action == "FailJobSet":
        update.failed(reason, message)
        return
    if action in ("RestartJob", "RestartJobAndIgnoreMaxRestarts") and not restart_job:
        raise WonderlandError(
            f"{action} failure policy action cannot be used when the feature gate RestartJob "
            "is disabled"
        )
    counts = action in ("RestartJobSet", "RestartJob")
    over = (restart_job and status.total_restarts_towards_max() >= limit) or (
        action == "RestartJobSet" and status.restartsCountTowardsMax >= limit
    )
    if counts and over:
        update.failed(
            REACHED_MAX_RESTARTS_REASON, _with_first(REACHED_MAX_RESTARTS_MESSAGE, job.name)
        )
        return
    if action in ("RestartJobSet", "RestartJobSetAndIgnoreMaxRestarts"):
        # failurePolicyRecreateAll: the next reconcile deletes every Job of an older attempt.
        status.restarts += 1
        if counts:
            status.restartsCountTowardsMax += 1
        update.should_update = True
        condition_reason = (
            RESTARTING_RULE_REASON.format(rule.name)
            if rule is not None
            else RESTARTING_DEFAULT_POLICY_REASON
        )
        update.set_condition(RESTARTING, "True", condition_reason, message, "Warning")
        update.event("Warning", reason, message)
        log.info("jobset %s: restart attempt %d", js.metadata.get("name"), status.restarts)
        return
    _recreate_job(js, job, counts, update)
    update.event("Warning", reason, message)


def _recreate_job(js: JobSetObject, job: ChildJob, counts: bool, update: StatusUpdate) -> None:
    """failurePolicyRecreateJob: raise the Job's own restart attempt (and, when it counts,
    its restarts towards maxRestarts); the next reconcile deletes and recreates it."""
    rjob_name = job.replicated_job
    index_text = job.meta.labels.get(JOB_INDEX_KEY)
    if index_text is None or not index_text.isdigit():
        raise WonderlandError(f"failed job {job.name} has no valid job-index label")
    index = int(index_text)
    rjob = next((r for r in js.spec.replicatedJobs or [] if r.name == rjob_name), None)
    entry = update.status.replicated(rjob_name)
    if rjob is None or entry is None:
        raise WonderlandError(f"failed job {job.name}: no replicated job {rjob_name!r}")
    replicas = replicas_of(rjob)
    restarts = list(entry.jobRestarts or [0] * replicas)
    if index >= len(restarts):
        raise WonderlandError(
            f"failed job {job.name} has index {index} out of bounds for replicated job "
            f"{rjob_name} (replicas: {len(restarts)})"
        )
    restarts[index] += 1
    entry.jobRestarts = restarts
    if counts:
        towards = list(entry.jobRestartsCountTowardsMax or [0] * replicas)
        towards[index] += 1
        entry.jobRestartsCountTowardsMax = towards
    update.should_update = True


def execute_success_policy(
    js: JobSetObject, successful: list[ChildJob], update: StatusUpdate
) -> bool:
    """executeSuccessPolicy: mark the JobSet Completed when enough Jobs succeeded."""
    policy = js.spec.successPolicy
    targets = (policy.targetReplicatedJobs if policy else None) or []
    matching = sum(1 for job in successful if not targets or job.replicated_job in targets)
    if policy is not None and policy.operator == "Any":
        expected = 1
    else:
        expected = sum(
            replicas_of(r) for r in js.spec.replicatedJobs or [] if not targets or r.name in targets
        )
    if matching >= expected:
        update.completed()
        return True
    return False


def dependency_reached(
    rjob: ReplicatedJob, replicas: dict[str, int], statuses: list[ReplicatedJobStatus]
) -> bool:
    """dependencyReachedStatus: every replicated job this one depends on has all its Jobs
    Complete (succeeded) or Ready (ready, succeeded or failed)."""
    for dependency in rjob.dependsOn or []:
        actual = next((s for s in statuses if s.name == dependency.name), None)
        if actual is None:
            return False
        want = replicas.get(dependency.name, 0)
        if dependency.status == "Complete" and want != actual.succeeded:
            return False
        if dependency.status == "Ready" and want != actual.failed + actual.ready + actual.succeeded:
            return False
    return True


def all_replicas_started(replicas: int, status: ReplicatedJobStatus | None) -> bool:
    """Every Job of the replicated job is ready, succeeded or failed (allReplicasStarted)."""
    if status is None:
        return False
    return replicas == status.failed + status.ready + status.succeeded


def in_order(js: JobSetObject) -> bool:
    policy = js.spec.startupPolicy
    return policy is not None and policy.startupPolicyOrder == "InOrder"
