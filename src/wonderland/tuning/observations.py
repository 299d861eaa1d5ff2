"""The observation log: the metrics trials report, by trial name, as Katib's DB manager
keeps them (``ReportObservationLog`` / ``GetObservationLog``).

Every collector (standard output, files, a TrainJob's ``trainerStatus``, the ``Push``
collector's gRPC adapter) writes through :class:`ObservationLogStore`; the Trial controller
reads it to fill ``status.observation``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from wonderland.errors import WonderlandError

__all__ = ["MetricLog", "ObservationLogStore", "UnknownTrialError"]


@dataclass(frozen=True, slots=True)
class MetricLog:
    """One reported value of one metric. ``value`` is kept as reported (Katib stores
    strings: ``"0.25"``, or ``"unavailable"`` when a collector found nothing)."""

    timestamp: datetime
    name: str
    value: str


class UnknownTrialError(WonderlandError):
    """A report named a trial that does not exist (or no longer runs)."""


class ObservationLogStore(Protocol):
    """Where trials' metrics are recorded and read back.

    ``trial_name`` is the Trial's name (``KATIB_TRIAL_NAME`` in the trial's environment);
    Katib's API carries no namespace, so a name is looked up across namespaces.
    """

    def report(self, trial_name: str, logs: Sequence[MetricLog]) -> None:
        """Append ``logs`` to the trial's log; :class:`UnknownTrialError` if no such trial."""
        ...

    def get(
        self,
        trial_name: str,
        metric_name: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[MetricLog]:
        """The trial's logs in time order, optionally of one metric and within [start, end]."""
        ...
