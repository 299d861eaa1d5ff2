"""Objects the console tests put in a real store: a Knative Service with two revisions
sharing its traffic, an InferenceService that is not ready, a failed TrainJob, events."""

from __future__ import annotations

from typing import Any

from wonderland.store import Store

KSVC = "serving.knative.dev/v1"


def _with_status(store: Store, obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    created = store.create(obj)
    created["status"] = status
    return store.update_status(created)


def ready(status: str = "True", reason: str = "", message: str = "") -> list[dict[str, str]]:
    cond = {"type": "Ready", "status": status}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return [cond]


def add_service(store: Store, name: str = "hello", namespace: str = "default") -> None:
    """A ready Service whose traffic goes 90/10 to its two revisions (one tagged)."""
    _with_status(
        store,
        {
            "apiVersion": KSVC,
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"template": {"spec": {"containers": [{"image": "example/hello:2"}]}}},
        },
        {
            "conditions": ready(),
            "url": f"http://{name}.{namespace}.127.0.0.1.sslip.io",
            "latestCreatedRevisionName": f"{name}-00002",
            "latestReadyRevisionName": f"{name}-00002",
            "traffic": [
                {"revisionName": f"{name}-00002", "percent": 90, "latestRevision": True},
                {"revisionName": f"{name}-00001", "percent": 10, "tag": "old"},
            ],
        },
    )
    for n, image in ((1, "example/hello:1"), (2, "example/hello:2")):
        _with_status(
            store,
            {
                "apiVersion": KSVC,
                "kind": "Revision",
                "metadata": {
                    "name": f"{name}-0000{n}",
                    "namespace": namespace,
                    "labels": {"serving.knative.dev/service": name},
                },
                "spec": {"containers": [{"image": image}]},
            },
            {"conditions": ready()},
        )


def add_broken(store: Store) -> None:
    """An InferenceService whose predictor cannot load, a failed TrainJob and events."""
    _with_status(
        store,
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": "iris", "namespace": "default"},
            "spec": {
                "predictor": {
                    "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "file:///m"}
                }
            },
        },
        {"conditions": ready("False", "ModelLoadFailed", "no model at file:///m")},
    )
    store.create(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "iris.1", "namespace": "default"},
            "involvedObject": {"kind": "InferenceService", "name": "iris"},
            "reason": "ModelLoadFailed",
            "message": "no model at file:///m",
            "type": "Warning",
            "count": 3,
            "lastTimestamp": "2026-12-03T07:00:02Z",
        }
    )
    store.create(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "hello.1", "namespace": "default"},
            "involvedObject": {"kind": "Service", "name": "hello"},
            "reason": "Created",
            "message": "Created Configuration hello",
            "type": "Normal",
            "lastTimestamp": "2026-12-03T07:00:01Z",
        }
    )
