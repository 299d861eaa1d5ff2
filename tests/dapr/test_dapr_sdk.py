"""The official ``dapr`` SDK (sync and aio clients, gRPC and HTTP paths) against a sidecar process."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from _support.daemon import wait_for
from dapr.aio.clients import DaprClient as AioDaprClient
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError
from dapr.clients.grpc._request import TransactionalStateOperation, TransactionOperationType
from dapr.clients.grpc._state import Concurrency, StateItem, StateOptions

from wonderland.dapr.sidecar import SidecarProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def sc(shared_sidecar: SidecarProcess, monkeypatch: pytest.MonkeyPatch) -> SidecarProcess:
    monkeypatch.setenv("DAPR_HTTP_PORT", str(shared_sidecar.http_port))
    monkeypatch.setenv("DAPR_GRPC_PORT", str(shared_sidecar.grpc_port))
    monkeypatch.setenv("DAPR_HEALTH_TIMEOUT", "30")
    return shared_sidecar


@pytest.fixture
def client(sc: SidecarProcess) -> Iterator[DaprClient]:
    with DaprClient() as c:
        yield c


def test_state_round_trip_with_etags(client: DaprClient) -> None:
    client.save_state("statestore", "k", "v1")
    got = client.get_state("statestore", "k")
    assert got.data == b"v1" and got.etag
    with pytest.raises(DaprGrpcError) as err:
        client.save_state("statestore", "k", "v2", etag="not-the-etag")
    assert err.value.code() == grpc.StatusCode.ABORTED
    client.save_state("statestore", "k", "v2", etag=got.etag)
    assert client.get_state("statestore", "k").data == b"v2"
    client.delete_state("statestore", "k")
    missing = client.get_state("statestore", "k")
    assert missing.data == b"" and missing.etag == ""


def test_first_write_and_unknown_store_error_details(client: DaprClient) -> None:
    opts = StateOptions(concurrency=Concurrency.first_write)
    client.save_state("statestore", "fw", "1", options=opts)
    with pytest.raises(DaprGrpcError) as err:
        client.save_state("statestore", "fw", "2", options=opts)
    assert err.value.code() == grpc.StatusCode.ABORTED
    with pytest.raises(DaprGrpcError) as err:
        client.get_state("nostore", "k")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.error_code() == "DAPR_STATE_NOT_FOUND"


def test_bulk_transaction_ttl_and_query(client: DaprClient) -> None:
    client.save_bulk_state("statestore", [StateItem("a", '{"n": 1}'), StateItem("b", '{"n": 2}')])
    items = {i.key: i for i in client.get_bulk_state("statestore", ["a", "b", "zz"]).items}
    assert json.loads(items["a"].data) == {"n": 1} and items["zz"].data == b""
    client.execute_state_transaction(
        "statestore",
        [
            TransactionalStateOperation(operation_type=TransactionOperationType.delete, key="a"),
            TransactionalStateOperation(key="c", data='{"n": 3}'),
        ],
    )
    assert client.get_state("statestore", "a").data == b""
    assert json.loads(client.get_state("statestore", "c").data) == {"n": 3}
    client.save_state("statestore", "ttl", "x", state_metadata={"ttlInSeconds": "60"})
    assert client.get_state("statestore", "ttl").data == b"x"
    resp = client.query_state(
        "statestore", json.dumps({"filter": {"GT": {"n": 1}}, "sort": [{"key": "n"}]})
    )
    assert [json.loads(r.value) for r in resp.results] == [{"n": 2}, {"n": 3}]


def test_secrets_configuration_and_metadata(sc: SidecarProcess, client: DaprClient) -> None:
    assert client.get_secret("localsecrets", "conftestsecret").secret == {"conftestsecret": "abcd"}
    bulk = client.get_bulk_secret("localsecrets").secrets
    assert bulk["secondsecret"] == {"secondsecret": "efgh"}
    items = client.get_configuration("config", ["limit"]).items
    assert items["limit"].value == "10" and items["limit"].version == "3"
    md = client.get_metadata()
    assert md.application_id == "shared"
    assert {c.name for c in md.registered_components} >= {"statestore", "pubsub"}
    got: list[tuple[str, str]] = []
    sub_id = client.subscribe_configuration(
        "config",
        ["greeting"],
        lambda _id, resp: got.extend((k, v.value) for k, v in resp.items.items()),
    )
    assert sub_id  # answered once the store has its baseline: the change below is seen
    (sc.workdir / "config.yaml").write_text(  # type: ignore[attr-defined]
        "greeting: hi there\nlimit: {value: '10', version: '3'}\n"
    )
    wait_for(lambda: ("greeting", "hi there") in got)
    assert client.unsubscribe_configuration("config", sub_id)


def test_publish_and_streaming_subscription(client: DaprClient) -> None:
    sub = client.subscribe("pubsub", "streamed")
    try:
        client.publish_event(
            "pubsub", "streamed", json.dumps({"order": 7}), data_content_type="application/json"
        )
        msg = sub.next_message()
        assert msg is not None
        assert msg.data() == {"order": 7}
        assert msg.topic() == "streamed" and msg.pubsub_name() == "pubsub"
        sub.respond_success(msg)
    finally:
        sub.close()


def test_invoke_method_over_http_and_grpc(
    sc: SidecarProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    with DaprClient() as c:
        resp = c.invoke_method(
            "shared", "echo/hello", data=b"ping", http_verb="POST", content_type="text/plain"
        )
        body = json.loads(resp.data)
        assert body["path"] == "/echo/hello" and body["body"] == "ping"
        assert body["headers"]["dapr-callee-app-id"] == "shared"
    monkeypatch.setenv("DAPR_API_METHOD_INVOCATION_PROTOCOL", "grpc")
    with DaprClient() as c:
        resp = c.invoke_method("shared", "echo/g", data=b"pong", http_verb="PUT")
        body = json.loads(resp.data)
        assert body["method"] == "PUT" and body["body"] == "pong"


def test_unimplemented_building_block(client: DaprClient) -> None:
    with pytest.raises(Exception) as err:
        client.try_lock("lockstore", "res", "owner", 10)
    assert "UNIMPLEMENTED" in str(err.value) or "not implemented" in str(err.value)


async def test_aio_client_state_and_publish(sc: SidecarProcess) -> None:
    async with AioDaprClient() as c:
        await c.save_state("statestore", "aio", "value")
        got = await c.get_state("statestore", "aio")
        assert got.data == b"value"
        await c.publish_event("pubsub", "t", "hello")
        with pytest.raises(Exception, match="etag mismatch"):
            await c.save_state("statestore", "aio", "x", etag="bad")


def test_http_saved_string_reads_back_json_encoded_over_grpc(
    sc: SidecarProcess, client: DaprClient
) -> None:
    import httpx

    httpx.post(f"{sc.http_url}/v1.0/state/statestore", json=[{"key": "mixed", "value": "x"}])
    assert client.get_state("statestore", "mixed").data == b'"x"'


def test_grpc_api_token(
    sidecar_factory: Callable[..., SidecarProcess],
    basic_resources: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sc = sidecar_factory("tok", resources_path=[basic_resources], env={"DAPR_API_TOKEN": "t0k"})
    monkeypatch.setenv("DAPR_HTTP_PORT", str(sc.http_port))
    monkeypatch.setenv("DAPR_GRPC_PORT", str(sc.grpc_port))
    with DaprClient() as c:
        with pytest.raises(DaprGrpcError) as err:
            c.get_state("statestore", "k")
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    monkeypatch.setenv("DAPR_API_TOKEN", "t0k")
    with DaprClient() as c:
        assert c.get_state("statestore", "k").data == b""


def test_sync_client_from_threads(client: DaprClient) -> None:
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            client.save_state("statestore", f"th{i}", str(i))
            assert client.get_state("statestore", f"th{i}").data == str(i).encode()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


async def test_aio_streaming_subscription_with_retry_and_drop(sc: SidecarProcess) -> None:
    async with AioDaprClient() as c:
        sub = await c.subscribe("pubsub", "aio-stream", dead_letter_topic="aio-dead")
        dead = await c.subscribe("pubsub", "aio-dead")
        try:
            await c.publish_event(
                "pubsub", "aio-stream", json.dumps({"n": 1}), data_content_type="application/json"
            )
            msg = await sub.next_message()
            assert msg.data() == {"n": 1}
            await sub.respond_retry(msg)  # no retry policy and no broker redelivery: final failure
            await c.publish_event(
                "pubsub", "aio-stream", json.dumps({"n": 2}), data_content_type="application/json"
            )
            msg = await sub.next_message()
            assert msg.data() == {"n": 2}
            await sub.respond_drop(msg)
            # Both the finally failed and the dropped message go to the dead-letter topic.
            for expected in ({"n": 1}, {"n": 2}):
                dropped = await dead.next_message()
                assert dropped.data() == expected
                await dead.respond_success(dropped)
        finally:
            await sub.close()
            await dead.close()


def test_testing_helper_points_the_sdk_at_a_fresh_sidecar(
    basic_resources: Path, tmp_path: Path
) -> None:
    import os

    from wonderland.dapr.testing import sidecar

    before = os.environ.get("DAPR_GRPC_PORT")
    with sidecar(
        "helper", resources_path=[basic_resources], env={"WONDERLAND_HOME": str(tmp_path / "h")}
    ) as sc:
        assert os.environ["DAPR_GRPC_PORT"] == str(sc.grpc_port)
        with DaprClient() as c:
            c.save_state("statestore", "h", "1")
            assert c.get_state("statestore", "h").data == b"1"
    assert os.environ.get("DAPR_GRPC_PORT") == before
    assert sc.proc is not None and sc.proc.poll() is not None
