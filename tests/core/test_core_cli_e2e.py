"""End to end: the real daemon on loopback, driven through the CLI."""

from __future__ import annotations

import json
import signal
import stat
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from _support.daemon import wait_for
from core_daemon import Daemon

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]

SERVICE = """\
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
spec:
  template:
    spec:
      containers:
        - image: example.invalid/hello
"""

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels: {app: demo}
data:
  color: blue
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_apply_get_json_and_table(daemon: Daemon, tmp_path: Path) -> None:
    manifest = write(tmp_path, "app.yaml", SERVICE + "---\n" + CONFIGMAP)
    out = daemon.ok("apply", "-f", str(manifest))
    assert out.splitlines() == [
        "service.serving.knative.dev/hello created",
        "configmap/settings created",
    ]
    assert daemon.ok("apply", "-f", str(manifest)).splitlines()[1] == "configmap/settings unchanged"
    obj = json.loads(daemon.ok("get", "ksvc", "hello", "-o", "json"))
    assert obj["kind"] == "Service"
    assert obj["metadata"]["namespace"] == "default"
    assert obj["metadata"]["generation"] == 1
    table = daemon.ok("get", "cm").splitlines()
    assert table[0].split() == ["NAME", "DATA", "AGE"]
    assert table[1].split()[:2] == ["settings", "1"]
    header = daemon.ok("get", "ksvc").splitlines()[0].split()
    assert header == ["NAME", "URL", "LATESTCREATED", "LATESTREADY", "READY", "REASON"]
    listed = yaml.safe_load(daemon.ok("get", "configmaps", "-l", "app=demo", "-o", "yaml"))
    assert [i["metadata"]["name"] for i in listed["items"]] == ["settings"]
    described = daemon.ok("describe", "cm", "settings")
    assert "Name:         settings" in described and "Color:" in described


def test_conflict_on_stale_update_through_the_api(daemon: Daemon, tmp_path: Path) -> None:
    import base64
    import ssl

    import httpx

    daemon.ok("apply", "-f", str(write(tmp_path, "cm.yaml", CONFIGMAP)))
    config = yaml.safe_load((daemon.home / "kubeconfig").read_text())
    token = config["users"][0]["user"]["token"]
    ca_pem = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"])
    ca = ssl.create_default_context(cadata=ca_pem.decode())
    url = f"{daemon.server}/api/v1/namespaces/default/configmaps/settings"
    with httpx.Client(verify=ca, headers={"Authorization": f"Bearer {token}"}) as http:
        current = http.get(url).json()
        fresh = dict(current, data={"color": "red"})
        assert http.put(url, json=fresh).status_code == 200
        stale = dict(current, data={"color": "green"})
        answer = http.put(url, json=stale)
        assert answer.status_code == 409
        assert answer.json()["reason"] == "Conflict"
        assert http.get(url).json()["data"] == {"color": "red"}
        assert httpx.get(url, verify=ca).status_code == 401
        missing = http.get(url + "-nope")
        assert missing.status_code == 404 and missing.json()["kind"] == "Status"


def test_cascading_delete_removes_owned_objects(daemon: Daemon, tmp_path: Path) -> None:
    daemon.ok("apply", "-f", str(write(tmp_path, "svc.yaml", SERVICE)))
    uid = json.loads(daemon.ok("get", "ksvc", "hello", "-o", "json"))["metadata"]["uid"]
    child = yaml.safe_load(CONFIGMAP)
    child["metadata"]["name"] = "owned"
    child["metadata"]["ownerReferences"] = [
        {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "hello", "uid": uid}
    ]
    daemon.ok("apply", "-f", str(write(tmp_path, "child.yaml", yaml.safe_dump(child))))
    assert daemon.ok("get", "cm", "owned", "-o", "name").strip() == "configmap/owned"
    assert daemon.ok("delete", "ksvc", "hello").strip() == (
        'service.serving.knative.dev "hello" deleted'
    )
    gone = daemon.cli("get", "cm", "owned")
    assert gone.returncode == 1 and 'configmaps "owned" not found' in gone.stderr
    # --cascade=orphan keeps what the service owned.
    daemon.ok("apply", "-f", str(tmp_path / "svc.yaml"))
    uid = json.loads(daemon.ok("get", "ksvc", "hello", "-o", "json"))["metadata"]["uid"]
    child["metadata"]["ownerReferences"][0]["uid"] = uid
    daemon.ok("apply", "-f", str(write(tmp_path, "child.yaml", yaml.safe_dump(child))))
    daemon.ok("delete", "ksvc", "hello", "--cascade=orphan")
    kept = json.loads(daemon.ok("get", "cm", "owned", "-o", "json"))
    assert "ownerReferences" not in kept["metadata"]


