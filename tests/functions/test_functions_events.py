"""A CloudEvents function receives events published through the Dapr sidecar, routed by
the Subscription that `deploy.subscriptions` produces."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import yaml
from _support.daemon import wait_for

from wonderland.functions.create import create_function
from wonderland.functions.funcyaml import load_config
from wonderland.functions.subscriptions import build_subscriptions

from .conftest import WONDERLAND, free_port, running, stop_group

pytestmark = pytest.mark.e2e

RECORDING_FUNC = textwrap.dedent(
    """
    import json
    import os

    from cloudevents.core.v1.event import CloudEvent


    def new():
        return Recorder()


    class Recorder:
        def start(self, cfg):
            self.path = cfg["EVENTS_FILE"]

        async def handle(self, scope, receive, send):
            event = scope["event"]
            with open(self.path, "a") as out:
                out.write(json.dumps({
                    "type": event.get_type(),
                    "topic": event.get_extension("topic"),
                    "data": event.get_data(),
                }) + "\\n")
            await send(CloudEvent(
                attributes={"type": "ack", "source": "recorder", "id": event.get_id()},
                data={"status": "SUCCESS"},
            ))
    """
)


def test_events_published_through_the_sidecar_reach_the_function(tmp_path: Path) -> None:
    root = create_function(tmp_path / "recorder", template="cloudevents").root
    (root / "function" / "func.py").write_text(RECORDING_FUNC)
    with (root / "func.yaml").open("a") as f:
        f.write("deploy:\n  subscriptions:\n  - source: orders-pubsub\n    filters:\n")
        f.write("      topic: orders\n")
    config = load_config(root)
    resources = tmp_path / "resources"
    resources.mkdir()
    component = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": "orders-pubsub"},
        "spec": {"type": "pubsub.in-memory", "version": "v1", "metadata": []},
    }
    docs = [component, *build_subscriptions(config, "default")]
    (resources / "resources.yaml").write_text(yaml.safe_dump_all(docs))
    events = tmp_path / "events.jsonl"
    app_port, http_port, grpc_port = free_port(), free_port(), free_port()
    argv = [
        *WONDERLAND,
        "sidecar",
        "--app-id",
        config.name,
        "--app-port",
        str(app_port),
        "--resources-path",
        str(resources),
        "-H",
        str(http_port),
        "-G",
        str(grpc_port),
        "--log-level",
        "warn",
        "--",
        sys.executable,
        "-m",
        "wonderland.functions.host",
        str(root),
    ]
    env = {"PORT": str(app_port), "EVENTS_FILE": str(events), "HOME": str(tmp_path)}
    health = f"http://127.0.0.1:{http_port}/v1.0/healthz"
    with running(argv, health, env=env) as proc:

        def started() -> bool:  # the app is up once its readiness answers
            try:
                url = f"http://127.0.0.1:{app_port}/health/readiness"
                return httpx.get(url).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(started, 30, "the function to start")
        for n in (1, 2):
            published = httpx.post(
                f"http://127.0.0.1:{http_port}/v1.0/publish/orders-pubsub/orders",
                json={"order": n},
            )
            assert published.status_code == 204, published.text

        def both() -> list[dict[str, object]] | None:
            lines = events.read_text().splitlines() if events.exists() else []
            return [json.loads(line) for line in lines] if len(lines) >= 2 else None

        try:
            received = wait_for(both, 30, "both events at the function")
        finally:
            stop_group(proc)
    assert [r["data"] for r in received] == [{"order": 1}, {"order": 2}]
    assert all(r["topic"] == "orders" for r in received)
