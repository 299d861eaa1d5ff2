from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest

from wonderland.errors import AlreadyExistsError, ConflictError, InvalidError, NotFoundError
from wonderland.store import ExpiredError, Store, WatchEvent

CM = "configmaps"
KSVC = "services.serving.knative.dev"


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def ksvc(name: str, image: str = "example/app") -> dict[str, Any]:
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"image": image}]}}},
    }


def test_create_fills_server_fields(store: Store) -> None:
    obj = store.create(configmap("a", k="v"))
    meta = obj["metadata"]
    assert meta["namespace"] == "default"
    assert meta["generation"] == 1
    assert len(meta["uid"]) == 36
    assert meta["creationTimestamp"].endswith("Z")
    assert store.get(CM, "default", "a") == obj


def test_create_twice_is_already_exists(store: Store) -> None:
    store.create(configmap("a"))
    with pytest.raises(AlreadyExistsError, match='configmaps "a" already exists'):
        store.create(configmap("a"))


def test_generate_name(store: Store) -> None:
    obj = configmap("x")
    obj["metadata"] = {"generateName": "job-"}
    a = store.create(obj)
    b = store.create(obj)
    assert a["metadata"]["name"].startswith("job-")
    assert a["metadata"]["name"] != b["metadata"]["name"]


def test_resource_versions_increase_and_stale_update_is_refused(store: Store) -> None:
    first = store.create(configmap("a", k="1"))
    second = store.update({**first, "data": {"k": "2"}})
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    with pytest.raises(ConflictError, match="has been modified"):
        store.update({**first, "data": {"k": "3"}})
    assert store.get(CM, None, "a")["data"] == {"k": "2"}


def test_generation_bumps_on_spec_change_only(store: Store) -> None:
    svc = store.create(ksvc("hello"))
    labelled = dict(svc, metadata={**svc["metadata"], "labels": {"team": "a"}})
    labelled = store.update(labelled)
    assert labelled["metadata"]["generation"] == 1
    changed = store.update(ksvc("hello", image="example/app:v2"))
    assert changed["metadata"]["generation"] == 2
    assert "labels" not in changed["metadata"]


def test_update_keeps_status_and_update_status_keeps_spec(store: Store) -> None:
    svc = store.create(ksvc("hello"))
    with_status = store.update_status({**svc, "status": {"url": "http://x"}, "spec": {}})
    assert with_status["status"] == {"url": "http://x"}
    assert with_status["spec"] == svc["spec"]
    again = store.update({**ksvc("hello", "v2"), "status": {"url": "http://forged"}})
    assert again["status"] == {"url": "http://x"}


def test_noop_update_does_not_bump_resource_version(store: Store) -> None:
    obj = store.create(configmap("a", k="1"))
    same = store.update(configmap("a", k="1"))
    assert same["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


def test_update_validates_and_rejects_unknown_fields(store: Store) -> None:
    store.create(ksvc("hello"))
    bad = ksvc("hello")
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullSecretz"] = "x"
    with pytest.raises(InvalidError, match=r"containers\[0\]\.imagePullSecretz"):
        store.update(bad)


def test_get_missing_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match='configmaps "nope" not found'):
        store.get(CM, "default", "nope")


def test_list_by_namespace_and_labels(store: Store) -> None:
    for name, ns, tier in (("a", "default", "web"), ("b", "other", "web"), ("c", "other", "db")):
        obj = configmap(name)
        obj["metadata"].update(namespace=ns, labels={"tier": tier})
        store.create(obj)
    items, rv = store.list(CM)
    assert [o["metadata"]["name"] for o in items] == ["a", "b", "c"]
    assert rv == store.resource_version
    items, _ = store.list(CM, "other", "tier=web")
    assert [o["metadata"]["name"] for o in items] == ["b"]
    items, _ = store.list(CM, None, "tier notin (web)")
    assert [o["metadata"]["name"] for o in items] == ["c"]


def test_cascading_delete_follows_owner_references(store: Store) -> None:
    svc = store.create(ksvc("hello"))
    owner = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "name": "hello",
        "uid": svc["metadata"]["uid"],
    }
    child = configmap("child")
    child["metadata"]["ownerReferences"] = [owner]
    child = store.create(child)
    grandchild = configmap("grandchild")
    grandchild["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "child", "uid": child["metadata"]["uid"]}
    ]
    store.create(grandchild)
    store.create(configmap("bystander"))
    store.delete(KSVC, "default", "hello")
    names = [o["metadata"]["name"] for o in store.list(CM)[0]]
    assert names == ["bystander"]


def test_cluster_scoped_kind_has_no_namespace(store: Store) -> None:
    runtime = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ClusterServingRuntime",
        "metadata": {"name": "sk"},
        "spec": {"containers": [{"name": "kserve-container", "image": "x"}]},
    }
    created = store.create(runtime)
    assert "namespace" not in created["metadata"]
    assert store.get("clusterservingruntimes.serving.kserve.io", "anything", "sk") == created
    # namespaces() names where namespaced objects live; a cluster-scoped one is in none
    cm = configmap("x")
    cm["metadata"]["namespace"] = "lab"
    store.create(cm)
    assert store.namespaces() == ["lab"]
    store.delete(CM, "lab", "x")
    assert store.namespaces() == []


def test_transaction_is_all_or_nothing(store: Store) -> None:
    with pytest.raises(InvalidError), store.transaction():
        store.create(configmap("a"))
        store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "B"}})
    assert store.list(CM)[0] == []
    # The counter is rolled back with the data.
    assert store.create(configmap("c"))["metadata"]["resourceVersion"] == "1"


