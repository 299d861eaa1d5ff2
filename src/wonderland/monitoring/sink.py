"""The payload sink: the daemon's receiver of KServe logger CloudEvents and their read API.

Routes on the :class:`~wonderland.monitoring.hub.MetricsHub`:

- ``POST /payloads``: one CloudEvent (binary or structured mode), stored in the
  :class:`~wonderland.monitoring.payloads.PayloadStore`; 202, or 400 saying what is wrong.
  Pods reach it as ``http://payload-logger.wonderland-system.svc.cluster.local`` (any
  path) through the gateway.
- ``GET /wonderland/v1/payloads?namespace=&inferenceservice=&limit=``: the newest logged
  calls, request and response joined on ``ce-id`` (the console and
  ``wonderland models payloads``).

Metrics on the hub's registry: ``wonderland_payloads_logged_total`` (events stored) and
``wonderland_payloads_dropped_total`` (``reason``: ``too_large`` payloads kept as their
size only, ``retention`` calls removed by the limits), labelled ``namespace`` and
``inferenceservice``.
"""

from __future__ import annotations

import orjson
from prometheus_client import CollectorRegistry, Counter

from wonderland.monitoring.cloudevents import CloudEventError, parse_event
from wonderland.monitoring.hub import HttpRequest, HttpResponse, MetricsHub
from wonderland.monitoring.payloads import PayloadStore

__all__ = ["PLATFORM_NAMESPACE", "SERVICE_NAME", "PayloadSink", "sink_hosts"]

PLATFORM_NAMESPACE = "wonderland-system"
SERVICE_NAME = "payload-logger"
READ_PATH = "/wonderland/v1/payloads"
MAX_LIMIT = 1000


def sink_hosts() -> tuple[str, ...]:
    """The cluster-local names Pods use for the sink (as a Service would have)."""
    svc = f"{SERVICE_NAME}.{PLATFORM_NAMESPACE}"
    return (svc, f"{svc}.svc", f"{svc}.svc.cluster.local")


def _json(status: int, doc: object) -> HttpResponse:
    return HttpResponse(status, orjson.dumps(doc), "application/json")


class PayloadSink:
    """The handlers of the sink's routes over one :class:`PayloadStore`."""

    def __init__(self, store: PayloadStore, registry: CollectorRegistry) -> None:
        self.store = store
        self.logged = Counter(
            "wonderland_payloads_logged_total",
            "payload logger CloudEvents stored by the platform's sink",
            ["namespace", "inferenceservice", "type"],
            registry=registry,
        )
        self.dropped = Counter(
            "wonderland_payloads_dropped_total",
            "logged payloads the sink did not keep (too_large: kept as size only; "
            "retention: removed by the limits)",
            ["namespace", "inferenceservice", "reason"],
            registry=registry,
        )

    def install(self, hub: MetricsHub) -> None:
        hub.add_route("/payloads", self.receive)
        hub.add_route(READ_PATH, self.read)
        hub.add_host(sink_hosts(), self.receive)

    async def receive(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return _json(405, {"error": "POST a CloudEvent here; read with GET " + READ_PATH})
        try:
            event = parse_event(request.headers, request.body)
            outcome = self.store.add(event)
        except (CloudEventError, ValueError) as exc:
            return _json(400, {"error": str(exc)})
        namespace = event.namespace or "default"
        kind = event.type.rsplit(".", 1)[-1]
        self.logged.labels(namespace, event.inference_service, kind).inc()
        if outcome.oversized:
            self.dropped.labels(namespace, event.inference_service, "too_large").inc()
        if outcome.evicted:
            self.dropped.labels(namespace, event.inference_service, "retention").inc(
                outcome.evicted
            )
        return HttpResponse(202, b"", "text/plain")

    async def read(self, request: HttpRequest) -> HttpResponse:
        if request.method != "GET":
            return _json(405, {"error": "GET " + READ_PATH})
        params = request.params()

        def one(name: str) -> str:
            return (params.get(name) or [""])[-1]

        raw = one("limit") or "20"
        if not raw.isdigit() or not 0 < int(raw) <= MAX_LIMIT:
            return _json(400, {"error": f"limit={raw!r}: give a number from 1 to {MAX_LIMIT}"})
        records = self.store.list(one("namespace"), one("inferenceservice"), int(raw))
        return _json(200, {"items": [r.as_json() for r in records]})
