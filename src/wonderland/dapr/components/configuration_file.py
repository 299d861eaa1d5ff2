"""``configuration.wonderland.file``: configuration items kept in a YAML file.

A wonderland extension (Dapr has no embedded configuration store): edit the file and
subscribers receive the changed keys. Each top-level key is an item, written either
as a plain value or as ``{value, version, metadata}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from wonderland.dapr.components._polling import PollingConfigurationStore
from wonderland.dapr.components.base import ConfigItem
from wonderland.dapr.errors import ComponentConfigError

__all__ = ["FileConfigurationStore"]


class FileConfigurationStore(PollingConfigurationStore):
    """Items from ``path``; the file is polled every ``pollInterval`` for changes."""

    FIELDS = {"path": None, "pollInterval": "1s"}
    # A file caught mid-edit is read again at the next poll.
    POLL_ERRORS = (ComponentConfigError,)

    async def init(self) -> None:
        self.path = Path(self.meta["path"]).expanduser()
        self.interval = self.number("pollInterval") or 1.0
        self._start_polling(self._read())

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

    async def _load(self) -> dict[str, ConfigItem]:
        return self._read()
