"""The notebook controller and culler in-process: the pod a Notebook gets, its status, the
stop annotation and idle culling with a fake clock and fake kernels (no server runs)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from wonderland.controllers import events
from wonderland.errors import InvalidError
from wonderland.notebooks import poddefaults
from wonderland.notebooks.controller import (
    NOTEBOOKS,
    NotebookReconciler,
    check_notebook,
    notebook_status,
)
from wonderland.notebooks.culling import (
    LAST_ACTIVITY,
    LAST_CHECK,
    CullingReconciler,
    Kernel,
    last_activity,
)
from wonderland.notebooks.images import NotebookImageProvider, family
from wonderland.runtime.images import BuildError
from wonderland.store import Store
from wonderland.workloads import admission

Obj = dict[str, Any]
IMAGE = "kubeflownotebookswg/jupyter-scipy:v1.10.0"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "state")
    admission.install(opened.admission)
    poddefaults.install(opened.admission)
    opened.admission.register(NOTEBOOKS, check_notebook)
    try:
        yield opened
    finally:
        opened.close()


def notebook(name: str = "nb", image: str = IMAGE, **meta: Any) -> Obj:
    container = {
        "name": name,
        "image": image,
        "env": [{"name": "NB_PREFIX", "value": "/wrong"}],
        "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}],
    }
    volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": f"{name}-home"}}]
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "Notebook",
        "metadata": {"name": name, "namespace": "default", **meta},
        "spec": {"template": {"spec": {"containers": [container], "volumes": volumes}}},
    }


async def test_a_notebook_gets_its_pod_token_and_poddefaults(store: Store) -> None:
    store.create(
        {
            "apiVersion": "kubeflow.org/v1alpha1",
            "kind": "PodDefault",
            "metadata": {"name": "access-mlflow", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"access-mlflow": "true"}},
                "env": [{"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow"}],
            },
        }
    )
    store.create(
        notebook(
            labels={"access-mlflow": "true"},
            annotations={"team": "ml", "notebooks.kubeflow.org/server-type": "jupyter"},
        )
    )
    await NotebookReconciler(store, events.record).reconcile("default", "nb")
    pod = store.get("pods", "default", "nb-0")
    meta = pod["metadata"]
    assert meta["labels"] == {"statefulset": "nb", "notebook-name": "nb", "access-mlflow": "true"}
    assert meta["annotations"]["team"] == "ml"
    assert "notebooks.kubeflow.org/server-type" not in meta["annotations"]
    assert meta["ownerReferences"][0]["kind"] == "Notebook"
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["NB_PREFIX"]["value"] == "/notebook/default/nb"
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow"
    token_ref = env["JUPYTER_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert store.get("secrets", "default", token_ref["name"])["data"][token_ref["key"]]
    (port,) = container["ports"]
    assert port["name"] == "notebook-port" and env["PORT"]["value"] == str(port["containerPort"])
    assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "nb-home"


class WakeCounter:
    """A TrackingAccess that counts wakes (the real server is MLflow's process)."""

    enabled = True
    client_uri = "http://127.0.0.1:5999"

    def __init__(self) -> None:
        self.wakes = 0

    async def wake(self) -> str:
        self.wakes += 1
        return "http://127.0.0.1:6000"

    def running_uri(self) -> str | None:
        return None


async def test_a_notebook_given_the_tracking_uri_wakes_the_tracking_server(store: Store) -> None:
    """It starts while JupyterLab does, so the notebook's first run does not wait for it."""
    import asyncio

    from wonderland.notebooks.defaults import ensure_shipped

    tracking = WakeCounter()
    ensure_shipped(store, tracking.client_uri)
    controller = NotebookReconciler(store, events.record, tracking=tracking)
    store.create(notebook("plain"))
    await controller.reconcile("default", "plain")
    store.create(notebook("tracked", labels={"access-mlflow": "true"}))
    await controller.reconcile("default", "tracked")
    await controller.reconcile("default", "tracked")  # its pod exists: no second wake
    await asyncio.sleep(0)
    assert tracking.wakes == 1
    env = store.get("pods", "default", "tracked-0")["spec"]["containers"][0]["env"]
    assert {"name": "MLFLOW_TRACKING_URI", "value": tracking.client_uri} in env


async def test_status_follows_the_pod_and_the_stop_annotation_removes_it(store: Store) -> None:
    store.create(notebook())
    controller = NotebookReconciler(store, events.record)
    await controller.reconcile("default", "nb")
    pod = store.get("pods", "default", "nb-0")
    waiting = {"waiting": {"reason": "ErrImagePull", "message": "add it to wonderland.yaml"}}
    pod["status"] = {
        "phase": "Pending",
        "conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ],
        "containerStatuses": [{"name": "nb", "ready": False, "state": waiting}],
    }
    store.update_status(pod)
    await controller.reconcile("default", "nb")
    status = store.get(NOTEBOOKS, "default", "nb")["status"]
    assert status["readyReplicas"] == 0 and status["containerState"] == waiting
    assert status["conditions"][0]["type"] == "Ready"
    nb = store.get(NOTEBOOKS, "default", "nb")
    nb["metadata"]["annotations"] = {"kubeflow-resource-stopped": "2026-01-01T00:00:00Z"}
    store.update(nb)
    await controller.reconcile("default", "nb")
    assert store.list("pods", "default")[0] == [] or all(
        p["metadata"].get("deletionTimestamp") for p in store.list("pods", "default")[0]
    )
    # the token stays with the notebook: a restarted server keeps its address and token
    assert store.list("secrets", "default")[0]


def test_ready_pod_counts_as_a_ready_replica() -> None:
    nb = notebook()
    pod = {
        "metadata": {"name": "nb-0"},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "nb", "state": {"running": {"startedAt": "x"}}}],
        },
    }
    status = notebook_status(nb, pod)
    assert status["readyReplicas"] == 1 and "running" in status["containerState"]


