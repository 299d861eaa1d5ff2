"""The exception hierarchy every wonderland error a user can meet belongs to.

Each error says what was wrong, where (file:line, field path, URL) and what to do.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConflictError",
    "InvalidError",
    "NotFoundError",
    "WonderlandError",
]


class WonderlandError(Exception):
    """Base of every error wonderland raises on purpose."""


class ConfigError(WonderlandError):
    """A setting, flag or configuration file is wrong."""


class InvalidError(WonderlandError):
    """Input (a manifest, a request) does not validate."""


class NotFoundError(WonderlandError):
    """Something named does not exist."""


class ConflictError(WonderlandError):
    """The request collides with the current state (stale version, name taken)."""
