"""``configuration.wonderland.file``: configuration items kept in a YAML file.

A wonderland extension (Dapr has no embedded configuration store): edit the file and
subscribers receive the changed keys. Each top-level key is an item, written either
as a plain value or as ``{value, version, metadata}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from pathlib import Path
from typing import Any

import yaml

from wonderland.dapr.components.base import (
    Closer,
    ConfigHandler,
    ConfigItem,
    ConfigurationStoreComponent,
)
from wonderland.dapr.errors import ComponentConfigError

__all__ = ["FileConfigurationStore"]


class FileConfigurationStore(ConfigurationStoreComponent):
    """Items from ``path``; the file is polled every ``pollInterval`` for changes."""

    FIELDS = {"path": None, "pollInterval": "1s"}

    async def init(self) -> None:
        self.path = Path(self.meta["path"]).expanduser()
        self.interval = self.number("pollInterval") or 1.0
        self._items = self._read()
        self._subs: dict[int, tuple[list[str], ConfigHandler]] = {}
        self._ids = itertools.count()
        self._task: asyncio.Task[None] | None = None

    def _read(self) -> dict[str, ConfigItem]:
        if not self.path.exists():
            return {}
        try:
            raw: Any = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, OSError) as exc:
            raise ComponentConfigError(
                f"component {self.name!r}: cannot read {self.path}: {exc}"
            ) from None
        if not isinstance(raw, dict):
            raise ComponentConfigError(
                f"component {self.name!r}: {self.path} must hold a mapping of keys"
            )
        out: dict[str, ConfigItem] = {}
        for key, value in raw.items():
            if isinstance(value, dict) and "value" in value:
                out[str(key)] = ConfigItem(
                    str(value["value"]),
                    str(value.get("version", "")),
                    {str(k): str(v) for k, v in (value.get("metadata") or {}).items()},
                )
            else:
                out[str(key)] = ConfigItem("" if value is None else str(value))
        return out

    async def get(self, keys: list[str], metadata: dict[str, str]) -> dict[str, ConfigItem]:
        self._items = self._read()
        if not keys:
            return dict(self._items)
        return {k: self._items[k] for k in keys if k in self._items}

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                new = self._read()
            except ComponentConfigError:
                continue
            changed = {k: v for k, v in new.items() if self._items.get(k) != v}
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
        sub_id = next(self._ids)
        self._subs[sub_id] = (keys, handler)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch())

        async def close() -> None:
            self._subs.pop(sub_id, None)

        return close

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
