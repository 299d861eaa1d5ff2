"""Shared Redis connection settings for ``state.redis``, ``pubsub.redis``, ``configuration.redis``."""

from __future__ import annotations

import os
from typing import Any

from wonderland.dapr.components.base import Component
from wonderland.dapr.errors import ComponentConfigError

__all__ = ["REDIS_FIELDS", "connect"]

#: Connection metadata Dapr's Redis components share (components-contrib common/redis).
REDIS_FIELDS: dict[str, str | None] = {
    "redisHost": None,
    "redisPort": "",
    "redisUsername": "",
    "redisPassword": "",
    "sentinelUsername": "",
    "sentinelPassword": "",
    "enableTLS": "false",
    "insecureSkipTLSVerify": "false",
    "clientCert": "",
    "clientKey": "",
    "failover": "false",
    "sentinelMasterName": "",
    "redisType": "node",
    "redisDB": "0",
    "redisMaxRetries": "3",
    "redisMinRetryInterval": "8ms",
    "redisMaxRetryInterval": "512ms",
    "dialTimeout": "5s",
    "readTimeout": "3s",
    "writeTimeout": "3s",
    "poolSize": "",
    "poolTimeout": "",
    "maxConnAge": "",
    "minIdleConns": "",
    "idleCheckFrequency": "",
    "idleTimeout": "5m",
    "useEntraID": "false",
}


def connect(comp: Component) -> Any:
    """A ``redis.asyncio.Redis`` client for the component's metadata."""
    import redis.asyncio as aioredis

    meta = comp.meta
    if meta["redisType"] != "node" or comp.flag("failover"):
        raise ComponentConfigError(
            f"component {comp.name!r}: only redisType node without failover is supported here; "
            "point redisHost at a single Redis server"
        )
    host, _, port = (
        meta["redisHost"].rpartition(":")
        if ":" in meta["redisHost"]
        else (meta["redisHost"], "", "")
    )
    port = meta["redisPort"] or port or "6379"
    # Like go-redis: a bounded pool (poolSize, default 10 per CPU) where callers wait
    # up to poolTimeout for a free connection instead of failing.
    size = int(meta["poolSize"]) if meta["poolSize"] else 10 * (os.cpu_count() or 1)
    kwargs: dict[str, Any] = {
        "host": host or "localhost",
        "port": int(port),
        "db": int(meta["redisDB"] or 0),
        "username": meta["redisUsername"] or None,
        "password": meta["redisPassword"] or None,
        "socket_connect_timeout": comp.number("dialTimeout") or 5.0,
    }
    if comp.flag("enableTLS"):
        kwargs["connection_class"] = aioredis.SSLConnection
        kwargs["ssl_cert_reqs"] = "none" if comp.flag("insecureSkipTLSVerify") else "required"
    pool = aioredis.BlockingConnectionPool(
        max_connections=max(size, 4), timeout=comp.number("poolTimeout") or 5.0, **kwargs
    )
    return aioredis.Redis(connection_pool=pool)
