"""The console in a real `wonderland up`: routed by the gateway as ``console.<domain>``,
answering on its own loopback port, streaming a change made with the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _support.daemon import WonderlandDaemon, running_daemon, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: console-e2e
data:
  k: v
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[WonderlandDaemon]:
    with running_daemon(WonderlandDaemon.in_tmp(tmp_path)) as wd:
        yield wd


def test_gateway_route_sign_in_and_a_streamed_change(daemon: WonderlandDaemon) -> None:
    info = json.loads((daemon.home / "daemon.json").read_text())["console"]
    host = f"console.127.0.0.1.sslip.io:{daemon.gateway_port}"
    assert info["url"] == f"http://{host}" and info["state"] == "running"
    assert info["direct"].startswith("http://127.0.0.1:")
    # `wonderland up` prints where the console is
    banner = wait_for(
        lambda: f"console: http://{host} " in daemon.log.read_text(errors="replace"),
        30,
        "the console's line in the banner",
        log=daemon.log,
    )
    assert banner
    token = (daemon.home / "token").read_text().strip()
    origin = {"origin": f"http://{host}"}
    # through the gateway: the request goes to 127.0.0.1 with the console's Host
    with httpx.Client(base_url=daemon.gateway, headers={"host": host}, timeout=30) as client:
        r = client.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/signin?next=/"
        r = client.post("/signin", data={"token": token}, headers=origin)
        assert r.status_code == 303
        cookie = r.headers["set-cookie"].split(";")[0]
        with client.stream("GET", "/live", headers={"cookie": cookie}) as stream:
            lines = stream.iter_lines()
            assert any(line.startswith("event: hello") for line in lines)
            daemon.ok("apply", "-f", "-", stdin=CONFIGMAP)
            deadline = time.monotonic() + 60  # the stream pings every 15 s meanwhile
            for line in lines:
                if line.startswith("data: ") and '"name":"console-e2e"' in line:
                    break
                assert time.monotonic() < deadline, "the ConfigMap's change never came"
        page = client.get("/", headers={"cookie": cookie})
        assert page.status_code == 200 and "<h1>Overview</h1>" in page.text
    # its own port answers its own names only
    with httpx.Client(base_url=info["direct"], timeout=30) as direct:
        assert direct.get("/healthz").status_code == 200
        assert direct.get("/", headers={"host": "attacker.example"}).status_code == 403
