"""The console's Host/Origin guard and its session cookies."""

from __future__ import annotations

import time

from wonderland.console.security import (
    COOKIE_NAME,
    TICKET_SECONDS,
    HostGuard,
    SessionSigner,
    cookie_header,
    read_cookie,
    sign_in_ticket,
)


def _guard() -> HostGuard:
    guard = HostGuard()
    guard.allow(["127.0.0.1", "localhost"], 8111)
    guard.allow(["console.127.0.0.1.sslip.io"], 8080)
    return guard


def test_own_hosts_pass_others_are_refused() -> None:
    guard = _guard()
    assert guard.refusal("GET", {"host": "127.0.0.1:8111"}) is None
    assert guard.refusal("GET", {"host": "Console.127.0.0.1.sslip.io:8080"}) is None
    # DNS rebinding: an attacker's name that resolves to 127.0.0.1
    assert "DNS rebinding" in (guard.refusal("GET", {"host": "evil.example:8111"}) or "")
    assert guard.refusal("GET", {"host": "127.0.0.1:9999"}) is not None
    assert guard.refusal("GET", {}) is not None


def test_origin_must_be_the_console_and_is_required_for_writes() -> None:
    guard = _guard()
    own = {"host": "127.0.0.1:8111", "origin": "http://127.0.0.1:8111"}
    assert guard.refusal("POST", own) is None
    other = {"host": "127.0.0.1:8111", "origin": "http://evil.example"}
    assert "cross-site" in (guard.refusal("GET", other) or "")
    assert guard.refusal("POST", other) is not None
    assert guard.refusal("POST", {"host": "127.0.0.1:8111", "origin": "null"}) is not None
    assert "Origin" in (guard.refusal("DELETE", {"host": "127.0.0.1:8111"}) or "")


def test_sessions_are_signed_expire_and_can_be_revoked() -> None:
    signer = SessionSigner("the-token", lifetime=60)
    assert signer.token_ok("the-token") and not signer.token_ok("the-toke")
    cookie = signer.issue()
    assert "the-token" not in cookie
    assert signer.valid(cookie)
    assert not signer.valid(cookie, now=time.time() + 61)
    expiry, nonce, mac = cookie.split(".")
    assert not signer.valid(f"{int(expiry) + 1000}.{nonce}.{mac}")  # a forged expiry
    assert not SessionSigner("another-token").valid(cookie)  # the token changed
    signer.revoke(cookie)
    assert not signer.valid(cookie)
    assert signer.valid(signer.issue())


def test_a_sign_in_ticket_works_once_briefly_and_for_its_token_only() -> None:
    signer = SessionSigner("the-token")
    ticket = sign_in_ticket("the-token")
    assert "the-token" not in ticket
    assert not SessionSigner("another-token").redeem(ticket)  # the token changed
    assert not signer.valid(ticket)  # a ticket is no session cookie
    assert signer.redeem(ticket)
    assert not signer.redeem(ticket)  # once
    late = sign_in_ticket("the-token", now=time.time() - TICKET_SECONDS - 1)
    assert not signer.redeem(late)
    expiry, nonce, mac = sign_in_ticket("the-token").split(".")
    assert not signer.redeem(f"{int(expiry) + 3600}.{nonce}.{mac}")  # a forged expiry
    assert not signer.redeem(signer.issue())  # nor is a session cookie a ticket


def test_cookie_flags_and_parsing() -> None:
    header = cookie_header("abc", 3600)
    assert header.startswith(f"{COOKIE_NAME}=abc;")
    for flag in ("HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=3600"):
        assert flag in header
    assert read_cookie(f"x=1; {COOKIE_NAME}=v.a.l; y=2") == "v.a.l"
    assert read_cookie("x=1") == ""
