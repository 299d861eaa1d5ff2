"""A warm fork server for model server replicas: cold starts without import time.

Scale from zero spends most of its time importing Python, numpy and the ML framework,
not loading the model. The platform keeps one process (``python -m
wonderland.kserve.forkserver daemon --socket S``) that has imported them once; a
predictor replica's command is the small client (``python -m wonderland.kserve.forkserver
serve ARGS``), which hands its argv, environment, working directory and standard streams
(SCM_RIGHTS) to the fork server, which forks a child that runs ``wonderland serve ARGS``.
The client relays signals to that child and exits with its status; when the client dies
(even by SIGKILL) its connection closes and the fork server kills the child, so the
replica supervisor's view (one process per replica) stays true.

Without the socket (``KSERVE_FORKSERVER_SOCKET`` unset or nobody listening) the client
runs ``wonderland serve ARGS`` itself. Either way the model is loaded before the server
listens (see :func:`run_cli`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

__all__ = ["SOCKET_ENV", "ForkServerService", "client_main", "run_cli", "server_main"]

log = logging.getLogger("wonderland.kserve.forkserver")

SOCKET_ENV = "KSERVE_FORKSERVER_SOCKET"
_PRELOAD = (
    "numpy",
    "uvloop",
    "uvicorn",
    "httptools",
    "orjson",
    "joblib",
    "sklearn",
    "sklearn.svm",
    "sklearn.linear_model",
    "sklearn.ensemble",
    "sklearn.tree",
    "sklearn.pipeline",
    "sklearn.dummy",
    "xgboost",
    "lightgbm",
    "wonderland.cli",
    "wonderland.cli.serve",
    "wonderland.inference.server",
    "wonderland.inference.rest",
    "wonderland.inference.dataplane",
    "wonderland.inference.repository",
    "wonderland.inference.runtimes.sklearn",
    "wonderland.inference.runtimes.xgboost",
    "wonderland.inference.runtimes.lightgbm",
    "wonderland.inference.payload_logger",
    "wonderland.runtime.supervisor",
)


def _send_msg(sock: socket.socket, obj: object) -> None:
    data = json.dumps(obj).encode()
    sock.sendall(struct.pack("!I", len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def _recv_msg(sock: socket.socket) -> object:
    (n,) = struct.unpack("!I", _recv_exact(sock, 4))
    return json.loads(_recv_exact(sock, n))


def run_cli(argv: list[str]) -> int:
    """``wonderland <argv>``; for ``serve``, the model is loaded before the ports open.

    A replica is Ready when its port answers (a TCP probe for gRPC predictors), so the
    model server must not listen before the model is in memory, as KServe's model server
    loads models before it starts its servers. ``wonderland serve`` does that for its
    ``--workers`` children (``reuse_port``); a single-process replica asks for the same.
    """
    if argv[:1] == ["serve"]:
        argv = [*argv, "--load_before_listen=true"]
    from wonderland.cli import main

    return main(argv)


# -- the client (a replica's process) ----------------------------------------------------


def client_main(argv: list[str]) -> int:
    """Run ``wonderland <argv>`` through the fork server, or exec it when there is none."""
    path = os.environ.get(SOCKET_ENV, "")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if not path:
            raise OSError("no fork server")
        sock.connect(path)
        request = {"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}
        payload = json.dumps(request).encode()
        socket.send_fds(sock, [struct.pack("!I", len(payload))], [0, 1, 2])
        sock.sendall(payload)
        reply = _recv_msg(sock)
    except (OSError, ConnectionError, ValueError):
        sock.close()
        return run_cli(argv)
    assert isinstance(reply, dict)
    pid = int(reply["pid"])

    def relay(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, relay)
    while True:
        try:
            done = _recv_msg(sock)
        except InterruptedError:
            continue
        except (OSError, ConnectionError, ValueError):
            return 1
        if isinstance(done, dict) and "exit" in done:
            return int(done["exit"])


# -- the server ----------------------------------------------------------------------------


def _preload() -> None:
    import importlib

    for name in _PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as exc:  # an optional framework that is not installed
            log.debug("fork server: not preloading %s: %s", name, exc)


def _child(
    conn_fds: list[int], request: dict[str, object], listener: socket.socket, client: int
) -> None:
    """In the forked child: become the replica's process and run the CLI.

    It joins the client's cgroups and mount namespace, so the pod's memory and CPU limits,
    ``kubectl top`` and its volumes apply to the model server as to any container process.
    """
    code = 1
    try:
        listener.close()
        os.setsid()
        from wonderland.runtime import cgroups, sandbox
        from wonderland.runtime.containers import die_with_parent as _die_with_parent

        _die_with_parent()  # never outlive the fork server
        if client:
            cgroups.join_same(client)
            if not sandbox.same_mounts(client):
                sandbox.join(client)
        for target, fd in enumerate(conn_fds[:3]):
            os.dup2(fd, target)
        for fd in conn_fds:
            if fd > 2:
                os.close(fd)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        env = request.get("env")
        if isinstance(env, dict):
            os.environ.clear()
            os.environ.update({str(k): str(v) for k, v in env.items()})
        cwd = request.get("cwd")
        if isinstance(cwd, str) and cwd:
            with contextlib.suppress(OSError):
                os.chdir(cwd)
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        argv = request.get("argv")
        code = run_cli([str(a) for a in argv]) if isinstance(argv, list) else 2
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:
        with contextlib.suppress(Exception):
            print(f"model server failed: {exc}", file=sys.stderr, flush=True)
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def server_main(path: str) -> int:
    """Preload, listen on ``path`` and fork a child per client until terminated."""
    _preload()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(64)
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    children: dict[int, socket.socket] = {}  # pid -> client connection
    running = [True]

    def stop(_signum: int, _frame: object) -> None:
        running[0] = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while running[0]:
        for key, _ in sel.select(timeout=0.05):
            if key.data is None:
                try:
                    conn, _ = listener.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(True)
                conn.settimeout(5)
                try:
                    creds = conn.getsockopt(
                        socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
                    )
                    client_pid = struct.unpack("3i", creds)[0]
                    header, fds, _flags, _addr = socket.recv_fds(conn, 4, 3)
                    (n,) = struct.unpack("!I", header)
                    request = json.loads(_recv_exact(conn, n))
                except (OSError, ValueError, struct.error, ConnectionError):
                    conn.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    sel.close()
                    for other in children.values():
                        with contextlib.suppress(OSError):
                            other.close()
                    conn.close()
                    _child(fds, request, listener, client_pid)
                for fd in fds:
                    os.close(fd)
                conn.settimeout(None)
                try:
                    _send_msg(conn, {"pid": pid})
                except OSError:
                    pass
                children[pid] = conn
                sel.register(conn, selectors.EVENT_READ, pid)
            else:
                # Readable client connection: it only ever closes (the client died).
                pid = key.data
                peer = children.get(pid)
                data = b""
                if peer is not None:
                    with contextlib.suppress(OSError):
                        data = peer.recv(1)
                if not data:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)
                    sel.unregister(key.fileobj)
        _reap(children, sel)
    for pid in list(children):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    listener.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return 0


def _reap(children: dict[int, socket.socket], sel: selectors.BaseSelector) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        client = children.pop(pid, None)
        if client is None:
            continue
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(client)
        with contextlib.suppress(OSError):
            _send_msg(client, {"exit": os.waitstatus_to_exitcode(status)})
        client.close()


# -- the platform service ----------------------------------------------------------------


class ForkServerService:
    """Starts the fork server with the platform and stops it on shutdown."""

    def __init__(self, state_dir: Path) -> None:
        run = state_dir / "run"
        self.path = run / "modelserver.sock"
        self.log_path = state_dir / "logs" / "modelserver-forkserver.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def usable(self) -> bool:
        return len(str(self.path).encode()) < 100

    async def start(self) -> None:
        """Nothing yet: the fork server starts with the first InferenceService, so a
        platform that serves no models never pays for its imports."""

    def ensure_started(self) -> None:
        """Start the fork server unless it runs (replicas fall back until it listens)."""
        if not self.usable or (self.proc is not None and self.proc.poll() is None):
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        from wonderland.runtime.containers import die_with_parent as _die_with_parent

        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "wonderland.kserve.forkserver", "daemon", str(self.path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "daemon":
        logging.basicConfig(level=logging.INFO)
        sys.exit(server_main(sys.argv[2]))
    if len(sys.argv) >= 2 and sys.argv[1] == "serve":
        sys.exit(client_main(sys.argv[1:]))
    print("usage: python -m wonderland.kserve.forkserver daemon SOCKET | serve ARGS...")
    sys.exit(2)
