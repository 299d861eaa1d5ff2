"""The official kubernetes Python client and kubectl against the daemon's control API."""

from __future__ import annotations

import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from _support.kube import Kubectl, kubectl_for
from core_daemon import Daemon

pytestmark = pytest.mark.e2e

KSVC = textwrap.dedent(
    """\
    apiVersion: serving.knative.dev/v1
    kind: Service
    metadata:
      name: hello
    spec:
      template:
        spec:
          containers:
            - image: example/hello
    """
)


def kube_client(daemon: Daemon) -> Any:
    from kubernetes import config

    return config.new_client_from_config(config_file=str(daemon.home / "kubeconfig"))


def test_python_client_crud_and_conflict(daemon: Daemon) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    api = kube_client(daemon)
    core = client.CoreV1Api(api)
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cfg"), data={"a": "1"})
    created = core.create_namespaced_config_map("default", body)
    assert created.metadata.uid and created.metadata.resource_version
    with pytest.raises(ApiException) as exists:
        core.create_namespaced_config_map("default", body)
    assert exists.value.status == 409
    patched = core.patch_namespaced_config_map("cfg", "default", {"data": {"b": "2"}})
    assert patched.data == {"a": "1", "b": "2"}
    stale = created
    stale.data = {"c": "3"}
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map("cfg", "default", stale)
    assert conflict.value.status == 409
    listed = core.list_namespaced_config_map("default", label_selector="")
    assert [c.metadata.name for c in listed.items] == ["cfg"]
    core.delete_namespaced_config_map("cfg", "default")
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("cfg", "default")
    assert missing.value.status == 404


def test_python_client_deletes_a_collection_by_selector(daemon: Daemon) -> None:
    from kubernetes import client

    core = client.CoreV1Api(kube_client(daemon))
    for name, team in (("a", "red"), ("b", "red"), ("c", "blue")):
        meta = client.V1ObjectMeta(name=f"team-{name}", labels={"team": team})
        core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=meta))
    core.delete_collection_namespaced_config_map("default", label_selector="team=red")
    left = core.list_namespaced_config_map("default", label_selector="team")
    assert [c.metadata.name for c in left.items] == ["team-c"]
    core.delete_collection_namespaced_config_map("default", label_selector="team")


def test_python_client_custom_objects_and_watch(daemon: Daemon) -> None:
    import yaml
    from kubernetes import client, watch
    from kubernetes.client.rest import ApiException

    api = kube_client(daemon)
    custom = client.CustomObjectsApi(api)
    group, version, plural = "serving.knative.dev", "v1", "services"
    seen: list[tuple[str, str]] = []
    started = threading.Event()

    def follow() -> None:
        w = watch.Watch()
        started.set()
        for event in w.stream(
            custom.list_namespaced_custom_object,
            group,
            version,
            "default",
            plural,
            timeout_seconds=20,
        ):
            seen.append((event["type"], event["object"]["metadata"]["name"]))
            if event["type"] == "DELETED":
                w.stop()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    started.wait(10)
    obj = yaml.safe_load(KSVC)
    custom.create_namespaced_custom_object(group, version, "default", plural, obj)
    bad = yaml.safe_load(KSVC)
    bad["metadata"]["name"] = "bad"
    bad["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": "x"}]
    with pytest.raises(ApiException) as invalid:
        custom.create_namespaced_custom_object(group, version, "default", plural, bad)
    assert invalid.value.status == 422
    assert "containerPort" in invalid.value.body
    got = custom.get_namespaced_custom_object(group, version, "default", plural, "hello")
    assert got["spec"]["template"]["spec"]["containers"][0]["image"] == "example/hello"
    custom.delete_namespaced_custom_object(group, version, "default", plural, "hello")
    thread.join(30)
    assert ("ADDED", "hello") in seen and ("DELETED", "hello") in seen
    assert ("ADDED", "bad") not in seen


@pytest.fixture
def kubectl(daemon: Daemon) -> Kubectl:
    return kubectl_for(daemon, timeout=60)


