"""Create a Katib Experiment from a form, as the Katib UI's create form does.

``GET /experiments/new`` shows the form: name and namespace, the objective (direction,
metric, goal, other metrics), the search algorithm and its settings (``name=value``
pairs), how many trials (in parallel, at most, failed at most), early stopping (Katib's
``medianstop`` with its two settings), the metrics collector (standard output, a metrics
file with its path and format, or ``Push``, and the regular expression that finds a metric
in a line), the search space (a row per parameter: name, type, min/max/step or a
list) and the trial template (a Job with an image and a command, or a TrainJob on a
training runtime), where ``${trialParameters.NAME}`` stands for a parameter's value.
``POST /experiments/new`` with ``action=preview`` builds the Experiment, shows its YAML
and checks it with the platform's own validation in a transaction that is rolled back;
``action=create`` creates it, an ordinary create through the store (the admission
checks of ``wonderland apply``), and answers 303 to its page. A refused Experiment
answers 422 (409 when the name is taken) with each problem at its field and its line of
the YAML, linked to the field's docs; the form comes back as it was sent.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import yaml

from wonderland.console import objects
from wonderland.console.pages import Answer, Redirect, Rendered, Request
from wonderland.store import Store
from wonderland.tuning.admission import COLLECTORS
from wonderland.tuning.algorithms import ALGORITHMS
from wonderland.tuning.earlystopping import DEFAULT_MIN_TRIALS, DEFAULT_START_STEP

__all__ = [
    "ExperimentForm",
    "ExperimentFormPages",
    "FormError",
    "ParameterRow",
    "experiment_manifest",
    "parse_form",
]

PATH = "/experiments/new"
PARAMETER_ROWS = 4  # rows the form offers; ?rows=N (up to MAX_ROWS) for more
MAX_ROWS = 16
PARAMETER_TYPES = ("double", "int", "categorical", "discrete")
TRIAL_KINDS = ("Job", "TrainJob")
COUNTS = ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount")
EARLY_STOPPING = ("none", "medianstop")  # Katib's UI offers medianstop, its one algorithm
FILE_FORMATS = ("TEXT", "JSON")


@dataclass(frozen=True)
class ParameterRow:
    """One parameter of the search space; ``values`` is a comma-separated list (for
    categorical and discrete parameters)."""

    name: str = ""
    type: str = "double"
    min: str = ""
    max: str = ""
    step: str = ""
    values: str = ""


@dataclass(frozen=True)
class ExperimentForm:
    """The form's fields as they were sent (strings; the platform checks the values)."""

    name: str = ""
    namespace: str = "default"
    objective_type: str = "minimize"
    metric: str = "loss"
    goal: str = ""
    other_metrics: str = ""  # comma-separated
    algorithm: str = "random"
    algorithm_settings: str = ""  # name=value, comma-separated
    parallelTrialCount: str = "2"
    maxTrialCount: str = "6"
    maxFailedTrialCount: str = "2"
    early_stopping: str = "none"
    min_trials_required: str = ""
    start_step: str = ""
    collector: str = "StdOut"
    collector_path: str = ""  # the File collector's metrics file
    collector_format: str = "TEXT"
    metrics_format: str = ""  # a regular expression with two groups: name and value
    parameters: tuple[ParameterRow, ...] = (
        ParameterRow("lr", "double", "0.001", "0.1"),
        ParameterRow("hidden", "int", "4", "64"),
    )
    trial_kind: str = "Job"
    image: str = "python:3.11"
    runtime: str = "torch-distributed"
    command: str = "python3 train.py --lr=${trialParameters.lr} --hidden=${trialParameters.hidden}"

    def rows(self, count: int) -> list[ParameterRow]:
        """The parameter rows to show: the sent ones, then blank ones up to ``count``."""
        shown = list(self.parameters)
        return shown + [ParameterRow() for _ in range(max(0, count - len(shown)))]


@dataclass(frozen=True)
class FormError:
    """A form field that cannot become part of an Experiment: which, and why."""

    field: str  # the input's name
    message: str


def _one(form: Mapping[str, list[str]], name: str, default: str = "") -> str:
    values = form.get(name)
    return values[0].strip() if values else default


