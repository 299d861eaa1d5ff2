"""Gateway metrics in the Prometheus text format, served at ``/metrics`` on the gateway
for any Host that is not a route (e.g. ``http://127.0.0.1:8080/metrics``); the daemon
lists that address in ``<home>/monitoring/targets.json`` (job ``wonderland``,
``component="gateway"``).

The gateway plays Knative's queue-proxy and activator, so it exports their names:

- Knative >= 1.19 (OpenTelemetry, Prometheus form): ``kn_serving_invocation_duration_seconds``
  (histogram, ``http_response_status_code``), ``kn_serving_queue_depth``,
  ``kn_revision_request_concurrency``; labels ``k8s_namespace_name``, ``kn_service_name``,
  ``kn_configuration_name``, ``kn_revision_name`` (and ``k8s_pod_name``/``container_name``
  on the per-replica histogram);
- Knative <= 1.18 (OpenCensus; ``WONDERLAND_METRICS_LEGACY=off`` drops them):
  ``revision_request_count``, ``revision_request_latencies`` (ms), ``revision_app_request_*``,
  ``revision_queue_depth``, ``activator_request_count``, ``activator_request_latencies``,
  ``activator_request_concurrency``, written as OpenCensus's exporter wrote them (counters
  without ``_total``, bucket bounds as Go prints them);
- cold starts (Knative has none, serving#13459; OpenTelemetry FaaS names):
  ``faas_coldstarts_total``, ``faas_init_duration_seconds``, and
  ``wonderland_activator_buffer_wait_seconds`` for the time each request was held.

The hot path (:meth:`RevisionRecorder.request`) finds its series through the replica's
``Endpoint.series`` (one small dict per replica keyed by status code) and adds to plain
lists; labels are attached only when ``/metrics`` is read.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric

from wonderland.gateway.table import Endpoint, RevisionTarget, RoutingTable

__all__ = [
    "BUFFER_BUCKETS",
    "INIT_BUCKETS",
    "LEGACY_MS_BUCKETS",
    "OTEL_HTTP_BUCKETS",
    "GatewayMetrics",
    "RevisionRecorder",
    "legacy_exposition",
]

# OpenTelemetry HTTP semconv's advisory buckets (seconds), as Knative >= 1.19 uses them
OTEL_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
# Knative's defaultLatencyDistribution (milliseconds), queue-proxy and activator <= 1.18
LEGACY_MS_BUCKETS = (
    5,
    10,
    20,
    40,
    60,
    80,
    100,
    150,
    200,
    250,
    300,
    350,
    400,
    450,
    500,
    600,
    700,
    800,
    900,
    1000,
    2000,
    5000,
    10000,
    20000,
    50000,
    100000,
)
INIT_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8, 1, 2, 5, 10, 30, 60)
BUFFER_BUCKETS = (*OTEL_HTTP_BUCKETS, 30, 60)

_KN_LABELS = ["k8s_namespace_name", "kn_service_name", "kn_configuration_name", "kn_revision_name"]
_LEGACY_LABELS = ["namespace_name", "service_name", "configuration_name", "revision_name"]
_QUEUE_PROXY = "queue-proxy"
_ACTIVATOR = "activator"
_ACTIVATOR_POD = "wonderland-gateway"


class _Series:
    """One (replica, status code) of a revision: counts and non-cumulative buckets."""

    __slots__ = (
        "app_buckets",
        "app_count",
        "app_sum",
        "buckets",
        "count",
        "ms_buckets",
        "ms_sum",
        "sum",
    )

    def __init__(self) -> None:
        self.count = 0
        self.sum = 0.0
        self.buckets = [0] * (len(OTEL_HTTP_BUCKETS) + 1)
        self.ms_buckets = [0] * (len(LEGACY_MS_BUCKETS) + 1)
        self.ms_sum = 0.0  # the whole time at the gateway, milliseconds
        self.app_count = 0
        self.app_sum = 0.0  # milliseconds
        self.app_buckets = [0] * (len(LEGACY_MS_BUCKETS) + 1)


class _Histogram:
    """A label-free histogram: what one revision observed, labelled when rendered."""

    __slots__ = ("bounds", "buckets", "count", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.buckets[bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value


def _cumulative(
    bounds: Sequence[float], counts: Sequence[int], go: bool = False
) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    total = 0
    for bound, n in zip(bounds, counts, strict=False):
        total += n
        out.append((_go_float(bound) if go else repr(float(bound)), float(total)))
    out.append(("+Inf", float(total + counts[-1])))
    return out


def _go_float(value: float) -> str:
    """A number as Go's Prometheus client prints it (``5``, ``0.5``, ``+Inf``)."""
    value = float(value)
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


