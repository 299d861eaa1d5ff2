"""The HTTP API against a real sidecar process, checking daprd's exact status codes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from wonderland.dapr.sidecar import SidecarProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def sc(shared_sidecar: SidecarProcess) -> SidecarProcess:
    return shared_sidecar


@pytest.fixture
def http(sc: SidecarProcess) -> httpx.Client:
    with httpx.Client(base_url=sc.http_url + "/v1.0", timeout=10) as client:
        yield client  # type: ignore[misc]


def test_save_then_get_returns_json_value_with_etag(http: httpx.Client) -> None:
    r = http.post("/state/statestore", json=[{"key": "order", "value": {"b": 1, "a": "x"}}])
    assert r.status_code == 204 and r.content == b""
    r = http.get("/state/statestore/order")
    assert r.status_code == 200
    assert r.json() == {"a": "x", "b": 1}
    assert r.headers["etag"]
    # A string value is stored JSON-encoded, quotes included, as daprd does.
    http.post("/state/statestore", json=[{"key": "s", "value": "x"}])
    assert http.get("/state/statestore/s").content == b'"x"'


def test_missing_key_is_204_and_unknown_store_is_400(http: httpx.Client) -> None:
    r = http.get("/state/statestore/nope")
    assert r.status_code == 204 and r.content == b""
    r = http.get("/state/nostore/k")
    assert r.status_code == 400
    assert r.json()["errorCode"] == "ERR_STATE_STORE_NOT_FOUND"


def test_malformed_requests_are_400(http: httpx.Client) -> None:
    r = http.post("/state/statestore", json=[{"value": 1}])
    assert r.status_code == 400 and r.json()["errorCode"] == "ERR_MALFORMED_REQUEST"
    r = http.post("/state/statestore", content=b"{not json")
    assert r.status_code == 400 and r.json()["errorCode"] == "ERR_MALFORMED_REQUEST"
    r = http.post("/state/statestore", json=[{"key": "a||b", "value": 1}])
    assert r.status_code == 400 and r.json()["errorCode"] == "ERR_MALFORMED_REQUEST"
    assert http.post("/state/statestore", json=[]).status_code == 204


def test_etag_mismatch_is_409_and_delete_honours_if_match(http: httpx.Client) -> None:
    http.post("/state/statestore", json=[{"key": "k", "value": 1}])
    etag = http.get("/state/statestore/k").headers["etag"]
    r = http.post("/state/statestore", json=[{"key": "k", "value": 2, "etag": "stale"}])
    assert r.status_code == 409
    r = http.post("/state/statestore", json=[{"key": "k", "value": 2, "etag": etag}])
    assert r.status_code == 204
    new_etag = http.get("/state/statestore/k").headers["etag"]
    assert new_etag != etag
    assert http.delete("/state/statestore/k", headers={"If-Match": etag}).status_code == 409
    assert http.delete("/state/statestore/k", headers={"If-Match": new_etag}).status_code == 204
    assert http.get("/state/statestore/k").status_code == 204


def test_first_write_rejects_the_second_insert(http: httpx.Client) -> None:
    item = {"key": "fw", "value": 1, "options": {"concurrency": "first-write"}}
    assert http.post("/state/statestore", json=[item]).status_code == 204
    assert http.post("/state/statestore", json=[item]).status_code == 409


def test_bulk_get_uses_data_field_and_omits_missing(http: httpx.Client) -> None:
    http.post(
        "/state/statestore", json=[{"key": "a", "value": {"n": 1}}, {"key": "b", "value": "two"}]
    )
    r = http.post("/state/statestore/bulk", json={"keys": ["a", "b", "missing"]})
    assert r.status_code == 200
    rows = {row["key"]: row for row in r.json()}
    assert rows["a"]["data"] == {"n": 1} and rows["a"]["etag"]
    assert rows["b"]["data"] == "two"
    assert "data" not in rows["missing"]


def test_transaction_is_ordered_and_etag_failure_is_500(http: httpx.Client) -> None:
    http.post("/state/statestore", json=[{"key": "t1", "value": "old"}])
    ops = {
        "operations": [
            {"operation": "delete", "request": {"key": "t1"}},
            {"operation": "upsert", "request": {"key": "t2", "value": 1}},
            {"operation": "delete", "request": {"key": "t2"}},
            {"operation": "upsert", "request": {"key": "t2", "value": 2}},
            {"operation": "delete", "request": {"key": "never-existed"}},
        ]
    }
    assert http.post("/state/statestore/transaction", json=ops).status_code == 204
    assert http.get("/state/statestore/t1").status_code == 204
    assert http.get("/state/statestore/t2").json() == 2
    bad = {
        "operations": [
            {"operation": "upsert", "request": {"key": "t2", "value": 3, "etag": "wrong"}},
            {"operation": "upsert", "request": {"key": "t3", "value": 3}},
        ]
    }
    r = http.post("/state/statestore/transaction", json=bad)
    assert r.status_code == 500 and r.json()["errorCode"] == "ERR_STATE_TRANSACTION"
    assert http.get("/state/statestore/t3").status_code == 204  # rolled back
    r = http.post(
        "/state/statestore/transaction",
        json={"operations": [{"operation": "merge", "request": {"key": "x"}}]},
    )
    assert r.status_code == 400 and r.json()["errorCode"] == "ERR_NOT_SUPPORTED_STATE_OPERATION"


def test_ttl_sets_expire_time_and_rejects_non_integers(http: httpx.Client) -> None:
    r = http.post("/state/statestore?metadata.ttlInSeconds=100", json=[{"key": "ttl", "value": 1}])
    assert r.status_code == 204
    assert http.get("/state/statestore/ttl").headers["metadata.ttlExpireTime"].endswith("Z")
    http.post("/state/statestore", json=[{"key": "ttl", "value": 1}])
    assert "metadata.ttlExpireTime" not in http.get("/state/statestore/ttl").headers
    r = http.post(
        "/state/statestore", json=[{"key": "ttl", "value": 1, "metadata": {"ttlInSeconds": "foo"}}]
    )
    assert r.status_code == 400


def test_query_filters_sorts_and_pages(sc: SidecarProcess, http: httpx.Client) -> None:
    http.post(
        "/state/statestore",
        json=[
            {"key": f"q{i}", "value": {"n": i, "kind": "even" if i % 2 == 0 else "odd"}}
            for i in range(6)
        ],
    )
    r = httpx.post(
        sc.http_url + "/v1.0-alpha1/state/statestore/query",
        json={
            "filter": {"EQ": {"kind": "even"}},
            "sort": [{"key": "n", "order": "DESC"}],
            "page": {"limit": 2},
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert [row["data"]["n"] for row in body["results"]] == [4, 2]
    assert body["token"]


def test_publish_errors(http: httpx.Client) -> None:
    assert http.post("/publish/pubsub/orders", json={"a": 1}).status_code == 204
    r = http.post("/publish/nopubsub/orders", json={})
    assert r.status_code == 404 and r.json()["errorCode"] == "ERR_PUBSUB_NOT_FOUND"
    r = http.post("/publish/pubsub/orders?metadata.ttlInSeconds=abc", json={})
    assert r.status_code == 400
    r = http.post(
        "/publish/bulk/pubsub/orders",
        json=[
            {"entryId": "1", "event": {"a": 1}, "contentType": "application/json"},
            {"entryId": "1", "event": "x", "contentType": "text/plain"},
        ],
    )
    assert r.status_code == 400
    r = http.post(
        "/publish/bulk/pubsub/orders",
        json=[{"entryId": "1", "event": {"a": 1}, "contentType": "application/json"}],
    )
    assert r.status_code == 204


def test_secrets_single_bulk_and_unknown_store(http: httpx.Client) -> None:
    assert http.get("/secrets/localsecrets/conftestsecret").json() == {"conftestsecret": "abcd"}
    assert http.get("/secrets/localsecrets/db:password").json() == {"db:password": "pw"}
    bulk = http.get("/secrets/localsecrets/bulk").json()
    assert bulk["secondsecret"] == {"secondsecret": "efgh"}
    r = http.get("/secrets/nostore/x")
    assert r.status_code == 401 and r.json()["errorCode"] == "ERR_SECRET_STORE_NOT_FOUND"
    assert http.get("/secrets/localsecrets/absent").status_code == 500


def test_configuration_get(http: httpx.Client) -> None:
    r = http.get("/configuration/config", params=[("key", "limit")])
    assert r.status_code == 200
    assert r.json() == {"limit": {"value": "10", "version": "3", "metadata": {}}}
    assert set(http.get("/configuration/config").json()) == {"greeting", "limit"}
    assert http.get("/configuration/config", params=[("key", "absent")]).status_code == 204
    r = http.get("/configuration/nostore")
    assert r.status_code == 400 and r.json()["errorCode"] == "ERR_CONFIGURATION_STORE_NOT_FOUND"


def test_metadata_and_health(http: httpx.Client) -> None:
    assert http.get("/healthz").status_code == 204
    assert http.get("/healthz/outbound").status_code == 204
    assert http.get("/healthz", params={"appid": "other"}).status_code == 500
    assert http.put("/metadata/cliPID", content=b"1234").status_code == 204
    md = http.get("/metadata").json()
    assert md["id"] == "shared"
    assert md["extended"]["cliPID"] == "1234"
    types = {c["name"]: c["type"] for c in md["components"]}
    assert types == {
        "statestore": "state.sqlite",
        "pubsub": "pubsub.in-memory",
        "localsecrets": "secretstores.local.file",
        "config": "configuration.wonderland.file",
    }


def test_api_token_required_except_health(
    sidecar_factory: Callable[..., SidecarProcess], basic_resources: Path
) -> None:
    sc = sidecar_factory(
        "tokenapp", resources_path=[basic_resources], env={"DAPR_API_TOKEN": "s3cret"}
    )
    base = sc.http_url + "/v1.0"
    r = httpx.get(base + "/state/statestore/k")
    assert r.status_code == 401 and r.text == "invalid api token"
    assert (
        httpx.get(base + "/state/statestore/k", headers={"dapr-api-token": "wrong"}).status_code
        == 401
    )
    assert (
        httpx.get(base + "/state/statestore/k", headers={"dapr-api-token": "s3cret"}).status_code
        == 204
    )
    assert httpx.get(base + "/healthz/outbound").status_code == 204


def test_shutdown_stops_the_sidecar(
    sidecar_factory: Callable[..., SidecarProcess], basic_resources: Path
) -> None:
    sc = sidecar_factory("stopme", resources_path=[basic_resources])
    assert httpx.post(sc.http_url + "/v1.0/shutdown").status_code == 204
    assert sc.proc is not None
    assert sc.proc.wait(30) == 0


def test_configuration_subscribe_posts_changes_to_the_app(
    sidecar_factory: Callable[..., SidecarProcess],
    basic_resources: Path,
    app_factory: Callable[..., int],
    tmp_path: Path,
) -> None:
    from _support.daemon import wait_for
    from dapr_testing import received

    app = app_factory()
    sc = sidecar_factory("cfgsub", resources_path=[basic_resources], app_port=app)
    base = sc.http_url + "/v1.0"
    wait_for(lambda: httpx.get(base + "/healthz").status_code == 204)
    r = httpx.get(base + "/configuration/config/subscribe", params=[("key", "greeting")])
    assert r.status_code == 200
    sub_id = r.json()["id"]
    # the store read its baseline before the subscription was answered: no wait needed
    (tmp_path / "config.yaml").write_text("greeting: bonjour\nlimit: {value: '10', version: '3'}\n")
    (update,) = wait_for(
        lambda: [x for x in received(app) if x["path"] == "/configuration/config/greeting"]
    )
    assert update["body"] == {
        "id": sub_id,
        "items": {"greeting": {"value": "bonjour", "version": "", "metadata": {}}},
    }
    r = httpx.get(f"{base}/configuration/config/{sub_id}/unsubscribe")
    assert r.json() == {"ok": True}
    r = httpx.get(f"{base}/configuration/config/{sub_id}/unsubscribe")
    assert r.status_code == 500 and r.json()["ok"] is False


def test_configuration_subscribe_without_app_is_500(
    sidecar_factory: Callable[..., SidecarProcess], basic_resources: Path
) -> None:
    sc = sidecar_factory("noapp", resources_path=[basic_resources])
    r = httpx.get(sc.http_url + "/v1.0/configuration/config/subscribe")
    assert r.status_code == 500 and r.json()["errorCode"] == "ERR_APP_CHANNEL_NIL"
