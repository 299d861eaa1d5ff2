"""Pub/sub delivery to an app as daprd does it: envelopes, routing, retries, drops, dead letters."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support.daemon import wait_for
from dapr_testing import received

from wonderland.dapr.sidecar import SidecarProcess

pytestmark = pytest.mark.e2e

SUBSCRIPTIONS = [
    {"pubsubname": "pubsub", "topic": "orders", "route": "/orders"},
    {"pubsubname": "pubsub", "topic": "flaky", "route": "/fail-twice/flaky"},
    {"pubsubname": "pubsub", "topic": "gone", "route": "/gone/x", "deadLetterTopic": "dlq"},
    {"pubsubname": "pubsub", "topic": "dropme", "route": "/drop/x", "deadLetterTopic": "dlq"},
    {"pubsubname": "pubsub", "topic": "dlq", "route": "/dead"},
    {"pubsubname": "pubsub", "topic": "raw", "route": "/raw", "metadata": {"rawPayload": "true"}},
    {"pubsubname": "pubsub", "topic": "hopeless", "route": "/error/h"},
]

DECLARATIVE = """
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: widgets}
spec:
  pubsubname: pubsub
  topic: widgets
  routes:
    rules:
    - {match: 'event.type == "widget"', path: /widgets}
    - {match: 'has(event.data.amount) && int(event.data.amount) > 10', path: /big}
    default: /other
scopes: [subapp]
---
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata: {name: not-mine}
spec: {pubsubname: pubsub, topic: orders, route: /not-mine}
scopes: [someone-else]
---
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: fast-retries}
spec:
  policies:
    retries:
      quick: {policy: constant, duration: 50ms, maxRetries: 4}
  targets:
    components:
      pubsub: {inbound: {retry: quick}}
