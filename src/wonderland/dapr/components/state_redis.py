"""``state.redis``: Dapr's layout, one hash per key with ``data`` and ``version`` (the ETag).

Check-and-set runs in Lua, as in components-contrib, so data written here is read by a
real Dapr sidecar and the other way round.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from wonderland.dapr.components._redis import REDIS_FIELDS, connect, pipelined
from wonderland.dapr.components.base import (
    DeleteRequest,
    GetResponse,
    SetRequest,
    StateStoreComponent,
)
from wonderland.dapr.components.state_memory import STATE_COMMON_FIELDS
from wonderland.dapr.errors import ETagInvalidError, ETagMismatchError

__all__ = ["RedisStateStore"]

# Each op: {k = key index, o = "s"|"d", e = etag or "", f = first-write 0/1, t = ttl or -1}.
# Checks run first against simulated versions so a failing op leaves nothing applied.
_TXN = """
local ops = cjson.decode(ARGV[1])
local sim = {}
for i, op in ipairs(ops) do
  local key = KEYS[op.k]
  local ver = sim[key]
  if ver == nil then
    ver = redis.call("HGET", key, "version")
    if not ver then ver = false end
  end
  if op.e ~= "" then
    if (not ver) or tostring(ver) ~= op.e then return redis.error_reply("ETAG_MISMATCH " .. i) end
  elseif op.f == 1 and op.o == "s" and ver then
    return redis.error_reply("ETAG_MISMATCH " .. i)
  end
  if op.o == "s" then sim[key] = tostring((tonumber(ver) or 0) + 1) else sim[key] = false end
end
for i, op in ipairs(ops) do
  local key = KEYS[op.k]
  if op.o == "s" then
    redis.call("HINCRBY", key, "version", 1)
    redis.call("HSET", key, "data", ARGV[i + 1])
    if op.t >= 0 then redis.call("EXPIRE", key, op.t) else redis.call("PERSIST", key) end
  else
    redis.call("DEL", key)
  end
end
return 1
"""


_GET = "return {redis.call('HMGET', KEYS[1], 'data', 'version'), redis.call('PTTL', KEYS[1])}"


class RedisStateStore(StateStoreComponent):
    """State in Redis hashes; see the module docstring."""

    FIELDS = {**STATE_COMMON_FIELDS, **REDIS_FIELDS, "ttlInSeconds": "", "queryIndexes": ""}
    CAPABILITIES = ("ETAG", "TRANSACTIONAL", "TTL", "ACTOR")

    client: Any

    async def init(self) -> None:
        self.client = connect(self)
        await self.client.ping()
        self.fast = pipelined(self)
        await self.fast.execute("PING")
        self.default_ttl = int(self.meta["ttlInSeconds"]) if self.meta["ttlInSeconds"] else None

    async def close(self) -> None:
        if hasattr(self, "fast"):
            await self.fast.close()
        if hasattr(self, "client"):
            await self.client.aclose()

    async def get(self, key: str) -> GetResponse | None:
        # One script call instead of a two-command pipeline: one round trip per read.
        (data, version), pttl = await self.fast.run_script(_GET, [key], [])
        if version is None:
            return None
        expire = time.time() + pttl / 1000 if pttl and pttl > 0 else None
        return GetResponse(data or b"", version.decode(), expire)

    async def bulk_get(self, keys: list[str]) -> list[GetResponse | None]:
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, "data", "version")
                pipe.pttl(key)
            res = await pipe.execute()
        out: list[GetResponse | None] = []
        for i in range(len(keys)):
            (data, version), pttl = res[2 * i], res[2 * i + 1]
            if version is None:
                out.append(None)
            else:
                expire = time.time() + pttl / 1000 if pttl and pttl > 0 else None
                out.append(GetResponse(data or b"", version.decode(), expire))
        return out

    @staticmethod
    def _etag(etag: str | None) -> str:
        if etag is None:
            return ""
        if not etag.isdigit():
            raise ETagInvalidError(f"invalid etag value {etag!r}: state.redis ETags are integers")
        return etag

    async def set(self, req: SetRequest) -> None:
        await self.transact([req])

    async def delete(self, req: DeleteRequest) -> None:
        await self.transact([req])

    async def transact(self, ops: list[SetRequest | DeleteRequest]) -> None:
        import redis.exceptions

        keys: list[str] = []
        index: dict[str, int] = {}
        spec: list[dict[str, Any]] = []
        args: list[Any] = []
        for op in ops:
            if op.key not in index:
                keys.append(op.key)
                index[op.key] = len(keys)
            if isinstance(op, SetRequest):
                ttl = op.ttl if op.ttl is not None else self.default_ttl
                spec.append(
                    {
                        "k": index[op.key],
                        "o": "s",
                        "e": self._etag(op.etag),
                        "f": int(op.first_write),
                        "t": -1 if ttl is None else int(ttl),
                    }
                )
                args.append(op.value)
            else:
                spec.append(
                    {"k": index[op.key], "o": "d", "e": self._etag(op.etag), "f": 0, "t": -1}
                )
                args.append(b"")
        try:
            await self.fast.run_script(_TXN, keys, [orjson.dumps(spec), *args])
        except redis.exceptions.ResponseError as exc:
            if str(exc).startswith("ETAG_MISMATCH"):
                i = int(str(exc).split()[1]) - 1
                raise ETagMismatchError(f"possible etag mismatch for key {ops[i].key!r}") from None
            raise
