"""A Notebook on a platform with the kubelet: JupyterLab from the notebook image's family
runs as the pod, answers under its NB_PREFIX with its token only, reports Ready in the
Notebook's status, and the stop annotation removes the pod but keeps the claim. An image
with no local mapping leaves the reason in the status."""

from __future__ import annotations

import base64
import importlib.util
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from _support.daemon import wait_until

from wonderland.platform import Platform
from wonderland.settings import Settings

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("jupyterlab") is None,
        reason="needs the notebook extra: pip install 'wonderland[notebook]'",
    ),
]

Obj = dict[str, Any]
NOTEBOOKS = "notebooks.kubeflow.org"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    home = tmp_path_factory.mktemp("nb") / "home"
    settings = Settings(home=home, gateway_port=0, api_port=0, backoff_seconds=0.2)
    platform = Platform.open(settings)
    platform.install_plugins(("wonderland.workloads", "wonderland.notebooks"))
    await platform.start()
    try:
        yield platform
    finally:
        await platform.stop()
        platform.store.close()


def notebook(name: str, image: str) -> Obj:
    container = {
        "name": name,
        "image": image,
        "volumeMounts": [{"name": "work", "mountPath": "/home/jovyan"}],
    }
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "Notebook",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [container],
                    "volumes": [{"name": "work", "persistentVolumeClaim": {"claimName": "work"}}],
                }
            }
        },
    }


def claim(name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


@pytest.mark.asyncio(loop_scope="module")
async def test_jupyterlab_runs_behind_its_prefix_and_token_and_stops(platform: Platform) -> None:
    store = platform.store
    store.create(claim("work"))
    store.create(notebook("lab", "kubeflownotebookswg/jupyter-scipy:v1.10.0"))

    def ready() -> Obj | None:
        nb = store.get(NOTEBOOKS, "default", "lab")
        return nb if (nb.get("status") or {}).get("readyReplicas") == 1 else None

    nb: Obj = await wait_until(ready, 90, "the notebook to be ready")
    assert "running" in nb["status"]["containerState"]
    pod = store.get("pods", "default", "lab-0")
    port = pod["spec"]["containers"][0]["ports"][0]["containerPort"]
    secret = store.get("secrets", "default", "lab-notebook-token")
    token = base64.b64decode(secret["data"]["token"]).decode()
    url = f"http://127.0.0.1:{port}/notebook/default/lab/api/status"

    async def answer(headers: dict[str, str]) -> int | None:
        try:
            async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
                return (await client.get(url, headers=headers)).status_code
        except httpx.HTTPError:
            return None

    async def status_ok() -> bool:
        return await answer({"Authorization": f"token {token}"}) == 200

    await wait_until(status_ok, 150, "JupyterLab to answer")
    assert await status_ok()
    assert await answer({}) == 403  # no token: refused

    nb["metadata"]["annotations"] = {"kubeflow-resource-stopped": "2026-01-01T00:00:00Z"}
    store.update(nb)

    def stopped() -> bool:
        pods = store.list("pods", "default", {"notebook-name": "lab"})[0]
        status = store.get(NOTEBOOKS, "default", "lab").get("status") or {}
        return not pods and status.get("readyReplicas") == 0

    await wait_until(stopped, 60, "the notebook's pod to go")
    assert store.get("persistentvolumeclaims", "default", "work")  # the claim stays


@pytest.mark.asyncio(loop_scope="module")
async def test_an_unmapped_image_says_what_to_add(platform: Platform) -> None:
    store = platform.store
    if not store.list("persistentvolumeclaims", "default")[0]:  # run alone, not after the first
        store.create(claim("work"))
    store.create(notebook("custom", "registry.example/team/my-notebook:1"))

    def waiting() -> Obj | None:
        status = store.get(NOTEBOOKS, "default", "custom").get("status") or {}
        found = (status.get("containerState") or {}).get("waiting")
        return found if found and found.get("reason") == "ErrImagePull" else None

    found: Obj = await wait_until(waiting, 30, "the notebook's ErrImagePull")
    # the mapping to add, by name
    assert "add '- image: registry.example/team/my-notebook" in found["message"]
    assert "to wonderland.yaml" in found["message"]
