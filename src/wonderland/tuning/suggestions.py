"""The Suggestion controller: Katib's suggestion controller and its Optuna service in one.

When the Experiment controller raises ``spec.requests`` above ``status.suggestionCount``,
the finished trials are told to the study, the study is asked for the missing
assignments, and each new assignment gets a trial name (``<experiment>-<8 random
characters>``, as Katib names them) and, with ``earlyStopping``, the current medianstop
rule. Grid search that has handed out every combination marks the Suggestion
``Succeeded`` (reason ``SuggestionExhausted``) so the experiment ends.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
from collections.abc import Callable
from datetime import UTC, datetime

from wonderland.api.schemas.katib import (
    ExperimentObject,
    SuggestionObject,
    TrialAssignment,
)
from wonderland.controllers import Result
from wonderland.errors import ConflictError, NotFoundError, WonderlandError
from wonderland.store import Store
from wonderland.tuning.admission import EXPERIMENTS, SUGGESTIONS, TRIALS, defaults_for
from wonderland.tuning.earlystopping import median_rule
from wonderland.tuning.observations import ObservationLogStore
from wonderland.tuning.status import (
    SuggestionStatusView,
    TrialStatusView,
    TrialSummary,
    as_float,
    objective_value,
)
from wonderland.tuning.studies import StudyBook, TrialOutcome

__all__ = ["EXPERIMENT_LABEL", "SuggestionReconciler", "trial_outcome"]

log = logging.getLogger("wonderland.tuning")

EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
_ALPHABET = string.ascii_lowercase + string.digits


def _utcnow() -> datetime:
    return datetime.now(UTC)


def trial_outcome(trial: TrialSummary) -> tuple[str, float | None]:
    """What the study is told about a trial: its state and objective value."""
    status = TrialStatusView.model_validate(trial.status or {})
    state = status.state()
    if state == "Succeeded":
        metrics = status.observation.metrics if status.observation else None
        return "complete", as_float(objective_value(trial.spec.objective, metrics))
    if state == "EarlyStopped":
        return "pruned", None
    if state in ("Failed", "Killed", "MetricsUnavailable"):
        return "fail", None
    return "running", None


class SuggestionReconciler:
    """Hands out assignments for Suggestions (see the module docstring)."""

    resource: str = SUGGESTIONS
    owns: tuple[str, ...] = ()
    watches: tuple[str, ...] = ()

    def __init__(
        self,
        store: Store,
        observations: ObservationLogStore,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.observations = observations
        self.clock = clock
        self.book = StudyBook()

    async def reconcile(self, namespace: str, name: str) -> Result | None:
        try:
            raw = self.store.get(SUGGESTIONS, namespace, name)
        except NotFoundError:
            return None
        suggestion = SuggestionObject.model_validate(raw)
        uid = str(suggestion.metadata.get("uid", ""))
        status = SuggestionStatusView.model_validate(raw.get("status") or {})
        before = status.dump()
        now = self.clock()
        if status.completed():
            self.book.forget(uid)
            return None
        if not status.conditions:
            status.set("Created", "True", "SuggestionCreated", "Suggestion is created", now)
            status.startTime = status.startTime or status.conditions[-1].lastUpdateTime
        if not status.is_true("Running"):
            status.set("Running", "True", "SuggestionRunning", "Suggestion is running", now)
        if suggestion.spec.algorithm is not None:
            status.algorithmSettings = [
                s.model_dump() for s in suggestion.spec.algorithm.algorithmSettings or []
            ] or None
        if suggestion.spec.requests > status.suggestionCount:
            try:
                await self._suggest(namespace, suggestion, status, now)
            except WonderlandError as exc:
                status.finish("Failed", "SuggestionFailed", f"Suggestion has failed: {exc}", now)
            except Exception as exc:  # a sampler error must not leave the experiment stuck
                log.exception("suggestion %s/%s failed", namespace, name)
                message = f"Suggestion has failed: {type(exc).__name__}: {exc}"
                status.finish("Failed", "SuggestionFailed", message, now)
        if status.dump() != before:
            self._write_status(raw, status)
        return None

    async def _suggest(
        self,
        namespace: str,
        suggestion: SuggestionObject,
        status: SuggestionStatusView,
        now: datetime,
    ) -> None:
        exp_name = str(suggestion.metadata["name"])
        try:
            exp_raw = self.store.get(EXPERIMENTS, namespace, exp_name)
        except NotFoundError:
            return
        spec = defaults_for(ExperimentObject.model_validate(exp_raw).spec)
        items, _ = self.store.list(TRIALS, namespace, {EXPERIMENT_LABEL: exp_name})
        trials = {t["metadata"]["name"]: TrialSummary.model_validate(t) for t in items}
        history: list[TrialOutcome] = []
        for assignment in status.suggestions:
            trial = trials.get(assignment.name)
            state, value = trial_outcome(trial) if trial is not None else ("running", None)
            history.append(
                TrialOutcome(assignment.name, assignment.parameterAssignments or [], state, value)
            )
        uid = str(suggestion.metadata.get("uid", ""))
        rule = None
        if spec.earlyStopping is not None and spec.objective is not None:
            succeeded = [
                self.observations.get(o.name, spec.objective.objectiveMetricName)
                for o in history
                if o.state == "complete"
            ]
            rule = median_rule(spec.earlyStopping, spec.objective, succeeded)
        wanted = suggestion.spec.requests - status.suggestionCount

        def work() -> tuple[list[TrialAssignment], bool]:
            tuned = self.book.study(uid, spec, history)
            if set(tuned.numbers) - {o.name for o in history}:
                # The experiment withdrew assignments (it deleted their trials when
                # parallelTrialCount was lowered): the study follows the status again.
                self.book.forget(uid)
                tuned = self.book.study(uid, spec, history)
            tuned.tell(history)
            out: list[TrialAssignment] = []
            for _ in range(wanted):
                if tuned.exhausted():
                    return out, True
                trial_name = self._new_name(exp_name, namespace, set(tuned.numbers))
                out.append(
                    TrialAssignment(
                        name=trial_name,
                        parameterAssignments=tuned.ask(trial_name),
                        earlyStoppingRules=[rule] if rule is not None else None,
                    )
                )
            return out, tuned.exhausted()

        new, exhausted = await asyncio.to_thread(work)
        status.suggestions.extend(new)
        status.suggestionCount = len(status.suggestions)
        if exhausted and len(new) < wanted:
            status.finish(
                "Succeeded",
                "SuggestionExhausted",
                f"Suggestion is succeeded: all {status.suggestionCount} combinations of the "
                "search space were suggested",
                now,
            )

    def _new_name(self, experiment: str, namespace: str, taken: set[str]) -> str:
        while True:
            name = f"{experiment}-{''.join(secrets.choice(_ALPHABET) for _ in range(8))}"
            if name in taken:
                continue
            try:
                self.store.get(TRIALS, namespace, name)
            except NotFoundError:
                return name

    def _write_status(self, raw: dict[str, object], status: SuggestionStatusView) -> None:
        body = dict(raw)
        body["status"] = status.dump()
        try:
            self.store.update_status(body)
        except (ConflictError, NotFoundError):
            # The spec moved on meanwhile: the next reconcile starts from the new object.
            # Assignments handed out are lost with it, and the study forgets them too.
            uid = str((raw.get("metadata") or {}).get("uid", ""))  # type: ignore[attr-defined]
            self.book.forget(uid)
            raise
