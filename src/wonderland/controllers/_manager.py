"""The controller framework: level-triggered reconcilers fed by the store's change feed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from wonderland.api import registry
from wonderland.errors import WonderlandError
from wonderland.store import Obj, Store, WatchEvent

__all__ = ["ControllerManager", "Reconciler", "Result"]

log = logging.getLogger("wonderland.controllers")

Key = tuple[str, str]  # (namespace, name)

BACKOFF_BASE = 0.05
BACKOFF_MAX = 60.0


@dataclass(frozen=True)
class Result:
    """What a reconcile asks for next: ``requeue_after`` seconds, or nothing (None)."""

    requeue_after: float | None = None


@runtime_checkable
class Reconciler(Protocol):
    """One reconciler per kind: converge the world to the object named by (namespace, name).

    - ``resource``: the kind reconciled, e.g. ``"services.serving.knative.dev"``.
    - ``owns``: child resources; a change to a child whose ownerReferences name an
      object of ``resource`` enqueues that owner.
    - ``watches``: other resources; any change enqueues every object of ``resource`` in
      the changed object's namespace (all namespaces for cluster-scoped objects).
    - ``reconcile``: level-triggered and idempotent; the object may be gone (deleted),
      then clean up. Raising requeues with exponential backoff; ``Result(requeue_after=s)``
      requeues later. One reconcile per key runs at a time.
    """

    resource: str
    owns: tuple[str, ...]
    watches: tuple[str, ...]

    async def reconcile(self, namespace: str, name: str) -> Result | None: ...


class _WorkQueue:
    """Keys with a due time; a key is never handed out twice at once."""

    def __init__(self) -> None:
        self._due: dict[Key, float] = {}
        self._processing: set[Key] = set()
        self._dirty: dict[Key, float] = {}
        self._wake = asyncio.Event()
        self.failures: dict[Key, int] = {}

    def add(self, key: Key, after: float = 0.0) -> None:
        due = asyncio.get_running_loop().time() + max(after, 0.0)
        if key in self._processing:
            self._dirty[key] = min(self._dirty.get(key, due), due)
            return
        self._due[key] = min(self._due.get(key, due), due)
        self._wake.set()

    async def get(self) -> Key:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            ready = [(due, key) for key, due in self._due.items() if key not in self._processing]
            timeout: float | None = None
            if ready:
                due, key = min(ready)
                if due <= now:
                    del self._due[key]
                    self._processing.add(key)
                    return key
                timeout = due - now
            self._wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns the result when
            # the wake-up and a cancellation arrive together, and the swallowed cancellation
            # left ControllerManager.stop waiting for this worker for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    def done(self, key: Key) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            due = self._dirty.pop(key)
            self._due[key] = min(self._due.get(key, due), due)
        self._wake.set()

    def __len__(self) -> int:
        return len(self._due)


@dataclass
class _Controller:
    reconciler: Reconciler
    queue: _WorkQueue
    workers: int


class ControllerManager:
    """Runs every registered reconciler; one work queue each, keys de-duplicated.

    On :meth:`start` every existing object of each reconciled kind is enqueued, so a
    restarted daemon converges everything again.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._controllers: list[_Controller] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    def register(self, reconciler: Reconciler, workers: int = 2) -> None:
        """Add a reconciler (before :meth:`start`)."""
        resource = registry.lookup(reconciler.resource).resource
        if resource != reconciler.resource:
            raise WonderlandError(
                f'reconciler {type(reconciler).__name__}: resource must be "{resource}"'
            )
        if self._started:
            raise WonderlandError("register reconcilers before the controller manager starts")
        self._controllers.append(_Controller(reconciler, _WorkQueue(), max(1, workers)))

    @property
    def reconcilers(self) -> list[Reconciler]:
        return [c.reconciler for c in self._controllers]

    def enqueue(self, resource: str, namespace: str, name: str, after: float = 0.0) -> None:
        """Ask every reconciler of ``resource`` to reconcile (namespace, name)."""
        for controller in self._controllers:
            if controller.reconciler.resource == resource:
                controller.queue.add((namespace, name), after)

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        since = self.store.resource_version
        ready = asyncio.Event()
        self._tasks.append(asyncio.create_task(self._pump(since, ready), name="controllers-feed"))
        await ready.wait()
        for controller in self._controllers:
            items, _ = self.store.list(controller.reconciler.resource)
            for item in items:
                meta = item["metadata"]
                controller.queue.add((meta.get("namespace", ""), meta["name"]))
            for i in range(controller.workers):
                name = f"reconcile-{controller.reconciler.resource}-{i}"
                self._tasks.append(asyncio.create_task(self._work(controller), name=name))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._started = False

    async def _pump(self, since: str, ready: asyncio.Event) -> None:
        feed = self.store.watch(None, since)
        ready.set()
        while True:
            try:
                async for event in feed:
                    self._dispatch(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the change feed failed; watching again from now")
                feed = self.store.watch(None, self.store.resource_version)

    def _dispatch(self, event: WatchEvent) -> None:
        namespace, name = event.namespace, event.name
        for controller in self._controllers:
            rec = controller.reconciler
            if rec.resource == event.resource:
                controller.queue.add((namespace, name))
            if event.resource in getattr(rec, "owns", ()):
                owner_kind = registry.lookup(rec.resource)
                owner_namespace = namespace if owner_kind.namespaced else ""
                for owner in self._owners_of(event.object, rec.resource):
                    controller.queue.add((owner_namespace, owner))
            if event.resource in getattr(rec, "watches", ()):
                items, _ = self.store.list(rec.resource, namespace or None)
                for item in items:
                    meta = item["metadata"]
                    controller.queue.add((meta.get("namespace", ""), meta["name"]))

    @staticmethod
    def _owners_of(obj: Obj, resource: str) -> list[str]:
        names = []
        for ref in obj.get("metadata", {}).get("ownerReferences") or []:
            try:
                kind = registry.for_object(str(ref.get("apiVersion")), str(ref.get("kind")))
            except WonderlandError:
                continue
            if kind.resource == resource and ref.get("name"):
                names.append(str(ref["name"]))
        return names

    async def _work(self, controller: _Controller) -> None:
        queue = controller.queue
        rec = controller.reconciler
        while True:
            key = await queue.get()
            try:
                result = await rec.reconcile(*key)
            except asyncio.CancelledError:
                queue.done(key)
                raise
            except Exception as exc:
                failures = queue.failures.get(key, 0) + 1
                queue.failures[key] = failures
                delay = min(BACKOFF_BASE * 2 ** (failures - 1), BACKOFF_MAX)
                log.warning(
                    "reconcile %s %s/%s failed (attempt %d, retry in %.2fs): %s",
                    rec.resource,
                    key[0],
                    key[1],
                    failures,
                    delay,
                    exc,
                    exc_info=not isinstance(exc, WonderlandError),
                )
                queue.done(key)
                queue.add(key, delay)
                continue
            queue.failures.pop(key, None)
            queue.done(key)
            if result is not None and result.requeue_after is not None:
                queue.add(key, result.requeue_after)
