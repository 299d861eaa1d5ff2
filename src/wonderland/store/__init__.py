"""The persistent object store and its change feed (see :class:`Store`)."""

from __future__ import annotations

from wonderland.errors import AlreadyExistsError
from wonderland.store._sqlite import ExpiredError, Obj, Store, WatchEvent

__all__ = ["AlreadyExistsError", "ExpiredError", "Obj", "Store", "WatchEvent"]
