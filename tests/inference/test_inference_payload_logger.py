"""The model server's payload logger never slows or fails a request when its sink does not
answer; it drops and counts the events instead."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from _support.daemon import wait_until
from prometheus_client import REGISTRY

from wonderland.inference.payload_logger import QUEUE_SIZE, SENDERS, LoggerConfig, PayloadLogger


async def app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
    await receive()  # type: ignore[operator]
    await send(  # type: ignore[operator]
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"predictions": [1]}'})  # type: ignore[operator]


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"


def _refused() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/"


def _dropped(service: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "wonderland_payloads_dropped_total", {"inferenceservice": service, "reason": reason}
    )
    return value or 0.0


async def _hammer(logger: PayloadLogger, n: int) -> list[float]:
    transport = httpx.ASGITransport(app=logger)
    took = []
    async with httpx.AsyncClient(transport=transport, base_url="http://model") as client:
        for _ in range(n):
            start = time.perf_counter()
            r = await client.post("/v1/models/iris:predict", json={"instances": [[1, 2, 3, 4]]})
            took.append(time.perf_counter() - start)
            assert r.status_code == 200 and r.json() == {"predictions": [1]}
    return took


@pytest.mark.parametrize("kind", ["black_hole", "refused"])
async def test_a_sink_that_does_not_answer_costs_requests_nothing(
    kind: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("black_hole") if kind == "black_hole" else _refused()
    service = f"silent-{kind}"
    logger = PayloadLogger(app, LoggerConfig(url=url, inference_service=service))  # type: ignore[arg-type]
    try:
        took = await _hammer(logger, 300)
        if kind == "refused":
            # every event is dropped: refused by the sink, or the queue was full meanwhile
            await wait_until(lambda: logger.dropped >= 600, 10, "600 dropped events")
            assert logger.dropped == 600
            assert _dropped(service, "unreachable") >= 1
        else:
            # two events per call; the queue holds QUEUE_SIZE and SENDERS are in flight
            assert logger.dropped >= 600 - QUEUE_SIZE - SENDERS
        counted = _dropped(service, "queue_full") + _dropped(service, "unreachable")
        assert counted == logger.dropped
    finally:
        await logger.close()
    took.sort()
    # no request waited for the sink (a delivery to it would take seconds)
    assert took[-1] < 1.0, took[-5:]


@pytest.fixture
def hanging_sink() -> Iterator[tuple[str, list[socket.socket]]]:
    """A sink that accepts every connection and never answers (nor closes)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/events", held
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


async def test_a_hanging_sink_neither_slows_nor_fails_requests_and_drops_are_counted(
    hanging_sink: tuple[str, list[socket.socket]],
) -> None:
    url, held = hanging_sink
    service = "hanging"
    logger = PayloadLogger(
        app,  # type: ignore[arg-type]
        LoggerConfig(url=url, inference_service=service, timeout=0.5),
    )
    took: dict[str, list[float]] = {"off": [], "on": []}
    body = {"instances": [[6.8, 2.8, 4.8, 1.4]]}
    try:
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as off,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=logger), base_url="http://m") as on,
        ):
            for i in range(600):
                for name, client in (
                    (("off", off), ("on", on)) if i % 2 else (("on", on), ("off", off))
                ):
                    start = time.perf_counter()
                    r = await client.post("/v1/models/iris:predict", json=body)
                    took[name].append(time.perf_counter() - start)
                    assert r.status_code == 200 and r.json() == {"predictions": [1]}
        # SENDERS connections were opened and hang; the events on them time out
        # the senders run on this loop: let them time out
        await wait_until(
            lambda: _dropped(service, "unreachable") >= SENDERS, 10, "the senders to time out"
        )
        assert len(held) >= SENDERS, "the senders did not connect"
    finally:
        await logger.close()
    # 1200 events: the queue and the senders hold a few, the rest are dropped and counted
    assert _dropped(service, "unreachable") >= SENDERS
    assert _dropped(service, "queue_full") >= 1200 - QUEUE_SIZE - 4 * SENDERS
    total = sum(_dropped(service, reason) for reason in ("queue_full", "unreachable", "shutdown"))
    assert total == logger.dropped == 1200
    p50 = {name: statistics.median(v) for name, v in took.items()}
    # the logger's share of a request: building its events and a non-blocking enqueue
    assert p50["on"] - p50["off"] < 0.0005, p50


class _Recorder(BaseHTTPRequestHandler):
    """An HTTP/1.1 keep-alive CloudEvents receiver (the standard library's server)."""

    protocol_version = "HTTP/1.1"
    received: list[tuple[dict[str, str], bytes, int]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(
            ({k.lower(): v for k, v in self.headers.items()}, body, self.client_address[1])
        )
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes, int]]]]:
    received: list[tuple[dict[str, str], bytes, int]] = []
    handler = type("Handler", (_Recorder,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/log", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_events_are_kserves_binary_cloudevents_on_kept_connections_and_flushed_on_close(
    recorder: tuple[str, list[tuple[dict[str, str], bytes, int]]],
) -> None:
    url, received = recorder
    config = LoggerConfig(
        url=url,
        inference_service="iris",
        namespace="ns",
        endpoint="canary",
        metadata_headers=("x-tenant",),
    )
    logger = PayloadLogger(app, config)  # type: ignore[arg-type]
    payload = b'{"instances": [[1, 2, 3, 4]]}'
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=logger), base_url="http://m"
    ) as c:
        for i in range(50):
            r = await c.post(
                "/v1/models/iris:predict",
                content=payload,
                headers={
                    "content-type": "application/json",
                    "x-request-id": f"r{i}",
                    "x-tenant": "a",
                },
            )
            assert r.status_code == 200
    await logger.close()  # flushes: every event arrives although the calls just ended
    assert len(received) == 100
    assert logger.sent == 100 and logger.dropped == 0
    by_type: dict[str, dict[str, tuple[dict[str, str], bytes]]] = {}
    for headers, body, _port in received:
        by_type.setdefault(headers["ce-type"], {})[headers["ce-id"]] = (headers, body)
    requests = by_type["org.kubeflow.serving.inference.request"]
    responses = by_type["org.kubeflow.serving.inference.response"]
    assert set(requests) == set(responses) == {f"r{i}" for i in range(50)}
    headers, body = requests["r7"]
    assert body == payload
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-source"] == "http://localhost:9081/"
    assert headers["ce-inferenceservicename"] == "iris"
    assert headers["ce-namespace"] == "ns"
    assert headers["ce-component"] == "predictor"
    assert headers["ce-endpoint"] == "canary"
    assert headers["ce-metadata"] == '{"x-tenant":["a"]}'
    assert headers["content-type"] == "application/json"
    assert headers["ce-time"].endswith("Z")
    assert responses["r7"][1] == b'{"predictions": [1]}'
    # keep-alive: at most one connection per sender for 100 events
    assert len({port for _h, _b, port in received}) <= SENDERS
