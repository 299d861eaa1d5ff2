"""Dapr on the platform: `wonderland up`, Knative Services with dapr.io annotations, one sidecar
per replica fed from the applied Component/Subscription resources, the kubernetes secret
store and service invocation between app ids."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _support.daemon import WonderlandDaemon, daemon_env, free_port, wait_for

pytestmark = pytest.mark.e2e

APP = str(Path(__file__).parent / "dapr_app.py")


def ksvc(name: str, extra: str = "") -> str:
    return f"""
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  template:
    metadata:
      annotations:
        dapr.io/enabled: "true"
        dapr.io/app-id: {name}
        dapr.io/app-port: "8080"
        autoscaling.knative.dev/min-scale: "1"{extra}
    spec:
      containers:
      - image: dapr-app
        command: ["{sys.executable}", "{APP}"]
"""


def manifests(tmp: Path) -> str:
    return f"""
apiVersion: v1
kind: Secret
metadata: {{name: db, namespace: default}}
stringData: {{password: s3cret}}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: statestore, namespace: default}}
spec:
  type: state.sqlite
  version: v1
  metadata: [{{name: connectionString, value: "{tmp}/platform-state.db"}}]
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: pubsub, namespace: default}}
spec: {{type: pubsub.in-memory, version: v1}}
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {{name: orders, namespace: default}}
spec: {{pubsubname: pubsub, topic: orders, routes: {{default: /orders}}}}
scopes: [front]
---
{ksvc("front")}
---
{ksvc("back", EXTRA_ANNOTATIONS)}
"""


# The sidecar of "back" logs its API calls and has a memory limit it cannot have here.
EXTRA_ANNOTATIONS = """
        dapr.io/enable-api-logging: "true"
        dapr.io/sidecar-memory-limit: 1000Mi"""


class Daemon(WonderlandDaemon):
    def __init__(self, tmp: Path) -> None:
        env = daemon_env(tmp, gateway_port=free_port())
        super().__init__(tmp / "home", env, tmp / "daemon.log")

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = self.run(*args)
        if check:
            assert res.returncode == 0, res.stderr
        return res


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path)
    try:
        d.start()
        yield d
    finally:
        d.stop()


def _call(
    d: WonderlandDaemon, service: str, path: str, method: str = "GET", body: bytes = b""
) -> httpx.Response:
    return httpx.request(
        method,
        d.gateway + path,
        content=body,
        timeout=60,
        headers={"Host": f"{service}.default.127.0.0.1.sslip.io"},
    )


def test_dapr_enabled_services_get_sidecars_fed_from_applied_resources(
    daemon: Daemon, tmp_path: Path
) -> None:
    files = tmp_path / "m.yaml"
    files.write_text(manifests(tmp_path))
    daemon.cli("apply", "-f", str(files))

    def up() -> bool:
        try:
            return (
                _call(daemon, "front", "/hello").text == "front"
                and _call(daemon, "back", "/hello").text == "back"
            )
        except httpx.HTTPError:
            return False

    wait_for(up, timeout=60, interval=0.5)
    assert _call(daemon, "front", "/state/greeting", "POST", b"hello").status_code == 204
    assert _call(daemon, "front", "/state/greeting").json() == "hello"
    assert _call(daemon, "front", "/secret/db").json() == {"password": "s3cret"}
    assert _call(daemon, "front", "/call/back/hello").text == "back"
    assert _call(daemon, "front", "/publish/orders", "POST", b'{"n": 1}').status_code == 204
    got = wait_for(lambda: _call(daemon, "front", "/received").json(), timeout=30)
    assert got[0]["data"] == {"n": 1} and got[0]["source"] == "front"
    # dapr.io/ annotations: a supported one changes the sidecar; one that cannot apply on one
    # machine is a Warning Event on the revision, which describe shows
    events = daemon.cli("describe", "revision", "back-00001").stdout
    assert "DaprAnnotationIgnored" in events and "dapr.io/sidecar-memory-limit" in events
    assert "DaprAnnotationIgnored" not in daemon.cli("describe", "revision", "front-00001").stdout
    sidecar_logs = daemon.cli("logs", "ksvc/back", "-c", "daprd", check=False)
    assert "HTTP API Called: app_id=back" in sidecar_logs.stdout + sidecar_logs.stderr, sidecar_logs

    # Each daprd container declares its metrics port as dapr-metrics: a scrape target
    targets = tmp_path / "home" / "monitoring" / "targets.json"

    def dapr_target() -> str | None:
        if not targets.exists():
            return None
        for group in json.loads(targets.read_text()):
            labels = group["labels"]
            if labels.get("job") == "dapr" and labels.get("app_id") == "front":
                return f"http://{group['targets'][0]}{labels['__metrics_path__']}"
        return None

    url = wait_for(dapr_target, timeout=30)
    text = httpx.get(url, timeout=10).text
    assert 'dapr_component_state_count{app_id="front",component="statestore"' in text
    assert 'dapr_http_server_request_count{app_id="front",method="POST"' in text
    assert (
        'dapr_component_pubsub_egress_count{app_id="front",component="pubsub",namespace="default",success="true",topic="orders"} 1'
        in text
    )


def test_bad_component_is_refused_at_apply(daemon: Daemon, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s, namespace: default}\n"
        "spec: {type: state.cassandra, version: v1}\n"
    )
    res = daemon.cli("apply", "-f", str(bad), check=False)
    assert res.returncode != 0
    assert "state.cassandra" in res.stderr
    bad.write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s, namespace: default}\n"
        "spec: {type: state.redis, version: v1, metadata: [{name: redisHots, value: x}]}\n"
    )
    res = daemon.cli("apply", "-f", str(bad), check=False)
    assert res.returncode != 0 and "redisHots" in res.stderr


def test_a_real_prometheus_scrapes_the_sidecars_for_the_dapr_dashboard(tmp_path: Path) -> None:
    """`wonderland up --prometheus`: Debian's Prometheus finds each sidecar through
    targets.json (job dapr) and answers the dashboard's queries over its series."""
    import shutil

    if shutil.which("prometheus") is None:
        pytest.skip("Debian's prometheus is not installed; run `make prometheus`")
    manifests = tmp_path / "m.yaml"
    manifests.write_text(
        f"""
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: statestore, namespace: default}}
spec:
  type: state.sqlite
  version: v1
  metadata: [{{name: connectionString, value: "{tmp_path}/prom-state.db"}}]
---
{ksvc("front")}
"""
    )
    env = daemon_env(
        tmp_path,
        gateway_port=free_port(),
        WONDERLAND_PROMETHEUS_PORT="0",
        WONDERLAND_PROMETHEUS_SCRAPE_INTERVAL="1",
    )
    daemon = WonderlandDaemon(tmp_path / "home", env, tmp_path / "daemon.log")
    try:
        daemon.start("--prometheus", "-f", str(manifests))
        prom = json.loads((daemon.home / "daemon.json").read_text())["prometheus"]["url"]

        def query(expr: str) -> list[float]:
            answer = httpx.post(f"{prom}/api/v1/query", data={"query": expr}, timeout=10).json()
            assert answer["status"] == "success", (expr, answer)
            return [float(r["value"][1]) for r in answer["data"]["result"]]

        def dapr_target_up() -> bool:
            got = httpx.get(f"{prom}/api/v1/targets", timeout=10).json()
            return any(
                t["labels"].get("job") == "dapr"
                and t["labels"].get("app_id") == "front"
                and t["health"] == "up"
                for t in got["data"]["activeTargets"]
            )

        def traffic_then(expr: str) -> bool:
            for i in range(5):
                _call(daemon, "front", f"/state/k{i}", "POST", b"v")
            return any(v > 0 for v in query(expr))

        wait_for(dapr_target_up, timeout=90, interval=0.5)
        # two of the dashboard's panels (deploy/grafana/dapr.json), with its variables set
        wait_for(
            lambda: traffic_then(
                'sum by (app_id) (rate(dapr_http_server_request_count{app_id=~"front"}[1m]))'
            ),
            timeout=60,
            interval=0.5,
        )
        assert query(
            'sum by (app_id, component, operation, success) (rate(dapr_component_state_count{app_id=~"front"}[1m]))'
        )
        # statestore and the kubernetes secret store the platform gives every sidecar
        assert query('sum by (app_id) (dapr_runtime_component_loaded{app_id=~"front"})') == [2.0]
    finally:
        daemon.stop()