def parse_form(form: Mapping[str, list[str]]) -> ExperimentForm:
    """The sent form; parameter rows without a name are left out."""
    columns = {
        key: form.get(f"param_{key}") or [] for key in ("name", "type", "min", "max", "step")
    }
    columns["values"] = form.get("param_values") or []
    width = max((len(c) for c in columns.values()), default=0)

    def cell(key: str, i: int) -> str:
        column = columns[key]
        return column[i].strip() if i < len(column) else ""

    rows = tuple(
        ParameterRow(*(cell(k, i) for k in ("name", "type", "min", "max", "step", "values")))
        for i in range(min(width, MAX_ROWS))
        if cell("name", i)
    )
    blank = ExperimentForm()
    return ExperimentForm(
        name=_one(form, "name"),
        namespace=_one(form, "namespace") or "default",
        objective_type=_one(form, "objective_type", blank.objective_type),
        metric=_one(form, "metric"),
        goal=_one(form, "goal"),
        other_metrics=_one(form, "other_metrics"),
        algorithm=_one(form, "algorithm", blank.algorithm),
        algorithm_settings=_one(form, "algorithm_settings"),
        parallelTrialCount=_one(form, "parallelTrialCount"),
        maxTrialCount=_one(form, "maxTrialCount"),
        maxFailedTrialCount=_one(form, "maxFailedTrialCount"),
        early_stopping=_one(form, "early_stopping", blank.early_stopping),
        min_trials_required=_one(form, "min_trials_required"),
        start_step=_one(form, "start_step"),
        collector=_one(form, "collector", blank.collector),
        collector_path=_one(form, "collector_path"),
        collector_format=_one(form, "collector_format", blank.collector_format),
        metrics_format=_one(form, "metrics_format"),
        parameters=rows,
        trial_kind=_one(form, "trial_kind", blank.trial_kind),
        image=_one(form, "image"),
        runtime=_one(form, "runtime"),
        command=_one(form, "command"),
    )


def _number(value: str) -> int | float | str:
    """A goal as a number when it is one (the platform says what is wrong otherwise)."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value


def experiment_manifest(
    form: ExperimentForm,
) -> tuple[dict[str, Any], list[FormError]]:
    """The Experiment the form describes, and the fields that cannot be part of one (a
    count that is not a whole number, a command that is not shell words). Everything
    else is left to the platform's validation, which names the field it refuses."""
    errors: list[FormError] = []
    objective: dict[str, Any] = {"type": form.objective_type, "objectiveMetricName": form.metric}
    if form.goal:
        objective["goal"] = _number(form.goal)
    others = [m.strip() for m in form.other_metrics.split(",") if m.strip()]
    if others:
        objective["additionalMetricNames"] = others
    algorithm: dict[str, Any] = {"algorithmName": form.algorithm}
    settings = _settings(form.algorithm_settings, "algorithm_settings", errors)
    if settings:
        algorithm["algorithmSettings"] = settings
    spec: dict[str, Any] = {"objective": objective, "algorithm": algorithm}
    for key in COUNTS:
        text = getattr(form, key)
        if not text:
            continue
        try:
            spec[key] = int(text)
        except ValueError:
            errors.append(FormError(key, f'"{text}" is not a whole number'))
    if form.early_stopping != "none":
        early: dict[str, Any] = {"algorithmName": form.early_stopping}
        pairs = [
            {"name": name, "value": value}
            for name, value in (
                ("min_trials_required", form.min_trials_required),
                ("start_step", form.start_step),
            )
            if value
        ]
        if pairs:
            early["algorithmSettings"] = pairs
        spec["earlyStopping"] = early
    spec["metricsCollectorSpec"] = _collector(form)
    parameters: list[dict[str, Any]] = []
    for row in form.parameters:
        space: dict[str, Any] = {}
        if row.type in ("categorical", "discrete"):
            space["list"] = [v.strip() for v in row.values.split(",") if v.strip()]
        else:
            space.update({k: v for k, v in (("min", row.min), ("max", row.max)) if v})
            if row.step:
                space["step"] = row.step
        parameters.append({"name": row.name, "parameterType": row.type, "feasibleSpace": space})
    spec["parameters"] = parameters
    try:
        command = shlex.split(form.command)
    except ValueError as exc:
        errors.append(FormError("command", f"not shell words: {exc}"))
        command = []
    spec["trialTemplate"] = _trial_template(form, command)
    manifest = {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": form.name, "namespace": form.namespace},
        "spec": spec,
    }
    return manifest, errors


def _settings(text: str, name: str, errors: list[FormError]) -> list[dict[str, str]]:
    """``a=1, b=2`` as Katib's ``[{name, value}]`` list; an item without ``=`` is an error
    of the field ``name``. Values stay strings, as Katib sends them."""
    out: list[dict[str, str]] = []
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            errors.append(FormError(name, f'"{item.strip()}" is not name=value'))
            continue
        out.append({"name": key.strip(), "value": value.strip()})
    return out


