"""`wonderland console`: the URL from daemon.json, printed and opened in the user's browser."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from wonderland.console.security import SessionSigner

URL = "http://console.127.0.0.1.sslip.io:8080"


def _run(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WONDERLAND_")}
    base.pop("BROWSER", None)
    return subprocess.run(
        [sys.executable, "-m", "wonderland", "console", *args],
        env={**base, "WONDERLAND_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _daemon_json(home: Path, console: dict[str, str]) -> None:
    home.mkdir(exist_ok=True)
    (home / "daemon.json").write_text(json.dumps({"pid": 1, "console": console}))


def test_no_open_prints_the_url_and_where_the_token_is(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _daemon_json(home, {"url": URL, "direct": "http://127.0.0.1:41000", "state": "running"})
    (home / "token").write_text("never-printed")
    result = _run(home, "--no-open")
    assert result.returncode == 0, result.stderr
    assert f"console: {URL}/" in result.stdout
    assert str(home / "kubeconfig") in result.stdout
    assert "never-printed" not in result.stdout


def test_opens_the_url_in_the_users_browser(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _daemon_json(home, {"url": URL, "direct": "", "state": "running"})
    opened = tmp_path / "opened"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    (home / "token").write_text("platform-token\n")
    result = _run(home, BROWSER=str(browser))
    assert result.returncode == 0, result.stderr
    # a one-time sign-in link: the browser opens signed in, the token stays out of the URL
    link = urlsplit(opened.read_text().strip())
    assert f"{link.scheme}://{link.netloc}{link.path}" == f"{URL}/signin"
    query = parse_qs(link.query)
    assert query["next"] == ["/"] and "platform-token" not in link.query
    signer = SessionSigner("platform-token")
    assert signer.redeem(query["ticket"][0]) and not signer.redeem(query["ticket"][0])
    assert f"console: {URL}/\n" in result.stdout  # what is printed is the plain URL
    # without a token to sign with, the plain URL
    (home / "token").unlink()
    assert _run(home, BROWSER=str(browser)).returncode == 0
    assert opened.read_text().strip() == f"{URL}/"


def test_no_daemon_or_no_console_is_a_clear_error(tmp_path: Path) -> None:
    result = _run(tmp_path / "none", "--no-open")
    assert result.returncode == 1 and "wonderland up" in result.stderr
    home = tmp_path / "home"
    reason = "port 8090 is taken (Address in use); set WONDERLAND_CONSOLE_PORT to a free port"
    _daemon_json(home, {"url": "", "direct": "", "state": "failed", "reason": reason})
    result = _run(home, "--no-open")
    assert result.returncode == 1 and "WONDERLAND_CONSOLE_PORT" in result.stderr


def test_get_and_describe_cs_show_the_console(tmp_path: Path) -> None:
    home = tmp_path / "home"
    direct = "http://127.0.0.1:41000"
    _daemon_json(home, {"url": URL, "direct": direct, "state": "running"})
    base = {k: v for k, v in os.environ.items() if not k.startswith("WONDERLAND_")}
    env = {**base, "WONDERLAND_HOME": str(home)}

    def wonderland(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "wonderland", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    table = wonderland("get", "cs")
    assert any(line.split()[:3] == ["console", URL, "running"] for line in table.splitlines())
    assert f"Direct URL:  {direct}" in wonderland("describe", "cs", "console")
