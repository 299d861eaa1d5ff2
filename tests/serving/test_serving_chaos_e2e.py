"""Chaos under load: kill -9 of the daemon and of a replica while requests run.

The Service's container is a shell that starts the HTTP app as its child (as a start script
or ``npm start`` does), so the app is a grandchild of the daemon: the shell dies with the
daemon (``PR_SET_PDEATHSIG``) but the app does not. After a kill -9 of the daemon, the
restarted daemon kills the process groups the old one left, so no process is left holding
a replica's port, and the Service answers again; a replica killed with SIGKILL is replaced while the gateway keeps
answering. The recovery times are printed (``-s``); ``bench/chaos/run.py`` reports them.
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest
from _support.daemon import WonderlandDaemon, running_daemon, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

APP = textwrap.dedent(
    """
    import http.server, os
    pid_dir = os.environ["PID_DIR"]
    with open(os.path.join(pid_dir, str(os.getpid())), "w") as f:
        f.write(os.environ["PORT"])
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"pid {os.getpid()}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Hello).serve_forever()
    """
)


def _manifest(app: Path, pid_dir: Path, steady_dir: Path) -> str:
    return textwrap.dedent(
        f"""
        apiVersion: serving.knative.dev/v1
        kind: Service
        metadata:
          name: steady
        spec:
          template:
            metadata:
              annotations:
                autoscaling.knative.dev/min-scale: "1"
            spec:
              containers:
                - name: user-container
                  command: ["python3", "{app}"]
                  env:
                    - name: PID_DIR
                      value: "{steady_dir}"
        ---
        apiVersion: serving.knative.dev/v1
        kind: Service
        metadata:
          name: chaos
        spec:
          template:
            metadata:
              annotations:
                autoscaling.knative.dev/min-scale: "1"
            spec:
              containers:
                - name: user-container
                  command: ["/bin/sh", "-c", "python3 {app}; echo app exited"]
                  env:
                    - name: PID_DIR
                      value: "{pid_dir}"
        """
    )


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _answer(daemon: WonderlandDaemon, host: str) -> str | None:
    try:
        r = httpx.get(daemon.gateway + "/", headers={"Host": host}, timeout=5)
    except httpx.HTTPError:
        return None
    return r.text if r.status_code == 200 else None


def _host(daemon: WonderlandDaemon, name: str = "chaos") -> str:
    def ready() -> str | None:
        svc = json.loads(daemon.ok("get", "ksvc", name, "-o", "json"))
        url = (svc.get("status") or {}).get("url")
        conds = {c["type"]: c["status"] for c in (svc.get("status") or {}).get("conditions", [])}
        return (
            url.split("://", 1)[1].split(":")[0] if url and conds.get("Ready") == "True" else None
        )

    return str(wait_for(ready, 90, "the Service to be Ready", log=daemon.log))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_kill_9_of_the_daemon_leaves_no_app_behind_and_the_service_recovers(
    tmp_path: Path,
) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP)
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    steady_dir = tmp_path / "steady-pids"
    steady_dir.mkdir()
    manifest = tmp_path / "chaos.yaml"
    manifest.write_text(_manifest(app, pid_dir, steady_dir))
    daemon = WonderlandDaemon.in_tmp(tmp_path)
    with running_daemon(daemon, "-f", str(manifest)):
        host = _host(daemon)
        first = wait_for(lambda: _answer(daemon, host), 30, "an answer through the gateway")
        old_pid = int(first.split()[1])
        steady = _host(daemon, "steady")
        steady_results: list[bool] = []
        stop = threading.Event()

        def steady_traffic() -> None:
            while not stop.is_set():
                steady_results.append(_answer(daemon, steady) is not None)

        sender = threading.Thread(target=steady_traffic, daemon=True)
        sender.start()
        wait_for(lambda: len(steady_results) >= 10, 30, "traffic to the healthy Service")

        # A replica killed with SIGKILL: the Service answers again, from a new process, and
        # the healthy Service beside it keeps answering every request.
        started = time.monotonic()
        os.kill(old_pid, signal.SIGKILL)
        second = wait_for(
            lambda: (a := _answer(daemon, host)) and a != first and a,
            60,
            "a new replica",
            log=daemon.log,
        )
        replica_recovery = time.monotonic() - started
        app_pid = int(second.split()[1])
        seen = len(steady_results)  # and a window of traffic after the recovery
        wait_for(lambda: len(steady_results) >= seen + 10, 30, "traffic after the recovery")
        stop.set()
        sender.join(10)
        assert all(steady_results), f"{steady_results.count(False)} of {len(steady_results)} failed"

        # kill -9 of the daemon: the app (a grandchild) outlives it only until the daemon
        # starts again, which kills what the old one left before it runs a pod.
        assert daemon.proc is not None
        os.kill(daemon.proc.pid, signal.SIGKILL)
        daemon.proc.wait(10)
        killed = time.monotonic()
        daemon.start()
        wait_for(lambda: not _alive(app_pid), 15, "the old app to be gone after the restart")
        app_gone = time.monotonic() - killed
        third = wait_for(lambda: _answer(daemon, host), 90, "the Service after a restart")
        daemon_recovery = time.monotonic() - killed
        assert third != second
        # Only one app per live replica: nothing left from before the kill.
        live = [int(p.name) for p in pid_dir.iterdir() if _alive(int(p.name))]
        assert live == [int(third.split()[1])], live
        print(
            f"\nchaos: replica kill -9 -> answering again in {replica_recovery:.2f}s "
            f"({len(steady_results)} requests to a healthy Service beside it, none failed); "
            f"daemon kill -9 -> restarted, old app gone in {app_gone:.2f}s, "
            f"Service answering after restart in {daemon_recovery:.2f}s"
        )
