"""The status of a batch/v1 Job, typed: counters, conditions, indexes and the pods not yet
counted, written back the way the API server serialises it (zero counters left out,
``ready``/``terminating`` always there, ``uncountedTerminatedPods: {}``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from wonderland.workloads.views import ConditionView, View, format_time

__all__ = [
    "COMPLETE",
    "FAILED",
    "FAILURE_TARGET",
    "SUCCESS_CRITERIA_MET",
    "SUSPENDED",
    "JobStatus",
    "UncountedTerminatedPods",
    "new_condition",
]

Obj = dict[str, Any]

COMPLETE = "Complete"
FAILED = "Failed"
FAILURE_TARGET = "FailureTarget"
SUCCESS_CRITERIA_MET = "SuccessCriteriaMet"
SUSPENDED = "Suspended"


def new_condition(
    kind: str, status: str, reason: str, message: str, now: datetime
) -> ConditionView:
    stamp = format_time(now)
    return ConditionView(
        type=kind,
        status=status,
        reason=reason,
        message=message,
        lastProbeTime=stamp,
        lastTransitionTime=stamp,
    )


class UncountedTerminatedPods(View):
    """UIDs of finished pods whose tracking finalizer is being removed."""

    succeeded: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)

    def to_dict(self) -> Obj:
        out: Obj = {}
        if self.succeeded:
            out["succeeded"] = list(self.succeeded)
        if self.failed:
            out["failed"] = list(self.failed)
        return out


class JobStatus(View):
    """``status`` of a Job."""

    conditions: list[ConditionView] = Field(default_factory=list)
    startTime: str | None = None
    completionTime: str | None = None
    active: int = 0
    succeeded: int = 0
    failed: int = 0
    terminating: int | None = None
    ready: int | None = None
    completedIndexes: str = ""
    failedIndexes: str | None = None
    uncountedTerminatedPods: UncountedTerminatedPods = Field(
        default_factory=UncountedTerminatedPods
    )

    @classmethod
    def parse(cls, raw: Any) -> JobStatus:
        return cls.model_validate(raw if isinstance(raw, dict) else {})

    def condition(self, kind: str) -> ConditionView | None:
        return next((c for c in self.conditions if c.type == kind), None)

    def true(self, kind: str) -> ConditionView | None:
        """The condition of type ``kind`` when its status is True."""
        found = self.condition(kind)
        return found if found is not None and found.status == "True" else None

    def finished(self) -> ConditionView | None:
        """The Complete or Failed condition of a finished Job (util.IsJobFinished)."""
        return next(
            (c for c in self.conditions if c.type in (COMPLETE, FAILED) and c.status == "True"),
            None,
        )

    def ensure(self, kind: str, status: str, reason: str, message: str, now: datetime) -> bool:
        """Set a condition (ensureJobConditionStatus): a missing one is only added when not
        False. Returns whether the list changed."""
        for position, current in enumerate(self.conditions):
            if current.type == kind:
                if (current.status, current.reason, current.message) != (status, reason, message):
                    self.conditions[position] = new_condition(kind, status, reason, message, now)
                    return True
                return False
        if status != "False":
            self.conditions.append(new_condition(kind, status, reason, message, now))
            return True
        return False

    def to_dict(self) -> Obj:
        out: Obj = {}
        if self.conditions:
            out["conditions"] = [c.to_dict() for c in self.conditions]
        if self.startTime:
            out["startTime"] = self.startTime
        if self.completionTime:
            out["completionTime"] = self.completionTime
        for counter in ("active", "succeeded", "failed"):
            if getattr(self, counter):
                out[counter] = getattr(self, counter)
        if self.terminating is not None:
            out["terminating"] = self.terminating
        if self.completedIndexes:
            out["completedIndexes"] = self.completedIndexes
        if self.failedIndexes is not None:
            out["failedIndexes"] = self.failedIndexes
        out["uncountedTerminatedPods"] = self.uncountedTerminatedPods.to_dict()
        if self.ready is not None:
            out["ready"] = self.ready
        return out
