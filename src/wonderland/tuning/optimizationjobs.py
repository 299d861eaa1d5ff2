"""The OptimizationJob controller (``trainer.kubeflow.org/v1alpha1``, alpha): KEP-3562 as
the open upstream controller (PR #3828) implements it, on the Optuna studies Experiments use.

Each trial is a TrainJob built from ``spec.trainJobTemplate``: named ``<job>-trial-<n>``
(n counts from 0), labelled ``trainer.kubeflow.org/optimizationjob-name=<job>``, controlled
by the OptimizationJob (deleting the job deletes its trials), each hyperparameter both in
``spec.trainer.env`` as ``KUBEFLOW_TRAINER_OPT_<NAME>`` (the name upper-cased, nothing
else changed, as upstream) and as the annotation ``trainer.kubeflow.org/opt-param-<name>``.
At most ``parallelTrials`` trials run at once and ``numTrials`` are made in all.

A trial's objective is the value of ``objectives[0].metric`` in its TrainJob's
``status.trainerStatus.metrics`` (what ``kubeflow.trainer.update_trainjob_status`` sends)
once the TrainJob is ``Complete``; a Complete trial without the metric counts as failed for
the study. The study is the one Katib Experiments use (:class:`~.studies.StudyBook`): the
controller keeps no state of its own, so after a daemon restart the study is rebuilt from
the trial TrainJobs' annotations and statuses, as upstream's stateless controller does.

Conditions (``metav1.Condition``): ``Created`` (True, ``AlgorithmServiceCreated``; False,
``TrainJobsCreationFailed`` when a trial cannot be created), ``Complete``
(``MaxTrialsReached``, or ``SearchSpaceExhausted`` when grid search ran every combination
before ``numTrials``), ``Failed`` (``AllTrialsFailed``; ``MetricsUnavailable`` when trials
succeeded but none reported the objective metric; ``TrainJobsCreationFailed`` when the
template cannot make a valid TrainJob). ``status.result`` is the best trial so far.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from wonderland.api.owners import controller_ref
from wonderland.api.schemas.katib import ExperimentSpec
from wonderland.api.schemas.katib import ParameterAssignment as KatibAssignment
from wonderland.api.schemas.optimization import (
    OptimizationJobObject,
    OptimizationJobSpec,
    OptimizationResult,
    ParameterAssignment,
)
from wonderland.controllers import Result
from wonderland.controllers.events import EventRecorder
from wonderland.errors import (
    AlreadyExistsError,
    InvalidError,
    NotFoundError,
    WonderlandError,
)
from wonderland.store import Store
from wonderland.store.status import replace_status
from wonderland.training.optimization_admission import OPTIMIZATIONJOBS
from wonderland.training.trainjobs import TRAINJOBS
from wonderland.tuning.optimization_search import experiment_spec, is_grid
from wonderland.tuning.studies import StudyBook, TrialOutcome
from wonderland.workloads.views import (
    ConditionsView,
    ConditionView,
    ObjectMetaView,
    View,
)

__all__ = [
    "ENV_PREFIX",
    "JOB_LABEL",
    "PARAM_ANNOTATION_PREFIX",
    "OptimizationJobReconciler",
    "check_parameter_name",
    "env_name",
    "trial_name",
]

log = logging.getLogger("wonderland.tuning")

Obj = dict[str, Any]
API_VERSION = "trainer.kubeflow.org/v1alpha1"
JOB_LABEL = "trainer.kubeflow.org/optimizationjob-name"
PARAM_ANNOTATION_PREFIX = "trainer.kubeflow.org/opt-param-"
ENV_PREFIX = "KUBEFLOW_TRAINER_OPT_"
COMPONENT = "optimizationjob-controller"
# what the API server accepts as an env var name and as the name part of an annotation key
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def env_name(parameter: str) -> str:
    """``KUBEFLOW_TRAINER_OPT_<NAME>``: the parameter's name upper-cased (upstream's rule)."""
    return ENV_PREFIX + parameter.upper()


def check_parameter_name(index: int, name: str) -> None:
    """Refuse a parameter name a trial TrainJob cannot carry, with the API server's rule: it
    becomes the env var ``KUBEFLOW_TRAINER_OPT_<NAME>`` and the annotation key
    ``trainer.kubeflow.org/opt-param-<name>`` (whose name part holds at most 63 characters)."""
    key = PARAM_ANNOTATION_PREFIX.rsplit("/", 1)[1] + name
    at = f"spec.parameters[{index}].name"
    if not _ENV_NAME.match(env_name(name)):
        raise InvalidError(
            at,
            f'Invalid value: "{name}": the trials\' env var {env_name(name)} is not a valid '
            "environment variable name (letters, digits, '_', '-', '.'); rename the parameter",
        )
    if len(key) > 63 or not _QUALIFIED_NAME.match(key):
        raise InvalidError(
            at,
            f'Invalid value: "{name}": the trials\' annotation key '
            f"{PARAM_ANNOTATION_PREFIX}{name} is not a valid qualified name (at most 63 "
            "characters of letters, digits, '-', '_', '.' in its name part, starting and "
            "ending with a letter or digit); rename the parameter",
        )


def trial_name(job: str, index: int) -> str:
    """The name of the job's trial number ``index`` (upstream's ``<job>-trial-<n>``)."""
    return f"{job}-trial-{index}"


# -- typed views -------------------------------------------------------------------------------


class MetricView(View):
    name: str = ""
    value: str = ""


class TrainerStatusView(View):
    metrics: list[MetricView] = Field(default_factory=list)


class TrialStatusView(View):
    conditions: list[ConditionView] = Field(default_factory=list)
    trainerStatus: TrainerStatusView | None = None


class TrialView(View):
    """A trial TrainJob: its metadata and the parts of its status the controller reads."""

    metadata: ObjectMetaView
    status: TrialStatusView = Field(default_factory=TrialStatusView)

    @property
    def name(self) -> str:
        return self.metadata.name

    def index(self) -> int:
        suffix = self.name.rsplit("-", 1)[-1]
        return int(suffix) if suffix.isdigit() else -1

    def _true(self, kind: str) -> ConditionView | None:
        return next(
            (c for c in self.status.conditions if c.type == kind and c.status == "True"), None
        )

    def state(self) -> str:
        """``complete``, ``fail`` or ``running`` (also while it has not started)."""
        if self._true("Complete") is not None:
            return "complete"
        if self._true("Failed") is not None:
            return "fail"
        return "running"

    def failure(self) -> str:
        found = self._true("Failed")
        return found.message if found is not None else ""

    def metric(self, name: str) -> str | None:
        trainer = self.status.trainerStatus
        if trainer is None:
            return None
        return next((m.value for m in trainer.metrics if m.name == name), None)

    def value(self, name: str) -> float | None:
        text = self.metric(name)
        try:
            return float(text) if text is not None else None
        except ValueError:
            return None

    def parameters(self, names: list[str]) -> list[ParameterAssignment]:
        """The hyperparameters it ran with, from its annotations, in ``names`` order."""
        notes = self.metadata.annotations
        return [
            ParameterAssignment(name=n, value=notes[PARAM_ANNOTATION_PREFIX + n])
            for n in names
            if PARAM_ANNOTATION_PREFIX + n in notes
        ]


class OptimizationJobStatusView(ConditionsView):
    result: OptimizationResult | None = None

    def dump(self) -> Obj:
        out: Obj = self.conditions_dict()
        if self.result is not None:
            out["result"] = self.result.model_dump(exclude_none=True)
        return out


# -- the controller ----------------------------------------------------------------------------


class OptimizationJobReconciler:
    """Runs OptimizationJobs (see the module docstring)."""

    resource: str = OPTIMIZATIONJOBS
    owns: tuple[str, ...] = (TRAINJOBS,)
    watches: tuple[str, ...] = ()

    def __init__(
        self, store: Store, record: EventRecorder, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self.store = store
        self.record = record
        self.clock = clock
        self.book = StudyBook()
        self._uids: dict[tuple[str, str], str] = {}

    async def reconcile(self, namespace: str, name: str) -> Result | None:
        try:
            raw = self.store.get(OPTIMIZATIONJOBS, namespace, name)
        except NotFoundError:
            uid = self._uids.pop((namespace, name), None)
            if uid is not None:
                self.book.forget(uid)
            return None
        job = OptimizationJobObject.model_validate(raw)
        meta = ObjectMetaView.model_validate(raw["metadata"])
        status = OptimizationJobStatusView.model_validate(raw.get("status") or {})
        before = status.dump()
        now = self.clock()
        if status.finished():
            self.book.forget(meta.uid)
            return None
        self._uids[(namespace, name)] = meta.uid
        spec = job.spec
        trials = self._trials(meta)
        status.result = _best(spec, trials) or status.result
        try:
            search = experiment_spec(spec)
        except WonderlandError as exc:
            self._fail(raw, status, "TrainJobsCreationFailed", str(exc), now)
            self._write_status(raw, status)
            return None
        if status.find("Created") is None:
            status.set(
                "Created",
                "True",
                "AlgorithmServiceCreated",
                f"OptimizationJob is created: {'grid' if is_grid(spec) else 'random'} search "
                f"over {len(spec.parameters)} parameter(s) with Optuna",
                now,
            )
        if not self._conclude(raw, spec, status, trials, exhausted=False, now=now):
            await self._spawn(raw, meta, spec, search, status, trials, now)
        if status.dump() != before:
            self._write_status(raw, status)
        return None

    def _trials(self, meta: ObjectMetaView) -> list[TrialView]:
        items, _ = self.store.list(TRAINJOBS, meta.namespace, {JOB_LABEL: meta.name})
        views = [TrialView.model_validate(t) for t in items]
        owned = [t for t in views if any(ref.uid == meta.uid for ref in t.metadata.ownerReferences)]
        return sorted(owned, key=lambda t: (t.index(), t.name))

    def _conclude(
        self,
        raw: Obj,
        spec: OptimizationJobSpec,
        status: OptimizationJobStatusView,
        trials: list[TrialView],
        *,
        exhausted: bool,
        now: datetime,
    ) -> bool:
        """Finish the job when every trial it will make has finished; whether it did."""
        num = spec.numTrials or 1
        active = [t for t in trials if t.state() == "running"]
        if active or not trials or (len(trials) < num and not exhausted):
            return False
        failed = [t for t in trials if t.state() == "fail"]
        metric = spec.objectives[0].metric
        if len(failed) == len(trials):
            last = failed[-1]
            why = f" (the last, {last.name}: {last.failure()})" if last.failure() else ""
            self._fail(
                raw,
                status,
                "AllTrialsFailed",
                f"{len(failed)} out of {len(trials)} trials failed{why}",
                now,
            )
            return True
        if status.result is None:
            self._fail(
                raw,
                status,
                "MetricsUnavailable",
                f"{len(trials) - len(failed)} trial(s) completed but none reported the "
                f"objective metric {metric!r} in status.trainerStatus.metrics; report it from "
                f"the training code with kubeflow.trainer.update_trainjob_status("
                f"metrics={{{metric!r}: value}}) or a POST to $KUBEFLOW_TRAINER_SERVER_URL",
                now,
            )
            return True
        best = status.result.trainJobName
        value = next((t.metric(metric) for t in trials if t.name == best), None)
        reason = "MaxTrialsReached" if len(trials) >= num else "SearchSpaceExhausted"
        why = (
            f"all {len(trials)} trials finished"
            if reason == "MaxTrialsReached"
            else f"grid search ran all {len(trials)} combinations of the search space"
        )
        message = (
            f"OptimizationJob is complete: {why} ({len(failed)} failed); the best is "
            f"{best} with {metric}={value}"
        )
        status.set("Complete", "True", reason, message, now)
        self.record(self.store, raw, "Normal", reason, message, COMPONENT)
        return True

    def _fail(
        self, raw: Obj, status: OptimizationJobStatusView, reason: str, message: str, now: datetime
    ) -> None:
        status.set("Failed", "True", reason, message, now)
        self.record(self.store, raw, "Warning", reason, message, COMPONENT)

    async def _spawn(
        self,
        raw: Obj,
        meta: ObjectMetaView,
        spec: OptimizationJobSpec,
        search: ExperimentSpec,
        status: OptimizationJobStatusView,
        trials: list[TrialView],
        now: datetime,
    ) -> None:
        num = spec.numTrials or 1
        parallel = spec.parallelTrials or 1
        active = sum(t.state() == "running" for t in trials)
        wanted = min(parallel - active, num - len(trials))
        if wanted <= 0:
            return
        metric = spec.objectives[0].metric
        names = [p.name for p in spec.parameters]
        history = [
            TrialOutcome(
                t.name,
                [KatibAssignment(name=a.name, value=a.value) for a in t.parameters(names)],
                t.state(),
                t.value(metric) if t.state() == "complete" else None,
            )
            for t in trials
        ]
        start = max((t.index() for t in trials), default=-1) + 1

        def work() -> tuple[list[tuple[str, list[KatibAssignment]]], bool]:
            tuned = self.book.study(meta.uid, search, history)
            tuned.tell(history)
            out: list[tuple[str, list[KatibAssignment]]] = []
            for i in range(wanted):
                if tuned.exhausted():
                    break
                name = trial_name(meta.name, start + i)
                out.append((name, tuned.ask(name)))
            return out, tuned.exhausted()

        new, exhausted = await asyncio.to_thread(work)
        for name, assignments in new:
            try:
                self._create_trial(raw, spec, name, assignments)
            except AlreadyExistsError:
                # made by an earlier pass whose list this one did not see: rebuild the study
                # from the TrainJobs next time rather than trust what it was told here
                self.book.forget(meta.uid)
                return
            except InvalidError as exc:
                self.book.forget(meta.uid)
                message = (
                    f"the trial TrainJob {name} built from spec.trainJobTemplate is invalid: "
                    f"{exc}; fix the template (or the parameter names, which become "
                    f"annotations {PARAM_ANNOTATION_PREFIX}<name>) and create the job again"
                )
                status.set("Created", "False", "TrainJobsCreationFailed", message, now)
                self._fail(raw, status, "TrainJobsCreationFailed", message, now)
                return
            except WonderlandError as exc:
                self.book.forget(meta.uid)
                message = f"could not create the trial TrainJob {name}: {exc}"
                status.set("Created", "False", "TrainJobsCreationFailed", message, now)
                self._write_status(raw, status)
                raise
        if exhausted and is_grid(spec) and not new:
            self._conclude(raw, spec, status, trials, exhausted=True, now=now)

    def _create_trial(
        self, raw: Obj, spec: OptimizationJobSpec, name: str, assignments: list[KatibAssignment]
    ) -> None:
        template = spec.trainJobTemplate
        trainjob_spec = template.spec.model_dump(exclude_none=True, by_alias=True)
        trainer = trainjob_spec.setdefault("trainer", {})
        env = [
            e for e in trainer.get("env") or [] if not str(e.get("name", "")).startswith(ENV_PREFIX)
        ]
        annotations: dict[str, str] = (
            dict(template.metadata.annotations or {}) if template.metadata else {}
        )
        labels: dict[str, str] = dict(template.metadata.labels or {}) if template.metadata else {}
        for i, parameter in enumerate(spec.parameters):
            check_parameter_name(i, parameter.name)
        for assignment in assignments:
            env.append({"name": env_name(assignment.name), "value": assignment.value})
            annotations[PARAM_ANNOTATION_PREFIX + assignment.name] = assignment.value
        trainer["env"] = env
        labels[JOB_LABEL] = raw["metadata"]["name"]
        metadata: Obj = {
            "name": name,
            "namespace": raw["metadata"]["namespace"],
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [controller_ref(raw)],
        }
        if template.metadata is not None and template.metadata.finalizers:
            metadata["finalizers"] = list(template.metadata.finalizers)
        body: Obj = {
            "apiVersion": API_VERSION,
            "kind": "TrainJob",
            "metadata": metadata,
            "spec": copy.deepcopy(trainjob_spec),
        }
        self.store.create(body)
        values = ", ".join(f"{a.name}={a.value}" for a in assignments)
        self.record(
            self.store,
            raw,
            "Normal",
            "TrainJobCreated",
            f"created trial {name} ({values})",
            COMPONENT,
        )

    def _write_status(self, raw: Obj, status: OptimizationJobStatusView) -> None:
        meta = raw["metadata"]
        replace_status(self.store, OPTIMIZATIONJOBS, meta["namespace"], meta["name"], status.dump())


def _best(spec: OptimizationJobSpec, trials: list[TrialView]) -> OptimizationResult | None:
    """The completed trial with the best objective value (the earliest on a tie)."""
    objective = spec.objectives[0]
    maximize = objective.direction == "Maximize"
    best: tuple[float, TrialView] | None = None
    for trial in trials:
        if trial.state() != "complete":
            continue
        value = trial.value(objective.metric)
        if value is None:
            continue
        if best is None or (value > best[0] if maximize else value < best[0]):
            best = (value, trial)
    if best is None:
        return None
    names = [p.name for p in spec.parameters]
    return OptimizationResult(trainJobName=best[1].name, parameters=best[1].parameters(names))
