"""Tracking: what MLflow's tracking server costs as a platform component, in one run.

1. **Idle cost**: after ``wonderland up``, the MLflow processes the daemon runs and their
   PSS (0 and 0 MB: nothing starts before the first request).
2. **Wake time** (p50 of ``--wakes``): the first request (``GET /health``) through the front
   of a stopped server until its answer, against ``mlflow server --workers 1
   --backend-store-uri sqlite:///... --port P`` as it comes (time to its first ``/health``)
   and the same with ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``.
3. **log_metric** p50/p99 (``--calls`` calls of ``mlflow.log_metric`` in one run, the real
   client in a subprocess) through the platform's front against a bare ``mlflow server``
   in the same run: the difference in ms and the ratio.
4. **The relay alone** (p50/p99 of ``--relay`` calls): the same server, the same request
   (``GET experiments/get``, a read: no SQLite commit in the figure), through the front
   and straight to the MLflow process's private port, interleaved, each over one
   kept-alive connection: what the front adds to every request.
5. **8 processes x 200 log_metric at once** through the front: errors (``database is
   locked`` among them; must be 0) and the total time.

    python bench/tracking/run.py [--wakes 5] [--calls 500]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests"))
from _support.daemon import WonderlandDaemon, daemon_env, free_port  # noqa: E402

LOGGER = """
import json, sys, time, mlflow
calls = int(sys.argv[1])
mlflow.set_experiment("bench-" + sys.argv[2])
times, errors = [], []
with mlflow.start_run():
    mlflow.log_metric("warm", 0.0)
    for i in range(calls):
        t = time.perf_counter()
        try:
            mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
        except Exception as exc:
            errors.append(str(exc)[:200])
        times.append((time.perf_counter() - t) * 1000)
