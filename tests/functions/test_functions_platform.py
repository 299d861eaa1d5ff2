"""Functions on the whole platform: deploy, invoke through the gateway, redeploy to a
new revision, scale to zero and back, for both templates."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _support.daemon import wait_for
from _support.manifests import SHORT_AUTOSCALER
from prometheus_client.parser import text_string_to_metric_families

from wonderland.functions.create import create_function
from wonderland.functions.kube import KubeClient

from .conftest import WONDERLAND, Platform, free_port, running, stop_group

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Short autoscaler windows so that scale to zero happens within the test.
AUTOSCALER = SHORT_AUTOSCALER


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    started = Platform(tmp_path)
    try:
        started.start()
        config = tmp_path / "autoscaler.yaml"
        config.write_text(AUTOSCALER)
        applied = started.cli("apply", "-f", str(config))
        assert applied.returncode == 0, applied.stderr
        yield started
    finally:
        started.stop()


def _replicas(client: KubeClient, revision: str) -> int | None:
    rev = client.get("Revision", "default", revision) or {}
    value = (rev.get("status") or {}).get("actualReplicas")
    return None if value is None else int(value)


def test_http_function_deploy_invoke_redeploy_and_scale_from_zero(
    platform: Platform, tmp_path: Path
) -> None:
    root = create_function(tmp_path / "hello").root
    deployed = platform.cli("func", "deploy", "-p", str(root))
    assert deployed.returncode == 0, deployed.stderr + platform.log.read_text()[-3000:]
    assert "revision: hello-00001" in deployed.stdout
    assert "URL:      http://hello.default." in deployed.stdout

    invoked = platform.cli("func", "invoke", "-p", str(root))
    assert invoked.returncode == 0, invoked.stderr
    assert invoked.stdout.strip() == "OK"

    func_py = root / "function" / "func.py"
    func_py.write_text(func_py.read_text().replace('"OK".encode()', '"OK v2".encode()'))
    redeployed = platform.cli("func", "deploy", "-p", str(root))
    assert redeployed.returncode == 0, redeployed.stderr
    assert "revision: hello-00002" in redeployed.stdout
    assert platform.cli("func", "invoke", "-p", str(root)).stdout.strip() == "OK v2"

    client = KubeClient.from_kubeconfig(platform.home / "kubeconfig")
    wait_for(
        lambda: _replicas(client, "hello-00002") == 0,
        120,
        "hello-00002 to scale to zero",
        interval=0.5,
    )
    # from zero: the request waits in the activator while a replica starts
    woken = platform.cli("func", "invoke", "-p", str(root))
    assert woken.returncode == 0, woken.stderr
    assert woken.stdout.strip() == "OK v2"
    # the gateway's Knative metrics cover functions: the requests and the cold start
    counts: dict[tuple[str, str], float] = {}
    text = httpx.get(platform.gateway + "/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if labels.get("kn_service_name") == "hello":
                key = (sample.name, labels["kn_revision_name"])
                counts[key] = counts.get(key, 0.0) + sample.value
    assert counts[("faas_coldstarts_total", "hello-00002")] == 1, counts
    # (a replica's series go with it: the replica that woke answered one request)
    assert counts[("kn_serving_invocation_duration_seconds_count", "hello-00002")] >= 1


def test_cloudevents_function_deploy_and_invoke(platform: Platform, tmp_path: Path) -> None:
    root = create_function(tmp_path / "events", template="cloudevents").root
    deployed = platform.cli("func", "deploy", "-p", str(root))
    assert deployed.returncode == 0, deployed.stderr + platform.log.read_text()[-3000:]
    invoked = platform.cli("func", "invoke", "-p", str(root), "--id", "evt-9", "--data", "{}")
    assert invoked.returncode == 0, invoked.stderr
    assert "id: response-evt-9" in invoked.stdout
    assert "type: function.response" in invoked.stdout
    assert '{"message": "OK"}' in invoked.stdout


ENV_FUNC = """\
import os


def new():
    return Env()


class Env:
    async def handle(self, scope, receive, send):
        body = ",".join(os.environ.get(k, "-") for k in ("DB_PASSWORD", "MODE", "LEVEL"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body.encode()})
"""

RESOURCES = """\
apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: s3cret
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  MODE: fast
  LEVEL: "7"
"""


def test_env_templates_resolve_from_the_platforms_secrets_and_configmaps(
    platform: Platform, tmp_path: Path
) -> None:
    (tmp_path / "resources.yaml").write_text(RESOURCES)
    applied = platform.cli("apply", "-f", str(tmp_path / "resources.yaml"))
    assert applied.returncode == 0, applied.stderr
    root = create_function(tmp_path / "envy").root
    (root / "function" / "func.py").write_text(ENV_FUNC)
    with (root / "func.yaml").open("a") as f:
        f.write(
            "run:\n  envs:\n  - name: DB_PASSWORD\n    value: '{{ secret:db:password }}'\n"
            "  - value: '{{ configMap:settings }}'\n"
        )
    deployed = platform.cli("func", "deploy", "-p", str(root))
    assert deployed.returncode == 0, deployed.stderr + platform.log.read_text()[-3000:]
    invoked = platform.cli("func", "invoke", "-p", str(root))
    assert invoked.stdout.strip() == "s3cret,fast,7", invoked.stderr
    # func run reads the same values from the platform
    port = free_port()
    argv = [*WONDERLAND, "func", "run", "-p", str(root), "--address", f"127.0.0.1:{port}"]
    with running(argv, f"http://127.0.0.1:{port}/health/readiness", env=platform.env) as proc:
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "s3cret,fast,7"
        stop_group(proc)


def test_legacy_function_deploys_and_answers(platform: Platform, tmp_path: Path) -> None:
    root = tmp_path / "old"
    root.mkdir()
    (root / "func.yaml").write_text(
        "specVersion: 0.35.0\nname: old\nruntime: python\ncreated: 2023-01-01T00:00:00Z\n"
    )
    (root / "func.py").write_text(
        "from parliament import Context\n\n"
        "def main(context: Context):\n"
        "    return {'seen': context.request.get_json()}, 200\n"
    )
    (root / "requirements.txt").write_text("parliament-functions==0.1.0\n")
    deployed = platform.cli("func", "deploy", "-p", str(root))
    assert deployed.returncode == 0, deployed.stderr + platform.log.read_text()[-3000:]
    invoked = platform.cli("func", "invoke", "-p", str(root), "--data", '{"a": 1}')
    assert invoked.returncode == 0, invoked.stderr
    assert invoked.stdout.strip() == '{"seen": {"a": 1}}'
