"""batch/v1 CronJob controller (in progress)."""

from __future__ import annotations

from typing import Any

from wonderland.controllers import Result
from wonderland.store import Store

__all__ = ["CronJobReconciler"]


class CronJobReconciler:
    resource: str = "cronjobs.batch"
    owns: tuple[str, ...] = ("jobs.batch",)
    watches: tuple[str, ...] = ()

    def __init__(self, store: Store, record: Any) -> None:
        self.store = store
        self.record = record

    async def reconcile(self, namespace: str, name: str) -> Result | None:
        return None
