"""The console's security rules: which Host and Origin it answers, and its sessions.

- :class:`HostGuard` knows the console's own names (``console.<domain>:<gateway port>``
  through the gateway, ``127.0.0.1``/``localhost``/``[::1]`` on its own port). A request
  for any other Host is refused (DNS rebinding), and so is one whose ``Origin`` is not one
  of them (CSRF); a state-changing method must carry an ``Origin``.
- :class:`SessionSigner` turns a correct platform token into a session cookie: an opaque
  ``<expiry>.<nonce>.<mac>`` value, HMAC-SHA256 under a key derived from the token, so a
  session survives a daemon restart and ends when the token changes. Sign-out revokes the
  nonce. The token itself never goes into a cookie, a URL or a log line.
- :func:`sign_in_ticket` makes what ``wonderland console`` puts in the URL it opens: a
  ``<expiry>.<nonce>.<mac>`` ticket under another key derived from the token, good for
  :data:`TICKET_SECONDS` and once (:meth:`SessionSigner.redeem`), so the browser it opens
  is signed in without the token being typed or put in a URL.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "COOKIE_NAME",
    "SESSION_SECONDS",
    "TICKET_SECONDS",
    "UNSAFE_METHODS",
    "ConsoleSessions",
    "HostGuard",
    "SessionSigner",
    "cookie_header",
    "read_cookie",
    "sign_in_ticket",
]

COOKIE_NAME = "wonderland_console"
SESSION_SECONDS = 12 * 3600
TICKET_SECONDS = 60  # a sign-in link is opened at once, or run `wonderland console` again
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _authority(host: str) -> str:
    return host.strip().lower().rstrip(".")


@dataclass
class HostGuard:
    """The Host names (``name:port``) and Origins the console answers."""

    hosts: set[str] = field(default_factory=set)

    def allow(self, names: Iterable[str], port: int) -> None:
        """Answer ``name:port`` for each of ``names`` (``[::1]`` for IPv6)."""
        for name in names:
            self.hosts.add(_authority(f"{name}:{port}"))

    def host_ok(self, host: str) -> bool:
        return _authority(host) in self.hosts

    def origin_ok(self, origin: str) -> bool:
        scheme, sep, rest = origin.strip().partition("://")
        return bool(sep) and scheme.lower() == "http" and _authority(rest) in self.hosts

    def refusal(self, method: str, headers: Mapping[str, str]) -> str | None:
        """Why a request with these (lower-case) headers is refused, or None."""
        if not self.host_ok(headers.get("host", "")):
            return "the console answers its own host names only (DNS rebinding guard)"
        origin = headers.get("origin")
        if origin is not None and not self.origin_ok(origin):
            return "requests from other sites are refused (cross-site request guard)"
        if method in UNSAFE_METHODS and origin is None:
            return f"a {method} must come from the console's own pages (no Origin header)"
        return None


class ConsoleSessions(Protocol):
    """The console's sign-in, for what the gateway serves on the console's host (the
    notebooks at ``/notebook/<ns>/<name>/``)."""

    def session_ok(self, cookie_header: str) -> bool: ...


def _ticket_key(token: bytes) -> bytes:
    return hashlib.sha256(b"wonderland-console-ticket\0" + token).digest()


def _signed(key: bytes, lifetime: float, now: float | None) -> str:
    """``<expiry>.<nonce>.<mac>``: a value good for ``lifetime`` seconds, signed with ``key``."""
    expiry = int((time.time() if now is None else now) + lifetime)
    payload = f"{expiry}.{secrets.token_urlsafe(16)}"
    return f"{payload}.{hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()}"


def _checked(key: bytes, value: str) -> tuple[int, str] | None:
    """The expiry and nonce of a value :func:`_signed` made with ``key``; None if it is not
    one (expiry not checked)."""
    parts = value.split(".")
    if len(parts) != 3 or not parts[0].isdigit():
        return None
    payload = f"{parts[0]}.{parts[1]}"
    mac = hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(parts[2], mac):
        return None
    return int(parts[0]), parts[1]


def sign_in_ticket(token: str, now: float | None = None) -> str:
    """A one-time sign-in ticket for the console of the platform whose token is ``token``
    (``/signin?ticket=...``): good for :data:`TICKET_SECONDS`, once."""
    return _signed(_ticket_key(token.strip().encode()), TICKET_SECONDS, now)


class SessionSigner:
    """Makes and checks session cookie values for one platform token."""

    def __init__(self, token: str, lifetime: float = SESSION_SECONDS) -> None:
        self._token = token.encode()
        self._key = hashlib.sha256(b"wonderland-console-session\0" + self._token).digest()
        self._ticket_key = _ticket_key(self._token.strip())
        self.lifetime = lifetime
        self._revoked: dict[str, float] = {}  # nonce -> expiry
        self._redeemed: dict[str, float] = {}  # ticket nonce -> expiry

    def redeem(self, ticket: str, now: float | None = None) -> bool:
        """Whether ``ticket`` is a sign-in ticket of this token that has not expired and
        was not used before; it cannot be used again."""
        checked = _checked(self._ticket_key, ticket)
        if checked is None:
            return False
        expiry, nonce = checked
        at = time.time() if now is None else now
        if not at < expiry <= at + TICKET_SECONDS + 5:  # (a clock step back: still short)
            return False
        self._redeemed = {n: e for n, e in self._redeemed.items() if e > at}
        if nonce in self._redeemed:
            return False
        self._redeemed[nonce] = float(expiry)
        return True

    def token_ok(self, given: str) -> bool:
        """Whether ``given`` is the platform's token (constant time)."""
        return hmac.compare_digest(given.strip().encode(), self._token)

    def issue(self, now: float | None = None) -> str:
        return _signed(self._key, self.lifetime, now)

    def valid(self, value: str, now: float | None = None) -> bool:
        checked = _checked(self._key, value)
        if checked is None:
            return False
        expiry, nonce = checked
        if expiry <= (time.time() if now is None else now):
            return False
        return nonce not in self._revoked

    def revoke(self, value: str) -> None:
        if not self.valid(value):
            return
        expiry, nonce, _ = value.split(".")
        now = time.time()
        self._revoked = {n: e for n, e in self._revoked.items() if e > now}
        self._revoked[nonce] = float(expiry)


def cookie_header(value: str, max_age: int) -> str:
    """The ``Set-Cookie`` value: HttpOnly, SameSite=Strict, the whole site, ``max_age``
    seconds (0 deletes it)."""
    return f"{COOKIE_NAME}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict"


def read_cookie(header: str) -> str:
    """The session cookie's value from a ``Cookie`` header ("" when absent)."""
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == COOKIE_NAME:
            return value
    return ""
