from __future__ import annotations

from typing import Any

import orjson

from wonderland.api.merge import LAST_APPLIED
from wonderland.store import Store


def manifest(**data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "app", "labels": {"team": "a"}},
        "data": data,
    }


def test_apply_keeps_what_others_added_and_removes_what_the_manifest_dropped(
    store: Store,
) -> None:
    created, action = store.apply(manifest(a="1", b="2"))
    assert action == "created"
    recorded = manifest(a="1", b="2")
    recorded["metadata"].update(namespace="default", annotations={})
    assert orjson.loads(created["metadata"]["annotations"][LAST_APPLIED]) == recorded
    # A controller adds a label and a data key the manifest never mentioned.
    live = store.get("configmaps", "default", "app")
    live["metadata"]["labels"]["owner"] = "controller"
    live["data"]["added"] = "by-controller"
    store.update(live)
    applied, action = store.apply(manifest(a="1"))
    assert action == "configured"
    assert applied["data"] == {"a": "1", "added": "by-controller"}
    assert applied["metadata"]["labels"] == {"team": "a", "owner": "controller"}
    assert store.apply(manifest(a="1"))[1] == "unchanged"


def test_secret_values_stay_out_of_the_annotation(store: Store) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db"},
        "stringData": {"password": "hunter2", "user": "admin"},
    }
    created, _ = store.apply(secret)
    annotation = created["metadata"]["annotations"][LAST_APPLIED]
    assert "hunter2" not in annotation and "password" in annotation
    secret["stringData"] = {"password": "hunter3"}
    updated, action = store.apply(secret)
    assert action == "configured"
    assert updated["data"] == {"password": "aHVudGVyMw=="}
