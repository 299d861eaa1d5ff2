"""What the Experiments pages show: Katib Experiments and their Trials as typed data.

:func:`experiments` lists every Experiment with the Katib UI's columns (status, created,
succeeded/running/failed trials, the optimal trial and its objective); :func:`experiment`
is one Experiment's page: its objective, the best trial, every trial with its parameters,
objective value and state, and the data of its two charts (the objective over trials with
the running best, and the parallel coordinates of parameters and objective). Values are
Katib's own: a trial's objective is its objective metric by the metric's strategy
(``min``/``max``/``latest``), as Katib's ``getObjectiveMetricValue`` takes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from wonderland.api.schemas.katib import Metric, ObjectiveSpec, ParameterAssignment
from wonderland.errors import NotFoundError
from wonderland.store import Store
from wonderland.tuning.status import as_float, objective_value
from wonderland.workloads.views import ObjectMetaView, View

__all__ = [
    "EXPERIMENTS",
    "EXPERIMENT_LABEL",
    "TRIALS",
    "ExperimentPage",
    "ExperimentRow",
    "ExperimentsPage",
    "TrialRow",
    "experiment",
    "experiments",
]

EXPERIMENTS = "experiments.kubeflow.org"
TRIALS = "trials.kubeflow.org"
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
# the states a trial ends in that did not produce an objective the normal way
MARKED_STATES = frozenset({"Failed", "EarlyStopped", "Killed", "MetricsUnavailable"})


class _Cond(View):
    type: str = ""
    status: str = ""
    reason: str = ""
    message: str = ""


class _Observation(View):
    metrics: list[Metric] | None = None


class _Optimal(View):
    bestTrialName: str = ""
    parameterAssignments: list[ParameterAssignment] = Field(default_factory=list)
    observation: _Observation = Field(default_factory=_Observation)


class _ExperimentStatus(View):
    conditions: list[_Cond] = Field(default_factory=list)
    currentOptimalTrial: _Optimal = Field(default_factory=_Optimal)
    trials: int | None = None
    trialsSucceeded: int | None = None
    trialsFailed: int | None = None
    trialsRunning: int | None = None
    trialsPending: int | None = None
    trialsEarlyStopped: int | None = None
    trialsKilled: int | None = None
    trialMetricsUnavailable: int | None = None


class _Parameter(View):
    name: str = ""
    parameterType: str = ""


class _ExperimentSpec(View):
    objective: ObjectiveSpec | None = None
    parameters: list[_Parameter] = Field(default_factory=list)
    maxTrialCount: int | None = None
    parallelTrialCount: int | None = None
    algorithm: dict[str, Any] | None = None


class _Experiment(View):
    metadata: ObjectMetaView = Field(default_factory=ObjectMetaView)
    spec: _ExperimentSpec = Field(default_factory=_ExperimentSpec)
    status: _ExperimentStatus = Field(default_factory=_ExperimentStatus)


class _TrialSpec(View):
    objective: ObjectiveSpec | None = None
    parameterAssignments: list[ParameterAssignment] = Field(default_factory=list)


class _TrialStatus(View):
    conditions: list[_Cond] = Field(default_factory=list)
    observation: _Observation | None = None
    startTime: str | None = None
    completionTime: str | None = None


class _Trial(View):
    metadata: ObjectMetaView = Field(default_factory=ObjectMetaView)
    spec: _TrialSpec = Field(default_factory=_TrialSpec)
    status: _TrialStatus = Field(default_factory=_TrialStatus)


def _latest_true(conditions: list[_Cond], order: tuple[str, ...]) -> _Cond | None:
    for kind in order:
        for cond in conditions:
            if cond.type == kind and cond.status == "True":
                return cond
    return None


@dataclass(frozen=True)
class ExperimentRow:
    namespace: str
    name: str
    status: str  # Succeeded | Failed | Running | Restarting | Created
    reason: str
    message: str
    created: str
    objective: str  # "maximize accuracy"
    succeeded: int
    running: int
    failed: int
    early_stopped: int
    total: int
    optimal_trial: str
    optimal_value: str  # the objective of the optimal trial, "" when none yet


@dataclass(frozen=True)
class ExperimentsPage:
    experiments: list[ExperimentRow]
    resource_version: str


def _row(exp: _Experiment) -> ExperimentRow:
    status = exp.status
    found = _latest_true(status.conditions, ("Succeeded", "Failed", "Restarting", "Running"))
    state = found.type if found is not None else "Created"
    objective = exp.spec.objective
    value = ""
    optimal = status.currentOptimalTrial
    if optimal.bestTrialName:
        got = objective_value(objective, optimal.observation.metrics)
        value = "" if got == "unavailable" else got
    return ExperimentRow(
        exp.metadata.namespace,
        exp.metadata.name,
        state,
        found.reason if found is not None else "",
        found.message if found is not None else "",
        exp.metadata.creationTimestamp or "",
        f"{objective.type} {objective.objectiveMetricName}".strip() if objective else "",
        status.trialsSucceeded or 0,
        status.trialsRunning or 0,
        (status.trialsFailed or 0) + (status.trialMetricsUnavailable or 0),
        status.trialsEarlyStopped or 0,
        status.trials or 0,
        optimal.bestTrialName,
        value,
    )


def _items(store: Store, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
    try:
        items, _ = store.list(resource, namespace)
    except NotFoundError:  # the tuning plugin is not installed
        return []
    return items


def experiments(store: Store, namespace: str | None = None) -> ExperimentsPage:
    """Every Experiment (of ``namespace``, or all), newest first."""
    rv = store.resource_version
    rows = [_row(_Experiment.model_validate(raw)) for raw in _items(store, EXPERIMENTS, namespace)]
    rows.sort(key=lambda r: (r.created, r.namespace, r.name), reverse=True)
    return ExperimentsPage(rows, str(rv))


@dataclass(frozen=True)
class TrialRow:
    name: str
    state: (
        str  # Pending | Running | Succeeded | Failed | EarlyStopped | Killed | MetricsUnavailable
    )
    reason: str
    message: str
    params: dict[str, str]
    objective: float | None
    metrics: list[Metric]
    created: str
    completed: str
    best: bool = False

    @property
    def marked(self) -> bool:
        """Early-stopped, failed, killed or without metrics: shown apart in the table."""
        return self.state in MARKED_STATES


@dataclass(frozen=True)
class ExperimentPage:
    row: ExperimentRow
    objective_type: str  # maximize | minimize
    objective_metric: str
    goal: float | None
    parameters: list[str]
    algorithm: str
    best: TrialRow | None
    trials: list[TrialRow]
    missing: str  # why the charts are empty, "" when they are not
    conditions: list[tuple[str, str, str, str]]  # type, status, reason, message
    resource_version: str
    chart_data: dict[str, Any] = field(default_factory=dict)


def _trial_state(status: _TrialStatus) -> _Cond | None:
    return _latest_true(
        status.conditions,
        ("Killed", "Failed", "Succeeded", "EarlyStopped", "MetricsUnavailable", "Running"),
    )


def _why_missing(exp: _Experiment, trials: list[TrialRow]) -> str:
    metric = exp.spec.objective.objectiveMetricName if exp.spec.objective else "the objective"
    if not trials:
        return (
            "No trials yet: the Experiment's suggestion service creates them once the "
            "Experiment is running (see its conditions and events)."
        )
    if all(t.objective is None for t in trials):
        done = [t for t in trials if t.state not in ("Pending", "Running")]
        if not done:
            return (
                f"No trial has reported {metric} yet: the first values arrive when a trial's "
                "metrics collector reads them (at the end of the trial for the "
                "StdOut and File collectors)."
            )
        return (
            f"No trial reported {metric}: the metrics collector found no value. Check that "
            f"the training code prints or writes `{metric}=<value>` in the collector's "
            "format, and the trials' logs."
        )
    return ""


def experiment(store: Store, namespace: str, name: str) -> ExperimentPage:
    """One Experiment's page; ``NotFoundError`` when there is none."""
    rv = store.resource_version
    exp = _Experiment.model_validate(store.get(EXPERIMENTS, namespace, name))
    objective = exp.spec.objective
    direction = objective.type if objective is not None else ""
    best_name = exp.status.currentOptimalTrial.bestTrialName
    trials: list[TrialRow] = []
    for raw in _items(store, TRIALS, namespace):
        trial = _Trial.model_validate(raw)
        if trial.metadata.labels.get(EXPERIMENT_LABEL) != name:
            continue
        state = _trial_state(trial.status)
        metrics = (trial.status.observation.metrics if trial.status.observation else None) or []
        value = as_float(objective_value(trial.spec.objective or objective, metrics))
        trials.append(
            TrialRow(
                trial.metadata.name,
                state.type if state is not None else "Pending",
                state.reason if state is not None else "",
                state.message if state is not None else "",
                {p.name: p.value for p in trial.spec.parameterAssignments},
                value,
                list(metrics),
                trial.metadata.creationTimestamp or "",
                trial.status.completionTime or "",
                trial.metadata.name == best_name,
            )
        )
    trials.sort(key=lambda t: (t.created, t.name))
    best = next((t for t in trials if t.best), None)
    parameters = [p.name for p in exp.spec.parameters] or sorted(
        {k for t in trials for k in t.params}
    )
    return ExperimentPage(
        _row(exp),
        direction,
        objective.objectiveMetricName if objective is not None else "",
        objective.goal if objective is not None else None,
        parameters,
        str((exp.spec.algorithm or {}).get("algorithmName") or ""),
        best,
        trials,
        _why_missing(exp, trials),
        [(c.type, c.status, c.reason, c.message) for c in exp.status.conditions],
        str(rv),
        _chart_data(direction, parameters, trials),
    )