def test_malformed_and_invalid_manifests_store_nothing(daemon: Daemon, tmp_path: Path) -> None:
    bad_type = write(
        tmp_path,
        "app.yaml",
        CONFIGMAP
        + """\
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - image: example/web
          ports:
            - containerPort: "8080"
""",
    )
    result = daemon.cli("apply", "-f", str(bad_type))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: {bad_type}:19: spec.template.spec.containers[0].ports[0].containerPort: "
        "expected integer"
    )
    broken = write(
        tmp_path, "broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [x\n"
    )
    result = daemon.cli("apply", "-f", str(broken))
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {broken}:4: malformed YAML")
    unknown = write(
        tmp_path, "unknown.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"
    )
    result = daemon.cli("apply", "-f", str(unknown))
    assert result.returncode == 1
    assert f"{unknown}:2: kind:" in result.stderr and "Deployment" in result.stderr
    field = write(
        tmp_path,
        "field.yaml",
        SERVICE.replace(
            "        - image: example.invalid/hello\n",
            "        - image: x\n          tty: true\n",
        ),
    )
    result = daemon.cli("apply", "-f", str(field))
    assert result.returncode == 1
    assert (
        f"{field}:10: spec.template.spec.containers[0].tty: must not set the field(s)"
        in result.stderr
    )
    assert daemon.cli("get", "cm").stderr.strip() == "No resources found in default namespace."


SUBSCRIPTION = """\
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: orders
spec:
  pubsubname: pubsub
  topic: orders
  routes:
    default: /orders
"""


def test_directory_apply_and_delete_recursive(daemon: Daemon, tmp_path: Path) -> None:
    write(tmp_path, "manifests/a.yaml", CONFIGMAP)
    write(tmp_path, "manifests/nested/b.yaml", SUBSCRIPTION)
    flat = daemon.ok("apply", "-f", str(tmp_path / "manifests"))
    assert flat.splitlines() == ["configmap/settings created"]
    deep = daemon.ok("apply", "-R", "-f", str(tmp_path / "manifests"))
    assert "subscription.dapr.io/orders created" in deep.splitlines()
    deleted = daemon.ok("delete", "-R", "-f", str(tmp_path / "manifests"))
    assert sorted(deleted.splitlines()) == [
        'configmap "settings" deleted',
        'subscription.dapr.io "orders" deleted',
    ]


def test_kill_9_and_restart_keeps_every_applied_object(new_daemon: Daemon, tmp_path: Path) -> None:
    new_daemon.start()
    manifest = write(tmp_path, "app.yaml", SUBSCRIPTION + "---\n" + CONFIGMAP)
    new_daemon.ok("apply", "-f", str(manifest))
    before = json.loads(new_daemon.ok("get", "cm", "-A", "-o", "json"))["items"]
    new_daemon.kill(signal.SIGKILL)
    new_daemon.start()
    after = json.loads(new_daemon.ok("get", "cm", "-A", "-o", "json"))["items"]
    assert after == before
    subscription = json.loads(new_daemon.ok("get", "subscriptions", "orders", "-o", "json"))
    assert subscription["spec"]["routes"] == {"default": "/orders"}
    new_daemon.kill(signal.SIGTERM)
    assert new_daemon.proc is not None and new_daemon.proc.returncode == 0
    new_daemon.start()
    assert new_daemon.ok("get", "cm", "settings", "-o", "name").strip() == "configmap/settings"


def test_second_daemon_refuses_and_down_stops(daemon: Daemon) -> None:
    second = daemon.cli("up")
    assert second.returncode == 1
    assert "another wonderland daemon" in second.stderr and str(daemon.home) in second.stderr
    kubeconfig = daemon.home / "kubeconfig"
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
    assert daemon.ok("down").strip() == "wonderland stopped"
    assert daemon.proc is not None and daemon.proc.wait(timeout=30) == 0
    assert daemon.ok("down").strip().startswith("no wonderland daemon is running")


