"""End to end through a real `wonderland up` daemon: apply, get, logs, scale to zero and
cold start, and a replica killed with -9 under load."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _support.daemon import (
    READY_TIMEOUT,
    WonderlandDaemon,
    daemon_env,
    free_port,
    wait_for,
    wait_until,
)
from _support.manifests import SHORT_AUTOSCALER
from prometheus_client.parser import text_string_to_metric_families
from serving_env import APP, DOMAIN

pytestmark = pytest.mark.e2e

MANIFESTS = f"""
{SHORT_AUTOSCALER}---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
  namespace: default
spec:
  template:
    spec:
      containers:
        - image: runtime-app
          command: ["{sys.executable}", "{APP}"]
          env:
            - name: TARGET
              value: world
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: steady
  namespace: default
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/min-scale: "2"
    spec:
      containers:
        - image: runtime-app
          command: ["{sys.executable}", "{APP}"]
"""


class Daemon(WonderlandDaemon):
    """`wonderland up -f MANIFESTS` with its gateway on a free port."""

    def __init__(self, tmp: Path) -> None:
        env = daemon_env(tmp, gateway_port=free_port())
        super().__init__(tmp / "home", env, tmp / "daemon.log")

    def cli(self, *args: str) -> str:
        return self.ok(*args)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    manifests = tmp_path / "manifests.yaml"
    manifests.write_text(MANIFESTS)
    d = Daemon(tmp_path)
    try:
        d.start("-f", str(manifests))
        yield d
    finally:
        d.stop()


def _status(d: Daemon, kind: str, name: str) -> dict:  # type: ignore[type-arg]
    return dict(json.loads(d.cli("get", kind, name, "-o", "json")).get("status") or {})


async def test_daemon_serves_scales_to_zero_and_cold_starts(daemon: Daemon) -> None:
    host = {"Host": f"hello.default.{DOMAIN}"}
    async with httpx.AsyncClient(base_url=daemon.gateway, timeout=60) as client:

        async def answers() -> bool:
            return (await client.get("/", headers=host)).status_code == 200

        await wait_until(answers, READY_TIMEOUT, "hello to answer", interval=0.1)
        r = await client.get("/", headers=host)
        assert r.json()["env"]["TARGET"] == "world"
        table = daemon.cli("get", "ksvc")
        assert f"http://hello.default.{DOMAIN}" in table and "True" in table
        assert "hello-00001" in daemon.cli("get", "rev")
        logs = daemon.cli("logs", "ksvc/hello")
        assert "listening on" in logs
        # idle: stable window (6 s) + grace period (1 s) -> zero replicas
        await wait_until(
            lambda: _status(daemon, "rev", "hello-00001").get("actualReplicas") == 0,
            timeout=60,
            what="scale to zero",
        )
        assert _status(daemon, "rev", "hello-00001").get("desiredReplicas") == 0
        old_pid = r.json()["pid"]
        cold = await client.get("/", headers=host)  # held by the activator, then served
        assert cold.status_code == 200 and cold.json()["pid"] != old_pid
        metrics = (await client.get("/metrics")).text
        colds = [
            (dict(s.labels), s.value)
            for family in text_string_to_metric_families(metrics)
            for s in family.samples
            if s.name == "faas_coldstarts_total"
        ]
        labels = {
            "k8s_namespace_name": "default",
            "kn_service_name": "hello",
            "kn_configuration_name": "hello",
            "kn_revision_name": "hello-00001",
        }
        assert (labels, 1.0) in colds, colds


def test_the_url_that_get_ksvc_prints_answers_in_curl(daemon: Daemon) -> None:
    """The URL column of `wonderland get ksvc` carries the gateway's port (not 80 here), so
    pasted into curl it reaches the service; only the name is resolved by hand (no DNS)."""
    port = int(daemon.gateway.rpartition(":")[2])
    wait_for(lambda: _status(daemon, "ksvc", "hello").get("url"), READY_TIMEOUT, "hello's URL")
    table = daemon.cli("get", "ksvc", "hello")
    url = next(w for w in table.split() if w.startswith("http://"))
    host = f"hello.default.{DOMAIN}"
    assert url == f"http://{host}:{port}"
    assert _status(daemon, "route", "hello")["url"] == url

    def curl() -> str | None:
        out = subprocess.run(
            ["curl", "-sS", "--noproxy", "*", "--resolve", f"{host}:{port}:127.0.0.1", url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return out.stdout if out.returncode == 0 and '"TARGET": "world"' in out.stdout else None

    assert wait_for(curl, READY_TIMEOUT, f"curl {url}", log=daemon.log)


async def test_kill_9_of_a_replica_under_load_fails_no_request(daemon: Daemon) -> None:
    host = {"Host": f"steady.default.{DOMAIN}"}
    await wait_until(
        lambda: _status(daemon, "rev", "steady-00001").get("actualReplicas") == 2,
        what="two replicas",
    )
    failures: list[int] = []
    pids: set[int] = set()
    async with httpx.AsyncClient(base_url=daemon.gateway, timeout=60) as client:
        stop = asyncio.Event()

        async def load() -> None:
            while not stop.is_set():
                r = await client.get("/", headers=host)
                if r.status_code != 200:
                    failures.append(r.status_code)
                else:
                    pids.add(r.json()["pid"])

        workers = [asyncio.create_task(load()) for _ in range(4)]
        await wait_until(lambda: len(pids) >= 2, what="both replicas answer")
        victim = next(iter(pids))
        os.kill(victim, signal.SIGKILL)
        seen_before = set(pids)
        await wait_until(
            lambda: len(pids - seen_before) >= 1, timeout=30, what="a replacement replica"
        )
        await asyncio.sleep(0.5)  # the load goes on against the replacement for a while
        stop.set()
        await asyncio.gather(*workers)
    assert failures == []