class RevisionRecorder:
    """The metrics of one revision; bound to its :class:`RevisionTarget` as ``recorder``.

    Implements :class:`~wonderland.gateway.table.RequestRecorder`.
    """

    __slots__ = ("buffer", "coldstarts", "gone", "init", "local", "retired", "series", "target")

    def __init__(self, target: RevisionTarget) -> None:
        self.target = target
        self.series: list[tuple[str, int, _Series]] = []  # (replica, code, series)
        self.local: dict[int, _Series] = {}  # answered by the gateway itself
        # the series of replicas that are gone, summed per code (the activator's totals)
        self.retired: dict[int, _Series] = {}
        self.gone: set[str] = set()  # replicas gone at the previous read
        self.coldstarts = 0
        self.init = _Histogram(INIT_BUCKETS)
        self.buffer = _Histogram(BUFFER_BUCKETS)

    def _new(self, endpoint: Endpoint | None, status: int) -> _Series:
        series = _Series()
        if endpoint is None:
            self.local[status] = series
            self.series.append(("", status, series))
        else:
            endpoint.series[status] = series
            self.series.append((endpoint.name, status, series))
        return series

    def request(
        self, endpoint: Endpoint | None, status: int, seconds: float, app_seconds: float
    ) -> None:
        series = (self.local if endpoint is None else endpoint.series).get(status)
        if series is None:
            series = self._new(endpoint, status)
        # kn_serving_invocation_duration: the replica's time when one answered
        timed = seconds if app_seconds < 0 else app_seconds
        series.count += 1
        series.sum += timed
        series.buckets[bisect_left(OTEL_HTTP_BUCKETS, timed)] += 1
        ms = seconds * 1000.0
        series.ms_sum += ms
        series.ms_buckets[bisect_left(LEGACY_MS_BUCKETS, ms)] += 1
        if app_seconds >= 0:
            app_ms = app_seconds * 1000.0
            series.app_count += 1
            series.app_sum += app_ms
            series.app_buckets[bisect_left(LEGACY_MS_BUCKETS, app_ms)] += 1

    def held(self, seconds: float) -> None:
        self.buffer.observe(seconds)

    def cold_start(self, seconds: float) -> None:
        self.coldstarts += 1
        self.init.observe(seconds)

    # -- rendering --
    def prune(self) -> None:
        """Drop the series of replicas that are gone, as a stopped queue-proxy's go, once
        they have been read one last time; the activator's totals keep their counts."""
        t = self.target
        live = {e.name for e in t.endpoints}
        live.update(e.name for e in t.draining)
        keep: list[tuple[str, int, _Series]] = []
        marked: set[str] = set()
        for pod, code, s in self.series:
            if not pod or pod in live:
                keep.append((pod, code, s))
            elif pod in self.gone:
                into = self.retired.get(code)
                if into is None:
                    into = self.retired[code] = _Series()
                into.count += s.count
                into.ms_sum += s.ms_sum
                into.ms_buckets = [
                    a + b for a, b in zip(into.ms_buckets, s.ms_buckets, strict=True)
                ]
            else:
                keep.append((pod, code, s))
                marked.add(pod)
        self.series = keep
        self.gone = marked

    def kn_labels(self) -> list[str]:
        t = self.target
        return [t.namespace, t.service, t.configuration, t.name]


def _code_class(code: int) -> str:
    return f"{code // 100}xx"


