"""``secretstores.local.file`` (a JSON file) and ``secretstores.local.env`` (environment)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from wonderland.dapr.components.base import SecretNotFoundError, SecretStoreComponent
from wonderland.dapr.errors import ComponentConfigError

__all__ = ["LocalEnvSecretStore", "LocalFileSecretStore"]


def _flatten(prefix: str, value: Any, sep: str, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}{sep}{k}" if prefix else str(k), v, sep, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _flatten(f"{prefix}{sep}{i}" if prefix else str(i), v, sep, out)
    else:
        out[prefix] = value if isinstance(value, str) else orjson.dumps(value).decode()


class LocalFileSecretStore(SecretStoreComponent):
    """Secrets from a JSON file; nested keys are joined with ``nestedSeparator``."""

    FIELDS = {"secretsFile": None, "nestedSeparator": ":", "multiValued": "false"}

    async def init(self) -> None:
        path = Path(self.meta["secretsFile"]).expanduser()
        try:
            raw = orjson.loads(path.read_bytes())
        except OSError as exc:
            raise ComponentConfigError(
                f"component {self.name!r}: secretsFile {str(path)!r}: {exc.strerror}; "
                "point it at a JSON file (relative paths start from the sidecar's working directory)"
            ) from None
        except orjson.JSONDecodeError as exc:
            raise ComponentConfigError(
                f"component {self.name!r}: secretsFile {str(path)!r} is not JSON: {exc}"
            ) from None
        if not isinstance(raw, dict):
            raise ComponentConfigError(
                f"component {self.name!r}: secretsFile {str(path)!r} must hold a JSON object"
            )
        sep = self.meta["nestedSeparator"]
        self._secrets: dict[str, dict[str, str]] = {}
        if self.flag("multiValued"):
            for name, value in raw.items():
                inner: dict[str, str] = {}
                if isinstance(value, dict):
                    for k, v in value.items():
                        _flatten(str(k), v, sep, inner)
                else:
                    _flatten(name, value, sep, inner)
                self._secrets[name] = inner
        else:
            flat: dict[str, str] = {}
            _flatten("", raw, sep, flat)
            self._secrets = {k: {k: v} for k, v in flat.items()}

    async def get(self, name: str, metadata: dict[str, str]) -> dict[str, str]:
        if name not in self._secrets:
            raise SecretNotFoundError(name)
        return dict(self._secrets[name])

    async def bulk_get(self, metadata: dict[str, str]) -> dict[str, dict[str, str]]:
        return {k: dict(v) for k, v in self._secrets.items()}


class LocalEnvSecretStore(SecretStoreComponent):
    """Secrets from environment variables, optionally limited to (and stripped of) ``prefix``."""

    FIELDS = {"prefix": ""}

    async def get(self, name: str, metadata: dict[str, str]) -> dict[str, str]:
        value = os.environ.get(self.meta["prefix"] + name)
        if value is None:
            raise SecretNotFoundError(name)
        return {name: value}

    async def bulk_get(self, metadata: dict[str, str]) -> dict[str, dict[str, str]]:
        prefix = self.meta["prefix"]
        out: dict[str, dict[str, str]] = {}
        for key, value in os.environ.items():
            if key.startswith(prefix):
                short = key[len(prefix) :]
                out[short] = {short: value}
        return out
