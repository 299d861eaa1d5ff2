"""Chaos under load for the sidecar: kill -9 while state writes and publishes run.

A writer saves a new key and publishes a new message through the sidecar's HTTP API, one
after the other, as fast as the sidecar answers; the state store is Redis and the broker
Redis Streams (durable). The sidecar is killed with SIGKILL in the middle of the load and the
same app id starts again on the same ports. Every write the sidecar acknowledged (204) must
be readable afterwards with its value, and every acknowledged message must reach the app;
a request that failed while the sidecar was down was never acknowledged, so the writer does
not count it. The recovery time (kill to the first acknowledged write again) is printed
(``-s``); ``bench/chaos/run.py`` reports it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from _support.daemon import wait_for
from dapr_testing import received, require_backend

from wonderland.dapr.sidecar import SidecarProcess, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


class Writer(threading.Thread):
    """Saves ``chaos-<run>-<n>`` and publishes ``{"n": n}``; keeps what was acknowledged."""

    def __init__(self, url: str, run: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.url, self.run_id, self.topic = url, run, topic
        self.saved: dict[str, int] = {}
        self.published: set[int] = set()
        self.failures = 0
        self.ack_times: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        with httpx.Client(base_url=self.url, timeout=5) as http:
            while not self.stop.is_set():
                n += 1
                key = f"chaos-{self.run_id}-{n}"
                try:
                    r = http.post("/v1.0/state/statestore", json=[{"key": key, "value": n}])
                    if r.status_code == 204:
                        self.saved[key] = n
                        self.ack_times.append(time.monotonic())
                    p = http.post(f"/v1.0/publish/pubsub/{self.topic}", json={"n": n})
                    if p.status_code == 204:
                        self.published.add(n)
                except httpx.HTTPError:
                    self.failures += 1
                    time.sleep(0.01)  # a client's back-off while the sidecar is down


def test_kill_9_under_load_loses_no_acknowledged_write_or_message(
    sidecar_factory: Callable[..., SidecarProcess],
    resources: Callable[[str], Path],
    app_factory: Callable[..., int],
) -> None:
    require_backend("redis")
    run = uuid.uuid4().hex[:8]
    topic = f"chaos-{run}"
    folder = resources(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: statestore}\n"
        "spec:\n  type: state.redis\n  version: v1\n  metadata:\n"
        "  - {name: redisHost, value: localhost:6379}\n---\n"
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: pubsub}\n"
        "spec:\n  type: pubsub.redis\n  version: v1\n  metadata:\n"
        "  - {name: redisHost, value: localhost:6379}\n"
        '  - {name: redeliverInterval, value: "500ms"}\n'
        '  - {name: processingTimeout, value: "500ms"}\n'
    )
    app = app_factory([{"pubsubname": "pubsub", "topic": topic, "route": "/orders"}])
    app_id = f"chaos{run}"
    ports = {"http_port": free_port(), "grpc_port": free_port()}
    first = sidecar_factory(app_id, resources_path=[folder], app_port=app, **ports)
    wait_for(lambda: httpx.get(first.http_url + "/v1.0/metadata").json()["subscriptions"])
    writer = Writer(first.http_url, run, topic)
    writer.start()
    try:
        wait_for(lambda: len(writer.saved) >= 50, 60)
        first.kill()  # returns once the process is gone: later answers are the new one's
        killed = time.monotonic()
        second = sidecar_factory(app_id, resources_path=[folder], app_port=app, **ports)
        wait_for(lambda: any(t > killed for t in writer.ack_times), 60)
        recovery = next(t for t in writer.ack_times if t > killed) - killed
        wait_for(lambda: len(writer.saved) >= 100, 60)
    finally:
        writer.stop.set()
        writer.join(10)
    with httpx.Client(base_url=second.http_url, timeout=10) as http:
        keys = sorted(writer.saved)
        rows = http.post("/v1.0/state/statestore/bulk", json={"keys": keys}).json()
    stored = {row["key"]: row.get("data") for row in rows}
    lost_writes = [k for k, v in writer.saved.items() if stored.get(k) != v]
    assert not lost_writes, f"{len(lost_writes)} acknowledged writes lost: {lost_writes[:5]}"
    got = wait_for(
        lambda: writer.published <= (ns := {r["body"]["data"]["n"] for r in received(app)}) and ns,
        60,
    )
    lost_messages = writer.published - got
    assert not lost_messages
    print(
        f"\nchaos: sidecar kill -9 under load -> acknowledged writes again after {recovery:.2f}s; "
        f"{len(writer.saved)} writes and {len(writer.published)} messages acknowledged, "
        f"none lost ({writer.failures} requests failed unacknowledged while it was down)"
    )