def _hello_answers(daemon: Daemon) -> str:
    """Wait until the quickstart's hello is Ready; return its answer through the gateway."""

    import httpx

    info = json.loads((daemon.home / "daemon.json").read_text())
    if "gateway" not in info:
        pytest.skip("no gateway is installed in this build")

    def ready_service() -> dict[str, Any] | None:
        svc: dict[str, Any] = json.loads(daemon.ok("get", "ksvc", "hello", "-o", "json"))
        ready = [c for c in svc.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
        return svc if ready and ready[0]["status"] == "True" else None

    svc = wait_for(ready_service, 60, "ksvc hello Ready", interval=0.2, log=daemon.log)
    host = svc["status"]["url"].split("://", 1)[1]
    answer = httpx.get(info["gateway"] + "/", headers={"Host": host}, timeout=30)
    assert answer.status_code == 200
    return answer.text


def test_up_applies_the_quickstart_and_it_answers(new_daemon: Daemon) -> None:
    new_daemon.start("-f", str(REPO / "examples" / "quickstart"))
    names = new_daemon.ok("get", "ksvc", "-o", "name").split()
    assert names == ["service.serving.knative.dev/hello"]
    log = new_daemon.log.read_text()
    assert "service.serving.knative.dev/hello created" in log
    assert _hello_answers(new_daemon) == "Hello from hello-00001\n"
    # kill -9, then a new `wonderland up` with no manifests: everything is back and
    # reconciled again, so the service answers once more.
    new_daemon.kill(signal.SIGKILL)
    new_daemon.start()
    assert _hello_answers(new_daemon) == "Hello from hello-00001\n"


def test_namespaces_and_server_dry_run(daemon: Daemon, tmp_path: Path) -> None:
    manifest = write(tmp_path, "cm.yaml", CONFIGMAP)
    dry = daemon.ok("apply", "--dry-run=server", "-f", str(manifest))
    assert dry.strip() == "configmap/settings created (dry run)"
    assert daemon.cli("get", "cm").stderr.strip() == "No resources found in default namespace."
    daemon.ok("apply", "-n", "team-a", "-f", str(manifest))
    daemon.ok("apply", "-f", str(manifest))
    rows = [line.split() for line in daemon.ok("get", "cm", "-A").splitlines()]
    assert rows[0] == ["NAMESPACE", "NAME", "DATA", "AGE"]
    # (kubeflow-system holds the Trainer's version ConfigMap, as on a cluster with Trainer)
    mine = sorted(r[:2] for r in rows[1:] if r[0] != "kubeflow-system")
    assert mine == [["default", "settings"], ["team-a", "settings"]]
    daemon.ok("delete", "cm", "settings", "-n", "team-a")
    assert daemon.cli("get", "cm", "-n", "team-a").stderr.strip() == (
        "No resources found in team-a namespace."
    )
    assert daemon.ok("get", "cm", "settings", "-o", "name").strip() == "configmap/settings"


def test_get_several_kinds_and_all(daemon: Daemon, tmp_path: Path) -> None:
    daemon.ok("apply", "-f", str(write(tmp_path, "app.yaml", SERVICE + "---\n" + CONFIGMAP)))
    both = daemon.ok("get", "ksvc,cm").split("\n\n")
    assert both[0].splitlines()[1].split()[0] == "service.serving.knative.dev/hello"
    assert both[1].splitlines()[1].split()[0] == "configmap/settings"
    everything = daemon.ok("get", "all")
    assert "service.serving.knative.dev/hello" in everything
    assert "configmap/settings" not in everything
    names = daemon.ok("get", "ksvc,cm", "-o", "name").split()
    assert names == ["service.serving.knative.dev/hello", "configmap/settings"]
    two = daemon.cli("get", "ksvc,cm", "hello")
    assert two.returncode == 1 and "one kind only" in two.stderr


def test_get_watch_prints_changes(daemon: Daemon, tmp_path: Path) -> None:
    import subprocess
    import sys

    daemon.ok("apply", "-f", str(write(tmp_path, "cm.yaml", CONFIGMAP)))
    watcher = subprocess.Popen(
        [sys.executable, "-m", "wonderland", "get", "cm", "-w"],
        env=daemon.env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().split() == ["NAME", "DATA", "AGE"]
        assert watcher.stdout.readline().split()[:2] == ["settings", "1"]
        # No wait needed: the watch starts at the list's resourceVersion, so a change made
        # before the watch request arrives is replayed from the event log.
        daemon.ok("apply", "-f", str(write(tmp_path, "cm.yaml", CONFIGMAP + "  size: large\n")))
        assert watcher.stdout.readline().split()[:2] == ["settings", "2"]
        daemon.ok("delete", "cm", "settings")
        assert watcher.stdout.readline().split()[:2] == ["settings", "2"]
    finally:
        watcher.kill()
        watcher.wait(timeout=30)
