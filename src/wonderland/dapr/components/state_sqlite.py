"""``state.sqlite``: the embedded durable default, in Dapr's table layout.

Statements run on the event loop: with WAL they take microseconds, and a committed
write survives a ``kill -9`` of the sidecar (WAL with synchronous=NORMAL loses data only
on an operating system crash).
"""

from __future__ import annotations

import base64
import re
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson

from wonderland.dapr.components.base import (
    DeleteRequest,
    GetResponse,
    SetRequest,
    StateStoreComponent,
)
from wonderland.dapr.components.state_memory import STATE_COMMON_FIELDS, check_write
from wonderland.dapr.errors import ComponentConfigError

__all__ = ["SQLiteStateStore"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LIVE = "(expiration_time IS NULL OR expiration_time > CURRENT_TIMESTAMP)"


def _encode(value: bytes) -> tuple[str, bool]:
    try:
        text = value.decode("utf-8")
        orjson.loads(value)
        return text, False
    except (UnicodeDecodeError, orjson.JSONDecodeError):
        return base64.b64encode(value).decode("ascii"), True


def _decode(value: str, is_binary: int) -> bytes:
    return base64.b64decode(value) if is_binary else value.encode("utf-8")


def _expire(raw: str | None) -> float | None:
    if raw is None:
        return None
    return datetime.fromisoformat(raw).replace(tzinfo=UTC).timestamp()


class SQLiteStateStore(StateStoreComponent):
    """State in a SQLite file (``connectionString``: a path, ``file:`` URI or ``:memory:``)."""

    FIELDS = {
        **STATE_COMMON_FIELDS,
        "connectionString": None,
        "timeout": "20s",
        "busyTimeout": "2s",
        "disableWAL": "false",
        "tableName": "state",
        "metadataTableName": "metadata",
        "cleanupInterval": "0",
    }
    CAPABILITIES = ("ETAG", "TRANSACTIONAL", "TTL", "QUERY_API", "ACTOR")

    db: sqlite3.Connection

    async def init(self) -> None:
        table = self.meta["tableName"]
        if not _IDENT.match(table):
            raise ComponentConfigError(
                f"component {self.name!r}: tableName {table!r} is not a valid identifier"
            )
        self.table = table
        conn = self.meta["connectionString"]
        uri = conn.startswith("file:")
        if not uri and conn != ":memory:":
            Path(conn).expanduser().parent.mkdir(parents=True, exist_ok=True)
            conn = str(Path(conn).expanduser())
        try:
            self.db = sqlite3.connect(
                conn,
                uri=uri,
                isolation_level=None,
                timeout=self.number("busyTimeout") or 2.0,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise ComponentConfigError(
                f"component {self.name!r}: cannot open {conn!r}: {exc}"
            ) from None
        if not self.flag("disableWAL"):
            self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL,"
            " is_binary BOOLEAN NOT NULL, etag TEXT NOT NULL, expiration_time TIMESTAMP DEFAULT NULL,"
            " update_time TIMESTAMP DEFAULT NULL)"
        )
        self._get_sql = (
            f"SELECT value, is_binary, etag, expiration_time FROM {table} WHERE key = ? AND {_LIVE}"
        )

    async def close(self) -> None:
        if hasattr(self, "db"):
            self.db.close()

    async def get(self, key: str) -> GetResponse | None:
        row = self.db.execute(self._get_sql, (key,)).fetchone()
        if row is None:
            return None
        return GetResponse(_decode(row[0], row[1]), row[2], _expire(row[3]))

    def _etag_of(self, key: str) -> str | None:
        row = self.db.execute(
            f"SELECT etag FROM {self.table} WHERE key = ? AND {_LIVE}", (key,)
        ).fetchone()
        return None if row is None else str(row[0])

    def _set(self, req: SetRequest) -> None:
        if req.etag is not None or req.first_write:
            check_write(req.key, self._etag_of(req.key), req.etag, req.first_write)
        text, binary = _encode(req.value)
        expire = f"+{int(req.ttl)} seconds" if req.ttl is not None else None
        self.db.execute(
            f"INSERT INTO {self.table} (key, value, is_binary, etag, expiration_time, update_time) "
            "VALUES (?, ?, ?, ?, CASE WHEN ? IS NULL THEN NULL ELSE DATETIME(CURRENT_TIMESTAMP, ?) END,"
            " CURRENT_TIMESTAMP) ON CONFLICT(key) DO UPDATE SET value = excluded.value,"
            " is_binary = excluded.is_binary, etag = excluded.etag,"
            " expiration_time = excluded.expiration_time, update_time = CURRENT_TIMESTAMP",
            (req.key, text, binary, str(uuid.uuid4()), expire, expire),
        )

    def _delete(self, req: DeleteRequest) -> None:
        if req.etag is not None:
            check_write(req.key, self._etag_of(req.key), req.etag, False)
        self.db.execute(f"DELETE FROM {self.table} WHERE key = ?", (req.key,))

    async def set(self, req: SetRequest) -> None:
        if req.etag is None and not req.first_write:
            self._set(req)
            return
        await self.transact([req])

    async def delete(self, req: DeleteRequest) -> None:
        if req.etag is None:
            self._delete(req)
            return
        await self.transact([req])

    async def transact(self, ops: list[SetRequest | DeleteRequest]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                if isinstance(op, SetRequest):
                    self._set(op)
                else:
                    self._delete(op)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    async def scan(self, prefix: str) -> list[tuple[str, GetResponse]]:
        rows = self.db.execute(
            f"SELECT key, value, is_binary, etag, expiration_time FROM {self.table} "
            f"WHERE substr(key, 1, ?) = ? AND {_LIVE}",
            (len(prefix), prefix),
        ).fetchall()
        return [(r[0], GetResponse(_decode(r[1], r[2]), r[3], _expire(r[4]))) for r in rows]
