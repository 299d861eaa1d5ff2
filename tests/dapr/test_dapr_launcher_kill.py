"""``wonderland sidecar ... -- CMD`` killed with SIGKILL takes its app (and the app's children)
down with it, so the same command started again gets the app's port back."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _support.daemon import WONDERLAND, free_port, kill_group, wait_for

pytestmark = pytest.mark.e2e

# The app listens on APP_PORT and starts a child of its own; both write their pids.
APP = textwrap.dedent(
    """
    import os, socket, subprocess, sys, time
    out = sys.argv[1]
    sock = socket.socket()
    # As servers do: the connections it accepted and closed first (the sidecar's probes)
    # linger in TIME_WAIT, which blocks a new listener without SO_REUSEADDR for a minute.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(os.environ["APP_PORT"])))
    sock.listen()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(out + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    os.rename(out + ".tmp", out)
    while True:
        conn, _ = sock.accept()
        conn.close()
    """
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has ended; only its parent has not read its status yet


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _start(tmp_path: Path, app_port: int, pids: Path) -> subprocess.Popen[bytes]:
    script = tmp_path / "app.py"
    script.write_text(APP)
    env = {**os.environ, "WONDERLAND_HOME": str(tmp_path / "home")}
    log = open(tmp_path / "sidecar.log", "ab")  # noqa: SIM115
    return subprocess.Popen(
        [
            *WONDERLAND,
            "sidecar",
            "--app-id",
            "killed",
            "--app-port",
            str(app_port),
            "--dapr-http-port",
            "0",
            "--dapr-grpc-port",
            "0",
            "--metrics-port",
            "0",
            "--",
            sys.executable,
            str(script),
            str(pids),
        ],
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_sigkill_of_the_sidecar_ends_the_app_and_its_children(tmp_path: Path) -> None:
    app_port = free_port()
    first = tmp_path / "first.pids"
    sidecar = _start(tmp_path, app_port, first)
    log = tmp_path / "sidecar.log"
    try:
        wait_for(first.exists, 60, "the app to start", log=log)
        app_pid, child_pid = (int(v) for v in first.read_text().split())
        os.kill(sidecar.pid, signal.SIGKILL)
        sidecar.wait(10)
        wait_for(lambda: not _alive(app_pid), 10, "the app to die with its sidecar", log=log)
        wait_for(lambda: not _alive(child_pid), 10, "the app's child to die too", log=log)
        wait_for(lambda: _port_free(app_port), 10, "the app's port to be free")
        # The same command again: its app gets the port (it would exit if the old one held it).
        second = tmp_path / "second.pids"
        again = _start(tmp_path, app_port, second)
        try:
            wait_for(second.exists, 60, "the restarted app to start", log=log)
            assert again.poll() is None, log.read_text()
        finally:
            again.terminate()
            again.wait(20)
        new_app, new_child = (int(v) for v in second.read_text().split())
        # A SIGTERM'd sidecar stops its app as before, and the watchdog leaves nothing behind.
        wait_for(lambda: not _alive(new_app) and not _alive(new_child), 10, "a clean stop")
    finally:
        kill_group(sidecar)
