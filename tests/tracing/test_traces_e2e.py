"""Through a real `wonderland up`: a request to a Knative Service whose replica uses the
OpenTelemetry SDK with the endpoint the kubelet set. The replica sees the client's trace
with the gateway's span as its parent, and both spans are in /wonderland/v1/traces under
the client's trace id."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support.daemon import WonderlandDaemon, wait_for

from wonderland.tracing.context import parse_traceparent

pytestmark = [pytest.mark.e2e]

pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

APP = Path(__file__).with_name("otel_app.py")
DOMAIN = "127.0.0.1.sslip.io"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{TRACE}-00f067aa0ba902b7-01"

MANIFESTS = f"""
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: traced
  namespace: default
spec:
  template:
    spec:
      containers:
        - image: runtime-app
          command: ["{sys.executable}", "{APP}"]
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: untraced
  namespace: default
spec:
  template:
    metadata:
      annotations:
        monitoring.wonderland.dev/traces: "off"
    spec:
      containers:
        - image: runtime-app
          command: ["{sys.executable}", "{APP}"]
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[WonderlandDaemon]:
    manifests = tmp_path / "manifests.yaml"
    manifests.write_text(MANIFESTS)
    d = WonderlandDaemon.in_tmp(tmp_path)
    d.env["WONDERLAND_TRACING"] = "on"  # the gateway records its span too
    try:
        d.start("-f", str(manifests))
        yield d
    finally:
        d.stop()


def test_the_apps_spans_join_the_gateways_trace(daemon: WonderlandDaemon) -> None:
    info = json.loads((daemon.home / "daemon.json").read_text())
    monitoring = info["monitoring"]["url"]

    def call(service: str, headers: dict[str, str]) -> dict[str, Any] | None:
        try:
            reply = httpx.get(
                f"{daemon.gateway}/",
                headers={"Host": f"{service}.default.{DOMAIN}", **headers},
                timeout=30,
            )
        except httpx.HTTPError:
            return None
        return reply.json() if reply.status_code == 200 else None

    got = wait_for(lambda: call("traced", {"traceparent": INCOMING}), 120, "the replica")
    seen = parse_traceparent(got["traceparent"])
    assert seen is not None and seen.trace_id == TRACE
    gateway_span = seen.parent_id
    assert gateway_span != "00f067aa0ba902b7"
    assert got["endpoint"] == monitoring

    def spans() -> list[dict[str, Any]] | None:
        reply = httpx.get(f"{monitoring}/wonderland/v1/traces/{TRACE}", timeout=10)
        if reply.status_code != 200:
            return None
        found: list[dict[str, Any]] = reply.json()["spans"]
        return (
            found if {s["service"] for s in found} >= {"otel-app", "wonderland-gateway"} else None
        )

    found = wait_for(spans, 60, "the app's and the gateway's spans")
    by_service = {s["service"]: s for s in found}
    assert by_service["wonderland-gateway"]["spanId"] == gateway_span
    assert by_service["wonderland-gateway"]["parentSpanId"] == "00f067aa0ba902b7"
    assert by_service["otel-app"]["parentSpanId"] == gateway_span
    assert by_service["otel-app"]["depth"] == by_service["wonderland-gateway"]["depth"] + 1
    listed = httpx.get(f"{monitoring}/wonderland/v1/traces", timeout=10).json()["traces"]
    assert TRACE in [t["traceId"] for t in listed]

    # the opted-out Pod gets no endpoint
    other = wait_for(lambda: call("untraced", {}), 120, "the opted-out replica")
    assert other["endpoint"] is None
