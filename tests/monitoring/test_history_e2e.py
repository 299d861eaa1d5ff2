"""The daemon's own scrape loop with a real Knative Service: its request rate shows in
``/wonderland/v1/top`` and ``wonderland top``, ``/federate`` serves its series, the
targets say who is up, and the history survives a restart of the daemon."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support.daemon import WONDERLAND, WonderlandDaemon, daemon_env, free_port, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DOMAIN = "127.0.0.1.sslip.io"
APP = Path(__file__).with_name("revision_app.py")
REVISION = "counter-00001"
SERVICE = f"""
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
        prometheus.io/path: /metrics
    spec:
      containers:
        - image: revision-app
          command: ["{sys.executable}", "{APP}"]
          ports:
            - containerPort: 8080
"""


def _monitoring(daemon: WonderlandDaemon) -> str:
    import json

    info: dict[str, Any] = json.loads((daemon.home / "daemon.json").read_text())
    return str(info["monitoring"]["url"])


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[WonderlandDaemon]:
    manifests = tmp_path / "service.yaml"
    manifests.write_text(SERVICE)
    env = daemon_env(tmp_path, gateway_port=free_port(), WONDERLAND_METRICS_SCRAPE_SECONDS="1")
    d = WonderlandDaemon(tmp_path / "home", env, tmp_path / "daemon.log")
    try:
        d.start("-f", str(manifests))
        yield d
    finally:
        d.stop()


def _row(monitoring: str, name: str) -> dict[str, Any] | None:
    top = httpx.get(f"{monitoring}/wonderland/v1/top", params={"kind": "revisions"}, timeout=10)
    assert top.status_code == 200, top.text
    return next((i for i in top.json()["items"] if i["name"] == name), None)


def test_top_federate_targets_and_history_follow_a_revision_across_a_restart(
    daemon: WonderlandDaemon,
) -> None:
    monitoring = _monitoring(daemon)
    client = httpx.Client(
        base_url=daemon.gateway, headers={"Host": f"counter.default.{DOMAIN}"}, timeout=30
    )
    wait_for(lambda: client.get("/").status_code == 200, 60, "counter to answer", log=daemon.log)

    def busy_row() -> dict[str, Any] | None:
        for _ in range(5):
            assert client.get("/").status_code == 200
        assert client.get("/fail").status_code == 500
        row = _row(monitoring, REVISION)
        rate = (row or {}).get("values", {}).get("request_rate")
        return row if rate and rate > 0 else None

    row = wait_for(busy_row, 30, "a request rate for counter-00001", interval=0.3, log=daemon.log)
    assert row["namespace"] == "default"
    assert row["values"]["replicas"] == 1  # the gateway's ready endpoints
    rows = [wait_for(busy_row, 30, "another rate", interval=0.3) for _ in range(3)]
    assert any((r["values"]["error_rate"] or 0) > 0 for r in rows)
    assert any(r["values"]["latency_p95"] is not None for r in rows)

    # the command line prints the same row
    printed = subprocess.run(
        [*WONDERLAND, "top", "revisions", "--once"],
        # piped, with no COLUMNS: rows are not cut at 80 columns
        env={k: v for k, v in daemon.env.items() if k != "COLUMNS"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert printed.returncode == 0, printed.stderr
    line = next(line for line in printed.stdout.splitlines() if REVISION in line)
    assert line.split()[0] == "default"
    assert "REQ/S" in printed.stdout and "P95" in printed.stdout

    # federation: the replica's own series, with job and instance
    selector = f'kn_serving_invocation_duration_seconds_count{{kn_revision_name="{REVISION}"}}'
    fed = httpx.get(f"{monitoring}/federate", params={"match[]": selector}, timeout=10)
    assert fed.status_code == 200
    lines = [line for line in fed.text.splitlines() if not line.startswith("#")]
    assert lines, fed.text
    assert all(line.startswith("kn_serving_invocation_duration_seconds_count{") for line in lines)
    # the replica's own series (job pods) and the gateway's, as Knative's queue-proxy
    assert all('instance="127.0.0.1:' in line for line in lines)
    assert any('job="pods"' in line for line in lines)
    assert any('job="wonderland"' in line and 'component="gateway"' in line for line in lines)
    assert any('http_response_status_code="200"' in line for line in lines)
    bad = httpx.get(f"{monitoring}/federate", params={"match[]": "up{job="}, timeout=10)
    assert bad.status_code == 400 and "bad selector" in bad.json()["error"]

    targets = httpx.get(f"{monitoring}/wonderland/v1/targets", timeout=10).json()["targets"]
    pods = [t for t in targets if t["job"] == "pods"]
    assert [t["health"] for t in pods] == ["up"]
    assert pods[0]["labels"]["revision"] == REVISION and pods[0]["lastScrape"]

    history_url = f"{monitoring}/wonderland/v1/history"
    query = {"kind": "revisions", "name": REVISION, "series": "request_rate", "since": "10m"}
    before = httpx.get(history_url, params=query, timeout=10).json()["series"]["request_rate"]
    recorded = {t: v for t, v in before if v}
    assert recorded, before
    bad = httpx.get(history_url, params={**query, "since": "yesterday"}, timeout=10)
    assert bad.status_code == 400 and "since" in bad.json()["error"]

    # a restart keeps what was recorded
    daemon.stop()
    assert (daemon.home / "monitoring" / "history.npz").exists()
    daemon.start()
    monitoring = _monitoring(daemon)
    after = httpx.get(f"{monitoring}/wonderland/v1/history", params=query, timeout=10)
    assert after.status_code == 200, after.text
    kept = {t: v for t, v in after.json()["series"]["request_rate"] if v}
    assert set(recorded) <= set(kept)
    client.close()


def test_top_without_a_daemon_says_how_to_start_one(tmp_path: Path) -> None:
    env = daemon_env(tmp_path)
    done = subprocess.run(
        [*WONDERLAND, "top", "--once"],
        env={**env, "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "no wonderland daemon is running" in done.stderr
    assert "wonderland up" in done.stderr