"""


@pytest.fixture
def setup(
    sidecar_factory: Callable[..., SidecarProcess],
    basic_resources: Path,
    resources: Callable[[str], Path],
    app_factory: Callable[..., int],
) -> tuple[SidecarProcess, int]:
    resources(DECLARATIVE)
    app_port = app_factory(SUBSCRIPTIONS)
    sc = sidecar_factory("subapp", resources_path=[basic_resources], app_port=app_port)
    wait_for(
        lambda: (
            len(httpx.get(sc.http_url + "/v1.0/metadata").json()["subscriptions"])
            == len(SUBSCRIPTIONS) + 1
        )
    )
    return sc, app_port


def _on(app_port: int, prefix: str) -> list[dict[str, Any]]:
    return [r for r in received(app_port) if r["path"].startswith(prefix)]


def test_delivery_envelope_and_headers(setup: tuple[SidecarProcess, int]) -> None:
    sc, app = setup
    r = httpx.post(sc.http_url + "/v1.0/publish/pubsub/orders", json={"id": 1, "amount": 2.50})
    assert r.status_code == 204
    (got,) = wait_for(lambda: _on(app, "/orders"))
    assert got["headers"]["content-type"] == "application/cloudevents+json"
    ev = got["body"]
    assert ev["data"] == {"id": 1, "amount": 2.50}
    assert ev["datacontenttype"] == "application/json"
    assert ev["source"] == "subapp" and ev["type"] == "com.dapr.event.sent"
    assert ev["topic"] == "orders" and ev["pubsubname"] == "pubsub" and ev["specversion"] == "1.0"
    assert ev["id"] and ev["time"].endswith("Z")
    assert not _on(app, "/not-mine")


def test_text_payload_and_cloudevent_overrides(setup: tuple[SidecarProcess, int]) -> None:
    sc, app = setup
    httpx.post(
        sc.http_url
        + "/v1.0/publish/pubsub/orders?metadata.cloudevent.type=custom.type&metadata.cloudevent.id=my-id",
        content=b"plain words",
        headers={"content-type": "text/plain"},
    )
    (got,) = wait_for(lambda: _on(app, "/orders"))
    assert got["body"]["data"] == "plain words"
    assert got["body"]["type"] == "custom.type" and got["body"]["id"] == "my-id"


def test_failures_are_retried_under_resiliency(setup: tuple[SidecarProcess, int]) -> None:
    sc, app = setup
    httpx.post(sc.http_url + "/v1.0/publish/pubsub/flaky", json={"n": 1})
    wait_for(lambda: len(_on(app, "/fail-twice")) == 3)
    assert not _on(app, "/dead")


def test_404_drops_to_dead_letter_topic(setup: tuple[SidecarProcess, int]) -> None:
    sc, app = setup
    httpx.post(sc.http_url + "/v1.0/publish/pubsub/gone", json={"n": 2})
    (dead,) = wait_for(lambda: _on(app, "/dead"))
    assert dead["body"]["data"] == {"n": 2}
    assert len(_on(app, "/gone")) == 1  # a drop is never retried


def test_drop_status_goes_to_dead_letter_topic(setup: tuple[SidecarProcess, int]) -> None:
    sc, app = setup
    httpx.post(sc.http_url + "/v1.0/publish/pubsub/dropme", json={"n": 3})
    wait_for(lambda: _on(app, "/dead"))
    assert len(_on(app, "/drop")) == 1


def test_retries_stop_after_max_retries(setup: tuple[SidecarProcess, int]) -> None:
    sc, app = setup
    httpx.post(sc.http_url + "/v1.0/publish/pubsub/hopeless", json={"n": 4})
    wait_for(lambda: len(_on(app, "/error")) == 5)  # 1 try + maxRetries 4
    httpx.post(sc.http_url + "/v1.0/publish/pubsub/orders", json={"after": True})
    wait_for(lambda: _on(app, "/orders"))
    assert len(_on(app, "/error")) == 5


def test_routing_rules_on_event_fields(setup: tuple[SidecarProcess, int]) -> None:
    sc, app = setup
    ce = {"specversion": "1.0", "type": "widget", "source": "test", "id": "w1", "data": {"x": 1}}
    httpx.post(
        sc.http_url + "/v1.0/publish/pubsub/widgets",
        json=ce,
        headers={"content-type": "application/cloudevents+json"},
    )
    httpx.post(sc.http_url + "/v1.0/publish/pubsub/widgets", json={"amount": "25"})
    httpx.post(sc.http_url + "/v1.0/publish/pubsub/widgets", json={"amount": "5"})
    (w,) = wait_for(lambda: _on(app, "/widgets"))
    assert (
        w["body"]["id"] == "w1"
        and w["body"]["source"] == "test"
        and w["body"]["topic"] == "widgets"
    )
    (big,) = wait_for(lambda: _on(app, "/big"))
    assert big["body"]["data"] == {"amount": "25"}
    (other,) = wait_for(lambda: _on(app, "/other"))
    assert other["body"]["data"] == {"amount": "5"}


def test_raw_payload(setup: tuple[SidecarProcess, int]) -> None:
    sc, app = setup
    httpx.post(
        sc.http_url + "/v1.0/publish/pubsub/raw?metadata.rawPayload=true", content=b"\x00raw bytes"
    )
    (got,) = wait_for(lambda: _on(app, "/raw"))
    assert got["body"]["datacontenttype"] == "application/octet-stream"
    assert base64.b64decode(got["body"]["data_base64"]) == b"\x00raw bytes"


def test_metadata_lists_subscription_kinds(setup: tuple[SidecarProcess, int]) -> None:
    sc, _app = setup
    subs = httpx.get(sc.http_url + "/v1.0/metadata").json()["subscriptions"]
    kinds = {(s["topic"], s["type"]) for s in subs}
    assert ("widgets", "DECLARATIVE") in kinds and ("orders", "PROGRAMMATIC") in kinds
    widgets = next(s for s in subs if s["topic"] == "widgets")
    assert widgets["rules"][0] == {"match": 'event.type == "widget"', "path": "/widgets"}


def test_app_health_check_pauses_and_resumes_deliveries(
    sidecar_factory: Callable[..., SidecarProcess],
    basic_resources: Path,
    app_factory: Callable[..., int],
) -> None:
    app = app_factory([{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}])
    probe = [
        "--enable-app-health-check",
        "--app-health-probe-interval",
        "1",
        "--app-health-threshold",
        "1",
    ]
    sc = sidecar_factory("probed", resources_path=[basic_resources], app_port=app, extra_args=probe)
    md = wait_for(
        lambda: (
            httpx.get(sc.http_url + "/v1.0/metadata").json()["subscriptions"]
            and httpx.get(sc.http_url + "/v1.0/metadata").json()
        )
    )
    assert md["appConnectionProperties"]["health"]["healthCheckPath"] == "/healthz"
    log = Path(str(sc.log_file))
    httpx.post(f"http://127.0.0.1:{app}/set-health", content=b"503")
    # One failed probe pauses deliveries: a message published after that is not taken for
    # the app (the in-memory broker drops it, as Dapr's does).
    wait_for(lambda: "deliveries paused" in log.read_text())
    httpx.post(sc.http_url + "/v1.0/publish/pubsub/orders", json={"while": "unhealthy"})
    time.sleep(0.5)  # nothing to wait on: give a wrongly delivered message time to show up
    assert not [r for r in received(app) if r["path"] == "/orders"]
    httpx.post(f"http://127.0.0.1:{app}/set-health", content=b"200")
    wait_for(lambda: "deliveries resumed" in log.read_text())
    httpx.post(sc.http_url + "/v1.0/publish/pubsub/orders", json={"while": "healthy"})
    (got,) = wait_for(lambda: [r for r in received(app) if r["path"] == "/orders"])
    assert got["body"]["data"] == {"while": "healthy"}
