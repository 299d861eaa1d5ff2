"""Typed views of the statuses the Katib controllers write, with Katib's condition rules.

Katib's ``setCondition`` keeps a condition whose status and reason are unchanged, and
otherwise moves it to the end of the list (so the CRDs' ``.status.conditions[-1:]``
columns show the latest state); ``lastTransitionTime`` moves only when the status does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from wonderland.api.schemas.katib import Metric, ObjectiveSpec, ParameterAssignment, TrialAssignment
from wonderland.workloads.views import View, format_time

__all__ = [
    "UNAVAILABLE",
    "ExperimentStatusView",
    "KatibCondition",
    "OptimalTrialView",
    "StatusView",
    "SuggestionStatusView",
    "TrialStatusView",
    "TrialSummary",
    "TrialSummarySpec",
    "as_float",
    "objective_value",
]

Obj = dict[str, Any]

UNAVAILABLE = "unavailable"


class KatibCondition(View):
    type: str
    status: str = ""
    reason: str = ""
    message: str = ""
    lastUpdateTime: str | None = None
    lastTransitionTime: str | None = None


class StatusView(View):
    """Conditions and the start/completion times every Katib status has."""

    startTime: str | None = None
    completionTime: str | None = None
    conditions: list[KatibCondition] = Field(default_factory=list)

    def find(self, kind: str) -> KatibCondition | None:
        return next((c for c in self.conditions if c.type == kind), None)

    def is_true(self, kind: str) -> bool:
        found = self.find(kind)
        return found is not None and found.status == "True"

    def set(self, kind: str, status: str, reason: str, message: str, now: datetime) -> None:
        found = self.find(kind)
        if found is not None and found.status == status and found.reason == reason:
            return
        stamp = format_time(now)
        transition = found.lastTransitionTime if found and found.status == status else stamp
        self.conditions = [c for c in self.conditions if c.type != kind]
        self.conditions.append(
            KatibCondition(
                type=kind,
                status=status,
                reason=reason,
                message=message,
                lastUpdateTime=stamp,
                lastTransitionTime=transition,
            )
        )

    def finish(self, kind: str, reason: str, message: str, now: datetime) -> None:
        """Katib's Mark...Succeeded/Failed: ``Running`` turns False, keeping its reason."""
        running = self.find("Running")
        if running is not None and running.status == "True":
            self.set("Running", "False", running.reason, running.message, now)
        self.set(kind, "True", reason, message, now)
        if self.completionTime is None:
            self.completionTime = format_time(now)

    def dump(self) -> Obj:
        return self.model_dump(mode="json", exclude_none=True)


class OptimalTrialView(View):
    bestTrialName: str = ""
    parameterAssignments: list[ParameterAssignment] = Field(default_factory=list)
    observation: Obj = Field(default_factory=dict)


class ExperimentStatusView(StatusView):
    lastReconcileTime: str | None = None
    currentOptimalTrial: OptimalTrialView = Field(default_factory=OptimalTrialView)
    runningTrialList: list[str] | None = None
    pendingTrialList: list[str] | None = None
    failedTrialList: list[str] | None = None
    succeededTrialList: list[str] | None = None
    killedTrialList: list[str] | None = None
    earlyStoppedTrialList: list[str] | None = None
    metricsUnavailableTrialList: list[str] | None = None
    trials: int | None = None
    trialsSucceeded: int | None = None
    trialsFailed: int | None = None
    trialsKilled: int | None = None
    trialsPending: int | None = None
    trialsRunning: int | None = None
    trialsEarlyStopped: int | None = None
    trialMetricsUnavailable: int | None = None

    def completed(self) -> bool:
        return self.is_true("Succeeded") or self.is_true("Failed")


class TrialObservationView(View):
    metrics: list[Metric] | None = None


class TrialStatusView(StatusView):
    lastReconcileTime: str | None = None
    observation: TrialObservationView | None = None
    # the dataset claims its runSpec mounts (wonderland.datasets.lineage)
    datasets: list[dict[str, str]] | None = None

    def completed(self) -> bool:
        return any(
            self.is_true(kind)
            for kind in ("Succeeded", "Failed", "MetricsUnavailable", "EarlyStopped", "Killed")
        )

    def state(self) -> str:
        """The trial's state as Katib's experiment status counts it."""
        for kind in ("Killed", "Failed", "Succeeded", "EarlyStopped", "Running"):
            if self.is_true(kind):
                return kind
        if self.is_true("MetricsUnavailable"):
            return "MetricsUnavailable"
        return "Pending"


class SuggestionStatusView(StatusView):
    lastReconcileTime: str | None = None
    algorithmSettings: list[Obj] | None = None
    suggestionCount: int = 0
    suggestions: list[TrialAssignment] = Field(default_factory=list)

    def completed(self) -> bool:
        return self.is_true("Succeeded") or self.is_true("Failed")


def objective_value(objective: ObjectiveSpec | None, metrics: list[Metric] | None) -> str:
    """Katib's ``getObjectiveMetricValue``: the objective metric by its strategy (min, max
    or latest), or ``unavailable``."""
    if objective is None:
        return UNAVAILABLE
    strategy = objective.strategy(objective.objectiveMetricName)
    for metric in metrics or []:
        if metric.name != objective.objectiveMetricName:
            continue
        if strategy == "min":
            return metric.latest if metric.min == UNAVAILABLE else metric.min
        if strategy == "max":
            return metric.latest if metric.max == UNAVAILABLE else metric.max
        return metric.latest
    return UNAVAILABLE


def as_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value else None  # NaN is no value


class TrialSummarySpec(View):
    """What the Experiment and Suggestion controllers read of a Trial's spec."""

    objective: ObjectiveSpec | None = None
    parameterAssignments: list[ParameterAssignment] | None = None


class TrialSummary(View):
    """A Trial as the Experiment and Suggestion controllers read it, every time any trial
    of the experiment changes: its metadata, assignments, objective and status, without
    validating the rendered run it carries."""

    metadata: dict[str, Any]
    spec: TrialSummarySpec = Field(default_factory=TrialSummarySpec)
    status: dict[str, Any] | None = None
