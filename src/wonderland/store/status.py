"""Writing an object's status with retries on conflicts, as controllers do
(``retry.RetryOnConflict`` around ``UpdateStatus``)."""

from __future__ import annotations

from wonderland.errors import ConflictError, NotFoundError
from wonderland.store._sqlite import Obj, Store

__all__ = ["replace_status"]


def replace_status(
    store: Store, resource: str, namespace: str, name: str, status: Obj, attempts: int = 5
) -> Obj | None:
    """Set the stored object's ``status`` to ``status``, reading it again after a conflict
    (another writer won), at most ``attempts`` times. The object written, or None when it
    is gone or every attempt conflicted (the next reconcile writes again)."""
    for _ in range(attempts):
        try:
            current = store.get(resource, namespace, name)
        except NotFoundError:
            return None
        current["status"] = status
        try:
            return store.update_status(current)
        except ConflictError:
            continue
    return None