def _collector(form: ExperimentForm) -> dict[str, Any]:
    """The metrics collector: its kind, the File collector's file, and the metric filter
    (the platform says what it refuses: a relative path, a filter on a JSON file, a regular
    expression without two groups, a collector it does not run)."""
    spec: dict[str, Any] = {"collector": {"kind": form.collector}}
    source: dict[str, Any] = {}
    if form.collector == "File":
        source["fileSystemPath"] = {
            "kind": "File",
            "path": form.collector_path or "/var/log/katib/metrics.log",
            "format": form.collector_format,
        }
    if form.metrics_format:
        source["filter"] = {"metricsFormat": [form.metrics_format]}
    if source:
        spec["source"] = source
    return spec


def _trial_template(form: ExperimentForm, command: list[str]) -> dict[str, Any]:
    """A Job (image and command) or a TrainJob (runtime and command) per trial, with a
    trial parameter per parameter of the search space (same name)."""
    trial_parameters = [{"name": p.name, "reference": p.name} for p in form.parameters]
    if form.trial_kind == "TrainJob":
        trainer: dict[str, Any] = {"numNodes": 1, "command": command}
        if form.image:
            trainer["image"] = form.image
        return {
            "primaryContainerName": "node",
            "trialParameters": trial_parameters,
            "trialSpec": {
                "apiVersion": "trainer.kubeflow.org/v1alpha1",
                "kind": "TrainJob",
                "spec": {"runtimeRef": {"name": form.runtime}, "trainer": trainer},
            },
        }
    container = {"name": "training-container", "image": form.image, "command": command}
    return {
        "primaryContainerName": "training-container",
        "trialParameters": trial_parameters,
        "trialSpec": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
        },
    }


@dataclass(frozen=True)
class YamlLine:
    number: int
    text: str
    problems: list[objects.Problem] = field(default_factory=list)


class ExperimentFormPages:
    """``GET|POST /experiments/new`` (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def answer(self, request: Request) -> Answer | None:
        if request.path != PATH:
            return None
        if request.method == "GET":
            rows = min(MAX_ROWS, max(PARAMETER_ROWS, _int(request.arg("rows"))))
            blank = ExperimentForm(namespace=request.arg("namespace") or "default")
            return Rendered("experiment_new.html", self._context(blank, rows))
        if request.method != "POST":
            return None
        sent = request.form()
        form = parse_form(sent)
        create = _one(sent, "action") == "create"
        manifest, errors = experiment_manifest(form)
        text = yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False)
        rows = max(PARAMETER_ROWS, len(form.parameters) + 1)
        context = self._context(form, rows)
        context["yaml"] = text
        if errors:
            context["form_errors"] = errors
            return Rendered("experiment_new.html", context, 422)
        outcome = objects.create_text(self.store, text, dry_run=not create)
        if outcome.problems:
            context["problems"] = outcome.problems
            context["lines"] = _numbered(text, outcome.problems)
            return Rendered("experiment_new.html", context, outcome.status)
        if create:
            return Redirect(f"/experiments/{quote(form.namespace)}/{quote(form.name)}")
        context["checked"] = True
        return Rendered("experiment_new.html", context)

    def _context(self, form: ExperimentForm, rows: int) -> dict[str, Any]:
        return {
            "nav": "experiments",
            "form": form,
            "rows": form.rows(rows),
            "more_rows": min(MAX_ROWS, rows + 4) if rows < MAX_ROWS else 0,
            "algorithms": list(ALGORITHMS),
            "algorithm_settings": {
                name: sorted(a.settings) for name, a in sorted(ALGORITHMS.items())
            },
            "early_stopping": EARLY_STOPPING,
            "early_defaults": (DEFAULT_MIN_TRIALS, DEFAULT_START_STEP),
            "collectors": COLLECTORS,
            "file_formats": FILE_FORMATS,
            "parameter_types": PARAMETER_TYPES,
            "trial_kinds": TRIAL_KINDS,
            "form_errors": [],
            "problems": [],
            "lines": [],
            "yaml": "",
            "checked": False,
            "page": {"resource_version": self.store.resource_version},
        }


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def _numbered(text: str, problems: list[objects.Problem]) -> list[YamlLine]:
    by_line: dict[int, list[objects.Problem]] = {}
    for p in problems:
        by_line.setdefault(p.line, []).append(p)
    return [YamlLine(i, line, by_line.get(i, [])) for i, line in enumerate(text.splitlines(), 1)]
