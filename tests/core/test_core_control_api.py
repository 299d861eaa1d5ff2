"""The control API in-process: discovery shapes, Status errors, patches, auth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from wonderland.control import ControlAPI
from wonderland.store import Store

TOKEN = "test-token"


@pytest.fixture
async def api(tmp_path: Path) -> Any:
    store = Store.open(tmp_path)
    app = ControlAPI(store, TOKEN, "127.0.0.1:7443")
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        yield c
    store.close()


KSVC = {
    "apiVersion": "serving.knative.dev/v1",
    "kind": "Service",
    "metadata": {"name": "hello"},
    "spec": {"template": {"spec": {"containers": [{"image": "app"}]}}},
}
KSVC_URL = "/apis/serving.knative.dev/v1/namespaces/default/services"


async def test_discovery_shapes(api: httpx.AsyncClient) -> None:
    groups = (await api.get("/apis")).json()
    assert groups["kind"] == "APIGroupList"
    by_name = {g["name"]: g for g in groups["groups"]}
    assert by_name["serving.knative.dev"]["preferredVersion"]["version"] == "v1"
    dapr_versions = [v["version"] for v in by_name["dapr.io"]["versions"]]
    assert dapr_versions == ["v1alpha1", "v2alpha1"]
    core = (await api.get("/api/v1")).json()
    cm = next(r for r in core["resources"] if r["name"] == "configmaps")
    assert cm["shortNames"] == ["cm"] and cm["namespaced"] and "watch" in cm["verbs"]
    knative = (await api.get("/apis/serving.knative.dev/v1")).json()
    names = {r["name"]: r for r in knative["resources"]}
    assert names["services"]["shortNames"] == ["kservice", "ksvc"]
    assert "services/status" in names
    assert (await api.get("/api")).json()["versions"] == ["v1"]
    assert (await api.get("/version")).json()["gitVersion"].startswith("v1.")
    openapi = await api.get("/openapi/v2")
    assert openapi.status_code == 200 and openapi.content == b""
    assert (await api.get("/apis/nope.io/v1")).status_code == 404


async def test_create_conflict_and_status_errors(api: httpx.AsyncClient) -> None:
    created = await api.post(KSVC_URL, json=KSVC)
    assert created.status_code == 201
    again = await api.post(KSVC_URL, json=KSVC)
    assert again.status_code == 409
    assert again.json()["reason"] == "AlreadyExists"
    bad = {**KSVC, "metadata": {"name": "bad"}, "spec": {"template": {"spec": {"containers": 1}}}}
    invalid = await api.post(KSVC_URL, json=bad)
    assert invalid.status_code == 422
    body = invalid.json()
    assert body["kind"] == "Status" and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "spec.template.spec.containers"
    broken = await api.post(
        KSVC_URL, content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400
    assert (await api.get(KSVC_URL + "/missing")).json()["reason"] == "NotFound"
    unauthorized = await api.get(KSVC_URL, headers={"Authorization": "Bearer wrong"})
    assert unauthorized.status_code == 401


async def test_status_is_written_only_through_the_status_subresource(
    api: httpx.AsyncClient,
) -> None:
    await api.post(KSVC_URL, json={**KSVC, "status": {"url": "http://forged"}})
    current = (await api.get(KSVC_URL + "/hello")).json()
    assert "status" not in current
    status = await api.put(
        KSVC_URL + "/hello/status", json={**current, "status": {"url": "http://x"}}
    )
    assert status.status_code == 200
    patched = await api.patch(
        KSVC_URL + "/hello",
        json={"metadata": {"labels": {"a": "b"}}, "status": {"url": "http://forged"}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patched.json()["status"] == {"url": "http://x"}
    assert patched.json()["metadata"]["labels"] == {"a": "b"}


async def test_server_side_apply_upserts_and_dry_run_stores_nothing(
    api: httpx.AsyncClient,
) -> None:
    headers = {"Content-Type": "application/apply-patch+yaml"}
    dry = await api.patch(KSVC_URL + "/hello?dryRun=All", json=KSVC, headers=headers)
    assert dry.status_code == 201
    assert (await api.get(KSVC_URL + "/hello")).status_code == 404
    created = await api.patch(KSVC_URL + "/hello?fieldManager=kubectl", json=KSVC, headers=headers)
    assert created.status_code == 201
    listing = (await api.get("/apis/serving.knative.dev/v1/services")).json()
    assert listing["kind"] == "ServiceList" and len(listing["items"]) == 1
    table = await api.get(
        KSVC_URL, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    )
    assert table.json()["kind"] == "Table"
    assert table.json()["rows"][0]["cells"][0] == "hello"
    watch_list = await api.get(KSVC_URL + "?watch=true&sendInitialEvents=true")
    assert watch_list.status_code == 400


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type"),
    [
        ("POST", KSVC_URL, b"[1, 2]", "application/json"),
        ("POST", KSVC_URL, b'{"metadata": "x"}', "application/json"),
        ("POST", KSVC_URL, b'{"metadata": {"name": 5}}', "application/json"),
        ("POST", KSVC_URL, b'{"kind": "Route", "metadata": {"name": "r"}}', "application/json"),
        ("PUT", KSVC_URL + "/hello", b'{"metadata": {"labels": "x"}}', "application/json"),
        ("PATCH", KSVC_URL + "/hello", b'{"op": "add"}', "application/json-patch+json"),
        ("PATCH", KSVC_URL + "/hello", b"[1]", "application/merge-patch+json"),
        ("PATCH", KSVC_URL + "/hello", b"{}", "text/plain"),
        ("GET", KSVC_URL + "?watch=true&resourceVersion=abc", b"", "application/json"),
        ("GET", KSVC_URL + "?labelSelector=a%20in%20(", b"", "application/json"),
        ("GET", KSVC_URL + "?fieldSelector=spec.x%3D1", b"", "application/json"),
        ("POST", "/wonderland/v1/apply", b'{"items": [1, {"kind": "X"}]}', "application/json"),
        ("POST", "/wonderland/v1/apply", b'{"items": "x"}', "application/json"),
        ("DELETE", "/apis/serving.knative.dev/v1/namespaces/default/nothings/x", b"", ""),
    ],
)
async def test_client_mistakes_are_4xx_status_objects(
    api: httpx.AsyncClient, method: str, path: str, body: bytes, content_type: str
) -> None:
    await api.post(KSVC_URL, json=KSVC)
    headers = {"Content-Type": content_type} if content_type else {}
    answer = await api.request(method, path, content=body or None, headers=headers)
    assert 400 <= answer.status_code < 500, answer.text
    status = answer.json()
    assert status["kind"] == "Status" and status["code"] == answer.status_code
    assert status["message"]
