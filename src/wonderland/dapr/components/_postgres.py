"""Shared PostgreSQL connection handling (``connectionString`` in URL or key=value form)."""

from __future__ import annotations

import shlex
from typing import Any

from wonderland.dapr.errors import ComponentConfigError

__all__ = ["pool_kwargs"]

_KEYS = {
    "host": "host",
    "hostaddr": "host",
    "port": "port",
    "user": "user",
    "password": "password",
    "dbname": "database",
    "database": "database",
    "sslmode": "ssl",
    "connect_timeout": "timeout",
}


def pool_kwargs(name: str, conn: str) -> dict[str, Any]:
    """asyncpg connection arguments for a libpq connection string."""
    conn = conn.strip()
    if conn.startswith(("postgres://", "postgresql://")):
        return {"dsn": conn}
    out: dict[str, Any] = {}
    try:
        parts = shlex.split(conn)
    except ValueError as exc:
        raise ComponentConfigError(
            f"component {name!r}: connectionString is malformed: {exc}"
        ) from None
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep:
            raise ComponentConfigError(
                f"component {name!r}: connectionString entry {key!r} is not key=value; "
                "write it like 'host=localhost user=postgres dbname=test' or as a postgres:// URL"
            )
        target = _KEYS.get(key)
        if target is None:
            continue
        if target == "port":
            out[target] = int(value)
        elif target == "timeout":
            out[target] = float(value)
        elif target == "ssl":
            out[target] = None if value == "disable" else value
        else:
            out[target] = value
    return out
