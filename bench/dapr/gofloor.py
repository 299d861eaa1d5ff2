"""The peer floor: a no-op call served by grpc-go and by net/http, the stacks daprd uses.

    python bench/dapr/gofloor.py

Builds ``gofloor/main.go`` (a grpc.health.v1 server, a net/http server answering 204,
and open-loop Go clients for both) with the Debian-packaged Go toolchain and grpc-go
sources, in GOPATH mode so nothing is fetched, then measures a health Check and a
``GET /v1.0/healthz`` at 1,000 calls/s each over loopback. Dapr's published sidecar
figure is taken with a Go client against daprd; this is what each transport costs on
this machine, with nothing behind the call.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "gofloor" / "main.go"
BINARY = HERE.parent / ".gofloor" / "gofloor"
GOPATH = Path("/usr/share/gocode")
GRPC_SRC = GOPATH / "src" / "google.golang.org" / "grpc" / "health" / "grpc_health_v1"
APT_HINT = "gofloor: needs Go and grpc-go: apt-get install -y golang-go golang-google-grpc-dev"


def build() -> Path | None:
    """Build the binary into bench/.gofloor/ if main.go is newer; None if Go or grpc-go is missing."""
    go = shutil.which("go")
    if go is None or not GRPC_SRC.is_dir():
        print(APT_HINT, file=sys.stderr)
        return None
    if BINARY.exists() and BINARY.stat().st_mtime >= SOURCE.stat().st_mtime:
        return BINARY
    BINARY.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(GOPATH), "GOFLAGS": ""}
    subprocess.run(
        [go, "build", "-o", str(BINARY), str(SOURCE.name)],
        cwd=SOURCE.parent,
        env=env,
        check=True,
    )
    return BINARY


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the process group ``proc`` leads (it was started with start_new_session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _start(binary: Path, mode: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``gofloor MODE PORT`` on a free port; return (process, port) once it prints ready."""
    port = _free_port()
    proc = subprocess.Popen(
        [str(binary), mode, str(port)],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 10.0
    buf = b""
    try:
        while b"ready" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"gofloor {mode}: no 'ready' in 10 s (got {buf!r})")
            ready, _, _ = select.select([proc.stdout], [], [], left)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    raise RuntimeError(f"gofloor {mode} exited with {proc.wait()}: {buf!r}")
                buf += chunk
    except BaseException:
        kill_group(proc)
        raise
    return proc, port


def serve(binary: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start the grpc-go health server on a free port; return (process, port) once ready."""
    return _start(binary, "serve")


def serve_http(binary: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start the net/http server (204 for any path) on a free port; return (process, port) once ready."""
    return _start(binary, "serve-http")


def _run_load(argv: list[str], seconds: float) -> dict[str, float]:
    out = subprocess.run(argv, capture_output=True, check=True, timeout=seconds + 60)
    if out.stderr:
        sys.stderr.write(out.stderr.decode(errors="replace"))
    result: dict[str, float] = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return result


def load(binary: Path, port: int, rate: float, seconds: float, conns: int = 16) -> dict[str, float]:
    """Open-loop health Checks at ``rate``/s for ``seconds`` s (after 1 s warm-up)."""
    argv = [str(binary), "load", str(port), str(rate), str(seconds), str(conns)]
    return _run_load(argv, seconds)


def load_http(
    binary: Path,
    port: int,
    rate: float,
    seconds: float,
    conns: int = 16,
    path: str = "/v1.0/healthz",
) -> dict[str, float]:
    """Open-loop keep-alive GETs of ``path`` at ``rate``/s for ``seconds`` s (after 1 s warm-up)."""
    argv = [str(binary), "load-http", str(port), str(rate), str(seconds), str(conns), path]
    return _run_load(argv, seconds)


def main() -> int:
    binary = build()
    if binary is None:
        return 1
    proc, port = serve(binary)
    try:
        grpc_result = load(binary, port, 1000.0, 5.0)
    finally:
        kill_group(proc)
    print(json.dumps({"transport": "grpc", **grpc_result}))
    proc, port = serve_http(binary)
    try:
        http_result = load_http(binary, port, 1000.0, 5.0)
    finally:
        kill_group(proc)
    print(json.dumps({"transport": "http", **http_result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
