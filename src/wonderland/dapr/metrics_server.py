"""The sidecar's ``/metrics`` endpoint and the HTTP API's measuring wrapper."""

from __future__ import annotations

import time

from wonderland.dapr.http_server import Handler, RawRequest, RawResponse
from wonderland.dapr.metrics import SidecarMetrics

__all__ = ["CONTENT_TYPE", "measured", "metrics_handler"]

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


def metrics_handler(metrics: SidecarMetrics) -> Handler:
    """Answer ``GET /metrics`` with every family in the Prometheus text format."""

    async def handle(req: RawRequest) -> RawResponse:
        if req.path not in ("/metrics", "/metrics/"):
            return RawResponse(404, b"not found; metrics are at /metrics\n")
        if req.method not in ("GET", "HEAD"):
            return RawResponse(405, b"use GET /metrics\n", [(b"allow", b"GET, HEAD")])
        return RawResponse(200, metrics.render(), [(b"content-type", CONTENT_TYPE)])

    return handle


def measured(handler: Handler, metrics: SidecarMetrics) -> Handler:
    """``handler`` recording daprd's ``dapr_http_server_*`` families for each request."""

    async def handle(req: RawRequest) -> RawResponse:
        start = time.perf_counter()
        resp = await handler(req)
        metrics.http_server(
            req.method,
            req.path,
            resp.status,
            len(req.body),
            len(resp.body),
            time.perf_counter() - start,
        )
        return resp

    return handle
