"""The exception hierarchy every wonderland error a user can meet belongs to.

Each error says what was wrong, where (file:line, field path, URL) and what to do.
"""

from __future__ import annotations

__all__ = [
    "AdmissionDeniedError",
    "AlreadyExistsError",
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
    """Input (a manifest, a request) does not validate.

    Raise it as ``InvalidError(message)`` or ``InvalidError(field_path, message)``; the
    second form names the offending field (``spec.template.spec.containers[0].image``)
    so that callers can add the file and line it came from.
    """

    def __init__(self, field_or_message: str, message: str | None = None) -> None:
        if message is None:
            self.field: str | None = None
            self.reason_text = field_or_message
            super().__init__(field_or_message)
        else:
            self.field = field_or_message
            self.reason_text = message
            super().__init__(f"{field_or_message}: {message}")


class AdmissionDeniedError(WonderlandError):
    """A mutating admission step (a webhook on a cluster) refused the object; the API
    answers 400 with ``admission webhook "<name>" denied the request: <reason>``."""

    def __init__(self, webhook: str, reason: str) -> None:
        self.webhook = webhook
        self.reason_text = reason
        super().__init__(f'admission webhook "{webhook}" denied the request: {reason}')


class NotFoundError(WonderlandError):
    """Something named does not exist."""


class ConflictError(WonderlandError):
    """The request collides with the current state (stale version, name taken)."""


class AlreadyExistsError(ConflictError):
    """An object with that name already exists."""
