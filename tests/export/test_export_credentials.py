"""Registry credentials for `wonderland build --push`, found where podman, skopeo and
docker keep them (the pushes themselves: test_export_registry.py)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from wonderland.export.credentials import auth_files, find_credentials
from wonderland.export.oci import ImageBuildError


def _auth(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "DOCKER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_the_files_are_read_in_podmans_order_then_dockers(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = home / "run"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert auth_files() == [
        runtime / "containers" / "auth.json",
        home / ".config" / "containers" / "auth.json",
        home / ".docker" / "config.json",
    ]
    docker = home / ".docker" / "config.json"
    docker.parent.mkdir()
    docker.write_text(json.dumps({"auths": {"https://reg.example/v1/": _auth("d", "1")}}))
    found = find_credentials("reg.example", "team/app")
    assert found is not None and (found.username, found.password) == ("d", "1")
    assert found.source == f"{docker} (auths.https://reg.example/v1/)"
    podman = runtime / "containers" / "auth.json"
    podman.parent.mkdir(parents=True)
    podman.write_text(json.dumps({"auths": {"reg.example": _auth("p", "2")}}))
    found = find_credentials("reg.example", "team/app")
    assert found is not None and found.username == "p"
    # REGISTRY_AUTH_FILE comes first, --creds before any file.
    chosen = home / "chosen.json"
    chosen.write_text(json.dumps({"auths": {"reg.example": {"username": "r", "password": "3"}}}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(chosen))
    found = find_credentials("reg.example", "team/app")
    assert found is not None and (found.username, found.password) == ("r", "3")
    found = find_credentials("reg.example", "team/app", "c:4:with-colon")
    assert found is not None and (found.username, found.password, found.source) == (
        "c",
        "4:with-colon",
        "--creds",
    )
    # Another registry: none of them.
    assert find_credentials("other.example", "team/app") is None


def test_the_longest_matching_key_wins(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = home / "auth.json"
    path.write_text(
        json.dumps(
            {
                "auths": {
                    "reg.example": _auth("host", "1"),
                    "reg.example/team": _auth("team", "2"),
                    "reg.example/team/app": _auth("app", "3"),
                }
            }
        )
    )
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(path))

    def user(repository: str) -> str | None:
        found = find_credentials("reg.example", repository)
        return found.username if found else None

    assert user("team/app") == "app"
    assert user("team/other") == "team"
    assert user("teamwork/app") == "host"  # a key matches whole path parts only
    assert user("other") == "host"


def test_a_broken_entry_or_file_says_which_and_what_to_do(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = home / "auth.json"
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(path))
    path.write_text(json.dumps({"auths": {"reg.example": {"auth": "not base64!"}}}))
    with pytest.raises(ImageBuildError) as err:
        find_credentials("reg.example", "app")
    assert str(err.value) == (
        f"{path} (auths.reg.example): `auth` is not base64 of USER:PASSWORD; log in again "
        "(`podman login reg.example`)"
    )
    path.write_text("{not json")
    with pytest.raises(ImageBuildError, match=r"not a readable auth file .*REGISTRY_AUTH_FILE"):
        find_credentials("reg.example", "app")
    with pytest.raises(ImageBuildError, match=r"^--creds alice\.\.\.: expected USER:PASSWORD$"):
        find_credentials("reg.example", "app", "alice")


def test_dockers_credential_helpers_are_asked_first(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = home / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-vault"
    # What docker's helpers do: the host on standard input, JSON out, "not found" else.
    helper.write_text(
        "#!/bin/sh\nread host\n"
        'if [ "$1" = get ] && [ "$host" = reg.example ]; then\n'
        '  echo \'{"ServerURL": "reg.example", "Username": "h", "Secret": "5"}\'\n'
        "else echo 'credentials not found in native keychain'; exit 1; fi\n"
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path('/usr/bin')}:{Path('/bin')}")
    docker = home / ".docker" / "config.json"
    docker.parent.mkdir()
    docker.write_text(
        json.dumps(
            {
                "credHelpers": {"reg.example": "vault", "gone.example": "nosuch"},
                "auths": {"other.example": _auth("a", "6")},
                "credsStore": "vault",
            }
        )
    )
    found = find_credentials("reg.example", "app")
    assert found is not None and (found.username, found.password) == ("h", "5")
    assert found.source == f"{docker} (docker-credential-vault)"
    # The store has nothing for this host: the auths entry.
    found = find_credentials("other.example", "app")
    assert found is not None and found.username == "a"
    with pytest.raises(ImageBuildError) as err:
        find_credentials("gone.example", "app")
    assert str(err.value) == (
        f"{docker}: the credential helper docker-credential-nosuch it names for gone.example "
        "is not installed: install it, or give --creds USER:PASSWORD"
    )