print(json.dumps({"times": times, "errors": errors}))
"""


def _health(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=timeout) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _info(home: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((home / "daemon.json").read_text())["mlflow"]
    return data


def _mlflow_pids(daemon_pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmd = (entry / "cmdline").read_bytes()
            except (OSError, IndexError):
                continue
            if int(stat[1]) == daemon_pid and b"mlflow_process" in cmd:
                out.append(int(entry.name))
    return out


def _pss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def _bare_start(root: Path, job_execution: bool) -> tuple[float, subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WONDERLAND_")}
    if not job_execution:
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    mlflow = str(Path(sys.executable).parent / "mlflow")
    # one store per mode, reused: the first start migrates it, as the front's first does
    db = root / f"bare-{job_execution}.db"
    argv = [mlflow, "server", "--workers", "1", "--backend-store-uri", f"sqlite:///{db}"]
    started = time.monotonic()
    proc = subprocess.Popen(
        [*argv, "--port", str(port), "--artifacts-destination", str(root / "bare-artifacts")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    while not _health(url):
        if proc.poll() is not None:
            raise RuntimeError("mlflow server exited")
        time.sleep(0.02)
    return time.monotonic() - started, proc, url


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _private_port(pid: int) -> int:
    """The port the lean MLflow process ``pid`` listens on (from its environment)."""
    for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        if item.startswith(b"WONDERLAND_MLFLOW_LISTEN_PORT="):
            return int(item.split(b"=", 1)[1])
    raise RuntimeError(f"process {pid} has no WONDERLAND_MLFLOW_LISTEN_PORT")


def _relay(front: str, direct: str, calls: int) -> tuple[list[float], list[float]]:
    """Interleaved GETs of one cheap read through ``front`` and ``direct`` (ms each)."""
    import http.client
    from urllib.parse import urlsplit

    path = "/api/2.0/mlflow/experiments/get?experiment_id=0"
    conns = []
    for url in (front, direct):
        parts = urlsplit(url)
        conns.append(http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port))
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(calls + 50):
        for which, conn in enumerate(conns):
            t = time.perf_counter()
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            took = (time.perf_counter() - t) * 1000
            assert response.status == 200, response.status
            if i >= 50:  # warm-up
                times[which].append(took)
    for conn in conns:
        conn.close()
    return times


def _log_metrics(uri: str, calls: int, tag: str) -> dict[str, Any]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    out = subprocess.run(
        [sys.executable, "-c", LOGGER, str(calls), tag],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wakes", type=int, default=5)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--relay", type=int, default=2000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-tracking-"))
    idle = 1.0
    env = daemon_env(tmp, gateway_port=free_port(), WONDERLAND_MLFLOW_IDLE_SECONDS=str(idle))
    daemon = WonderlandDaemon(tmp / "home", env, tmp / "daemon.log")
    rows: list[tuple[str, str]] = []
    try:
        daemon.start()
        assert daemon.proc is not None
        time.sleep(1.0)
        pids = _mlflow_pids(daemon.proc.pid)
        rows.append(("idle: MLflow processes after up", str(len(pids))))
        rows.append(("idle: their PSS (MB)", f"{_pss_mb(pids):.0f}"))
        front = _info(daemon.home)["url"]

        # the first start migrates the new database: measured apart from the wakes
        t = time.monotonic()
        assert _health(front, 120)
        rows.append(("first start (new SQLite store), s", f"{time.monotonic() - t:.2f}"))
        wakes = []
        for _ in range(args.wakes):
            deadline = time.monotonic() + 30
            while _info(daemon.home)["state"] != "stopped" and time.monotonic() < deadline:
                time.sleep(0.1)
            t = time.monotonic()
            assert _health(front, 120)
            wakes.append(time.monotonic() - t)
        bare_plain, bare_lean = [], []
        for job_execution in (True, False):  # migrate each store first, not measured
            _took, proc, _url = _bare_start(tmp, job_execution)
            _kill(proc)
        for _ in range(args.wakes):
            took, proc, _url = _bare_start(tmp, True)
            _kill(proc)
            bare_plain.append(took)
            took, proc, _url = _bare_start(tmp, False)
            _kill(proc)
            bare_lean.append(took)
        rows.append(("wake through the front, p50 s", f"{statistics.median(wakes):.2f}"))
        rows.append(("mlflow server --workers 1, p50 s", f"{statistics.median(bare_plain):.2f}"))
        rows.append(("  ... JOB_EXECUTION=false, p50 s", f"{statistics.median(bare_lean):.2f}"))

        # log_metric: front vs bare, same run (the front is kept up by the calls)
        _took, bare, bare_url = _bare_start(tmp, False)
        try:
            _health(front, 120)
            via_front = _log_metrics(front, args.calls, "front")
            via_bare = _log_metrics(bare_url, args.calls, "bare")
        finally:
            _kill(bare)
        f50, f99 = _pct(via_front["times"], 0.5), _pct(via_front["times"], 0.99)
        b50, b99 = _pct(via_bare["times"], 0.5), _pct(via_bare["times"], 0.99)
        rows.append(("log_metric via front p50/p99 ms", f"{f50:.2f} / {f99:.2f}"))
        rows.append(("log_metric bare p50/p99 ms", f"{b50:.2f} / {b99:.2f}"))
        rows.append(("  difference p50 ms, ratio", f"{f50 - b50:+.2f}, {f50 / b50:.2f}x"))

        # the relay alone: same server, same read, front vs its private port
        _health(front, 120)
        lean = _mlflow_pids(daemon.proc.pid)
        direct = f"http://127.0.0.1:{_private_port(lean[0])}"
        via, straight = _relay(front, direct, args.relay)
        v50, v99 = _pct(via, 0.5), _pct(via, 0.99)
        s50, s99 = _pct(straight, 0.5), _pct(straight, 0.99)
        rows.append(("read via front p50/p99 ms", f"{v50:.3f} / {v99:.3f}"))
        rows.append(("read direct p50/p99 ms", f"{s50:.3f} / {s99:.3f}"))
        rows.append(("  relay adds p50 ms", f"{v50 - s50:+.3f}"))

        # 8 writers at once through the front
        _health(front, 120)
        env8 = {**os.environ, "MLFLOW_TRACKING_URI": front}
        t = time.monotonic()
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", LOGGER, "200", f"w{i}"],
                env=env8,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(8)
        ]
        errors, locked = 0, 0
        for p in procs:
            out, err = p.communicate(timeout=600)
            if p.returncode != 0:
                errors += 200
                locked += err.count("database is locked")
                continue
            result = json.loads(out.strip().splitlines()[-1])
            errors += len(result["errors"])
            locked += sum("database is locked" in e for e in result["errors"])
        rows.append(("8 x 200 log_metric: errors (locked)", f"{errors} ({locked})"))
        rows.append(("8 x 200 log_metric: total s", f"{time.monotonic() - t:.2f}"))
    finally:
        daemon.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    width = max(len(k) for k, _ in rows)
    print(f"{'measure':<{width}}  value")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
