"""A configuration store that polls its source: the file and ConfigMap stores share it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import ClassVar

from wonderland.dapr.components.base import (
    Closer,
    ConfigHandler,
    ConfigItem,
    ConfigurationStoreComponent,
)

__all__ = ["PollingConfigurationStore"]


class PollingConfigurationStore(ConfigurationStoreComponent):
    """Reads every item with :meth:`_load` on ``get`` and, while anyone subscribes, every
    ``interval`` seconds; subscribers receive the keys that changed (a deleted key with
    value ``""``). A subclass sets ``interval`` and calls :meth:`_start_polling` in ``init``.
    """

    #: Errors of :meth:`_load` that skip one poll instead of ending the watch.
    POLL_ERRORS: ClassVar[tuple[type[Exception], ...]] = (Exception,)

    interval: float
    _task: asyncio.Task[None] | None = None

    def _start_polling(self, items: dict[str, ConfigItem]) -> None:
        self._items = items
        self._subs: dict[int, tuple[list[str], ConfigHandler]] = {}
        self._ids = itertools.count()
        self._task = None

    async def _load(self) -> dict[str, ConfigItem]:
        """Every item the source holds now."""
        raise NotImplementedError

    def _differs(self, old: ConfigItem | None, new: ConfigItem) -> bool:
        """Whether ``new`` is a change subscribers hear about (``old`` is None when new)."""
        return old != new

    async def _before_watch(self) -> None:
        """Runs once, before the first subscription starts the watch."""

    async def get(self, keys: list[str], metadata: dict[str, str]) -> dict[str, ConfigItem]:
        self._items = await self._load()
        if not keys:
            return dict(self._items)
        return {k: self._items[k] for k in keys if k in self._items}

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                new = await self._load()
            except self.POLL_ERRORS:
                continue
            changed = {k: v for k, v in new.items() if self._differs(self._items.get(k), v)}
            for k in self._items.keys() - new.keys():
                changed[k] = ConfigItem("", "")
            self._items = new
            if not changed:
                continue
            for keys, handler in list(self._subs.values()):
                sel = changed if not keys else {k: v for k, v in changed.items() if k in keys}
                if sel:
                    with contextlib.suppress(Exception):
                        await handler(sel)

    async def subscribe(
        self, keys: list[str], metadata: dict[str, str], handler: ConfigHandler
    ) -> Closer:
        if self._task is None:
            await self._before_watch()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch())
        sub_id = next(self._ids)
        self._subs[sub_id] = (keys, handler)

        async def close() -> None:
            self._subs.pop(sub_id, None)

        return close

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
