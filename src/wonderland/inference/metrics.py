"""Prometheus metrics with KServe's and MLServer's names, plus request, queue and batch metrics.

KServe (``kserve/metrics.py``): the stage histograms ``request_*_seconds{model_name}``.
MLServer: ``model_infer_request_success``/``_failure`` (counters) and
``model_infer_request_duration`` (summary, seconds) labelled ``model``, ``version``
(``mlserver/handlers/dataplane.py``); ``batch_request_queue{model_name, model_version}`` and
``parallel_request_queue`` (histograms of queue sizes); the REST server's
``rest_server_requests``, ``rest_server_request_duration_seconds`` and
``rest_server_requests_in_progress`` (starlette_exporter's names, ``app_name="wonderland"``)
and the gRPC server's ``grpc_server_started`` and ``grpc_server_handled``
(py-grpc-prometheus' names and labels).

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
    Summary,
    generate_latest,
)

__all__ = [
    "APP_NAME",
    "CONTENT_TYPE",
    "GRPC_HANDLED",
    "GRPC_STARTED",
    "PARALLEL_QUEUE",
    "REST_DURATION",
    "REST_IN_PROGRESS",
    "REST_REQUESTS",
    "GenerationMetrics",
    "ModelMetrics",
    "RestMetrics",
    "render",
]

APP_NAME = "wonderland"  # MLServer's REST metrics say app_name="mlserver"

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

# -- MLServer's names ----------------------------------------------------------------------

INFER_SUCCESS = Counter(
    "model_infer_request_success", "Model infer request success count", ["model", "version"]
)
INFER_FAILURE = Counter(
    "model_infer_request_failure", "Model infer request failure count", ["model", "version"]
)
INFER_DURATION = Summary(
    "model_infer_request_duration", "Model infer request duration", ["model", "version"]
)
BATCH_QUEUE = Histogram(
    "batch_request_queue",
    "counter of request queue batch size",
    ["model_name", "model_version"],
)
PARALLEL_QUEUE = Histogram("parallel_request_queue", "counter of request queue size for workers")
REST_REQUESTS = Counter(
    "rest_server_requests", "Total HTTP requests", ["method", "path", "status_code", "app_name"]
)
REST_DURATION = Histogram(
    "rest_server_request_duration_seconds",
    "HTTP request duration, in seconds",
    ["method", "path", "status_code", "app_name"],
)
REST_IN_PROGRESS = Gauge(
    "rest_server_requests_in_progress",
    "Total HTTP requests currently in progress",
    ["method", "app_name"],
    multiprocess_mode="livesum",
)
GRPC_STARTED = Counter(
    "grpc_server_started",
    "Total number of RPCs started on the server.",
    ["grpc_type", "grpc_service", "grpc_method"],
)
GRPC_HANDLED = Counter(
    "grpc_server_handled",
    "Total number of RPCs completed on the server, regardless of success or failure.",
    ["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
)


# -- vLLM's names, for generative models (KServe's Hugging Face runtime exports these) ----

_TOKEN_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0)
TTFT = Histogram(
    "vllm:time_to_first_token_seconds",
    "Histogram of time to first token in seconds.",
    ["model_name"],
    buckets=_TOKEN_BUCKETS,
)
TPOT = Histogram(
    "vllm:time_per_output_token_seconds",
    "Histogram of time per output token in seconds (inter-token latency).",
    ["model_name"],
    buckets=_TOKEN_BUCKETS,
)
E2E = Histogram(
    "vllm:e2e_request_latency_seconds",
    "Histogram of end to end request latency in seconds.",
    ["model_name"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
PROMPT_TOKENS = Counter("vllm:prompt_tokens", "Number of prefill tokens processed.", ["model_name"])
GENERATION_TOKENS = Counter(
    "vllm:generation_tokens", "Number of generation tokens processed.", ["model_name"]
)
REQUEST_SUCCESS = Counter(
    "vllm:request_success",
    "Count of finished requests, by why they finished.",
    ["model_name", "finished_reason"],
)
RUNNING = Gauge(
    "vllm:num_requests_running",
    "Number of requests being generated now.",
    ["model_name"],
    multiprocess_mode="livesum",
)
WAITING = Gauge(
    "vllm:num_requests_waiting",
    "Number of requests waiting for the generation thread.",
    ["model_name"],
    multiprocess_mode="livesum",
)
ITERATION_TOKENS = Histogram(
    "vllm:iteration_tokens_total",
    "Histogram of number of tokens per engine_step (the rows of the batch decoded together).",
    ["model_name"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
THROUGHPUT = Gauge(
    "vllm:avg_generation_throughput_toks_per_s",
    "Generation tokens per second of the last finished request.",
    ["model_name"],
    multiprocess_mode="mostrecent",
)


class GenerationMetrics:
    """The vLLM-named children of one generative model."""

    __slots__ = (
        "_name",
        "e2e",
        "generation_tokens",
        "iteration_tokens",
        "prompt_tokens",
        "running",
        "throughput",
        "tpot",
        "ttft",
        "waiting",
    )

    def __init__(self, name: str) -> None:
        self._name = name
        self.ttft = TTFT.labels(name)
        self.tpot = TPOT.labels(name)
        self.e2e = E2E.labels(name)
        self.prompt_tokens = PROMPT_TOKENS.labels(name)
        self.generation_tokens = GENERATION_TOKENS.labels(name)
        self.running = RUNNING.labels(name)
        self.waiting = WAITING.labels(name)
        self.throughput = THROUGHPUT.labels(name)
        self.iteration_tokens = ITERATION_TOKENS.labels(name)

    def finished(self, reason: str, seconds: float) -> None:
        REQUEST_SUCCESS.labels(self._name, reason).inc()
        self.e2e.observe(seconds)


# Methods a client may send are unbounded; any other is counted as "_OTHER" (OpenTelemetry's
# HTTP semantic conventions) so that made-up methods cannot add series.
KNOWN_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
)


def _method(method: str) -> str:
    return method if method in KNOWN_METHODS else "_OTHER"


class RestMetrics:
    """The REST server's children, resolved once per method, route and status."""

    __slots__ = ("_done", "_in_progress")

    def __init__(self) -> None:
        self._in_progress: dict[str, Any] = {}
        self._done: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def in_progress(self, method: str) -> Any:
        method = _method(method)
        child = self._in_progress.get(method)
        if child is None:
            child = self._in_progress[method] = REST_IN_PROGRESS.labels(method, APP_NAME)
        return child

    def done(self, method: str, route: str, status: int, seconds: float) -> None:
        method = _method(method)
        key = (method, route, status)
        children = self._done.get(key)
        if children is None:
            labels = (method, route, str(status), APP_NAME)
            children = self._done[key] = (
                REST_REQUESTS.labels(*labels),
                REST_DURATION.labels(*labels),
            )
        children[0].inc()
        children[1].observe(seconds)


class ModelMetrics:
    """The metric children of one model, resolved once (labels cost on the hot path)."""

    __slots__ = (
        "_requests",
        "batch",
        "batch_queue",
        "explain",
        "infer_duration",
        "infer_failure",
        "infer_success",
        "name",
        "post",
        "pre",
        "predict",
        "queue",
        "version",
    )

    def __init__(self, name: str, version: str | None = None) -> None:
        self.name = name
        self.version = version or ""
        self.infer_success = INFER_SUCCESS.labels(name, self.version)
        self.infer_failure = INFER_FAILURE.labels(name, self.version)
        self.infer_duration = INFER_DURATION.labels(name, self.version)
        self.batch_queue = BATCH_QUEUE.labels(name, self.version)
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
