"""The status of a JobSet, typed, and the way the JobSet controller changes it: conditions
set as ``setCondition``/``updateCondition`` of kubernetes-sigs/jobset v0.12 set them (an event
per change, sent only once the status is stored), the reasons and messages of
``pkg/constants``, and the per replicated job counters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import Field

from wonderland.workloads.views import View, format_time

__all__ = [
    "COMPLETED",
    "FAILED",
    "RESTARTING",
    "STARTUP_COMPLETED",
    "STARTUP_IN_PROGRESS",
    "SUSPENDED",
    "Event",
    "JobSetCondition",
    "JobSetStatus",
    "ReplicatedJobStatus",
    "StatusUpdate",
]

Obj = dict[str, Any]

# Condition types.
COMPLETED = "Completed"
FAILED = "Failed"
SUSPENDED = "Suspended"
RESTARTING = "RestartingJobSet"
STARTUP_IN_PROGRESS = "StartupPolicyInProgress"
STARTUP_COMPLETED = "StartupPolicyCompleted"

# Reasons and messages (pkg/constants/constants.go).
REACHED_MAX_RESTARTS_REASON = "ReachedMaxRestarts"
REACHED_MAX_RESTARTS_MESSAGE = "jobset failed due to reaching max number of restarts"
FAILED_JOBS_REASON = "FailedJobs"
FAILED_JOBS_MESSAGE = "jobset failed due to one or more job failures"
ALL_JOBS_COMPLETED_REASON = "AllJobsCompleted"
ALL_JOBS_COMPLETED_MESSAGE = "jobset completed successfully"
JOB_CREATION_FAILED_REASON = "JobCreationFailed"
PVC_CREATION_FAILED_REASON = "PVCCreationFailed"
IN_ORDER_IN_PROGRESS_REASON = "InOrderStartupPolicyInProgress"
IN_ORDER_IN_PROGRESS_MESSAGE = "in order startup policy is in progress"
IN_ORDER_COMPLETED_REASON = "InOrderStartupPolicyCompleted"
IN_ORDER_COMPLETED_MESSAGE = "in order startup policy has completed"
RESTARTING_DEFAULT_POLICY_REASON = "DefaultFailurePolicy"
RESTARTING_RULE_REASON = "FailurePolicy_{}"
RESTARTING_JOBS_READY_REASON = "JobsReady"
RESTARTING_JOBS_READY_MESSAGE = "all jobs are ready"
RESTARTING_FAILED_REASON = "JobSetFailed"
RESTARTING_FAILED_MESSAGE = "jobset failed"
RESTARTING_COMPLETED_REASON = "JobSetCompleted"
RESTARTING_SUSPENDED_REASON = "JobSetSuspended"
SUSPENDED_REASON = "SuspendedJobs"
SUSPENDED_MESSAGE = "jobset is suspended"
RESUMED_REASON = "ResumeJobs"
RESUMED_MESSAGE = "jobset is resumed"

# Pairs of condition types that cannot both be True: setting one True sets the other False.
_EXCLUSIVE = {
    (STARTUP_IN_PROGRESS, STARTUP_COMPLETED),
    (STARTUP_COMPLETED, STARTUP_IN_PROGRESS),
}


class JobSetCondition(View):
    """A ``metav1.Condition`` of the JobSet."""

    type: str
    status: str = ""
    observedGeneration: int | None = None
    lastTransitionTime: str | None = None
    reason: str = ""
    message: str = ""

    def to_dict(self) -> Obj:
        out: Obj = {"type": self.type, "status": self.status}
        if self.observedGeneration is not None:
            out["observedGeneration"] = self.observedGeneration
        out["lastTransitionTime"] = self.lastTransitionTime or ""
        out["reason"] = self.reason
        out["message"] = self.message
        return out


class ReplicatedJobStatus(View):
    """``status.replicatedJobsStatus[]``: Jobs of one replicated job by state."""

    name: str
    ready: int = 0
    succeeded: int = 0
    failed: int = 0
    active: int = 0
    suspended: int = 0
    jobRestarts: list[int] | None = None
    jobRestartsCountTowardsMax: list[int] | None = None

    def to_dict(self) -> Obj:
        out: Obj = {
            "name": self.name,
            "ready": self.ready,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "active": self.active,
            "suspended": self.suspended,
        }
        if self.jobRestarts:
            out["jobRestarts"] = list(self.jobRestarts)
        if self.jobRestartsCountTowardsMax:
            out["jobRestartsCountTowardsMax"] = list(self.jobRestartsCountTowardsMax)
        return out


class JobSetStatus(View):
    """``status`` of a JobSet."""

    conditions: list[JobSetCondition] = Field(default_factory=list)
    restarts: int = 0
    restartsCountTowardsMax: int = 0
    terminalState: str = ""
    replicatedJobsStatus: list[ReplicatedJobStatus] = Field(default_factory=list)

    @classmethod
    def parse(cls, raw: Any) -> JobSetStatus:
        return cls.model_validate(raw if isinstance(raw, dict) else {})

    def true(self, kind: str) -> JobSetCondition | None:
        return next((c for c in self.conditions if c.type == kind and c.status == "True"), None)

    def finished(self) -> JobSetCondition | None:
        """The Completed or Failed condition of a finished JobSet (jobSetFinished)."""
        return next(
            (c for c in self.conditions if c.type in (COMPLETED, FAILED) and c.status == "True"),
            None,
        )

    def replicated(self, name: str) -> ReplicatedJobStatus | None:
        return next((s for s in self.replicatedJobsStatus if s.name == name), None)

    def total_restarts_towards_max(self) -> int:
        """Global restarts and every Job's own restarts that count towards maxRestarts."""
        own = sum(sum(s.jobRestartsCountTowardsMax or []) for s in self.replicatedJobsStatus)
        return self.restartsCountTowardsMax + own

    def to_dict(self) -> Obj:
        out: Obj = {}
        if self.conditions:
            out["conditions"] = [c.to_dict() for c in self.conditions]
        out["restarts"] = self.restarts
        if self.restartsCountTowardsMax:
            out["restartsCountTowardsMax"] = self.restartsCountTowardsMax
        if self.terminalState:
            out["terminalState"] = self.terminalState
        if self.replicatedJobsStatus:
            out["replicatedJobsStatus"] = [s.to_dict() for s in self.replicatedJobsStatus]
        return out


