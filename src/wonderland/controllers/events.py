"""Events: what controllers tell users about an object (``wonderland describe``, kubectl).

``record(store, obj, "Warning", "BuildFailed", "image example/app: no build context")``
stores a ``v1`` Event about ``obj``. The same (type, reason, message) about the same
object again raises its ``count`` instead of adding one. Events are owned by their
object, so deleting the object deletes them.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, Protocol

from wonderland.api import registry
from wonderland.errors import ConflictError, NotFoundError, WonderlandError
from wonderland.store import Obj, Store
from wonderland.store._sqlite import now_timestamp

__all__ = ["EventRecorder", "record"]

log = logging.getLogger("wonderland.controllers.events")


class EventRecorder(Protocol):
    """What records an Event about an object (:func:`record` is one): controllers and the
    kubelet take it, so tests and other areas can pass their own."""

    def __call__(
        self, store: Store, obj: Obj, type: str, reason: str, message: str, component: str
    ) -> Any: ...


def record(
    store: Store,
    obj: Obj,
    type: str,
    reason: str,
    message: str,
    component: str = "wonderland",
) -> Obj | None:
    """Store (or count again) an Event about ``obj``; never raises (events are best effort)."""
    meta = obj.get("metadata") or {}
    uid = str(meta.get("uid", ""))
    kind = registry.for_object(str(obj.get("apiVersion")), str(obj.get("kind")))
    namespace = str(meta.get("namespace") or "default")
    digest = hashlib.sha256(f"{uid}/{type}/{reason}/{message}".encode()).hexdigest()[:10]
    name = f"{meta.get('name')}.{digest}"
    now = now_timestamp()
    try:
        for _ in range(3):
            try:
                current = store.get("events", namespace, name)
            except NotFoundError:
                event: Obj = {
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {
                        "name": name,
                        "namespace": namespace,
                        "ownerReferences": [
                            {
                                "apiVersion": obj["apiVersion"],
                                "kind": obj["kind"],
                                "name": meta.get("name"),
                                "uid": uid,
                            }
                        ],
                    },
                    "involvedObject": {
                        "apiVersion": obj["apiVersion"],
                        "kind": kind.kind,
                        "name": meta.get("name"),
                        "namespace": meta.get("namespace", ""),
                        "uid": uid,
                    },
                    "type": type,
                    "reason": reason,
                    "message": message,
                    "count": 1,
                    "firstTimestamp": now,
                    "lastTimestamp": now,
                    "source": {"component": component},
                    "reportingComponent": component,
                }
                try:
                    return store.create(event)
                except ConflictError:
                    continue
            current["count"] = int(current.get("count") or 1) + 1
            current["lastTimestamp"] = now
            try:
                return store.update(current)
            except ConflictError:
                continue
    except WonderlandError as exc:
        log.debug("event %s about %s not recorded: %s", reason, name, exc)
    return None
