"""Optuna studies, one per Suggestion, driven ask/tell as Katib's Optuna service drives them.

The study lives in memory; what it needs to come back lives in the platform's store: the
Suggestion's ``status.suggestions`` (every assignment handed out, in order) and each
Trial's status. After a restart the study is rebuilt from them with
``study.add_trial(optuna.trial.create_trial(...))``: succeeded trials as COMPLETE with
their objective value, failed ones as FAIL, early-stopped ones as PRUNED, and the ones still
running as RUNNING (told once they finish), so the sampler continues from the same
history instead of starting over.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wonderland.api.schemas.katib import ExperimentSpec, ParameterAssignment
from wonderland.tuning import algorithms

if TYPE_CHECKING:
    import optuna

__all__ = ["StudyBook", "TrialOutcome", "TunedStudy"]

log = logging.getLogger("wonderland.tuning")


@dataclass(frozen=True)
class TrialOutcome:
    """One assignment handed out, and what became of its trial: ``state`` is ``running``
    (or not created yet), ``complete`` (with ``value``), ``fail`` or ``pruned``."""

    name: str
    assignments: Sequence[ParameterAssignment]
    state: str = "running"
    value: float | None = None


@dataclass
class TunedStudy:
    """A study and which Optuna trial number each Katib trial has."""

    study: optuna.Study
    spec: ExperimentSpec
    numbers: dict[str, int] = field(default_factory=dict)
    told: set[str] = field(default_factory=set)

    def tell(self, outcomes: Sequence[TrialOutcome]) -> None:
        """Tell the study every trial that finished since it was last told."""
        import optuna

        for outcome in outcomes:
            number = self.numbers.get(outcome.name)
            if number is None or outcome.name in self.told or outcome.state == "running":
                continue
            try:
                if outcome.state == "complete" and outcome.value is not None:
                    self.study.tell(number, outcome.value)
                elif outcome.state == "pruned":
                    self.study.tell(number, state=optuna.trial.TrialState.PRUNED)
                else:
                    self.study.tell(number, state=optuna.trial.TrialState.FAIL)
            except RuntimeError as exc:
                # GridSampler.after_trial calls study.stop() once every grid point has been
                # handed out, which raises outside study.optimize(); the trial is told by then
                if "Study.stop" not in str(exc):
                    raise
            self.told.add(outcome.name)

    def exhausted(self) -> bool:
        """Grid search has handed out every combination."""
        if self.spec.algorithm is None or self.spec.algorithm.algorithmName != "grid":
            return False
        return len(self.numbers) >= algorithms.grid_size(self.spec)

    def ask(self, name: str) -> list[ParameterAssignment]:
        """New assignments for the trial ``name``."""
        trial = self.study.ask(fixed_distributions=algorithms.distributions(self.spec))
        self.numbers[name] = trial.number
        return [
            ParameterAssignment(name=p.name, value=algorithms.format_value(trial.params[p.name]))
            for p in self.spec.parameters or []
        ]


def _grid_id(spec: ExperimentSpec, params: dict[str, Any]) -> tuple[dict[str, list[Any]], int]:
    """The GridSampler bookkeeping of a restored trial: its search space (names sorted, as
    GridSampler keeps it) and the index of its combination in their product."""
    space = {k: v for k, v in sorted(algorithms.grid_space(spec).items())}
    for index, combination in enumerate(itertools.product(*space.values())):
        if all(_same(params[name], value) for name, value in zip(space, combination, strict=True)):
            return space, index
    raise ValueError(f"assignment {params} is not on the grid")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


class StudyBook:
    """The studies of every Suggestion this daemon drives, by Suggestion uid."""

    def __init__(self) -> None:
        self._studies: dict[str, TunedStudy] = {}

    def forget(self, uid: str) -> None:
        self._studies.pop(uid, None)

    def study(self, uid: str, spec: ExperimentSpec, history: Sequence[TrialOutcome]) -> TunedStudy:
        """The Suggestion's study, rebuilt from ``history`` when this daemon has none."""
        found = self._studies.get(uid)
        if found is not None:
            return found
        built = self._rebuild(spec, history)
        self._studies[uid] = built
        return built

    def _rebuild(self, spec: ExperimentSpec, history: Sequence[TrialOutcome]) -> TunedStudy:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        assert spec.objective is not None
        direction = (
            optuna.study.StudyDirection.MAXIMIZE
            if spec.objective.type == "maximize"
            else optuna.study.StudyDirection.MINIMIZE
        )
        study = optuna.create_study(
            sampler=algorithms.sampler_for(spec, offset=len(history)), direction=direction
        )
        tuned = TunedStudy(study, spec)
        dists = algorithms.distributions(spec)
        grid = spec.algorithm is not None and spec.algorithm.algorithmName == "grid"
        states = {
            "complete": optuna.trial.TrialState.COMPLETE,
            "fail": optuna.trial.TrialState.FAIL,
            "pruned": optuna.trial.TrialState.PRUNED,
            "running": optuna.trial.TrialState.RUNNING,
        }
        for outcome in history:
            values = {a.name: a.value for a in outcome.assignments}
            params = {n: algorithms.parse_value(values[n], d) for n, d in dists.items()}
            attrs: dict[str, Any] = {}
            if grid:
                space, index = _grid_id(spec, params)
                attrs = {"search_space": space, "grid_id": index}
            state = outcome.state
            if state == "complete" and outcome.value is None:
                state = "fail"
            frozen = optuna.trial.create_trial(
                state=states[state],
                value=outcome.value if state == "complete" else None,
                params=params,
                distributions=dists,
                system_attrs=attrs,
            )
            study.add_trial(frozen)
            tuned.numbers[outcome.name] = study.trials[-1].number
            if state != "running":
                tuned.told.add(outcome.name)
        if history:
            log.info("rebuilt the study of %d trials", len(history))
        return tuned