def _running_best(direction: str, values: list[float | None]) -> list[float | None]:
    out: list[float | None] = []
    best: float | None = None
    for value in values:
        if value is not None and (
            best is None or (value < best if direction == "minimize" else value > best)
        ):
            best = value
        out.append(best)
    return out


def _axis(name: str, values: list[str]) -> dict[str, Any]:
    """A parallel-coordinates axis: numeric when every value is a number, else the
    categories in order of first appearance."""
    numbers = [as_float(v) for v in values]
    if values and all(n is not None for n in numbers):
        return {"name": name, "kind": "number"}
    return {"name": name, "kind": "category", "categories": list(dict.fromkeys(values))}


def _chart_data(direction: str, parameters: list[str], trials: list[TrialRow]) -> dict[str, Any]:
    values = [t.objective for t in trials]
    scored = [t for t in trials if t.objective is not None]
    axes = [_axis(p, [t.params.get(p, "") for t in scored]) for p in parameters]
    return {
        "direction": direction,
        "history": {
            "trial": list(range(1, len(trials) + 1)),
            "names": [t.name for t in trials],
            "objective": values,
            "best": _running_best(direction, values),
        },
        "parallel": {
            "axes": axes,
            "lines": [
                {
                    "trial": t.name,
                    "state": t.state,
                    "values": [t.params.get(p, "") for p in parameters],
                    "objective": t.objective,
                }
                for t in scored
            ],
        },
    }
