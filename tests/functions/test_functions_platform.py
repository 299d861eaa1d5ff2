"""Functions on the whole platform: deploy, invoke through the gateway, redeploy to a
new revision, scale to zero and back, for both templates."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wonderland.functions.create import create_function
from wonderland.functions.kube import KubeClient

from .conftest import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Short autoscaler windows so that scale to zero happens within the test.
AUTOSCALER = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: config-autoscaler
  namespace: knative-serving
data:
  stable-window: "6s"
  scale-to-zero-grace-period: "1s"
"""


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
    deadline = time.monotonic() + 120
    while _replicas(client, "hello-00002") != 0:
        assert time.monotonic() < deadline, "hello-00002 did not scale to zero"
        time.sleep(0.5)
    # from zero: the request waits in the activator while a replica starts
    woken = platform.cli("func", "invoke", "-p", str(root))
    assert woken.returncode == 0, woken.stderr
    assert woken.stdout.strip() == "OK v2"


def test_cloudevents_function_deploy_and_invoke(platform: Platform, tmp_path: Path) -> None:
    root = create_function(tmp_path / "events", template="cloudevents").root
    deployed = platform.cli("func", "deploy", "-p", str(root))
    assert deployed.returncode == 0, deployed.stderr + platform.log.read_text()[-3000:]
    invoked = platform.cli("func", "invoke", "-p", str(root), "--id", "evt-9", "--data", "{}")
    assert invoked.returncode == 0, invoked.stderr
    assert "id: response-evt-9" in invoked.stdout
    assert "type: function.response" in invoked.stdout
    assert '{"message": "OK"}' in invoked.stdout