def test_apply_reports_created_configured_unchanged(store: Store) -> None:
    assert store.apply(configmap("a", k="1"))[1] == "created"
    assert store.apply(configmap("a", k="1"))[1] == "unchanged"
    assert store.apply(configmap("a", k="2"))[1] == "configured"


def test_objects_survive_reopening(tmp_path: Path) -> None:
    first = Store.open(tmp_path)
    created = first.create(configmap("a", k="1"))
    first.close()
    second = Store.open(tmp_path)
    try:
        assert second.get(CM, "default", "a") == created
        nxt = second.create(configmap("b"))
        assert int(nxt["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    finally:
        second.close()


async def _collect(it: Any, count: int) -> list[WatchEvent]:
    out: list[WatchEvent] = []
    async for event in it:
        out.append(event)
        if len(out) == count:
            break
    return out


async def test_watch_from_zero_lists_then_follows(store: Store) -> None:
    store.create(configmap("a"))
    feed = store.watch(CM, "0")
    task = asyncio.create_task(_collect(feed, 3))
    await asyncio.sleep(0)
    obj = store.create(configmap("b"))
    store.delete(CM, "default", "a")
    events = await asyncio.wait_for(task, 10)
    assert [(e.type, e.name) for e in events] == [("ADDED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    assert events[1].object == obj


async def test_watch_from_resource_version_replays_history(store: Store) -> None:
    a = store.create(configmap("a"))
    store.update(configmap("a", k="1"))
    store.create(ksvc("hello"))
    events = await asyncio.wait_for(
        _collect(store.watch(CM, a["metadata"]["resourceVersion"]), 1), 10
    )
    assert [(e.type, e.name) for e in events] == [("MODIFIED", "a")]
    everything = store.watch(None, a["metadata"]["resourceVersion"])
    events = await asyncio.wait_for(_collect(everything, 2), 10)
    assert [e.resource for e in events] == [CM, KSVC]


async def test_watch_too_old_is_expired(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("wonderland.store._sqlite.EVENT_HISTORY", 5)
    for i in range(1001):
        store.create(configmap(f"c{i}"))
    feed = store.watch(CM, "1")
    with pytest.raises(ExpiredError, match="too old resource version"):
        await feed.__anext__()
    with contextlib.suppress(Exception):
        await feed.aclose()


def test_secret_string_data_is_stored_as_base64(store: Store) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db"},
        "stringData": {"password": "s3cret"},
        "data": {"user": "YWRtaW4="},
    }
    created = store.create(secret)
    assert created["data"] == {"user": "YWRtaW4=", "password": "czNjcmV0"}
    assert "stringData" not in created and created["type"] == "Opaque"
    bad = dict(secret, data={"user": "not base64!"})
    bad["metadata"] = {"name": "other"}
    with pytest.raises(InvalidError, match=r"data\.user: is not base64"):
        store.create(bad)


def test_immutable_configmap_refuses_data_changes(store: Store) -> None:
    cm = configmap("frozen", k="1")
    cm["immutable"] = True
    store.create(cm)
    changed = configmap("frozen", k="2")
    changed["immutable"] = True
    with pytest.raises(InvalidError, match="immutable"):
        store.update(changed)


def test_state_directory_and_store_are_private(tmp_path: Path) -> None:
    import stat

    home = tmp_path / "state"
    store = Store.open(home)
    try:
        store.create(configmap("a"))
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        for name in ("store.db", "store.db-wal"):
            assert stat.S_IMODE((home / name).stat().st_mode) == 0o600
    finally:
        store.close()


def test_namespace_objects_and_deleting_one_deletes_its_contents(store: Store) -> None:
    ns = store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
    assert ns["status"] == {"phase": "Active"} and "namespace" not in ns["metadata"]
    inside = configmap("a")
    inside["metadata"]["namespace"] = "team-a"
    store.create(inside)
    store.create(configmap("outside"))
    store.delete("namespaces", None, "team-a")
    assert [o["metadata"]["name"] for o in store.list(CM)[0]] == ["outside"]


def test_orphaning_delete_keeps_children_without_the_owner_reference(store: Store) -> None:
    svc = store.create(ksvc("hello"))
    child = configmap("child")
    child["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "name": "hello",
            "uid": svc["metadata"]["uid"],
        }
    ]
    store.create(child)
    store.delete(KSVC, "default", "hello", orphan=True)
    kept = store.get(CM, "default", "child")
    assert "ownerReferences" not in kept["metadata"]


def test_a_file_that_is_not_a_store_is_a_clear_error(tmp_path: Path) -> None:
    from wonderland.errors import ConfigError

    (tmp_path / "store.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="cannot be used as the object store"):
        Store.open(tmp_path)


def test_finalizers_hold_a_deletion_until_removed(store: Store) -> None:
    svc = ksvc("hello")
    svc["metadata"]["finalizers"] = ["example.dev/cleanup"]
    created = store.create(svc)
    child = configmap("child")
    child["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "name": "hello",
            "uid": created["metadata"]["uid"],
        }
    ]
    store.create(child)
    marked = store.delete(KSVC, "default", "hello")
    assert marked["metadata"]["deletionTimestamp"]
    assert store.get(KSVC, "default", "hello")["metadata"]["deletionTimestamp"]
    adding = store.get(KSVC, "default", "hello")
    adding["metadata"]["finalizers"].append("example.dev/other")
    with pytest.raises(InvalidError, match="no new finalizers"):
        store.update(adding)
    done = store.get(KSVC, "default", "hello")
    done["metadata"]["finalizers"] = []
    store.update(done)
    with pytest.raises(NotFoundError):
        store.get(KSVC, "default", "hello")
    assert store.list(CM)[0] == []
