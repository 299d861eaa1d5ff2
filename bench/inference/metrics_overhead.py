"""What the model server's metrics cost per inference request, in-process.

    python bench/inference/metrics_overhead.py [--requests 20000]

Drives the REST app by direct ASGI calls (no sockets, so the metrics' share is as large
as it can be) with a V2 inference of a model that sums its rows, and times the metric
work one request does: MLServer's per-model counters, summary and queue histograms,
the REST server's counter, histogram and in-progress gauge, and the route template.
Prints per-request percentiles and the metric work's share of a request.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from wonderland.inference import metrics
from wonderland.inference.dataplane import DataPlane
from wonderland.inference.model import ArrayModel
from wonderland.inference.repository import ModelRepository
from wonderland.inference.rest import RestApp, route_template

BODY = orjson.dumps(
    {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1] * 8}]}
)


class _Sum(ArrayModel):
    platform = "bench"

    def __init__(self) -> None:
        super().__init__("sum", Path("."))

    def load(self) -> None:
        pass

    def predict_arrays(self, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
        return {"output-0": self.first_input(inputs).sum(axis=1)}


async def _requests(app: RestApp, n: int) -> list[float]:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v2/models/sum/infer",
        "headers": [(b"content-length", str(len(BODY)).encode())],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message

    out = []
    for _ in range(n):
        started = time.perf_counter()
        await app(scope, receive, send)
        out.append(time.perf_counter() - started)
    return out


def _metric_work(n: int) -> list[float]:
    """The metric calls one REST V2 inference makes beyond KServe's, n times."""
    m = metrics.ModelMetrics("sum-bench")
    rest = metrics.RestMetrics()
    out = []
    for _ in range(n):
        started = time.perf_counter()
        gauge = rest.in_progress("POST")
        gauge.inc()
        metrics.PARALLEL_QUEUE.observe(1)
        m.batch_queue.observe(1)
        m.infer_success.inc()
        m.infer_duration.observe(0.0001)
        gauge.dec()
        rest.done("POST", route_template("/v2/models/sum/infer"), 200, 0.0001)
        out.append(time.perf_counter() - started)
    return out


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    repo = ModelRepository()
    repo.add_model(_Sum())
    app = RestApp(DataPlane(repo))
    await _requests(app, 500)  # warm up
    request = await _requests(app, args.requests)
    work = _metric_work(args.requests)
    await repo.close()
    print(f"{'':28} {'p50 µs':>8} {'p99 µs':>8} {'mean µs':>8}")
    for label, values in (("REST V2 inference (ASGI)", request), ("metric work added", work)):
        print(
            f"{label:28} {_pct(values, 0.5) * 1e6:8.1f} {_pct(values, 0.99) * 1e6:8.1f} "
            f"{statistics.fmean(values) * 1e6:8.1f}"
        )
    share = _pct(work, 0.5) / _pct(request, 0.5)
    print(f"metric work / request (p50): {share:.1%}")


if __name__ == "__main__":
    asyncio.run(main())
