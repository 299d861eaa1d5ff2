"""``configuration.postgresql``: items in a table (``KEY, VALUE, VERSION, METADATA``).

Subscriptions ``LISTEN`` on the channel given in the subscribe request's metadata
``pgNotifyChannel``; a trigger that you create sends ``pg_notify(channel, json)`` with
``{"action": ..., "data": {row}}``, exactly as for Dapr (see docs/dapr.md).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson

from wonderland.dapr.components._postgres import pool_kwargs
from wonderland.dapr.components.base import (
    Closer,
    ConfigHandler,
    ConfigItem,
    ConfigurationStoreComponent,
)
from wonderland.dapr.errors import ComponentConfigError

__all__ = ["PostgreSQLConfigurationStore"]

log = logging.getLogger(__name__)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


def _meta(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return {}
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


class PostgreSQLConfigurationStore(ConfigurationStoreComponent):
    """See the module docstring."""

    FIELDS = {
        "connectionString": None,
        "table": None,
        "timeout": "20s",
        "maxConns": "",
        "connectionMaxIdleTime": "",
        "queryExecMode": "",
    }

    pool: Any

    async def init(self) -> None:
        import asyncpg

        if not _IDENT.match(self.meta["table"]):
            raise ComponentConfigError(
                f"component {self.name!r}: table {self.meta['table']!r} is not a valid identifier"
            )
        self.table = self.meta["table"]
        self.kwargs = pool_kwargs(self.name, self.meta["connectionString"])
        self.pool = await asyncpg.create_pool(
            min_size=1, max_size=int(self.meta["maxConns"] or 5), **self.kwargs
        )
        exists = await self.pool.fetchval("SELECT to_regclass($1) IS NOT NULL", self.table)
        if not exists:
            raise ComponentConfigError(
                f"component {self.name!r}: table {self.table!r} does not exist; create it with columns "
                "KEY VARCHAR NOT NULL, VALUE VARCHAR NOT NULL, VERSION VARCHAR NOT NULL, METADATA JSON"
            )

    async def close(self) -> None:
        if hasattr(self, "pool"):
            await self.pool.close()

    async def get(self, keys: list[str], metadata: dict[str, str]) -> dict[str, ConfigItem]:
        if keys:
            rows = await self.pool.fetch(
                f"SELECT key, value, version, metadata FROM {self.table} WHERE key = ANY($1::text[])",
                keys,
            )
        else:
            rows = await self.pool.fetch(f"SELECT key, value, version, metadata FROM {self.table}")
        return {r[0]: ConfigItem(r[1], r[2], _meta(r[3])) for r in rows}

    async def subscribe(
        self, keys: list[str], metadata: dict[str, str], handler: ConfigHandler
    ) -> Closer:
        import asyncio

        import asyncpg

        channel = metadata.get("pgNotifyChannel", "")
        if not channel or not _IDENT.match(channel):
            raise ComponentConfigError(
                f"component {self.name!r}: subscribing needs the metadata pgNotifyChannel naming the channel "
                "your trigger notifies"
            )
        conn = await asyncpg.connect(**self.kwargs)
        tasks: set[asyncio.Future[None]] = set()

        def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            try:
                doc = orjson.loads(payload)
                row = {str(k).lower(): v for k, v in (doc.get("data") or {}).items()}
                key = str(row.get("key", ""))
            except (orjson.JSONDecodeError, AttributeError):
                log.warning("configuration notification on %s is not the expected JSON", channel)
                return
            if keys and key not in keys:
                return
            if str(doc.get("action", "")).upper() == "DELETE":
                item = ConfigItem("", "")
            else:
                item = ConfigItem(
                    str(row.get("value", "")),
                    str(row.get("version", "")),
                    _meta(row.get("metadata")),
                )
            task = asyncio.ensure_future(handler({key: item}))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        await conn.add_listener(channel, on_notify)

        async def close() -> None:
            await conn.close()

        return close
