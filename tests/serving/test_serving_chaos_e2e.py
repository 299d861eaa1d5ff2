"""Chaos under load: kill -9 of the daemon and of a replica while requests run.

The Service's container is a shell that starts the HTTP app as its child (as a start script
or ``npm start`` does), so the app is a grandchild of the daemon: the shell dies with the
daemon (``PR_SET_PDEATHSIG``) but the app does not. After a kill -9 of the daemon, the
restarted daemon kills the process groups the old one left, so no process is left holding
a replica's port, and the Service answers again; a replica killed with SIGKILL is replaced while the gateway keeps
answering. The Dapr sidecar of a third Service (state in Redis, pub/sub on Redis Streams)
is killed with SIGKILL while the app writes state and publishes through it: the pod's
sidecar is restarted on its ports (a native sidecar: the app keeps running, as on a
cluster), and no write or message the app acknowledged is lost. The recovery times are
printed (``-s``); ``bench/chaos/run.py`` reports them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import textwrap
import threading
import time
import uuid
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


DAPR_APP = Path(__file__).parents[1] / "dapr" / "dapr_app.py"


def _redis() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), 1).close()
    except OSError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Redis is not running on 127.0.0.1:6379 (CI=true: it is required)")
        return False
    return True


def _dapr_manifest(run: str) -> str:
    """A Dapr-enabled Service ``relay`` over Redis state and Redis Streams pub/sub."""
    return textwrap.dedent(
        f"""
        apiVersion: dapr.io/v1alpha1
        kind: Component
        metadata: {{name: statestore}}
        spec:
          type: state.redis
          version: v1
          metadata: [{{name: redisHost, value: "localhost:6379"}}]
        ---
        apiVersion: dapr.io/v1alpha1
        kind: Component
        metadata: {{name: pubsub}}
        spec:
          type: pubsub.redis
          version: v1
          metadata:
            - {{name: redisHost, value: "localhost:6379"}}
            - {{name: redeliverInterval, value: "500ms"}}
            - {{name: processingTimeout, value: "500ms"}}
        ---
        apiVersion: dapr.io/v2alpha1
        kind: Subscription
        metadata: {{name: orders}}
        spec: {{pubsubname: pubsub, topic: chaos-{run}, routes: {{default: /orders}}}}
        ---
        apiVersion: serving.knative.dev/v1
        kind: Service
        metadata:
          name: relay
        spec:
          template:
            metadata:
              annotations:
                dapr.io/enabled: "true"
                dapr.io/app-id: relay{run}
                autoscaling.knative.dev/min-scale: "1"
            spec:
              containers:
                - name: user-container
                  command: ["{sys.executable}", "{DAPR_APP}"]
        """
    )


class _Writer(threading.Thread):
    """Through the gateway, the app saves ``chaos-<run>-<n>`` and publishes ``{"n": n}``
    by its sidecar; what the app acknowledged (204) is kept."""

    def __init__(self, daemon: WonderlandDaemon, host: str, run: str) -> None:
        super().__init__(daemon=True)
        self.url, self.host, self.run_id = daemon.gateway, host, run
        self.saved: dict[str, int] = {}
        self.published: set[int] = set()
        self.failures = 0
        self.ack_times: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        headers = {"Host": self.host}
        with httpx.Client(base_url=self.url, headers=headers, timeout=10) as http:
            while not self.stop.is_set():
                n += 1
                key = f"chaos-{self.run_id}-{n}"
                try:
                    if http.post(f"/state/{key}", content=str(n)).status_code == 204:
                        self.saved[key] = n
                        self.ack_times.append(time.monotonic())
                    else:
                        self.failures += 1
                    p = http.post(f"/publish/chaos-{self.run_id}", json={"n": n})
                    if p.status_code == 204:
                        self.published.add(n)
                    else:
                        self.failures += 1
                except httpx.HTTPError:
                    self.failures += 1
                    time.sleep(0.01)  # a client's back-off while the target is down


def _sidecar_pids(app_id: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"sidecar" in argv and app_id.encode() in argv and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _sidecar_chaos(daemon: WonderlandDaemon, tmp_path: Path) -> str:
    """kill -9 of a daemon-run sidecar under state writes and publishes; the figure."""
    run = uuid.uuid4().hex[:8]
    manifest = tmp_path / "relay.yaml"
    manifest.write_text(_dapr_manifest(run))
    daemon.ok("apply", "-f", str(manifest))
    host = _host(daemon, "relay")
    app_id = f"relay{run}"
    writer = _Writer(daemon, host, run)
    writer.start()
    try:
        wait_for(lambda: len(writer.saved) >= 30, 60, "acknowledged writes", log=daemon.log)
        pids = _sidecar_pids(app_id)
        assert len(pids) == 1, pids
        app_before = httpx.get(daemon.gateway + "/hello", headers={"Host": host}).text
        os.kill(pids[0], signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: not _alive(pids[0]), 10, "the sidecar to die")
        wait_for(
            lambda: any(t > killed for t in writer.ack_times),
            60,
            "acknowledged writes after the kill",
            log=daemon.log,
        )
        recovery = next(t for t in writer.ack_times if t > killed) - killed
        total = len(writer.saved)
        wait_for(lambda: len(writer.saved) >= total + 30, 60, "writes after the recovery")
    finally:
        writer.stop.set()
        writer.join(15)
    restarted = _sidecar_pids(app_id)
    assert len(restarted) == 1 and restarted != pids, restarted
    assert app_before == app_id
    headers = {"Host": host}
    with httpx.Client(base_url=daemon.gateway, headers=headers, timeout=10) as http:
        lost = [k for k, n in writer.saved.items() if http.get(f"/state/{k}").json() != str(n)]
        assert not lost, f"{len(lost)} acknowledged writes lost: {lost[:5]}"

        def delivered() -> set[int] | None:
            got = {m["data"]["n"] for m in http.get("/received").json()}
            return got if writer.published <= got else None

        wait_for(delivered, 60, "every acknowledged message delivered", log=daemon.log)
    return (
        f"; daemon-run sidecar kill -9 under load -> acknowledged writes again after {recovery:.2f}s "
        f"({len(writer.saved)} writes and {len(writer.published)} messages acknowledged, "
        f"none lost; {writer.failures} requests failed unacknowledged)"
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
        sidecar = _sidecar_chaos(daemon, tmp_path) if _redis() else ""

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
            f"Service answering after restart in {daemon_recovery:.2f}s{sidecar}"
        )
