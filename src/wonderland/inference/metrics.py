"""Prometheus metrics with KServe's stage histograms plus request, queue and batch metrics.

With ``--workers N`` the server runs prometheus_client's multiprocess mode (a private
``PROMETHEUS_MULTIPROC_DIR``), so a scrape of any worker reports all of them.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["CONTENT_TYPE", "ModelMetrics", "render"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
)

PRE = Histogram(
    "request_preprocess_seconds", "pre-process request latency", ["model_name"], buckets=_BUCKETS
)
PREDICT = Histogram(
    "request_predict_seconds", "predict request latency", ["model_name"], buckets=_BUCKETS
)
POST = Histogram(
    "request_postprocess_seconds", "post-process request latency", ["model_name"], buckets=_BUCKETS
)
EXPLAIN = Histogram(
    "request_explain_seconds", "explain request latency", ["model_name"], buckets=_BUCKETS
)
REQUESTS = Counter(
    "inference_requests",
    "inference requests answered, by protocol and outcome",
    ["model_name", "protocol", "code"],
)
QUEUE = Gauge(
    "inference_queue_depth",
    "requests waiting for the model",
    ["model_name"],
    multiprocess_mode="livesum",  # with --workers: the sum over live workers
)
BATCH = Histogram(
    "inference_batch_size",
    "rows per model call after adaptive batching",
    ["model_name"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)


class ModelMetrics:
    """The metric children of one model, resolved once (labels cost on the hot path)."""

    __slots__ = ("_requests", "batch", "explain", "name", "post", "pre", "predict", "queue")

    def __init__(self, name: str) -> None:
        self.name = name
        self.pre = PRE.labels(name)
        self.predict = PREDICT.labels(name)
        self.post = POST.labels(name)
        self.explain = EXPLAIN.labels(name)
        self.queue = QUEUE.labels(name)
        self.batch = BATCH.labels(name)
        self._requests: dict[tuple[str, str], Any] = {}

    def request(self, protocol: str, code: str) -> None:
        key = (protocol, code)
        child = self._requests.get(key)
        if child is None:
            child = self._requests[key] = REQUESTS.labels(self.name, protocol, code)
        child.inc()


def render() -> bytes:
    """The exposition text; with ``--workers``, the sum over all worker processes."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import CollectorRegistry, multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
