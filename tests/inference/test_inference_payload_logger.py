"""The model server's payload logger never slows or fails a request when its sink does not
answer; it drops and counts the events instead."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import REGISTRY

from wonderland.inference.payload_logger import QUEUE_SIZE, LoggerConfig, PayloadLogger


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
            deadline = time.monotonic() + 10
            while logger.dropped < 600 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert logger.dropped == 600
            assert _dropped(service, "unreachable") >= 1
        else:
            # two events per call; the queue holds QUEUE_SIZE and one is in flight
            assert logger.dropped >= 600 - QUEUE_SIZE - 1
        counted = _dropped(service, "queue_full") + _dropped(service, "unreachable")
        assert counted == logger.dropped
    finally:
        await logger.close()
    took.sort()
    # no request waited for the sink (a delivery to it would take seconds)
    assert took[-1] < 1.0, took[-5:]
