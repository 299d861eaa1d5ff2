"""A deployed CloudEvents function receives pub/sub events through its Dapr sidecar."""

from __future__ import annotations

from pathlib import Path

import pytest
from _support.daemon import wait_for

from wonderland.functions.create import create_function

from .conftest import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _redis_or_skip() -> None:
    import os
    import socket

    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        reason = "Redis is not running on 127.0.0.1:6379"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: backing servers are required)")
        pytest.skip(reason)


def test_deployed_function_receives_pubsub_events_through_its_sidecar(
    platform: Platform, tmp_path: Path
) -> None:
    import json
    import sys
    import uuid

    import httpx

    from .conftest import free_port, running, stop_group
    from .test_functions_events import RECORDING_FUNC

    _redis_or_skip()
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    component = (
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: orders\n"
        "spec:\n  type: pubsub.redis\n  version: v1\n  metadata:\n"
        "  - name: redisHost\n    value: localhost:6379\n"
    )
    (tmp_path / "component.yaml").write_text(component)
    applied = platform.cli("apply", "-f", str(tmp_path / "component.yaml"))
    assert applied.returncode == 0, applied.stderr

    root = create_function(tmp_path / "recorder", template="cloudevents").root
    (root / "function" / "func.py").write_text(RECORDING_FUNC)
    events = tmp_path / "events.jsonl"
    with (root / "func.yaml").open("a") as f:
        f.write(
            f"run:\n  envs:\n  - name: EVENTS_FILE\n    value: {events}\n"
            "deploy:\n  options:\n    scale:\n      min: 1\n"
            f"  subscriptions:\n  - source: orders\n    filters:\n      topic: {topic}\n"
        )
    deployed = platform.cli("func", "deploy", "-p", str(root))
    assert deployed.returncode == 0, deployed.stderr + platform.log.read_text()[-3000:]
    assert "Applied Subscription default/" in deployed.stderr

    # Publish from another app's sidecar on the same Redis.
    resources = tmp_path / "publisher"
    resources.mkdir()
    (resources / "component.yaml").write_text(component)
    http_port, grpc_port = free_port(), free_port()
    argv = [
        sys.executable,
        "-m",
        "wonderland",
        "sidecar",
        "--app-id",
        "publisher",
        "--resources-path",
        str(resources),
        "-H",
        str(http_port),
        "-G",
        str(grpc_port),
        "--log-level",
        "warn",
    ]
    with running(
        argv, f"http://127.0.0.1:{http_port}/v1.0/healthz", env={"HOME": str(tmp_path)}
    ) as proc:
        published = httpx.post(
            f"http://127.0.0.1:{http_port}/v1.0/publish/orders/{topic}", json={"order": 42}
        )
        assert published.status_code == 204, published.text
        try:
            wait_for(events.exists, 60, "the function to receive the event", log=platform.log)
        finally:
            stop_group(proc)
    received = [json.loads(line) for line in events.read_text().splitlines()]
    assert received[0]["data"] == {"order": 42}
    assert received[0]["topic"] == topic
