"""What the Experiments pages show: Katib Experiments and their Trials as typed data.

:func:`experiments` lists every Experiment with the Katib UI's columns (status, created,
succeeded/running/failed trials, the optimal trial and its objective); :func:`experiment`
is one Experiment's page: its objective, the best trial, every trial with its parameters,
objective value and state (in the order the Suggestion handed them out), the data of its
charts (the objective over trials with the running best, the parallel coordinates of
parameters and objective) and one scatter of each parameter against the objective
(:func:`scatter_svg`); :func:`trial` is one Trial's page: its metric curves from the
observation log, its pods and conditions. Values are
Katib's own: a trial's objective is its objective metric by the metric's strategy
(``min``/``max``/``latest``), as Katib's ``getObjectiveMetricValue`` takes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from pydantic import Field

from wonderland.api.schemas.katib import Metric, ObjectiveSpec, ParameterAssignment
from wonderland.errors import NotFoundError
from wonderland.store import Store
from wonderland.tuning.observations import MetricLog
from wonderland.tuning.status import as_float, objective_value
from wonderland.workloads.views import ObjectMetaView, View

__all__ = [
    "EXPERIMENTS",
    "EXPERIMENT_LABEL",
    "SUGGESTIONS",
    "TRIALS",
    "TRIAL_LABEL",
    "ExperimentPage",
    "ExperimentRow",
    "ExperimentsPage",
    "ObservationReader",
    "Scatter",
    "TrialPage",
    "TrialPod",
    "TrialRow",
    "experiment",
    "experiments",
    "scatter_svg",
    "trial",
]

EXPERIMENTS = "experiments.kubeflow.org"
TRIALS = "trials.kubeflow.org"
SUGGESTIONS = "suggestions.kubeflow.org"
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
TRIAL_LABEL = "katib.kubeflow.org/trial"
JOBSET_LABEL = "jobset.sigs.k8s.io/jobset-name"
MAX_CURVE_POINTS = 1000  # points per metric on a trial's page
# Reads a trial's observation log (the tuning plugin's ObservationLogStore.get)
ObservationReader = Callable[[str], Sequence[MetricLog]]
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
    primaryContainerName: str = ""
    retainRun: bool = False
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


class _Handed(View):
    name: str = ""


class _SuggestionStatus(View):
    suggestions: list[_Handed] = Field(default_factory=list)


class _Suggestion(View):
    status: _SuggestionStatus = Field(default_factory=_SuggestionStatus)


class _PodStatus(View):
    phase: str = ""


class _Container(View):
    name: str = ""


class _PodSpec(View):
    containers: list[_Container] = Field(default_factory=list)


class _Pod(View):
    metadata: ObjectMetaView = Field(default_factory=ObjectMetaView)
    spec: _PodSpec = Field(default_factory=_PodSpec)
    status: _PodStatus = Field(default_factory=_PodStatus)


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
    scatters: list[Scatter] = field(default_factory=list)


def _trial_state(status: _TrialStatus) -> _Cond | None:
    return _latest_true(
        status.conditions,
        ("Killed", "Failed", "Succeeded", "EarlyStopped", "MetricsUnavailable", "Running"),
    )


def _trial_row(trial: _Trial, objective: ObjectiveSpec | None, best_name: str) -> TrialRow:
    state = _trial_state(trial.status)
    metrics = (trial.status.observation.metrics if trial.status.observation else None) or []
    value = as_float(objective_value(trial.spec.objective or objective, metrics))
    return TrialRow(
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


def _handed_order(store: Store, namespace: str, name: str) -> dict[str, int]:
    """Trial name → its place in the order the Experiment's Suggestion (of the same name)
    handed the assignments out: the true creation order, which ``creationTimestamp`` (whole
    seconds) cannot tell apart within a second."""
    try:
        raw = store.get(SUGGESTIONS, namespace, name)
    except NotFoundError:
        return {}
    handed = _Suggestion.model_validate(raw).status.suggestions
    return {a.name: i for i, a in enumerate(handed) if a.name}


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
    trials = [
        _trial_row(trial, objective, best_name)
        for trial in (_Trial.model_validate(raw) for raw in _items(store, TRIALS, namespace))
        if trial.metadata.labels.get(EXPERIMENT_LABEL) == name
    ]
    order = _handed_order(store, namespace, name)
    trials.sort(key=lambda t: (order.get(t.name, len(order)), t.created, t.name))
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
        [
            scatter_svg(p, direction, objective.objectiveMetricName if objective else "", trials)
            for p in parameters
        ],
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


# -- parameter against objective -----------------------------------------------------------


@dataclass(frozen=True)
class Scatter:
    """One parameter against the objective: an SVG drawing and its text summary."""

    parameter: str
    svg: str  # markup, every text in it escaped
    summary: str


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def scatter_svg(parameter: str, direction: str, metric: str, trials: Sequence[TrialRow]) -> Scatter:
    """The trials with an objective as points: ``parameter`` across (numeric, or its
    categories in order), the objective up; the best trial drawn larger and darker."""
    scored = [t for t in trials if t.objective is not None and parameter in t.params]
    width, height, left, right, top, bottom = 360, 220, 56, 16, 12, 36
    label = escape(metric or "objective")
    if not scored:
        return Scatter(parameter, "", f"No trial has both {parameter} and a value of {metric}.")
    values = [t.params[parameter] for t in scored]
    numbers = [as_float(v) for v in values]
    numeric = all(n is not None for n in numbers)
    categories = list(dict.fromkeys(values))
    objectives = [t.objective for t in scored if t.objective is not None]
    y_lo, y_hi = min(objectives), max(objectives)

    def x_of(i: int) -> float:
        span = width - left - right
        if numeric:
            xs = [n for n in numbers if n is not None]
            lo, hi = min(xs), max(xs)
            n = numbers[i]
            assert n is not None
            frac = 0.5 if hi == lo else (n - lo) / (hi - lo)
        else:
            k = categories.index(values[i])
            frac = 0.5 if len(categories) < 2 else k / (len(categories) - 1)
        return left + frac * span

    def y_of(v: float) -> float:
        frac = 0.5 if y_hi == y_lo else (v - y_lo) / (y_hi - y_lo)
        return top + (1 - frac) * (height - top - bottom)

    name = escape(parameter)
    parts = [
        f'<svg class="scatter-svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{label} against {name}, {len(scored)} trials" '
        f'data-parameter="{escape(parameter, {chr(34): "&quot;"})}">',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" '
        'stroke="currentColor"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="currentColor"/>',
        f'<text x="{(left + width - right) / 2}" y="{height - 4}" text-anchor="middle" '
        f'fill="currentColor">{name}</text>',
        f'<text x="{left - 6}" y="{y_of(y_hi) + 4:.1f}" text-anchor="end" fill="currentColor" '
        f'class="pc-tick">{_fmt(y_hi)}</text>',
    ]
    if y_hi != y_lo:
        parts.append(
            f'<text x="{left - 6}" y="{y_of(y_lo) + 4:.1f}" text-anchor="end" '
            f'fill="currentColor" class="pc-tick">{_fmt(y_lo)}</text>'
        )
    ticks: list[tuple[float, str]] = []
    if numeric:
        xs = [n for n in numbers if n is not None]
        if max(xs) != min(xs):
            ticks = [(left, _fmt(min(xs))), (width - right, _fmt(max(xs)))]
    else:
        ticks = [(x_of(values.index(c)), c) for c in categories]
    for x, text in ticks:
        parts.append(
            f'<text x="{x:.1f}" y="{height - bottom + 14}" text-anchor="middle" '
            f'fill="currentColor" class="pc-tick">{escape(str(text))}</text>'
        )
    for i, t in enumerate(scored):
        assert t.objective is not None
        size, fill = (6, "#0b3c8c") if t.best else (4, "#d9a21b")
        parts.append(
            f'<circle cx="{x_of(i):.1f}" cy="{y_of(t.objective):.1f}" r="{size}" fill="{fill}" '
            f'data-trial="{escape(t.name)}"><title>{escape(t.name)}: {name}={escape(values[i])}, '
            f"{label}={_fmt(t.objective)}</title></circle>"
        )
    parts.append("</svg>")
    best = min if direction == "minimize" else max
    top_trial = best(scored, key=lambda t: t.objective or 0.0)
    summary = (
        f"{len(scored)} trials; the best {metric} ({_fmt(top_trial.objective or 0.0)}) "
        f"at {parameter}={top_trial.params[parameter]}"
    )
    return Scatter(parameter, "".join(parts), summary)


# -- a trial -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialPod:
    name: str
    phase: str
    container: str


@dataclass(frozen=True)
class TrialPage:
    row: TrialRow
    namespace: str
    experiment: str
    objective_metric: str
    conditions: list[tuple[str, str, str, str]]
    pods: list[TrialPod]
    curves: dict[str, Any]  # {"metrics": [{"name", "t", "v"}]} for the charts
    curve_note: str  # why there is no curve, "" when there is one
    resource_version: str
    retained: bool = False  # the run (and its pods) outlive the trial


def trial(
    store: Store, observations: ObservationReader | None, namespace: str, name: str
) -> TrialPage:
    """One Trial's page; ``NotFoundError`` when there is none. ``observations`` reads the
    trial's observation log (every value its collector reported, in time order)."""
    rv = store.resource_version
    raw = _Trial.model_validate(store.get(TRIALS, namespace, name))
    experiment_name = raw.metadata.labels.get(EXPERIMENT_LABEL, "")
    objective = raw.spec.objective
    best = ""
    if experiment_name:
        try:
            exp = _Experiment.model_validate(store.get(EXPERIMENTS, namespace, experiment_name))
            best = exp.status.currentOptimalTrial.bestTrialName
            objective = objective or exp.spec.objective
        except NotFoundError:
            pass
    row = _trial_row(raw, objective, best)
    pods = []
    for pod_raw in _items(store, "pods", namespace):
        pod = _Pod.model_validate(pod_raw)
        labels = pod.metadata.labels
        # a Job trial labels its pods; a TrainJob trial's pods are named after its JobSet
        if labels.get(TRIAL_LABEL) != name and labels.get(JOBSET_LABEL) != name:
            continue
        names = [c.name for c in pod.spec.containers]
        primary = raw.spec.primaryContainerName
        container = primary if primary in names else (names[0] if names else "")
        pods.append(TrialPod(pod.metadata.name, pod.status.phase or "Pending", container))
    pods.sort(key=lambda p: p.name)
    series: dict[str, tuple[list[float], list[float]]] = {}
    note = ""
    if observations is None:
        note = "This console cannot read the observation log (no tuning plugin)."
    else:
        for log in observations(name):
            value = as_float(log.value)
            if value is None:
                continue
            t, v = series.setdefault(log.name, ([], []))
            t.append(log.timestamp.timestamp())
            v.append(value)
        if not series:
            note = (
                "No value reported yet: the trial's metrics collector writes each value it "
                "reads into the observation log (the StdOut and File collectors at the end of "
                "the trial, a TrainJob's reports as they come)."
            )
    curves = {
        "metrics": [
            {"name": k, "t": t[-MAX_CURVE_POINTS:], "v": v[-MAX_CURVE_POINTS:]}
            for k, (t, v) in series.items()
        ]
    }
    return TrialPage(
        row,
        namespace,
        experiment_name,
        objective.objectiveMetricName if objective is not None else "",
        [(c.type, c.status, c.reason, c.message) for c in raw.status.conditions],
        pods,
        curves,
        note,
        str(rv),
        raw.spec.retainRun,
    )
