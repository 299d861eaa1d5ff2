"""``wonderland sidecar -f dapr.yaml``: Dapr's multi-app run template."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from _support.daemon import wait_for
from dapr_testing import HERE

from wonderland.cli import main
from wonderland.dapr.sidecar import free_port

pytestmark = pytest.mark.e2e

REPORT = (
    "import json, os, time, urllib.request;"
    "keys = ['APP_ID', 'APP_PORT', 'DAPR_HTTP_PORT', 'DAPR_GRPC_PORT', 'GREETING', 'WHERE'];"
    "env = {k: os.environ.get(k) for k in keys}; env['cwd'] = os.getcwd();"
    "open(os.environ['REPORT'], 'w').write(json.dumps(env)); time.sleep(120)"
)


def test_two_apps_each_with_a_sidecar(tmp_path: Path, basic_resources: Path) -> None:
    (tmp_path / "caller").mkdir()
    back_port, back_http = free_port(), free_port()
    report = tmp_path / "report.json"
    (tmp_path / "dapr.yaml").write_text(f"""
version: 1
common:
  resourcesPath: {basic_resources.name}
  env: {{GREETING: hello}}
apps:
  - appID: caller
    appDirPath: caller
    command: ["{sys.executable}", "-c", "{REPORT}"]
    env: {{REPORT: "{report}", WHERE: caller}}
  - appID: backend
    appPort: {back_port}
    daprHTTPPort: {back_http}
    command: ["{sys.executable}", "{HERE / "app_server.py"}"]
""")
    env = {**os.environ, "WONDERLAND_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wonderland", "sidecar", "-f", str(tmp_path / "dapr.yaml")],
        env=env,
        start_new_session=True,
        stderr=subprocess.DEVNULL,
    )
    try:
        got = json.loads(wait_for(lambda: report.exists() and report.read_text()))
        assert got["APP_ID"] == "caller" and got["GREETING"] == "hello" and got["WHERE"] == "caller"
        assert got["cwd"] == str(tmp_path / "caller") and got["APP_PORT"] is None
        caller = f"http://127.0.0.1:{got['DAPR_HTTP_PORT']}/v1.0"
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{back_http}/v1.0/healthz").status_code == 204)
        r = httpx.get(f"{caller}/invoke/backend/method/echo/hi")
        assert r.status_code == 200 and r.json()["headers"]["dapr-caller-app-id"] == "caller"
        httpx.post(f"{caller}/state/statestore", json=[{"key": "k", "value": 1}])
        assert httpx.get(f"{caller}/state/statestore/k").json() == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_bad_templates_fail_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "dapr.yaml"
    f.write_text("version: 1\napps:\n  - appID: a\n    comand: [x]\n")
    assert main(["sidecar", "-f", str(f)]) == 1
    assert "comand" in capsys.readouterr().err
    f.write_text("version: 1\napps:\n  - appPort: 3000\n")
    assert main(["sidecar", "-f", str(f)]) == 1
    assert "appID is required" in capsys.readouterr().err
    assert main(["sidecar", "-f", str(f), "--app-id", "x"]) == 1
    assert "leave out --app-id" in capsys.readouterr().err
    assert main(["sidecar"]) == 1
    assert "--app-id is required" in capsys.readouterr().err
