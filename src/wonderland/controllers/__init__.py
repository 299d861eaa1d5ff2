"""Level-triggered reconcilers and the manager that runs them (see :class:`Reconciler`)."""

from __future__ import annotations

from wonderland.controllers._manager import ControllerManager, Reconciler, Result

__all__ = ["ControllerManager", "Reconciler", "Result"]