def test_kubectl_apply_get_delete(daemon: Daemon, kubectl: Any, tmp_path: Path) -> None:
    manifest = tmp_path / "ksvc.yaml"
    manifest.write_text(KSVC)
    applied = kubectl("apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.strip() == "service.serving.knative.dev/hello created"
    again = kubectl("apply", "-f", str(manifest))
    assert again.stdout.strip() == "service.serving.knative.dev/hello unchanged"
    changed = kubectl("apply", "-f", "-", stdin=KSVC.replace("example/hello", "example/hello:v2"))
    assert changed.stdout.strip() == "service.serving.knative.dev/hello configured"
    table = kubectl("get", "ksvc")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == [
        "NAME",
        "URL",
        "LATESTCREATED",
        "LATESTREADY",
        "READY",
        "REASON",
    ]
    assert table.stdout.splitlines()[1].split()[0] == "hello"
    image = kubectl(
        "get", "ksvc", "hello", "-o", "jsonpath={.spec.template.spec.containers[0].image}"
    )
    assert image.stdout == "example/hello:v2"
    assert daemon.ok("get", "ksvc", "hello", "-o", "json").count('"generation": 2') == 1
    cm = kubectl(
        "apply",
        "-f",
        "-",
        stdin="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\ndata:\n  k: v\n",
    )
    assert cm.returncode == 0, cm.stderr
    assert kubectl("get", "cm", "plain", "-o", "jsonpath={.data.k}").stdout == "v"
    assert kubectl("get", "cm", "plain").stdout.split()[:5] == ["NAME", "DATA", "AGE", "plain", "1"]
    described = kubectl("describe", "ksvc", "hello")
    assert described.returncode == 0, described.stderr
    assert "Name:" in described.stdout and "example/hello:v2" in described.stdout
    everything = kubectl("get", "all")
    assert "service.serving.knative.dev/hello" in everything.stdout
    deleted = kubectl("delete", "-f", str(manifest))
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == 'service.serving.knative.dev "hello" deleted'
    assert "NotFound" in kubectl("get", "ksvc", "hello").stderr


def test_wonderland_apply_and_kubectl_apply_take_turns(
    daemon: Daemon, kubectl: Any, tmp_path: Path
) -> None:
    manifest = tmp_path / "ksvc.yaml"
    manifest.write_text(KSVC)
    assert daemon.ok("apply", "-f", str(manifest)).strip().endswith("created")
    turn = kubectl("apply", "-f", str(manifest))
    assert turn.returncode == 0, turn.stderr
    assert turn.stdout.strip() == "service.serving.knative.dev/hello unchanged"
    assert "missing the kubectl.kubernetes.io/last-applied-configuration" not in turn.stderr
    changed = kubectl("apply", "-f", "-", stdin=KSVC.replace("example/hello", "example/v2"))
    assert changed.stdout.strip() == "service.serving.knative.dev/hello configured"
    back = daemon.ok("apply", "-f", str(manifest)).strip()
    assert back == "service.serving.knative.dev/hello configured"
    image = kubectl(
        "get", "ksvc", "hello", "-o", "jsonpath={.spec.template.spec.containers[0].image}"
    )
    assert image.stdout == "example/hello"


def test_events_show_in_wonderland_and_kubectl_describe(
    daemon: Daemon, kubectl: Any, tmp_path: Path
) -> None:
    import json

    import yaml

    cm = tmp_path / "cm.yaml"
    cm.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: flags\ndata:\n  a: b\n")
    daemon.ok("apply", "-f", str(cm))
    uid = json.loads(daemon.ok("get", "cm", "flags", "-o", "json"))["metadata"]["uid"]
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "flags.1"},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": "flags",
            "namespace": "default",
            "uid": uid,
        },
        "type": "Warning",
        "reason": "FlagUnknown",
        "message": "flag b is not declared",
        "count": 3,
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:00Z",
        "source": {"component": "flagd"},
    }
    (tmp_path / "event.yaml").write_text(yaml.safe_dump(event))
    daemon.ok("apply", "-f", str(tmp_path / "event.yaml"))
    described = daemon.ok("describe", "cm", "flags")
    line = next(x for x in described.splitlines() if "FlagUnknown" in x).split()
    assert line[0] == "Warning" and line[-4:] == ["flag", "b", "is", "not", "declared"][-4:]
    assert "flagd" in line and "(x3" in " ".join(line)
    by_kubectl = kubectl("describe", "cm", "flags")
    assert by_kubectl.returncode == 0, by_kubectl.stderr
    assert "FlagUnknown" in by_kubectl.stdout


def test_kubectl_create_sends_protobuf_for_built_in_kinds(daemon: Daemon, kubectl: Any) -> None:
    import base64
    import json

    made = kubectl("create", "configmap", "plain", "--from-literal=k=v", "--from-literal=x=y")
    assert made.returncode == 0, made.stderr
    cm = json.loads(daemon.ok("get", "cm", "plain", "-o", "json"))
    assert cm["data"] == {"k": "v", "x": "y"}
    assert "generateName" not in cm["metadata"]
    secret = kubectl("create", "secret", "generic", "pw", "--from-literal=password=hunter2")
    assert secret.returncode == 0, secret.stderr
    stored = json.loads(daemon.ok("get", "secret", "pw", "-o", "json"))
    assert base64.b64decode(stored["data"]["password"]) == b"hunter2"
    assert stored["type"] == "Opaque"
    namespace = kubectl("create", "namespace", "team-b")
    assert namespace.returncode == 0, namespace.stderr
    assert kubectl("get", "ns", "team-b").stdout.split()[3:5] == ["team-b", "Active"]
