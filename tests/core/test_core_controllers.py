from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from _support.daemon import wait_until

from wonderland.controllers import ControllerManager, Result
from wonderland.errors import NotFoundError
from wonderland.store import Store

KSVC = "services.serving.knative.dev"


def ksvc(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"image": "app"}]}}},
    }


class MirrorReconciler:
    """Keeps a ConfigMap "<svc>-mirror" owned by each Service; counts reconciles."""

    resource = KSVC
    owns = ("configmaps",)
    watches = ("secrets",)

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: list[tuple[str, str]] = []
        self.changed = asyncio.Event()
        self.fail_times = 0
        self.running = 0
        self.max_running = 0

    async def reconcile(self, namespace: str, name: str) -> Result | None:
        self.calls.append((namespace, name))
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await asyncio.sleep(0.01)  # a reconcile that takes a while, so that calls overlap
            if self.fail_times:
                self.fail_times -= 1
                raise RuntimeError("boom")
            try:
                svc = self.store.get(KSVC, namespace, name)
            except NotFoundError:
                return None
            cm = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": f"{name}-mirror",
                    "namespace": namespace,
                    "ownerReferences": [
                        {
                            "apiVersion": "serving.knative.dev/v1",
                            "kind": "Service",
                            "name": name,
                            "uid": svc["metadata"]["uid"],
                        }
                    ],
                },
                "data": {"generation": str(svc["metadata"]["generation"])},
            }
            self.store.apply(cm)
            return None
        finally:
            self.running -= 1
            self.changed.set()


@pytest.fixture
async def setup(tmp_path: Path) -> Any:
    store = Store.open(tmp_path)
    manager = ControllerManager(store)
    rec = MirrorReconciler(store)
    manager.register(rec)
    try:
        yield store, manager, rec
    finally:
        await manager.stop()
        store.close()


async def test_existing_objects_are_reconciled_on_start(setup: Any) -> None:
    store, manager, _rec = setup
    store.create(ksvc("a"))
    store.create(ksvc("b"))
    await manager.start()
    await wait_until(lambda: len(store.list("configmaps")[0]) == 2)


async def test_changes_are_reconciled_and_children_follow_spec(setup: Any) -> None:
    store, manager, _rec = setup
    await manager.start()
    store.create(ksvc("a"))
    await wait_until(lambda: len(store.list("configmaps")[0]) == 1)
    changed = ksvc("a")
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "app:v2"
    store.update(changed)

    def mirrored_generation() -> str:
        return str(store.get("configmaps", "default", "a-mirror")["data"]["generation"])

    await wait_until(lambda: mirrored_generation() == "2")


async def test_child_change_enqueues_owner(setup: Any) -> None:
    store, manager, _rec = setup
    await manager.start()
    store.create(ksvc("a"))
    await wait_until(lambda: len(store.list("configmaps")[0]) == 1)
    # Someone edits the child: the owner is reconciled and puts it back.
    child = store.get("configmaps", "default", "a-mirror")
    child["data"] = {"generation": "tampered"}
    store.update(child)
    await wait_until(
        lambda: store.get("configmaps", "default", "a-mirror")["data"]["generation"] == "1"
    )


async def test_watched_resource_enqueues_all_in_namespace(setup: Any) -> None:
    store, manager, rec = setup
    store.create(ksvc("a"))
    store.create(ksvc("b"))
    await manager.start()
    await wait_until(lambda: len(store.list("configmaps")[0]) == 2)
    rec.calls.clear()
    store.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}})
    await wait_until(lambda: {c[1] for c in rec.calls} >= {"a", "b"})


async def test_failures_are_retried_with_backoff(setup: Any) -> None:
    store, manager, rec = setup
    rec.fail_times = 3
    await manager.start()
    store.create(ksvc("a"))
    await wait_until(lambda: len(store.list("configmaps")[0]) == 1)
    assert len([c for c in rec.calls if c[1] == "a"]) >= 4


async def test_requeue_after(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    manager = ControllerManager(store)

    class Ticker:
        resource = KSVC
        owns: tuple[str, ...] = ()
        watches: tuple[str, ...] = ()
        count = 0

        async def reconcile(self, namespace: str, name: str) -> Result | None:
            Ticker.count += 1
            return Result(requeue_after=0.01)

    manager.register(Ticker())
    try:
        store.create(ksvc("a"))
        await manager.start()
        await wait_until(lambda: Ticker.count >= 3)
    finally:
        await manager.stop()
        store.close()


async def test_one_reconcile_per_key_at_a_time(setup: Any) -> None:
    store, manager, rec = setup
    await manager.start()
    store.create(ksvc("a"))
    for _ in range(20):
        manager.enqueue(KSVC, "default", "a")
        await asyncio.sleep(0.002)  # enqueues spread over the reconciles, not all before one
    await wait_until(lambda: rec.running == 0 and len(store.list("configmaps")[0]) == 1)
    assert rec.max_running == 1


async def test_deleted_object_is_reconciled_for_cleanup(setup: Any) -> None:
    store, manager, rec = setup
    await manager.start()
    store.create(ksvc("a"))
    await wait_until(lambda: len(store.list("configmaps")[0]) == 1)
    rec.calls.clear()
    store.delete(KSVC, "default", "a")
    await wait_until(lambda: ("default", "a") in rec.calls)
    assert store.list("configmaps")[0] == []
