"""The configuration conformance behaviours (get, subscribe, unsubscribe) for each store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from _support.daemon import wait_until
from dapr_testing import require_backend

from wonderland.dapr.components.base import ConfigItem
from wonderland.dapr.resources import parse_documents
from wonderland.dapr.runtime import DaprRuntime, RuntimeOptions

PG = "host=127.0.0.1 user=postgres dbname=test port=5432"


class _Store:
    """Writes items behind the store's back, as an operator would."""

    def __init__(
        self,
        rt: DaprRuntime,
        put: Callable[[str, str, str], Awaitable[None]],
        delete: Callable[[str], Awaitable[None]],
        sub_meta: dict[str, str],
        prefix: str,
    ) -> None:
        self.rt, self.put, self.delete, self.sub_meta, self.prefix = (
            rt,
            put,
            delete,
            sub_meta,
            prefix,
        )


@pytest.fixture(params=["file", "redis", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[_Store]:
    kind = request.param
    prefix = "c" + uuid.uuid4().hex[:8]
    cleanup: list[Callable[[], Awaitable[Any]]] = []
    if kind == "file":
        import yaml

        path = tmp_path / "config.yaml"
        data: dict[str, Any] = {}
        path.write_text("{}")

        async def put(k: str, v: str, ver: str) -> None:
            data[k] = {"value": v, "version": ver}
            path.write_text(yaml.safe_dump(data))

        async def delete(k: str) -> None:
            data.pop(k, None)
            path.write_text(yaml.safe_dump(data))

        meta = [{"name": "path", "value": str(path)}, {"name": "pollInterval", "value": "50ms"}]
        ctype, sub_meta = "configuration.wonderland.file", {}
    elif kind == "redis":
        require_backend("redis")
        import redis.asyncio as aioredis

        client = aioredis.Redis(db=11)
        old = (await client.config_get("notify-keyspace-events"))["notify-keyspace-events"]
        await client.config_set("notify-keyspace-events", "KA")

        async def restore() -> None:
            keys = [k async for k in client.scan_iter(match=prefix + "*")]
            if keys:
                await client.delete(*keys)
            await client.config_set("notify-keyspace-events", old)
            await client.aclose()

        cleanup.append(restore)

        async def put(k: str, v: str, ver: str) -> None:
            await client.set(k, f"{v}||{ver}")

        async def delete(k: str) -> None:
            await client.delete(k)

        meta = [
            {"name": "redisHost", "value": "localhost:6379"},
            {"name": "redisDB", "value": "11"},
        ]
        ctype, sub_meta = "configuration.redis", {}
    else:
        require_backend("postgresql")
        import asyncpg

        conn = await asyncpg.connect(host="127.0.0.1", user="postgres", database="test")
        table = f"cfg_{prefix}"
        await conn.execute(
            f"CREATE TABLE {table} (KEY VARCHAR NOT NULL, VALUE VARCHAR NOT NULL,"
            " VERSION VARCHAR NOT NULL, METADATA JSON)"
        )
        await conn.execute(f"""CREATE OR REPLACE FUNCTION notify_{table}() RETURNS TRIGGER AS $$
            DECLARE data json; BEGIN
            IF (TG_OP = 'DELETE') THEN data = row_to_json(OLD); ELSE data = row_to_json(NEW); END IF;
            PERFORM pg_notify('{table}', json_build_object('table', TG_TABLE_NAME, 'action', TG_OP,
                              'data', data)::text);
            RETURN NULL; END; $$ LANGUAGE plpgsql""")
        await conn.execute(
            f"CREATE TRIGGER t_{table} AFTER INSERT OR UPDATE OR DELETE ON {table}"
            f" FOR EACH ROW EXECUTE PROCEDURE notify_{table}()"
        )

        async def drop() -> None:
            await conn.execute(f"DROP TABLE {table}")
            await conn.execute(f"DROP FUNCTION notify_{table}")
            await conn.close()

        cleanup.append(drop)

        async def put(k: str, v: str, ver: str) -> None:
            status = await conn.execute(
                f"UPDATE {table} SET value = $2, version = $3 WHERE key = $1", k, v, ver
            )
            if status == "UPDATE 0":
                await conn.execute(f"INSERT INTO {table} VALUES ($1, $2, $3, '{{}}')", k, v, ver)

        async def delete(k: str) -> None:
            await conn.execute(f"DELETE FROM {table} WHERE key = $1", k)

        meta = [{"name": "connectionString", "value": PG}, {"name": "table", "value": table}]
        ctype, sub_meta = "configuration.postgresql", {"pgNotifyChannel": table}
    await put(f"{prefix}a", "1", "v1")
    await put(f"{prefix}b", "2", "v1")
    res = parse_documents(
        [
            {
                "apiVersion": "dapr.io/v1alpha1",
                "kind": "Component",
                "metadata": {"name": "cfg"},
                "spec": {"type": ctype, "version": "v1", "metadata": meta},
            }
        ]
    )
    rt = DaprRuntime(RuntimeOptions(app_id="cfgapp", resources=res, state_dir=tmp_path))
    await rt.start()
    try:
        yield _Store(rt, put, delete, sub_meta, prefix)
    finally:
        await rt.close()
        for fn in cleanup:
            await fn()


async def test_get_with_keys_all_and_missing(store: _Store) -> None:
    p = store.prefix
    got = await store.rt.get_configuration("cfg", [f"{p}a"], {})
    assert got == {f"{p}a": ConfigItem("1", "v1", {})}
    everything = await store.rt.get_configuration("cfg", [], {})
    assert {f"{p}a", f"{p}b"} <= set(everything)
    assert await store.rt.get_configuration("cfg", [f"{p}missing"], {}) == {}


async def test_subscribers_get_updates_and_deletes_until_unsubscribed(store: _Store) -> None:
    p = store.prefix
    seen: dict[str, list[tuple[str, str, str]]] = {"a": [], "ab": [], "all": []}

    def sink(name: str) -> Callable[[str, dict[str, ConfigItem]], Awaitable[None]]:
        async def deliver(_sub: str, items: dict[str, ConfigItem]) -> None:
            seen[name].extend((k, v.value, v.version) for k, v in items.items() if k.startswith(p))

        return deliver

    ids = {
        "a": await store.rt.subscribe_configuration("cfg", [f"{p}a"], store.sub_meta, sink("a")),
        "ab": await store.rt.subscribe_configuration(
            "cfg", [f"{p}a", f"{p}b"], store.sub_meta, sink("ab")
        ),
        "all": await store.rt.subscribe_configuration("cfg", [], store.sub_meta, sink("all")),
    }
    await store.put(f"{p}b", "20", "v2")
    await wait_until(
        lambda: (f"{p}b", "20", "v2") in seen["ab"] and (f"{p}b", "20", "v2") in seen["all"]
    )
    await store.put(f"{p}a", "10", "v2")
    await wait_until(lambda: all((f"{p}a", "10", "v2") in seen[n] for n in seen))
    assert not any(k == f"{p}b" for k, _v, _ver in seen["a"])
    await store.delete(f"{p}a")
    await wait_until(lambda: all((f"{p}a", "", "") in seen[n] for n in seen))
    for name, sub_id in ids.items():
        await store.rt.unsubscribe_configuration("cfg", sub_id)
        del name
    before = {n: len(v) for n, v in seen.items()}
    await store.put(f"{p}a", "99", "v3")
    await asyncio.sleep(0.3)  # nothing to wait on: give a wrong notification its chance
    assert {n: len(v) for n, v in seen.items()} == before
