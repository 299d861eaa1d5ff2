"""``state.in-memory``: a process-local store with Dapr's ETag, first-write and TTL rules."""

from __future__ import annotations

import time

from wonderland.dapr.components.base import (
    DeleteRequest,
    GetResponse,
    SetRequest,
    StateStoreComponent,
)
from wonderland.dapr.errors import ETagInvalidError, ETagMismatchError

__all__ = ["STATE_COMMON_FIELDS", "InMemoryStateStore", "check_write"]

#: Metadata every state store accepts (read by the sidecar core, not the backend).
STATE_COMMON_FIELDS: dict[str, str | None] = {"keyPrefix": "appid", "actorStateStore": "false"}


def check_write(key: str, current_etag: str | None, etag: str | None, first_write: bool) -> None:
    """Raise ETagMismatchError as Dapr's stores do for an OCC conflict."""
    if etag is not None:
        if current_etag is None or current_etag != etag:
            raise ETagMismatchError(
                f"possible etag mismatch for key {key!r}: the etag does not match"
            )
    elif first_write and current_etag is not None:
        raise ETagMismatchError(
            f"possible etag mismatch for key {key!r}: first-write and the key already exists"
        )


class InMemoryStateStore(StateStoreComponent):
    """Keeps values in a dict; ETags are integer versions as with ``state.redis``."""

    FIELDS = {**STATE_COMMON_FIELDS}
    CAPABILITIES = ("ETAG", "TRANSACTIONAL", "TTL", "QUERY_API", "ACTOR")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._items: dict[str, tuple[bytes, int, float | None]] = {}

    def _live(self, key: str) -> tuple[bytes, int, float | None] | None:
        item = self._items.get(key)
        if item is not None and item[2] is not None and item[2] <= time.time():
            del self._items[key]
            return None
        return item

    @staticmethod
    def _valid(etag: str | None) -> None:
        if etag is not None and not etag.isdigit():
            raise ETagInvalidError(f"invalid etag value {etag!r}: expected an integer version")

    async def get(self, key: str) -> GetResponse | None:
        item = self._live(key)
        return None if item is None else GetResponse(item[0], str(item[1]), item[2])

    def _set(self, req: SetRequest) -> None:
        self._valid(req.etag)
        item = self._live(req.key)
        check_write(req.key, None if item is None else str(item[1]), req.etag, req.first_write)
        version = 1 if item is None else item[1] + 1
        expire = time.time() + req.ttl if req.ttl is not None else None
        self._items[req.key] = (req.value, version, expire)

    def _delete(self, req: DeleteRequest) -> None:
        self._valid(req.etag)
        item = self._live(req.key)
        if req.etag is not None:
            check_write(req.key, None if item is None else str(item[1]), req.etag, False)
        self._items.pop(req.key, None)

    async def set(self, req: SetRequest) -> None:
        self._set(req)

    async def delete(self, req: DeleteRequest) -> None:
        self._delete(req)

    async def transact(self, ops: list[SetRequest | DeleteRequest]) -> None:
        backup = dict(self._items)
        try:
            for op in ops:
                if isinstance(op, SetRequest):
                    self._set(op)
                else:
                    self._delete(op)
        except BaseException:
            self._items = backup
            raise

    async def scan(self, prefix: str) -> list[tuple[str, GetResponse]]:
        out = []
        for key in list(self._items):
            if key.startswith(prefix):
                got = await self.get(key)
                if got is not None:
                    out.append((key, got))
        return out
