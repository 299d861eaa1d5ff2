"""`wonderland export --all`: the objects the platform holds, read through its control API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from wonderland.control import ControlAPI
from wonderland.export import PROFILES, export_objects
from wonderland.export.platform import platform_objects
from wonderland.store import Store

TOKEN = "test-token"


class _Reader:
    """The control API in-process, behind the one call export uses."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def request(
        self, method: str, path: str, body: Any = None, *, params: dict[str, str] | None = None
    ) -> Any:
        response = self.client.request(method, path, json=body, params=params)
        assert response.status_code < 400, response.text
        return response.json()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    store = Store.open(tmp_path)
    app = ControlAPI(store, TOKEN, "127.0.0.1:7443")
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client
    store.close()


def test_export_all_reads_what_was_applied(api: TestClient) -> None:
    ksvc = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "hello", "namespace": "team"},
        "spec": {"template": {"spec": {"containers": [{"image": "registry.example/h:1"}]}}},
    }
    component = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": "bus", "namespace": "team"},
        "spec": {"type": "pubsub.in-memory", "version": "v1", "metadata": []},
    }
    for url, body in (
        ("/apis/serving.knative.dev/v1/namespaces/team/services", ksvc),
        ("/apis/dapr.io/v1alpha1/namespaces/team/components", component),
    ):
        assert api.post(url, json=body).status_code == 201, url
    objects = platform_objects(_Reader(api))
    names = {(o.obj["kind"], o.obj["metadata"]["name"]) for o in objects}
    assert {("Service", "hello"), ("Component", "bus")} <= names
    tree = export_objects(objects, PROFILES["cluster"])
    service = tree.files["serving/service-hello.yaml"]
    assert "namespace: team" in service and "uid:" not in service and "status:" not in service
    bus = tree.files["dapr/component-bus.yaml"]
    assert "type: pubsub.redis" in bus
    assert "redis-master.team.svc.cluster.local:6379" in bus
