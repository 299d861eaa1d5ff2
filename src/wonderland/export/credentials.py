"""Registry credentials, found where podman, skopeo and docker keep them.

``--creds USER:PASSWORD`` comes first. Then the auth files ``podman login``, ``skopeo
login``, ``buildah login`` and ``docker login`` write, in the order containers-auth.json(5)
reads them: ``$REGISTRY_AUTH_FILE``, ``$XDG_RUNTIME_DIR/containers/auth.json``,
``$XDG_CONFIG_HOME/containers/auth.json`` (``~/.config``), then docker's
``$DOCKER_CONFIG/config.json`` (``~/.docker``). In a file, the entry for the longest
match of ``host/repository`` wins (``host``, ``host/team``, ``host/team/app``); docker's
keys may carry a scheme (``https://host/v1/``). An entry is ``{"auth": base64("user:pass")}``
or ``{"username": ..., "password": ...}``. In docker's file, a credential helper that
``credHelpers`` names for the host, else the ``credsStore`` one, is asked first
(``docker-credential-NAME get``, as docker does); an identity token is not used.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wonderland.export.oci import ImageBuildError

__all__ = ["Credentials", "auth_files", "find_credentials", "parse_creds"]


@dataclass(frozen=True)
class Credentials:
    """A user and password for one registry, and where they were found (for messages)."""

    username: str
    password: str
    source: str

    def basic(self) -> str:
        """The value of an ``Authorization: Basic`` header."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def parse_creds(value: str, source: str = "--creds") -> Credentials:
    """``USER:PASSWORD`` (as skopeo's ``--creds``)."""
    user, sep, password = value.partition(":")
    if not sep or not user:
        raise ImageBuildError(f"{source} {value.split(':')[0]}...: expected USER:PASSWORD")
    return Credentials(user, password, source)


def auth_files() -> list[Path]:
    """The auth files to read, first first (those that exist or not)."""
    env = os.environ
    home = Path.home()
    out: list[Path] = []
    if env.get("REGISTRY_AUTH_FILE"):
        out.append(Path(env["REGISTRY_AUTH_FILE"]))
    if env.get("XDG_RUNTIME_DIR"):
        out.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    out.append(Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "containers" / "auth.json")
    out.append(Path(env.get("DOCKER_CONFIG") or home / ".docker") / "config.json")
    return list(dict.fromkeys(out))


def _key(raw: str) -> str:
    """An auths key as ``host[/path]``: no scheme, no ``/v1/`` or trailing slash."""
    key = raw.split("://", 1)[-1].rstrip("/")
    return key.removesuffix("/v1").removesuffix("/v2")


def _entry(path: Path, key: str, entry: Any) -> Credentials | None:
    where = f"{path} (auths.{key})"
    if not isinstance(entry, dict):
        raise ImageBuildError(f"{where}: expected an object with `auth`")
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(str(entry["auth"]), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ImageBuildError(
                f"{where}: `auth` is not base64 of USER:PASSWORD; log in again "
                f"(`podman login {key}`)"
            ) from None
        return parse_creds(decoded, where)
    if entry.get("username") and entry.get("password") is not None:
        return Credentials(str(entry["username"]), str(entry["password"]), where)
    return None  # e.g. an identitytoken only: not used


def _from_helper(path: Path, name: str, host: str) -> Credentials | None:
    """What ``docker-credential-NAME get`` gives for ``host``; None when it has nothing."""
    binary = shutil.which(f"docker-credential-{name}")
    if binary is None:
        raise ImageBuildError(
            f"{path}: the credential helper docker-credential-{name} it names for {host} is "
            "not installed: install it, or give --creds USER:PASSWORD"
        )
    try:
        proc = subprocess.run(
            [binary, "get"], input=host, capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ImageBuildError(f"{path}: docker-credential-{name} get: {exc}") from None
    if proc.returncode != 0:
        if "not found" in (proc.stdout + proc.stderr).lower():
            return None
        raise ImageBuildError(
            f"{path}: docker-credential-{name} get {host} failed: "
            f"{(proc.stderr or proc.stdout).strip()[-300:]}"
        )
    try:
        answer = json.loads(proc.stdout)
        user, secret = str(answer["Username"]), str(answer["Secret"])
    except (ValueError, KeyError, TypeError):
        raise ImageBuildError(
            f"{path}: docker-credential-{name} gave no Username and Secret for {host}"
        ) from None
    if user == "<token>":
        return None  # an identity token (OAuth refresh token): not used
    return Credentials(user, secret, f"{path} (docker-credential-{name})")


def _from_file(path: Path, host: str, repository: str) -> Credentials | None:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ImageBuildError(
            f"{path}: not a readable auth file ({exc}); fix it or point REGISTRY_AUTH_FILE "
            "elsewhere"
        ) from None
    if not isinstance(doc, dict):
        return None
    helpers = doc.get("credHelpers")
    helper = helpers.get(host) if isinstance(helpers, dict) else None
    helper = helper or doc.get("credsStore")
    if helper:
        found = _from_helper(path, str(helper), host)
        if found is not None:
            return found
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        return None
    wanted = f"{host}/{repository}"
    best: tuple[int, str, Any] | None = None
    for raw, entry in auths.items():
        key = _key(str(raw))
        matches = wanted == key or wanted.startswith(key + "/")
        if matches and (best is None or len(key) > best[0]):
            best = (len(key), str(raw), entry)
    if best is None:
        return None
    return _entry(path, best[1], best[2])


def find_credentials(host: str, repository: str, creds: str | None = None) -> Credentials | None:
    """The credentials for pushing ``host/repository``: ``creds`` (``USER:PASSWORD``),
    else the first auth file with an entry for it, else None."""
    if creds:
        return parse_creds(creds)
    for path in auth_files():
        found = _from_file(path, host, repository)
        if found is not None:
            return found
    return None
