"""`wonderland up` with MLflow's tracking server: nothing runs until the first request, the
real ``mlflow`` client waits for it, it stops when idle and its data stays, the gateway and
pods reach it, pods get MLFLOW_TRACKING_URI unless they opt out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support.daemon import WonderlandDaemon, daemon_env, free_port, running_daemon, wait_for
from _support.mlflow import needs_mlflow

pytestmark = [needs_mlflow, pytest.mark.e2e, pytest.mark.slow]

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: tracked}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: python:3.12
    command:
    - python
    - -c
    - |
      import os, urllib.request
      print("uri=" + os.environ.get("MLFLOW_TRACKING_URI", "-"), flush=True)
      # through HTTP_PROXY (the gateway), as a workload on a cluster resolves the Service
      body = urllib.request.urlopen("http://mlflow.kubeflow.svc.cluster.local/health").read()
      print("health=" + body.decode(), flush=True)
---
apiVersion: v1
kind: Pod
metadata:
  name: untracked
  annotations: {tracking.wonderland.dev/mlflow: "off"}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: python:3.12
    command: ["python", "-c", "import os; print('uri=' + os.environ.get('MLFLOW_TRACKING_URI', '-'))"]
"""

CLIENT = textwrap.dedent(
    """
    import sys, mlflow
    mlflow.set_experiment("lazy")
    if sys.argv[1] == "log":
        with mlflow.start_run(run_name="first") as run:
            mlflow.log_metric("loss", 0.5)
        print(run.info.run_id)
    else:
        run = mlflow.get_run(sys.argv[2])
        print(run.data.metrics["loss"])
    """
)


def _info(home: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((home / "daemon.json").read_text())["mlflow"]
    return data


def _mlflow_processes(daemon_pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == daemon_pid and b"wonderland.tracking.mlflow_process" in cmdline:
            found.append(int(entry.name))
    return found


def _client(uri: str, *args: str) -> str:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    result = subprocess.run(
        [sys.executable, "-c", CLIENT, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_lazy_start_idle_stop_gateway_and_pods(tmp_path: Path) -> None:
    env = daemon_env(tmp_path, gateway_port=free_port(), WONDERLAND_MLFLOW_IDLE_SECONDS="4")
    daemon = WonderlandDaemon(tmp_path / "home", env, tmp_path / "daemon.log")
    with running_daemon(daemon) as up:
        assert up.proc is not None
        info = _info(up.home)
        assert info["state"] == "stopped"
        assert _mlflow_processes(up.proc.pid) == []  # costs nothing unused
        banner = up.log.read_text()
        assert f"MLflow tracking (MLFLOW_TRACKING_URI): {info['url']} [stopped]" in banner

        # the first request starts it; the real client waits instead of failing
        run_id = _client(info["url"], "log")
        assert _info(up.home)["state"] == "running"
        assert len(_mlflow_processes(up.proc.pid)) == 1
        table = up.ok("get", "cs")
        (row,) = [line for line in table.splitlines() if line.split()[:1] == ["mlflow"]]
        assert "running" in row.split() and info["url"] in row
        described = up.ok("describe", "componentstatus", "mlflow")
        assert "http://mlflow.kubeflow.svc.cluster.local" in described

        # the UI and the API through the gateway, by host name
        host = f"mlflow.{env.get('WONDERLAND_DOMAIN', '127.0.0.1.sslip.io')}"
        ui = httpx.get(up.gateway + "/", headers={"Host": host}, timeout=30)
        assert ui.status_code == 200 and "<html" in ui.text.lower()

        # pods: MLFLOW_TRACKING_URI and the cluster-local name, unless they opt out
        up.ok("apply", "-f", "-", stdin=PODS)

        def logs(pod: str) -> str:
            result = up.run("logs", pod)
            return result.stdout if result.returncode == 0 else ""

        tracked = wait_for(lambda: "health=" in logs("tracked") and logs("tracked"), 60, "pod")
        assert f"uri={info['url']}" in tracked and "health=OK" in tracked
        untracked = wait_for(lambda: "uri=" in logs("untracked") and logs("untracked"), 60, "pod")
        assert "uri=-" in untracked

        # idle: stopped, no process; the next request starts it again and the data stayed
        wait_for(lambda: _info(up.home)["state"] == "stopped", 30, "the idle stop")
        wait_for(lambda: not _mlflow_processes(up.proc.pid), 10, "the process to exit")
        assert _client(info["url"], "get", run_id) == "0.5"