def test_notebook_validation_and_image_families(store: Store) -> None:
    bad = notebook()
    bad["spec"]["template"]["spec"]["containers"][0].pop("image")
    with pytest.raises(InvalidError, match=r"containers\[0\]\.image: Required value"):
        store.create(bad)
    assert family(IMAGE) == "jupyter"
    assert family("ghcr.io/kubeflow/kubeflow/notebook-servers/codeserver-python:v1.10.0") == (
        "codeserver"
    )
    assert family("python:3.12") is None
    provider = NotebookImageProvider()
    built = provider.provide(IMAGE)
    assert built is not None and "--ServerApp.base_url=$(NB_PREFIX)" in built.argv
    with pytest.raises(BuildError, match="RStudio Server is not provided"):
        provider.provide("kubeflownotebookswg/rstudio-tidyverse:v1.10.0")


class FakeKernels:
    def __init__(self) -> None:
        self.answer: list[Kernel] | None = None

    async def kernels(self, notebook: Obj, pod: Obj) -> list[Kernel] | None:
        return self.answer


async def test_an_idle_notebook_is_culled_and_a_busy_one_is_not(store: Store) -> None:
    store.create(notebook())
    await NotebookReconciler(store, events.record).reconcile("default", "nb")
    now = [datetime(2026, 1, 1, 12, 0, tzinfo=UTC)]
    kernels = FakeKernels()
    culler = CullingReconciler(store, kernels, 10, 1, clock=lambda: now[0])

    def notes() -> dict[str, str]:
        return dict(store.get(NOTEBOOKS, "default", "nb")["metadata"].get("annotations") or {})

    result = await culler.reconcile("default", "nb")
    assert notes()[LAST_ACTIVITY] == notes()[LAST_CHECK] == "2026-01-01T12:00:00Z"
    assert result is not None and result.requeue_after == 60
    now[0] += timedelta(seconds=30)  # before the check period: nothing read
    result = await culler.reconcile("default", "nb")
    assert result is not None and result.requeue_after == pytest.approx(30)
    kernels.answer = [Kernel("k1", "busy", "2026-01-01T11:00:00Z")]
    now[0] += timedelta(minutes=11)
    await culler.reconcile("default", "nb")
    assert notes()[LAST_ACTIVITY] == "2026-01-01T12:11:30Z"
    assert "kubeflow-resource-stopped" not in notes()
    kernels.answer = [Kernel("k1", "idle", "2026-01-01T12:11:30Z")]
    now[0] += timedelta(minutes=11)
    await culler.reconcile("default", "nb")
    assert notes()["kubeflow-resource-stopped"] == "2026-01-01T12:22:30Z"
    # once stopped, the culling annotations go
    await culler.reconcile("default", "nb")
    assert LAST_ACTIVITY not in notes() and LAST_CHECK not in notes()


def test_last_activity_is_the_newest_idle_kernel() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    idle = [
        Kernel("a", "idle", "2025-12-31T10:00:00Z"),
        Kernel("b", "idle", "2025-12-31T11:00:00.123456Z"),
    ]
    assert last_activity(idle, now) == datetime(2025, 12, 31, 11, 0, 0, 123456, tzinfo=UTC)
    assert last_activity([], now) is None
    assert last_activity([*idle, Kernel("c", "starting", "")], now) == now