@dataclass(frozen=True)
class Event:
    """An event to record once the status it goes with is stored."""

    type: str
    reason: str
    message: str


@dataclass
class StatusUpdate:
    """What one reconcile changes (statusUpdateOpts): whether the status must be written and
    the events to send once it is."""

    status: JobSetStatus
    now: datetime
    should_update: bool = False
    events: list[Event] = field(default_factory=list)

    def set_condition(
        self, kind: str, status: str, reason: str, message: str, event_type: str = "Normal"
    ) -> bool:
        """setCondition: add or change a condition and queue an event with its reason and
        message; False (and nothing queued) when nothing changed."""
        if not self._update_condition(kind, status, reason, message):
            return False
        self.should_update = True
        self.events.append(Event(event_type, reason, message))
        return True

    def _update_condition(self, kind: str, status: str, reason: str, message: str) -> bool:
        stamp = format_time(self.now)
        found = changed = False
        conditions = self.status.conditions
        for position, current in enumerate(conditions):
            if current.type == kind:
                found = True
                if current.status != status:
                    conditions[position] = JobSetCondition(
                        type=kind,
                        status=status,
                        lastTransitionTime=stamp,
                        reason=reason,
                        message=message,
                    )
                    changed = True
                elif current.reason != reason or current.message != message:
                    # The same status with new words keeps its transition time.
                    conditions[position] = current.model_copy(
                        update={"reason": reason, "message": message}
                    )
                    changed = True
            elif (
                (current.type, kind) in _EXCLUSIVE and current.status == "True" and status == "True"
            ):
                conditions[position] = current.model_copy(update={"status": "False"})
                changed = True
        if not found and status == "True":
            conditions.append(
                JobSetCondition(
                    type=kind,
                    status=status,
                    lastTransitionTime=stamp,
                    reason=reason,
                    message=message,
                )
            )
            changed = True
        return changed

    def event(self, type: str, reason: str, message: str) -> None:
        """enqueueEvent: send this event once the status is stored."""
        self.events.append(Event(type, reason, message))

    # -- the conditions the controller sets -----------------------------------------

    def restarting_false(self, reason: str, message: str) -> None:
        self.set_condition(RESTARTING, "False", reason, message)

    def completed(self) -> None:
        """setJobSetCompletedCondition."""
        self.set_condition(COMPLETED, "True", ALL_JOBS_COMPLETED_REASON, ALL_JOBS_COMPLETED_MESSAGE)
        self.restarting_false(RESTARTING_COMPLETED_REASON, ALL_JOBS_COMPLETED_MESSAGE)
        self.status.terminalState = COMPLETED

    def failed(self, reason: str, message: str) -> None:
        """setJobSetFailedCondition."""
        self.set_condition(FAILED, "True", reason, message, "Warning")
        self.restarting_false(RESTARTING_FAILED_REASON, RESTARTING_FAILED_MESSAGE)
        self.status.terminalState = FAILED

    def suspended(self) -> None:
        self.set_condition(SUSPENDED, "True", SUSPENDED_REASON, SUSPENDED_MESSAGE)
        self.restarting_false(RESTARTING_SUSPENDED_REASON, SUSPENDED_MESSAGE)

    def resumed(self) -> None:
        self.set_condition(SUSPENDED, "False", RESUMED_REASON, RESUMED_MESSAGE)

    def in_order_in_progress(self) -> None:
        self.set_condition(
            STARTUP_IN_PROGRESS, "True", IN_ORDER_IN_PROGRESS_REASON, IN_ORDER_IN_PROGRESS_MESSAGE
        )

    def in_order_completed(self) -> None:
        self.set_condition(
            STARTUP_COMPLETED, "True", IN_ORDER_COMPLETED_REASON, IN_ORDER_COMPLETED_MESSAGE
        )
