"""Re-baselining: follow the registry alias the reference was read through.

MLOps practice stores a new version's training sample as the drift reference of that
version; a detector reading ``models:/NAME@ALIAS/reference.csv`` should compare live
inputs with the sample of the version the alias names *now*. Every ``period`` seconds
(``--reference_refresh``) :class:`ReferenceRefresher` asks the registry which version the
alias names; when it moved, that version's sample is loaded and handed to
:meth:`DriftDetector.rebaseline <wonderland.monitoring.drift.detector.DriftDetector.rebaseline>`,
which checks its columns. A version refused for its columns is not tried again; one whose
sample cannot be read yet is retried each period (reported once).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from wonderland.errors import WonderlandError
from wonderland.monitoring.drift.detector import DriftDetector
from wonderland.monitoring.drift.reference import Reference

__all__ = ["ReferenceRefresher", "VersionedReference"]

log = logging.getLogger("wonderland.monitoring.drift")


class VersionedReference(Protocol):
    """Where references come from (:class:`~wonderland.monitoring.drift.reference.ReferenceSource`):
    the version named now, and a version's sample."""

    uri: str

    def resolve(self) -> str: ...

    def load(self, version: str = "") -> Reference: ...


class ReferenceRefresher:
    """Re-resolves ``source`` and re-baselines ``detector`` when the version moves."""

    def __init__(self, source: VersionedReference, detector: DriftDetector, period: float) -> None:
        self.source = source
        self.detector = detector
        self.period = period
        self.refused: set[str] = set()  # versions whose columns are not the model's inputs
        self._reported: set[str] = set()  # versions whose sample could not be read, told once
        self._unreachable = False

    async def check(self) -> bool:
        """One look at the registry; True when the detector switched reference."""
        try:
            version = await asyncio.to_thread(self.source.resolve)
        except WonderlandError as exc:
            if not self._unreachable:
                log.warning("drift detector: cannot re-resolve the reference: %s", exc)
            self._unreachable = True
            return False
        if self._unreachable:
            log.info("drift detector: the registry answers again for %s", self.source.uri)
            self._unreachable = False
        if not version or version == self.detector.reference.version or version in self.refused:
            return False
        try:
            reference = await asyncio.to_thread(self.source.load, version)
        except WonderlandError as exc:
            if version not in self._reported:
                self._reported.add(version)
                self.detector.refuse_reference(version, "unreadable", str(exc))
            return False
        if not self.detector.rebaseline(reference):
            self.refused.add(version)
            return False
        return True

    async def run(self) -> None:
        """Check every ``period`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.period)
            try:
                await self.check()
            except Exception:  # never let one bad look end the watch
                log.exception("drift detector: re-resolving %s failed", self.source.uri)