class _OtelCollector:
    """The OpenTelemetry (Knative >= 1.19) and cold-start families, plus the gateway's own
    per-revision gauges."""

    def __init__(self, recorders: Callable[[], Iterable[RevisionRecorder]]) -> None:
        self.recorders = recorders

    def collect(self) -> Iterator[Metric]:
        recorders = list(self.recorders())
        duration = HistogramMetricFamily(
            "kn_serving_invocation_duration_seconds",
            "The duration of requests to the user container (the gateway's own answers, "
            "503/504, from their arrival)",
            labels=[*_KN_LABELS, "k8s_pod_name", "container_name", "http_response_status_code"],
            unit="seconds",
        )
        depth = GaugeMetricFamily(
            "kn_serving_queue_depth",
            "Requests queued or in flight at the proxy for the revision",
            labels=_KN_LABELS,
        )
        concurrency = GaugeMetricFamily(
            "kn_revision_request_concurrency",
            "Concurrent requests routed through the activator",
            labels=_KN_LABELS,
        )
        coldstarts = CounterMetricFamily(
            "faas_coldstarts",
            "Scale-from-zero events caused by a request (OpenTelemetry FaaS faas.coldstarts)",
            labels=_KN_LABELS,
        )
        init = HistogramMetricFamily(
            "faas_init_duration_seconds",
            "From the first request held for a revision at zero until a replica was ready",
            labels=_KN_LABELS,
            unit="seconds",
        )
        buffer = HistogramMetricFamily(
            "wonderland_activator_buffer_wait_seconds",
            "Time each request waited in the activator (or containerConcurrency) buffer",
            labels=_KN_LABELS,
            unit="seconds",
        )
        in_flight = GaugeMetricFamily(
            "wonderland_revision_requests_in_flight",
            "Requests at the gateway for a revision, queued ones included",
            labels=["namespace", "revision"],
        )
        ready = GaugeMetricFamily(
            "wonderland_revision_ready_endpoints",
            "Ready replicas the gateway sends a revision's requests to",
            labels=["namespace", "revision"],
        )
        queued = GaugeMetricFamily(
            "wonderland_revision_requests_queued",
            "Requests held by the activator or the containerConcurrency queue",
            labels=["namespace", "revision"],
        )
        for rec in recorders:
            t = rec.target
            kn = rec.kn_labels()
            for pod, code, s in list(rec.series):
                duration.add_metric(
                    [*kn, pod, _QUEUE_PROXY, str(code)],
                    _cumulative(OTEL_HTTP_BUCKETS, s.buckets),
                    s.sum,
                )
            depth.add_metric(kn, t.in_flight)
            concurrency.add_metric(kn, t.in_flight)
            coldstarts.add_metric(kn, rec.coldstarts)
            init.add_metric(kn, _cumulative(INIT_BUCKETS, rec.init.buckets), rec.init.sum)
            buffer.add_metric(kn, _cumulative(BUFFER_BUCKETS, rec.buffer.buckets), rec.buffer.sum)
            short = [t.namespace, t.name]
            in_flight.add_metric(short, t.in_flight)
            ready.add_metric(short, len(t.endpoints))
            queued.add_metric(short, len(t.waiters))
        yield from (duration, depth, concurrency, coldstarts, init, buffer)
        yield from (in_flight, ready, queued)


def _legacy_families(recorders: Iterable[RevisionRecorder]) -> Iterator[Metric]:
    rev_count = Metric(
        "revision_request_count", "The number of requests that are routed to queue-proxy", "counter"
    )
    rev_lat = Metric("revision_request_latencies", "The response time in millisecond", "histogram")
    app_count = Metric(
        "revision_app_request_count",
        "The number of requests that are routed to user-container",
        "counter",
    )
    app_lat = Metric(
        "revision_app_request_latencies", "The response time in millisecond", "histogram"
    )
    depth = Metric(
        "revision_queue_depth",
        "The current number of items in the serving and waiting queue, or not reported if unlimited concurrency.",
        "gauge",
    )
    act_count = Metric(
        "activator_request_count", "The number of requests that are routed to Activator", "counter"
    )
    act_lat = Metric("activator_request_latencies", "The response time in millisecond", "histogram")
    act_conc = Metric(
        "activator_request_concurrency", "Concurrent requests that are routed to Activator", "gauge"
    )
    for rec in recorders:
        t = rec.target
        base = dict(zip(_LEGACY_LABELS, rec.kn_labels(), strict=True))
        by_code = {c: (r.count, r.ms_sum, r.ms_buckets) for c, r in rec.retired.items()}
        for pod, code, s in list(rec.series):
            labels = {
                **base,
                "pod_name": pod,
                "container_name": _QUEUE_PROXY,
                "response_code": str(code),
                "response_code_class": _code_class(code),
            }
            rev_count.add_sample("revision_request_count", labels, s.count)
            _legacy_histogram(rev_lat, labels, s.ms_buckets, s.count, s.ms_sum)
            if s.app_count:
                app_count.add_sample("revision_app_request_count", labels, s.app_count)
                _legacy_histogram(app_lat, labels, s.app_buckets, s.app_count, s.app_sum)
            n, total, buckets = by_code.get(code, (0, 0.0, [0] * len(s.ms_buckets)))
            by_code[code] = (
                n + s.count,
                total + s.ms_sum,
                [a + b for a, b in zip(buckets, s.ms_buckets, strict=True)],
            )
        depth.add_sample(
            "revision_queue_depth",
            {**base, "pod_name": "", "container_name": _QUEUE_PROXY},
            t.in_flight,
        )
        activator = {**base, "pod_name": _ACTIVATOR_POD, "container_name": _ACTIVATOR}
        for code, (n, total, buckets) in sorted(by_code.items()):
            labels = {
                **activator,
                "response_code": str(code),
                "response_code_class": _code_class(code),
            }
            act_count.add_sample("activator_request_count", labels, n)
            _legacy_histogram(act_lat, labels, buckets, n, total)
        act_conc.add_sample("activator_request_concurrency", activator, t.in_flight)
    yield from (rev_count, rev_lat, app_count, app_lat, depth, act_count, act_lat, act_conc)


