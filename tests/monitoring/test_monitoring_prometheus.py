"""`wonderland up --prometheus` with Debian's real Prometheus: it scrapes the daemon and the
replicas, a revision's request rate is a PromQL query away, the targets follow the Pods,
it is started again when it dies, and a missing binary leaves the platform running."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _support.daemon import WonderlandDaemon, wait_for
from _support.manifests import SHORT_AUTOSCALER
from prometheus_testing import (
    DOMAIN,
    METRICS_APP,
    PromClient,
    info,
    prometheus_daemon,
    require_prometheus,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SERVICE = f"""
{SHORT_AUTOSCALER}---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: counter
  namespace: default
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/min-scale: "1"
        prometheus.io/scrape: "true"
        prometheus.io/path: /stats/prometheus
    spec:
      containers:
        - image: metrics-app
          command: ["{sys.executable}", "{METRICS_APP}"]
          ports:
            - containerPort: 8080
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[WonderlandDaemon]:
    require_prometheus()
    manifests = tmp_path / "service.yaml"
    manifests.write_text(SERVICE)
    d = prometheus_daemon(tmp_path)
    try:
        d.start("--prometheus", "-f", str(manifests))
        yield d
    finally:
        d.stop()


def _by_job(prom: PromClient) -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = {}
    for t in prom.targets():
        out.setdefault(str(t["labels"]["job"]), []).append(t)
    return out


def test_prometheus_scrapes_the_daemon_and_replicas_and_follows_the_pods(
    daemon: WonderlandDaemon,
) -> None:
    prometheus = info(daemon)["prometheus"]
    assert prometheus["state"] == "running", prometheus
    assert f"Prometheus: {prometheus['url']} [running]" in daemon.log.read_text()
    prom = PromClient(prometheus["url"])
    host = {"Host": f"counter.default.{DOMAIN}"}
    client = httpx.Client(base_url=daemon.gateway, headers=host, timeout=30)

    def traffic_then(expr: str) -> bool:
        """Send a few requests, then ask whether ``expr`` is above 0 (rates need two
        scrapes of a counter that moved)."""
        for _ in range(5):
            assert client.get("/").status_code == 200
        return any(v > 0 for v in prom.values(expr))

    wait_for(lambda: client.get("/").status_code == 200, 60, "counter to answer")

    def all_up() -> dict[str, list[dict[str, object]]] | None:
        jobs = _by_job(prom)
        every = [t for ts in jobs.values() for t in ts]
        return jobs if "pods" in jobs and all(t["health"] == "up" for t in every) else None

    jobs = wait_for(all_up, 30, "every target up", log=daemon.log)
    daemon_urls = {str(t["scrapeUrl"]) for t in jobs["wonderland"]}
    monitoring = info(daemon)["monitoring"]["url"]
    assert daemon_urls == {f"{monitoring}/metrics", f"{daemon.gateway}/metrics"}
    (pod,) = jobs["pods"]
    assert str(pod["scrapeUrl"]).endswith("/stats/prometheus")  # __metrics_path__ honoured
    labels = pod["labels"]
    assert isinstance(labels, dict)
    assert (labels["namespace"], labels["revision"]) == ("default", "counter-00001")

    # the replica's own counter, scraped at its own path, as a rate
    rate = 'sum(rate(metrics_app_requests_total{revision="counter-00001"}[1m]))'
    wait_for(lambda: traffic_then(rate), 30, rate, interval=0.5)
    # the revision's request rate as Knative's queue-proxy reports it
    served = 'sum(rate(kn_serving_invocation_duration_seconds_count{kn_revision_name="counter-00001"}[1m]))'
    wait_for(lambda: traffic_then(served), 30, served, interval=0.5)
    client.close()

    daemon.ok("delete", "ksvc", "counter")
    wait_for(lambda: "pods" not in _by_job(prom), 30, "the replica's target to go")


def test_a_prometheus_that_dies_is_started_again(daemon: WonderlandDaemon) -> None:
    pid = int(wait_for(lambda: _pid_of(Path(daemon.home / "prometheus" / "data")), 10, "its pid"))
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: info(daemon)["prometheus"]["state"] == "restarting", 10, "restarting")
    wait_for(lambda: info(daemon)["prometheus"]["state"] == "running", 30, "running again")
    table = daemon.ok("get", "cs")
    (row,) = [line for line in table.splitlines() if line.split()[:1] == ["prometheus"]]
    assert "running" in row.split()
    assert _pid_of(daemon.home / "prometheus" / "data") not in (None, pid)
    described = daemon.ok("describe", "componentstatus", "prometheus")
    assert f"Config:  {daemon.home / 'prometheus' / 'prometheus.yml'}" in described
    daemon.stop()
    assert _pid_of(daemon.home / "prometheus" / "data") is None  # stopped with the daemon


def _pid_of(storage: Path) -> int | None:
    """The process whose command line names ``storage`` as its TSDB (ours alone)."""
    needle = f"--storage.tsdb.path={storage}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmdline.split(b"\0") and state != "Z":
            return int(entry)
    return None


def test_without_the_binary_the_platform_runs_and_says_how_to_install_it(tmp_path: Path) -> None:
    # a PATH with everything of this machine's but prometheus
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            target = bin_dir / name
            if name != "prometheus" and not target.exists():
                target.symlink_to(os.path.join(folder, name))
    d = prometheus_daemon(tmp_path, PATH=str(bin_dir))
    with_manifests = tmp_path / "service.yaml"
    with_manifests.write_text(SERVICE)
    try:
        d.start("--prometheus", "-f", str(with_manifests))
        prometheus = info(d)["prometheus"]
        assert prometheus["state"] == "failed"
        assert "apt-get install prometheus" in prometheus["reason"]
        assert "[failed: prometheus is not installed" in d.log.read_text()
        row = next(line for line in d.ok("get", "cs").splitlines() if line.startswith("prometheus"))
        assert row.split()[-1] == "failed"
        host = {"Host": f"counter.default.{DOMAIN}"}
        wait_for(
            lambda: httpx.get(d.gateway, headers=host, timeout=30).status_code == 200,
            60,
            "the platform to serve without Prometheus",
        )
    finally:
        d.stop()
