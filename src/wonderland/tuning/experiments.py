"""The Experiment controller: Katib's ``experiment_controller.go``.

Each reconcile lists the experiment's trials, recounts them into the status (the name
lists, the counters, ``currentOptimalTrial``), decides whether the experiment is done
(goal reached, too many failed trials, ``maxTrialCount`` reached, the search space
exhausted) and otherwise keeps ``parallelTrialCount`` trials active: it raises the
Suggestion's ``spec.requests`` and creates a Trial for every assignment the Suggestion
controller handed out. When ``parallelTrialCount`` is lowered below the active trials, the
newest active trials are deleted (with their runs, whose processes stop) and their
assignments withdrawn from the Suggestion, as Katib's ``deleteTrials`` does. Trials are owned by the experiment, so deleting it deletes them and
their runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from wonderland.api.admission import ObjectReader
from wonderland.api.owners import controller_ref
from wonderland.api.schemas.katib import (
    ExperimentObject,
    ExperimentSpec,
    Metric,
    SuggestionObject,
    TrialAssignment,
)
from wonderland.controllers import Result
from wonderland.controllers.events import EventRecorder
from wonderland.errors import AlreadyExistsError, ConflictError, NotFoundError, WonderlandError
from wonderland.store import Store
from wonderland.store.status import replace_status
from wonderland.tracking.access import TrackingAccess
from wonderland.tracking.client import TrackingError
from wonderland.tracking.runs import opted_out
from wonderland.tuning.admission import EXPERIMENTS, SUGGESTIONS, TRIALS, defaults_for
from wonderland.tuning.status import (
    UNAVAILABLE,
    ExperimentStatusView,
    OptimalTrialView,
    SuggestionStatusView,
    TrialStatusView,
    TrialSummary,
    as_float,
    objective_value,
)
from wonderland.tuning.suggestions import EXPERIMENT_LABEL
from wonderland.tuning.templates import render, template_text

__all__ = ["ExperimentReconciler"]

log = logging.getLogger("wonderland.tuning")

Obj = dict[str, Any]
API_VERSION = "kubeflow.org/v1beta1"
COMPONENT = "experiment-controller"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ExperimentReconciler:
    """Runs Experiments (see the module docstring)."""

    resource: str = EXPERIMENTS
    owns: tuple[str, ...] = (TRIALS, SUGGESTIONS)
    watches: tuple[str, ...] = ()

    def __init__(
        self,
        store: Store,
        record: EventRecorder,
        clock: Callable[[], datetime] = _utcnow,
        tracking: TrackingAccess | None = None,
    ) -> None:
        self.store = store
        self.record = record
        self.clock = clock
        self.tracking = tracking

    async def reconcile(self, namespace: str, name: str) -> Result | None:
        try:
            raw = self.store.get(EXPERIMENTS, namespace, name)
        except NotFoundError:
            return None
        exp = ExperimentObject.model_validate(raw)
        spec = defaults_for(exp.spec)
        status = ExperimentStatusView.model_validate(raw.get("status") or {})
        before = status.dump()
        now = self.clock()
        if not status.conditions:
            status.set("Created", "True", "ExperimentCreated", "Experiment is created", now)
            status.startTime = status.startTime or status.conditions[-1].lastUpdateTime
        suggestion = self._suggestion(raw, spec)
        items, _ = self.store.list(TRIALS, namespace, {EXPERIMENT_LABEL: name})
        trials = sorted(
            (TrialSummary.model_validate(t) for t in items),
            key=lambda t: (str(t.metadata.get("creationTimestamp", "")), t.metadata["name"]),
        )
        goal_reached = self._summarise(spec, status, trials)
        sugg_status = SuggestionStatusView.model_validate(suggestion.status or {})
        self._restart_if_resumed(spec, status, now)
        if not status.completed():
            self._conditions(spec, status, goal_reached, sugg_status, now)
        if not status.completed():
            await self._wake_tracking(raw)
            try:
                self._reconcile_trials(raw, spec, status, suggestion, sugg_status, trials)
            except WonderlandError as exc:
                self.record(self.store, raw, "Warning", "ReconcileFailed", str(exc), COMPONENT)
                status.finish("Failed", "ExperimentFailed", f"Experiment has failed: {exc}", now)
        if status.completed():
            self._finish_suggestion(spec, suggestion, sugg_status, now)
        if status.dump() != before:
            self._write_status(raw, status)
        return None

    # -- status ------------------------------------------------------------------------

    def _summarise(
        self, spec: ExperimentSpec, status: ExperimentStatusView, trials: list[TrialSummary]
    ) -> bool:
        """Katib's ``updateTrialsSummary``: the lists, counters and optimal trial; whether
        the goal is reached."""
        lists: dict[str, list[str]] = {
            k: []
            for k in (
                "Killed",
                "Failed",
                "Succeeded",
                "EarlyStopped",
                "Running",
                "MetricsUnavailable",
                "Pending",
            )
        }
        objective = spec.objective
        assert objective is not None
        best: tuple[float, TrialSummary] | None = None
        goal_reached = False
        for trial in trials:
            view = TrialStatusView.model_validate(trial.status or {})
            lists[view.state()].append(str(trial.metadata["name"]))
            metrics = view.observation.metrics if view.observation else None
            text = objective_value(objective, metrics)
            value = as_float(text) if text != UNAVAILABLE else None
            if value is None:
                continue
            better = best is None or (
                value < best[0] if objective.type == "minimize" else value > best[0]
            )
            if better:
                best = (value, trial)
            if objective.goal is not None and best is not None:
                if objective.type == "minimize" and best[0] <= objective.goal:
                    goal_reached = True
                if objective.type == "maximize" and best[0] >= objective.goal:
                    goal_reached = True
        status.trials = len(trials)
        status.runningTrialList = lists["Running"] or None
        status.pendingTrialList = lists["Pending"] or None
        status.failedTrialList = lists["Failed"] or None
        status.succeededTrialList = lists["Succeeded"] or None
        status.killedTrialList = lists["Killed"] or None
        status.earlyStoppedTrialList = lists["EarlyStopped"] or None
        status.metricsUnavailableTrialList = lists["MetricsUnavailable"] or None
        status.trialsRunning = len(lists["Running"])
        status.trialsPending = len(lists["Pending"])
        status.trialsSucceeded = len(lists["Succeeded"])
        status.trialsFailed = len(lists["Failed"])
        status.trialsKilled = len(lists["Killed"])
        status.trialsEarlyStopped = len(lists["EarlyStopped"])
        status.trialMetricsUnavailable = len(lists["MetricsUnavailable"])
        if best is not None:
            trial = best[1]
            view = TrialStatusView.model_validate(trial.status or {})
            best_metrics: list[Metric] = (
                view.observation.metrics if view.observation else None
            ) or []
            status.currentOptimalTrial = OptimalTrialView(
                bestTrialName=str(trial.metadata["name"]),
                parameterAssignments=list(trial.spec.parameterAssignments or []),
                observation={"metrics": [m.model_dump() for m in best_metrics]},
            )
        return goal_reached

    def _conditions(
        self,
        spec: ExperimentSpec,
        status: ExperimentStatusView,
        goal_reached: bool,
        suggestion: SuggestionStatusView,
        now: datetime,
    ) -> None:
        """Katib's ``UpdateExperimentStatusCondition``."""
        completed = sum(
            (
                status.trialsSucceeded or 0,
                status.trialsFailed or 0,
                status.trialsKilled or 0,
                status.trialsEarlyStopped or 0,
                status.trialMetricsUnavailable or 0,
            )
        )
        failed = (status.trialsFailed or 0) + (status.trialMetricsUnavailable or 0)
        active = (status.trialsPending or 0) + (status.trialsRunning or 0)
        if goal_reached:
            status.finish(
                "Succeeded",
                "ExperimentGoalReached",
                "Experiment has succeeded because Objective goal has reached",
                now,
            )
        elif spec.maxFailedTrialCount is not None and failed and failed >= spec.maxFailedTrialCount:
            status.finish(
                "Failed",
                "ExperimentFailed",
                "Experiment has failed because max failed count has reached",
                now,
            )
        elif spec.maxTrialCount is not None and completed >= spec.maxTrialCount:
            status.finish(
                "Succeeded",
                "ExperimentMaxTrialsReached",
                "Experiment has succeeded because max trial count has reached",
                now,
            )
        elif suggestion.is_true("Failed"):
            message = suggestion.find("Failed")
            status.finish(
                "Failed",
                "ExperimentFailed",
                f"Experiment has failed because the suggestion failed: "
                f"{message.message if message else ''}",
                now,
            )
        elif suggestion.is_true("Succeeded") and active == 0:
            status.finish(
                "Succeeded",
                "ExperimentSuggestionEndReached",
                "Experiment has succeeded because suggestion service has reached the end",
                now,
            )
        else:
            status.set("Running", "True", "ExperimentRunning", "Experiment is running", now)

    def _restart_if_resumed(
        self, spec: ExperimentSpec, status: ExperimentStatusView, now: datetime
    ) -> None:
        """A LongRunning or FromVolume experiment that reached maxTrialCount runs again
        once the count is raised (Katib's ``Restarting``). Both resume the same way here:
        the study is rebuilt from the store, so FromVolume needs no suggestion volume."""
        done = status.find("Succeeded")
        if (
            done is None
            or done.status != "True"
            or done.reason != "ExperimentMaxTrialsReached"
            or spec.resumePolicy not in ("LongRunning", "FromVolume")
            or spec.maxTrialCount is None
            or spec.maxTrialCount <= (status.trials or 0)
        ):
            return
        status.conditions = [c for c in status.conditions if c.type != "Succeeded"]
        status.completionTime = None
        status.set("Restarting", "True", "ExperimentRestarting", "Experiment is restarting", now)

    # -- children ----------------------------------------------------------------------

    def _suggestion(self, raw: Obj, spec: ExperimentSpec) -> SuggestionObject:
        meta = raw["metadata"]
        try:
            found = self.store.get(SUGGESTIONS, meta["namespace"], meta["name"])
        except NotFoundError:
            body: Obj = {
                "apiVersion": API_VERSION,
                "kind": "Suggestion",
                "metadata": {
                    "name": meta["name"],
                    "namespace": meta["namespace"],
                    "labels": {EXPERIMENT_LABEL: meta["name"]},
                    "ownerReferences": [controller_ref(raw)],
                },
                "spec": {
                    "algorithm": spec.algorithm.model_dump(exclude_none=True)
                    if spec.algorithm
                    else None,
                    "requests": 0,
                    "resumePolicy": spec.resumePolicy,
                },
            }
            if spec.earlyStopping is not None:
                body["spec"]["earlyStopping"] = spec.earlyStopping.model_dump(exclude_none=True)
            if body["spec"]["algorithm"] is None:
                del body["spec"]["algorithm"]
            try:
                found = self.store.create(body)
            except AlreadyExistsError:
                found = self.store.get(SUGGESTIONS, meta["namespace"], meta["name"])
        return SuggestionObject.model_validate(found)

    async def _wake_tracking(self, raw: Obj) -> None:
        """Start the tracking server before trials are made, when it is stopped: each
        trial's run is made before its Job or TrainJob, and a trial must not wait seconds
        for the server without its job (the Kubeflow SDK reads a trial's TrainJob as soon
        as it lists the trial, as on a cluster, where the two appear together)."""
        tracking = self.tracking
        if tracking is None or not tracking.enabled or tracking.running_uri() is not None:
            return
        if opted_out(raw["metadata"].get("annotations")):
            return
        try:
            await tracking.wake()
        except TrackingError as exc:
            # the trials run without runs; the Trial controller says so on each of them
            log.debug("the tracking server did not start: %s", exc)

    def _reconcile_trials(
        self,
        raw: Obj,
        spec: ExperimentSpec,
        status: ExperimentStatusView,
        suggestion: SuggestionObject,
        sugg_status: SuggestionStatusView,
        trials: list[TrialSummary],
    ) -> None:
        parallel = spec.parallelTrialCount or 3
        active = (status.trialsPending or 0) + (status.trialsRunning or 0)
        if active > parallel:
            self._delete_trials(raw, trials, active - parallel, parallel)
            return
        completed = sum(
            (
                status.trialsSucceeded or 0,
                status.trialsFailed or 0,
                status.trialsKilled or 0,
                status.trialsEarlyStopped or 0,
            )
        )
        if active >= parallel:
            return
        required = parallel
        if spec.maxTrialCount is not None:
            required = min(parallel, spec.maxTrialCount - completed)
        add = max(required - active, 0)
        if add == 0:
            return
        existing = {str(t.metadata["name"]) for t in trials}
        waiting = [a for a in sugg_status.suggestions if a.name not in existing]
        for assignment in waiting[:add]:
            self._create_trial(raw, spec, assignment)
        wanted = len(existing) + add
        missing = add - len(waiting[:add])
        if missing > 0 and suggestion.spec.requests < wanted and not sugg_status.completed():
            body = self.store.get(
                SUGGESTIONS, raw["metadata"]["namespace"], raw["metadata"]["name"]
            )
            body["spec"]["requests"] = wanted
            try:
                self.store.update(body)
            except ConflictError:
                pass  # changed meanwhile; the next reconcile asks again

    def _delete_trials(
        self, raw: Obj, trials: list[TrialSummary], count: int, parallel: int
    ) -> None:
        """Katib's ``deleteTrials``: delete the ``count`` newest trials, withdraw their
        assignments from the Suggestion (``spec.requests`` and ``status.suggestions``), so
        that they are neither created again nor told to the study.

        Katib sorts every trial by creation time and deletes the newest, whatever their
        state; only active trials are taken here, so that a result is never thrown away
        (with ``parallelTrialCount`` lowered mid-way the newest trials are the active ones
        anyway). Katib marks no ``Killed`` condition: the trials are gone.
        """
        meta = raw["metadata"]
        try:
            body = self.store.get(SUGGESTIONS, meta["namespace"], meta["name"])
        except NotFoundError:
            return
        kept = SuggestionStatusView.model_validate(body.get("status") or {})
        # Creation times have a resolution of a second; trials were created in the order
        # their assignments were handed out, which breaks the ties.
        handed = {a.name: i for i, a in enumerate(kept.suggestions)}
        active = [
            t
            for t in trials
            if TrialStatusView.model_validate(t.status or {}).state() in ("Running", "Pending")
        ]
        newest_first = sorted(
            active,
            key=lambda t: (
                str(t.metadata.get("creationTimestamp", "")),
                handed.get(str(t.metadata["name"]), -1),
            ),
            reverse=True,
        )
        doomed = [str(t.metadata["name"]) for t in newest_first[:count]]
        if not doomed:
            return
        kept.suggestions = [a for a in kept.suggestions if a.name not in doomed]
        kept.suggestionCount = len(kept.suggestions)
        try:
            # The spec first: with requests <= suggestionCount the Suggestion controller
            # hands out nothing new meanwhile.
            body["spec"]["requests"] = kept.suggestionCount
            body = self.store.update(body)
            body["status"] = kept.dump()
            self.store.update_status(body)
        except (ConflictError, NotFoundError):
            return  # changed meanwhile; the next reconcile tries again
        for name in doomed:
            try:
                self.store.delete(TRIALS, meta["namespace"], name)
            except NotFoundError:
                continue
        self.record(
            self.store,
            raw,
            "Normal",
            "TrialsDeleted",
            f"Deleted trials {', '.join(doomed)}: parallelTrialCount is {parallel}",
            COMPONENT,
        )

    def _create_trial(self, raw: Obj, spec: ExperimentSpec, assignment: TrialAssignment) -> None:
        meta = raw["metadata"]
        template = spec.trialTemplate
        assert template is not None and spec.metricsCollectorSpec is not None
        reader: ObjectReader = self.store
        text = template_text(template, reader)
        run = render(
            spec, text, assignment.name, meta["namespace"], assignment.parameterAssignments or []
        )
        labels = dict(assignment.labels or {})
        labels[EXPERIMENT_LABEL] = meta["name"]
        trial_spec: Obj = {
            "objective": spec.objective.model_dump(exclude_none=True) if spec.objective else {},
            "parameterAssignments": [a.model_dump() for a in assignment.parameterAssignments or []],
            "runSpec": run,
            "retainRun": template.retain,
            "metricsCollector": spec.metricsCollectorSpec.model_dump(exclude_none=True),
            "primaryContainerName": template.primaryContainerName,
            "successCondition": template.successCondition,
            "failureCondition": template.failureCondition,
        }
        if assignment.earlyStoppingRules:
            trial_spec["earlyStoppingRules"] = [
                r.model_dump() for r in assignment.earlyStoppingRules
            ]
        if template.primaryPodLabels:
            trial_spec["primaryPodLabels"] = dict(template.primaryPodLabels)
        if assignment.labels:
            trial_spec["labels"] = dict(assignment.labels)
        body = {
            "apiVersion": API_VERSION,
            "kind": "Trial",
            "metadata": {
                "name": assignment.name,
                "namespace": meta["namespace"],
                "labels": labels,
                "ownerReferences": [controller_ref(raw)],
            },
            "spec": trial_spec,
        }
        try:
            self.store.create(body)
        except AlreadyExistsError:
            return

    def _finish_suggestion(
        self,
        spec: ExperimentSpec,
        suggestion: SuggestionObject,
        sugg_status: SuggestionStatusView,
        now: datetime,
    ) -> None:
        """Katib's ``cleanupSuggestionResources``: with resumePolicy Never the suggestion
        ends with the experiment."""
        if sugg_status.completed() or spec.resumePolicy != "Never":
            return
        sugg_status.finish(
            "Succeeded",
            "Experiment is succeeded",
            "Suggestion is succeeded, can't be restarted",
            now,
        )
        meta = suggestion.metadata
        try:
            body = self.store.get(SUGGESTIONS, meta["namespace"], meta["name"])
        except NotFoundError:
            return
        body["status"] = sugg_status.dump()
        try:
            self.store.update_status(body)
        except ConflictError:
            pass

    def _write_status(self, raw: Obj, status: ExperimentStatusView) -> None:
        meta = raw["metadata"]
        replace_status(self.store, EXPERIMENTS, meta["namespace"], meta["name"], status.dump())
