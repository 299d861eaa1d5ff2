"""batch/v1 Job controller (in progress)."""

from __future__ import annotations

from typing import Any

from wonderland.controllers import Result
from wonderland.settings import Settings
from wonderland.store import Store

__all__ = ["JobReconciler"]


class JobReconciler:
    resource: str = "jobs.batch"
    owns: tuple[str, ...] = ("pods",)
    watches: tuple[str, ...] = ()

    def __init__(self, store: Store, settings: Settings, record: Any) -> None:
        self.store = store
        self.settings = settings
        self.record = record

    async def reconcile(self, namespace: str, name: str) -> Result | None:
        return None
