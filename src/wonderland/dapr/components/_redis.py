"""Shared Redis connection settings for ``state.redis``, ``pubsub.redis``, ``configuration.redis``."""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
from collections import deque
from typing import Any

import hiredis

from wonderland.dapr.components.base import Component
from wonderland.dapr.errors import ComponentConfigError

__all__ = ["REDIS_FIELDS", "connect", "pipelined"]

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


def _settings(comp: Component) -> dict[str, Any]:
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
    return {
        "host": host or "localhost",
        "port": int(port),
        "db": int(meta["redisDB"] or 0),
        "username": meta["redisUsername"] or None,
        "password": meta["redisPassword"] or None,
        "socket_connect_timeout": comp.number("dialTimeout") or 5.0,
    }


def connect(comp: Component) -> Any:
    """A ``redis.asyncio.Redis`` client for the component's metadata."""
    import redis.asyncio as aioredis

    kwargs = _settings(comp)
    # Like go-redis: a bounded pool (poolSize, default 10 per CPU) where callers wait
    # up to poolTimeout for a free connection instead of failing.
    meta = comp.meta
    size = int(meta["poolSize"]) if meta["poolSize"] else 10 * (os.cpu_count() or 1)
    if comp.flag("enableTLS"):
        kwargs["connection_class"] = aioredis.SSLConnection
        kwargs["ssl_cert_reqs"] = "none" if comp.flag("insecureSkipTLSVerify") else "required"
    pool = aioredis.BlockingConnectionPool(
        max_connections=max(size, 4), timeout=comp.number("poolTimeout") or 5.0, **kwargs
    )
    return aioredis.Redis(connection_pool=pool)


def pipelined(comp: Component) -> PipelinedRedis:
    """The component's connection for single commands on the request path."""
    kwargs = _settings(comp)
    context = None
    if comp.flag("enableTLS"):
        context = ssl.create_default_context()
        if comp.flag("insecureSkipTLSVerify"):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    return PipelinedRedis(
        kwargs["host"],
        kwargs["port"],
        db=kwargs["db"],
        username=kwargs["username"],
        password=kwargs["password"],
        connect_timeout=kwargs["socket_connect_timeout"],
        ssl_context=context,
    )


class _RespProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        import redis.exceptions

        self.reader = hiredis.Reader(replyError=redis.exceptions.ResponseError)
        self.waiters: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.Transport | None = None
        self.alive = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.alive = True

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        import redis.exceptions

        self.alive = False
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_exception(
                    redis.exceptions.ConnectionError(f"connection to Redis lost: {exc}")
                )

    def send(self, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        assert self.transport is not None
        self.transport.write(hiredis.pack_command(args))
        return fut


class PipelinedRedis:
    """Single commands pipelined over one connection; Redis answers them in order.

    The request path (state get/set, publish) sends one command per call. A pooled
    ``redis.asyncio`` client spends about 0.25 ms of Python per command on that; writing
    the packed command and matching replies in order costs a few microseconds, and one
    connection serves any number of concurrent callers. Blocking commands and
    pipelines stay on the pooled client. A lost connection fails the commands in flight
    (the caller sees an error, nothing is retried) and the next command reconnects.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        connect_timeout: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.connect_timeout = connect_timeout
        self.ssl_context = ssl_context
        self._proto: _RespProtocol | None = None
        self._lock = asyncio.Lock()
        self._scripts: dict[str, str] = {}

    async def _connection(self) -> _RespProtocol:
        import redis.exceptions

        async with self._lock:
            if self._proto is not None and self._proto.alive:
                return self._proto
            loop = asyncio.get_running_loop()
            try:
                _, proto = await asyncio.wait_for(
                    loop.create_connection(
                        _RespProtocol, self.host, self.port, ssl=self.ssl_context
                    ),
                    self.connect_timeout,
                )
            except (TimeoutError, OSError) as exc:
                raise redis.exceptions.ConnectionError(
                    f"cannot connect to Redis at {self.host}:{self.port}: {exc}"
                ) from None
            setup: list[asyncio.Future[Any]] = []
            if self.password:
                auth = (self.username, self.password) if self.username else (self.password,)
                setup.append(proto.send(("AUTH", *auth)))
            if self.db:
                setup.append(proto.send(("SELECT", self.db)))
            for reply in await asyncio.gather(*setup):
                if isinstance(reply, Exception):
                    proto.transport.close()  # type: ignore[union-attr]
                    raise reply
            self._proto = proto
            return proto

    async def execute(self, *args: Any) -> Any:
        proto = self._proto
        if proto is None or not proto.alive:
            proto = await self._connection()
        reply = await proto.send(args)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def run_script(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA, loading the script on NOSCRIPT (as redis-py's Script does)."""
        import redis.exceptions

        sha = self._scripts.get(script)
        if sha is None:
            sha = self._scripts[script] = hashlib.sha1(script.encode()).hexdigest()
        try:
            return await self.execute("EVALSHA", sha, len(keys), *keys, *args)
        except redis.exceptions.ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self.execute("EVAL", script, len(keys), *keys, *args)

    async def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None