def _legacy_histogram(
    metric: Metric, labels: dict[str, str], buckets: list[int], count: int, total: float
) -> None:
    name = metric.name
    for le, value in _cumulative(LEGACY_MS_BUCKETS, buckets, go=True):
        metric.add_sample(f"{name}_bucket", {**labels, "le": le}, value)
    metric.add_sample(f"{name}_sum", labels, total)
    metric.add_sample(f"{name}_count", labels, count)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def legacy_exposition(families: Iterable[Metric]) -> bytes:
    """The text format as OpenCensus's Prometheus exporter (the Go client) wrote it:
    counters keep their names (no ``_total``). Families without samples are left out."""
    lines: list[str] = []
    for family in families:
        if not family.samples:
            continue
        doc = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
        lines.append(f"# HELP {family.name} {doc}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for sample in family.samples:
            # the Go client sorts label names; a bucket's le comes last
            pairs = sorted((k, v) for k, v in sample.labels.items() if k != "le")
            if "le" in sample.labels:
                pairs.append(("le", sample.labels["le"]))
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
            head = f"{sample.name}{{{labels}}}" if labels else sample.name
            lines.append(f"{head} {_go_float(sample.value)}")
    return ("\n".join(lines) + "\n").encode() if lines else b""


class GatewayMetrics:
    """The gateway's metrics: a :class:`RevisionRecorder` per revision (bound as
    ``target.recorder`` when the table makes the target), the registry of the
    OpenTelemetry-named families, and the legacy names unless ``legacy`` is False.
    ``extra`` are more collectors to expose beside them (the autoscaler's)."""

    def __init__(self, table: RoutingTable, legacy: bool = True) -> None:
        self.table = table
        self.legacy = legacy
        self.registry = CollectorRegistry()
        self.registry.register(_OtelCollector(self.recorders))  # type: ignore[arg-type]
        self.legacy_sources: list[Callable[[], Iterable[Metric]]] = [
            lambda: _legacy_families(self.recorders())
        ]

    def bind(self, target: RevisionTarget) -> RevisionRecorder:
        """The target's recorder, made on first use."""
        rec = target.recorder
        if not isinstance(rec, RevisionRecorder):
            rec = RevisionRecorder(target)
            target.recorder = rec
        return rec

    def recorders(self) -> list[RevisionRecorder]:
        return [
            t.recorder
            for t in list(self.table.revisions.values())
            if isinstance(t.recorder, RevisionRecorder)
        ]

    def add_legacy(self, source: Callable[[], Iterable[Metric]]) -> None:
        """Another producer of legacy-named families (written without ``_total``)."""
        self.legacy_sources.append(source)

    def render(self) -> bytes:
        for rec in self.recorders():
            rec.prune()
        data: bytes = generate_latest(self.registry)
        if self.legacy:
            for source in self.legacy_sources:
                data += legacy_exposition(source())
        return data
