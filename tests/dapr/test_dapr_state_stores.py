"""The state conformance behaviours (components-contrib tests/conformance/state) for each store.

Runs in-process against the sidecar core; Redis and PostgreSQL are the real servers on
this machine (skipped locally when absent, a failure under CI=true).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from _support.daemon import wait_until
from dapr_testing import require_backend

from wonderland.dapr.errors import APIError
from wonderland.dapr.resources import parse_documents
from wonderland.dapr.runtime import DaprRuntime, RuntimeOptions, StateWrite

STORES = ["in-memory", "sqlite", "redis", "postgresql"]


def _component(kind: str, tmp_path: Path, unique: str) -> dict[str, object]:
    meta: list[dict[str, str]] = [{"name": "keyPrefix", "value": unique}]
    if kind == "sqlite":
        meta.append({"name": "connectionString", "value": str(tmp_path / "s.db")})
    elif kind == "redis":
        meta.append({"name": "redisHost", "value": "localhost:6379"})
    elif kind == "postgresql":
        meta += [
            {
                "name": "connectionString",
                "value": "host=127.0.0.1 user=postgres dbname=test port=5432",
            },
            {"name": "tableName", "value": f"state_{unique}"},
        ]
    return {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": "store"},
        "spec": {"type": f"state.{kind}", "version": "v1", "metadata": meta},
    }


@pytest.fixture(params=STORES)
async def rt(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DaprRuntime]:
    kind = request.param
    if kind in {"redis", "postgresql"}:
        require_backend(kind)
    unique = "t" + uuid.uuid4().hex[:12]
    res = parse_documents([_component(kind, tmp_path, unique)])
    runtime = DaprRuntime(RuntimeOptions(app_id="conf", resources=res, state_dir=tmp_path))
    await runtime.start()
    try:
        yield runtime
    finally:
        if kind == "postgresql":
            comp = runtime.state["store"].component
            await comp.pool.execute(f"DROP TABLE IF EXISTS state_{unique}")  # type: ignore[attr-defined]
        await runtime.close()


async def _get(rt: DaprRuntime, key: str) -> bytes | None:
    got = await rt.get_state("store", key)
    return None if got is None else got.data


@pytest.mark.parametrize(
    "value",
    [b"123", b"true", b"\x00\x01binary\xff", b'{"json": "like"}', b'"string"', b"", b"plain text"],
)
async def test_set_get_round_trips_every_value_type(rt: DaprRuntime, value: bytes) -> None:
    await rt.save_state("store", [StateWrite("k", value)])
    got = await rt.get_state("store", "k")
    assert got is not None and got.etag
    if value.startswith(b"{"):
        assert yaml.safe_load(got.data) == yaml.safe_load(value)  # jsonb may re-space the object
    else:
        assert got.data == value


async def test_delete_and_bulk_operations(rt: DaprRuntime) -> None:
    await rt.save_state("store", [StateWrite(f"b{i}", str(i).encode()) for i in range(3)])
    rows = await rt.bulk_get_state("store", ["b0", "b1", "b2", "missing"])
    assert [r.get("data") for r in rows] == [b"0", b"1", b"2", None]
    await rt.delete_state("store", "b1", None)
    assert await _get(rt, "b1") is None
    await rt.delete_state("store", "never-there", None)


async def test_etags(rt: DaprRuntime) -> None:
    await rt.save_state("store", [StateWrite("e", b"1")])
    first = await rt.get_state("store", "e")
    assert first is not None and first.etag
    with pytest.raises(APIError) as err:
        await rt.save_state("store", [StateWrite("e", b"2", etag="9999999")])
    assert err.value.status == 409 and err.value.grpc_code == "ABORTED"
    await rt.save_state("store", [StateWrite("e", b"2", etag=first.etag)])
    second = await rt.get_state("store", "e")
    assert second is not None and second.data == b"2" and second.etag != first.etag
    # Bulk set with one stale ETag: the other items are still written, the error names the key.
    with pytest.raises(APIError) as err:
        await rt.save_state(
            "store", [StateWrite("e", b"3", etag=first.etag), StateWrite("other", b"x")]
        )
    assert "e'" in err.value.message or "||e" in err.value.message
    assert await _get(rt, "other") == b"x"
    with pytest.raises(APIError):
        await rt.delete_state("store", "e", first.etag)
    await rt.delete_state("store", "e", second.etag)
    assert await rt.get_state("store", "e") is None


async def test_first_write(rt: DaprRuntime) -> None:
    await rt.save_state("store", [StateWrite("fw", b"1", concurrency="first-write")])
    with pytest.raises(APIError) as err:
        await rt.save_state("store", [StateWrite("fw", b"2", concurrency="first-write")])
    assert err.value.status == 409
    with pytest.raises(APIError):
        await rt.save_state("store", [StateWrite("fw", b"2", etag="", concurrency="first-write")])
    cur = await rt.get_state("store", "fw")
    assert cur is not None
    await rt.save_state("store", [StateWrite("fw", b"3", etag=cur.etag, concurrency="first-write")])
    with pytest.raises(APIError):
        await rt.save_state(
            "store", [StateWrite("fw", b"4", etag=cur.etag, concurrency="first-write")]
        )
    assert await _get(rt, "fw") == b"3"


async def test_transactions_apply_in_order_and_atomically(rt: DaprRuntime) -> None:
    await rt.save_state("store", [StateWrite("t1", b"old")])
    await rt.transact(
        "store",
        [
            ("delete", StateWrite("t1", b"")),
            ("upsert", StateWrite("t2", b"1")),
            ("delete", StateWrite("t2", b"")),
            ("upsert", StateWrite("t2", b"2")),
            ("delete", StateWrite("not-there", b"")),
        ],
    )
    assert await _get(rt, "t1") is None
    assert await _get(rt, "t2") == b"2"
    with pytest.raises(APIError) as err:
        await rt.transact(
            "store",
            [("upsert", StateWrite("t3", b"x")), ("upsert", StateWrite("t2", b"y", etag="424242"))],
        )
    assert err.value.code == "ERR_STATE_TRANSACTION"
    assert await _get(rt, "t3") is None and await _get(rt, "t2") == b"2"


async def test_ttl(rt: DaprRuntime) -> None:
    with pytest.raises(APIError):
        await rt.save_state("store", [StateWrite("x", b"1", metadata={"ttlInSeconds": "foo"})])
    await rt.save_state("store", [StateWrite("forever", b"1")])
    got = await rt.get_state("store", "forever")
    assert got is not None and "ttlExpireTime" not in rt.response_metadata(got)
    await rt.save_state("store", [StateWrite("long", b"1", metadata={"ttlInSeconds": "1000"})])
    got = await rt.get_state("store", "long")
    assert got is not None and got.expire_at is not None
    assert abs(got.expire_at - (time.time() + 1000)) < 5
    rows = await rt.bulk_get_state("store", ["long"])
    assert "ttlExpireTime" in rows[0]["metadata"]
    await rt.save_state("store", [StateWrite("long", b"2", metadata={"ttlInSeconds": "-1"})])
    got = await rt.get_state("store", "long")
    assert got is not None and got.expire_at is None
    await rt.save_state("store", [StateWrite("short", b"1", metadata={"ttlInSeconds": "1"})])

    async def expired() -> bool:
        return await _get(rt, "short") is None

    await wait_until(expired, 10, "the key to expire", interval=0.2)


async def test_keys_are_prefixed_with_the_app_id(tmp_path: Path) -> None:
    res = parse_documents(
        [
            {
                "apiVersion": "dapr.io/v1alpha1",
                "kind": "Component",
                "metadata": {"name": "store"},
                "spec": {
                    "type": "state.sqlite",
                    "version": "v1",
                    "metadata": [{"name": "connectionString", "value": str(tmp_path / "p.db")}],
                },
            }
        ]
    )
    rt = DaprRuntime(RuntimeOptions(app_id="prefixed", resources=res, state_dir=tmp_path))
    await rt.start()
    try:
        await rt.save_state("store", [StateWrite("k", b"1")])
        comp = rt.state["store"].component
        assert await comp.get("prefixed||k") is not None
    finally:
        await rt.close()
