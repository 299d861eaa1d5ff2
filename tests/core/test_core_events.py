from __future__ import annotations

from wonderland.controllers.events import record
from wonderland.store import Store


def test_events_are_counted_and_go_with_their_object(store: Store) -> None:
    svc = store.create(
        {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": "hello"},
            "spec": {"template": {"spec": {"containers": [{"image": "app"}]}}},
        }
    )
    first = record(store, svc, "Warning", "BuildFailed", "no build context for app")
    assert first is not None and first["count"] == 1
    assert first["involvedObject"]["uid"] == svc["metadata"]["uid"]
    again = record(store, svc, "Warning", "BuildFailed", "no build context for app")
    assert again is not None and again["count"] == 2
    record(store, svc, "Normal", "Created", "created configuration hello")
    assert len(store.list("events", "default")[0]) == 2
    store.delete("services.serving.knative.dev", "default", "hello")
    assert store.list("events", "default")[0] == []
