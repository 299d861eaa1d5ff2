"""Workloads: mount-namespace start cost, pod startup, listing 200 pods, log streaming, and a
Job against the same processes run by hand.

    python bench/workloads/run.py [--pods 200] [--rounds 3] [--skip-daemon]

1. **Process start with a private mount namespace**: the kubelet's own launch path
   (``wonderland.runtime.containers.launch``) of ``/bin/true``, without mounts, with a
   mount on an existing directory (bind only) and with a mount at a path the host lacks
   (``/workspace/model``: a new root is built), interleaved; start-to-exit p50/p99 and the
   added p50.
2. **Pod startup** (create -> every container running, seen through a watch) for ``--pods``
   pods created at 20/s, against Kubernetes' published SLO (5 s p99).
3. **``kubectl get pods -A``** with those pods (the whole command, p50/p99 over 10 runs) and
   the API's Table answer alone (p50/p99 over 50 requests).
4. **Log streaming**: ``kubectl logs -f`` from start to its first byte, and the delay from a
   line being printed to the follower (the ``kubernetes`` client) receiving it.
5. **A Job of 20 completions, parallelism 2, of a 0.1 s program** against the same 20
   processes run by hand, two at a time (median of ``--rounds``).
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
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))

SLEEPER = [sys.executable, "-c", "import time; time.sleep(0.1)"]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def row(name: str, values: list[float], unit: str = "ms") -> str:
    return f"  {name:<44} p50 {pct(values, 0.5):8.2f} {unit}   p99 {pct(values, 0.99):8.2f} {unit}   n={len(values)}"


# -- 1. mount namespaces --------------------------------------------------------------


async def _launch_times(runs: int) -> dict[str, list[float]]:
    from wonderland.runtime import cgroups, containers, sandbox
    from wonderland.runtime.logs import ContainerLog
    from wonderland.runtime.spawner import Spawner

    work = Path(tempfile.mkdtemp(prefix="wl-bench-sbx-"))
    volume = work / "volume"
    volume.mkdir()
    (work / "scratch").mkdir()
    log = ContainerLog(work / "0.log")
    log.open()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    plans = {
        "no mounts": None,
        "bind on an existing path": sandbox.MountPlan(
            (sandbox.Mount(str(volume), "/mnt", True),), str(work / "scratch")
        ),
        "new root for /workspace/model": sandbox.MountPlan(
            (sandbox.Mount(str(volume), "/workspace/model", True),), str(work / "scratch")
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in plans}
    driver = cgroups.detect()
    with_cgroup = f"no mounts, in its own cgroup ({driver.name})"
    if driver.name != "none":
        times[with_cgroup] = []
    spawner = Spawner()  # the kubelet's: containers with mounts are forked by it
    warm = containers.Launch(
        argv=("/bin/true",), env=env, cwd=None, mounts=plans["bind on an existing path"]
    )
    await (await containers.launch(warm, log, spawner)).wait()
    for _ in range(runs):
        for name, plan in plans.items():
            spec = containers.Launch(argv=("/bin/true",), env=env, cwd=None, mounts=plan)
            started = time.perf_counter()
            proc = await containers.launch(spec, log, spawner)
            await proc.wait()
            times[name].append((time.perf_counter() - started) * 1000)
        if driver.name != "none":
            cgroup = driver.create(f"bench-{os.getpid()}", cgroups.Limits())
            procs = tuple(str(p) for p in cgroup.join_paths())
            spec = containers.Launch(argv=("/bin/true",), env=env, cwd=None, cgroup_procs=procs)
            started = time.perf_counter()
            proc = await containers.launch(spec, log, spawner)
            await proc.wait()
            times[with_cgroup].append((time.perf_counter() - started) * 1000)
            cgroup.remove()
    spawner.close()
    await log.close()
    shutil.rmtree(work, ignore_errors=True)
    return times


def bench_mounts(runs: int) -> None:
    import uvloop

    print("1. process start (launch to exit of /bin/true), the kubelet's launch path")
    times = uvloop.run(_launch_times(runs))
    base = pct(times["no mounts"], 0.5)
    for name, values in times.items():
        added = pct(values, 0.5) - base
        extra = "" if name == "no mounts" else f"   added p50 {added:+.2f} ms (aim <= 5)"
        print(row(name, values) + extra)


# -- the daemon ----------------------------------------------------------------------


class Daemon:
    def __init__(self) -> None:
        from _support.daemon import WonderlandDaemon, daemon_env, free_port

        self.tmp = Path(tempfile.mkdtemp(prefix="wl-bench-workloads-"))
        env = daemon_env(
            self.tmp,
            gateway_port=free_port(),
            WONDERLAND_LOG_LEVEL="warning",
            WONDERLAND_MAX_PODS="250",  # more than a kubelet's 110, for the 200-pod rows
        )
        self.daemon = WonderlandDaemon(self.tmp / "home", env, self.tmp / "daemon.log")
        self.kubeconfig = str(self.tmp / "home" / "kubeconfig")

    def __enter__(self) -> Daemon:
        self.daemon.start()
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        self.daemon.stop()
        if kind is not None:
            print("the daemon's log ends with:")
            print(self.daemon.log.read_text(errors="replace")[-4000:])
        shutil.rmtree(self.tmp, ignore_errors=True)

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            env=self.daemon.env,
        )


def _pod(name: str, command: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "workloads"}},
        "spec": {
            "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", command]}],
            **spec,
        },
    }


def bench_pods(d: Daemon, count: int) -> None:
    from kubernetes import client, config, watch

    config.load_kube_config(d.kubeconfig)
    v1 = client.CoreV1Api()
    created: dict[str, float] = {}
    running: dict[str, float] = {}
    done = threading.Event()

    def observe() -> None:
        w = watch.Watch()
        for event in w.stream(
            v1.list_namespaced_pod, "default", label_selector="bench=workloads", timeout_seconds=600
        ):
            pod = event["object"]
            statuses = (pod.status.container_statuses if pod.status else None) or []
            if statuses and all(s.state.running for s in statuses):
                running.setdefault(pod.metadata.name, time.perf_counter())
            if len(running) >= count:
                w.stop()
        done.set()

    watcher = threading.Thread(target=observe, daemon=True)
    watcher.start()
    time.sleep(0.5)
    for i in range(count):
        name = f"sleeper-{i:03d}"
        created[name] = time.perf_counter()
        v1.create_namespaced_pod("default", _pod(name, "sleep 3600"))
        time.sleep(0.05)  # 20 pods a second
    done.wait(300)
    startup = [(running[n] - created[n]) * 1000 for n in created if n in running]
    print(f"2. pod startup, create -> all containers running (watch), {count} pods at 20/s")
    print(row("wonderland", startup) + "   Kubernetes SLO: p99 <= 5000 ms")
    print(f"3. listing {count} pods")
    whole = []
    for _ in range(10):
        started = time.perf_counter()
        out = d.kubectl("get", "pods", "-A")
        whole.append((time.perf_counter() - started) * 1000)
        assert out.returncode == 0 and len(out.stdout.splitlines()) > count, out.stderr
    print(row("kubectl get pods -A (whole command)", whole))
    from wonderland.control.client import TABLE_ACCEPT, ControlClient

    api = ControlClient.for_state_dir(d.tmp / "home")
    table = []
    for _ in range(50):
        started = time.perf_counter()
        answer = api.request("GET", "/api/v1/pods", accept=TABLE_ACCEPT)
        assert len(answer["rows"]) >= count
        table.append((time.perf_counter() - started) * 1000)
    print(row("GET /api/v1/pods as Table (API alone)", table))
    v1.delete_collection_namespaced_pod(
        "default", label_selector="bench=workloads", grace_period_seconds=0
    )


def bench_logs(d: Daemon) -> None:
    from kubernetes import client, config

    config.load_kube_config(d.kubeconfig)
    v1 = client.CoreV1Api()
    printer = f'{sys.executable} -u -c "import time\nwhile True: print(repr(time.time()), flush=True); time.sleep(0.05)"'
    v1.create_namespaced_pod("default", _pod("printer", printer))
    deadline = time.time() + 30
    while time.time() < deadline:
        pod = v1.read_namespaced_pod("printer", "default")
        if pod.status.phase == "Running":
            break
        time.sleep(0.05)
    first = []
    for _ in range(10):
        started = time.perf_counter()
        proc = subprocess.Popen(
            ["kubectl", "--kubeconfig", d.kubeconfig, "logs", "-f", "printer", "--tail", "1"],
            stdout=subprocess.PIPE,
            env=d.daemon.env,
        )
        assert proc.stdout is not None
        proc.stdout.read(1)
        first.append((time.perf_counter() - started) * 1000)
        proc.send_signal(signal.SIGTERM)
        proc.wait()
    print("4. log streaming")
    print(row("kubectl logs -f: start to first byte", first))
    stream = v1.read_namespaced_pod_log(
        "printer", "default", follow=True, tail_lines=0, _preload_content=False
    )
    delays = []
    for line in stream.stream():
        for text in line.decode().split():
            delays.append((time.time() - float(text)) * 1000)
        if len(delays) >= 200:
            break
    stream.release_conn()
    print(row("printed -> received by a follower", delays))
    v1.delete_namespaced_pod("printer", "default", grace_period_seconds=0)


def _job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "completions": 20,
            "parallelism": 2,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "python", "command": SLEEPER}],
                }
            },
        },
    }


def bench_job(d: Daemon, rounds: int) -> None:
    print("5. a Job of 20 completions, parallelism 2, of a 0.1 s program")
    from kubernetes import client, config, watch

    config.load_kube_config(d.kubeconfig)
    batch = client.BatchV1Api()
    by_hand = []
    with_kubectl = []
    through_api = []
    for r in range(rounds):
        started = time.perf_counter()
        queue = list(range(20))
        active: list[subprocess.Popen[bytes]] = []
        while queue or active:
            while queue and len(active) < 2:
                queue.pop()
                active.append(subprocess.Popen(SLEEPER))
            active[0].wait()
            active = [p for p in active if p.poll() is None]
        by_hand.append(time.perf_counter() - started)

        # As a user runs it: two kubectl processes (about 0.1 s of it is their start).
        started = time.perf_counter()
        applied = d.kubectl("apply", "-f", "-", stdin=json.dumps(_job(f"bench-{r}")))
        assert applied.returncode == 0, applied.stderr
        waited = d.kubectl("wait", "--for=condition=complete", f"job/bench-{r}", "--timeout=300s")
        with_kubectl.append(time.perf_counter() - started)
        assert waited.returncode == 0, waited.stderr
        d.kubectl("delete", "job", f"bench-{r}")

        # The platform alone: create through the API, watch until the Complete condition.
        name = f"bench-api-{r}"
        started = time.perf_counter()
        made = batch.create_namespaced_job("default", _job(name))
        stream = watch.Watch().stream(
            batch.list_namespaced_job,
            "default",
            field_selector=f"metadata.name={name}",
            resource_version=made.metadata.resource_version,
            timeout_seconds=300,
        )
        for event in stream:
            conditions = event["object"].status.conditions or []
            if any(c.type == "Complete" and c.status == "True" for c in conditions):
                break
        through_api.append(time.perf_counter() - started)
        batch.delete_namespaced_job(name, "default", propagation_policy="Background")
    hand = statistics.median(by_hand)
    print(f"  {'by hand, two at a time':<44} {hand:8.2f} s (median of {rounds})")
    for label, values in (
        ("wonderland Job (kubectl apply -> wait)", with_kubectl),
        ("wonderland Job (API create -> Complete)", through_api),
    ):
        ours = statistics.median(values)
        print(f"  {label:<44} {ours:8.2f} s   ratio {ours / hand:.2f}x (aim <= 1.2x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--launches", type=int, default=100)
    parser.add_argument("--skip-daemon", action="store_true")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    bench_mounts(args.launches)
    if args.skip_daemon:
        return 0
    if shutil.which("kubectl") is None:
        print("kubectl is not installed: the daemon parts need it")
        return 1
    with Daemon() as d:
        bench_job(d, args.rounds)
        bench_logs(d)
        bench_pods(d, args.pods)
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
