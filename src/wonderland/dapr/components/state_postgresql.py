"""``state.postgresql`` (v1): Dapr's table layout, ETags from the row's ``xmin``."""

from __future__ import annotations

import base64
import re
from typing import Any

import orjson

from wonderland.dapr.components._postgres import pool_kwargs
from wonderland.dapr.components.base import (
    DeleteRequest,
    GetResponse,
    SetRequest,
    StateStoreComponent,
)
from wonderland.dapr.components.state_memory import STATE_COMMON_FIELDS
from wonderland.dapr.errors import ComponentConfigError, ETagInvalidError, ETagMismatchError

__all__ = ["PostgreSQLStateStore"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_LIVE = "(expiredate IS NULL OR expiredate > now())"


def _encode(value: bytes) -> tuple[str, bool]:
    try:
        orjson.loads(value)
        return value.decode("utf-8"), False
    except (orjson.JSONDecodeError, UnicodeDecodeError):
        return orjson.dumps(base64.b64encode(value).decode("ascii")).decode(), True


def _decode(value: str, binary: bool) -> bytes:
    if binary:
        return base64.b64decode(orjson.loads(value))
    return value.encode("utf-8")


class PostgreSQLStateStore(StateStoreComponent):
    """State in a PostgreSQL table (``tableName``, default ``state``)."""

    FIELDS = {
        **STATE_COMMON_FIELDS,
        "connectionString": None,
        "timeout": "20s",
        "tableName": "state",
        "metadataTableName": "dapr_metadata",
        "cleanupInterval": "1h",
        "maxConns": "",
        "connectionMaxIdleTime": "",
        "queryExecMode": "",
    }
    CAPABILITIES = ("ETAG", "TRANSACTIONAL", "TTL", "QUERY_API", "ACTOR")

    pool: Any

    async def init(self) -> None:
        import asyncpg

        table = self.meta["tableName"]
        if not _IDENT.match(table):
            raise ComponentConfigError(
                f"component {self.name!r}: tableName {table!r} is not a valid identifier"
            )
        self.table = table
        kwargs = pool_kwargs(self.name, self.meta["connectionString"])
        max_size = int(self.meta["maxConns"]) if self.meta["maxConns"] else 10
        self.pool = await asyncpg.create_pool(min_size=1, max_size=max_size, **kwargs)
        async with self.pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock(727001)")
            try:
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {table} (key text NOT NULL PRIMARY KEY, value jsonb NOT NULL,"
                    " isbinary boolean NOT NULL, insertdate TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),"
                    " updatedate TIMESTAMP WITH TIME ZONE NULL, expiredate TIMESTAMP WITH TIME ZONE NULL)"
                )
            finally:
                await conn.execute("SELECT pg_advisory_unlock(727001)")
        t = table
        self._get = f"SELECT value::text, isbinary, xmin::text, extract(epoch from expiredate) FROM {t} WHERE key = $1 AND {_LIVE}"
        self._upsert = (
            f"INSERT INTO {t} (key, value, isbinary, expiredate) VALUES ($1, $2::jsonb, $3,"
            " CASE WHEN $4::int IS NULL THEN NULL ELSE now() + make_interval(secs => $4::int) END)"
            f" ON CONFLICT (key) DO UPDATE SET value = excluded.value, isbinary = excluded.isbinary,"
            " updatedate = now(), expiredate = excluded.expiredate"
        )
        self._insert_only = (
            self._upsert + f" WHERE {t}.expiredate IS NOT NULL AND {t}.expiredate <= now()"
        )
        self._update_etag = (
            f"UPDATE {t} SET value = $2::jsonb, isbinary = $3, updatedate = now(),"
            " expiredate = CASE WHEN $4::int IS NULL THEN NULL ELSE now() + make_interval(secs => $4::int) END"
            f" WHERE key = $1 AND xmin::text = $5 AND {_LIVE}"
        )

    async def close(self) -> None:
        if hasattr(self, "pool"):
            await self.pool.close()

    @staticmethod
    def _row(row: Any) -> GetResponse:
        return GetResponse(
            _decode(row[0], row[1]), row[2], float(row[3]) if row[3] is not None else None
        )

    async def get(self, key: str) -> GetResponse | None:
        row = await self.pool.fetchrow(self._get, key)
        return None if row is None else self._row(row)

    async def bulk_get(self, keys: list[str]) -> list[GetResponse | None]:
        rows = await self.pool.fetch(
            f"SELECT key, value::text, isbinary, xmin::text, extract(epoch from expiredate) FROM {self.table}"
            f" WHERE key = ANY($1::text[]) AND {_LIVE}",
            keys,
        )
        found = {
            r[0]: GetResponse(_decode(r[1], r[2]), r[3], float(r[4]) if r[4] is not None else None)
            for r in rows
        }
        return [found.get(k) for k in keys]

    @staticmethod
    def _etag(etag: str | None) -> str | None:
        if etag is not None and not etag.isdigit():
            raise ETagInvalidError(
                f"invalid etag value {etag!r}: state.postgresql ETags are integers"
            )
        return etag

    async def _apply(self, conn: Any, op: SetRequest | DeleteRequest) -> None:
        etag = self._etag(op.etag)
        if isinstance(op, SetRequest):
            text, binary = _encode(op.value)
            ttl = int(op.ttl) if op.ttl is not None else None
            if etag is not None:
                status = await conn.execute(self._update_etag, op.key, text, binary, ttl, etag)
            elif op.first_write:
                status = await conn.execute(self._insert_only, op.key, text, binary, ttl)
            else:
                await conn.execute(self._upsert, op.key, text, binary, ttl)
                return
            if status.endswith(" 0"):
                raise ETagMismatchError(f"possible etag mismatch for key {op.key!r}")
        else:
            if etag is None:
                await conn.execute(f"DELETE FROM {self.table} WHERE key = $1", op.key)
                return
            status = await conn.execute(
                f"DELETE FROM {self.table} WHERE key = $1 AND xmin::text = $2", op.key, etag
            )
            if status.endswith(" 0"):
                raise ETagMismatchError(f"possible etag mismatch for key {op.key!r}")

    async def set(self, req: SetRequest) -> None:
        async with self.pool.acquire() as conn:
            await self._apply(conn, req)

    async def delete(self, req: DeleteRequest) -> None:
        async with self.pool.acquire() as conn:
            await self._apply(conn, req)

    async def transact(self, ops: list[SetRequest | DeleteRequest]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            for op in ops:
                await self._apply(conn, op)

    async def scan(self, prefix: str) -> list[tuple[str, GetResponse]]:
        rows = await self.pool.fetch(
            f"SELECT key, value::text, isbinary, xmin::text, extract(epoch from expiredate) FROM {self.table}"
            f" WHERE starts_with(key, $1) AND {_LIVE}",
            prefix,
        )
        return [
            (
                r[0],
                GetResponse(_decode(r[1], r[2]), r[3], float(r[4]) if r[4] is not None else None),
            )
            for r in rows
        ]
