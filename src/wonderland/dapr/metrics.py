"""The sidecar's metrics, with daprd's names, tags and units (``pkg/diagnostics``).

One :class:`SidecarMetrics` per sidecar holds every family. The runtime core records
component and runtime events; the HTTP server, the app channel and the gRPC server record
their transport families. Latencies are in milliseconds and the latency buckets come from
the Configuration's ``spec.metrics.latencyDistributionBuckets`` (daprd's defaults
otherwise).

Families are kept here rather than in ``prometheus_client`` because daprd's counters
carry no ``_total`` suffix (OpenCensus names), and because the hot path wants plain
attribute updates on cached label children: the sidecar runs on one event loop, so no
lock is needed.
"""

from __future__ import annotations

import bisect
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wonderland.dapr.errors import ResourceError

__all__ = [
    "DEFAULT_LATENCY_BUCKETS",
    "Counter",
    "Gauge",
    "Histogram",
    "MetricsSettings",
    "SidecarMetrics",
    "metrics_settings",
]

#: ``pkg/config/configuration.go`` defaultLatencyDistribution (milliseconds).
DEFAULT_LATENCY_BUCKETS: tuple[float, ...] = (
    1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, 30, 40, 50, 65, 80, 100, 130, 160, 200, 250,
    300, 400, 500, 650, 800, 1000, 2000, 5000, 10000, 20000, 50000, 100000,
)  # fmt: skip
#: OpenCensus ocgrpc DefaultBytesDistribution, used for the gRPC bytes-per-RPC families.
BYTES_BUCKETS: tuple[float, ...] = (
    0, 1024, 2048, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
    268435456, 1073741824, 4294967296,
)  # fmt: skip
#: OpenCensus ochttp DefaultSizeDistribution, used for the HTTP byte families.
SIZE_BUCKETS: tuple[float, ...] = (
    1024, 2048, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
    268435456, 1073741824, 4294967296,
)  # fmt: skip


_bisect_left = bisect.bisect_left


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class HistogramChild:
    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[_bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1


class _Family:
    kind = "untyped"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.help = help_text
        self.labelnames = tuple(labelnames)

    def render(self, out: list[str]) -> None:
        raise NotImplementedError


class Counter(_Family):
    """A count; its children are cached by label values."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str]) -> None:
        super().__init__(name, help_text, labelnames)
        self.children: dict[tuple[str, ...], CounterChild] = {}

    def labels(self, *values: str) -> CounterChild:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = CounterChild()
        return child

    def render(self, out: list[str]) -> None:
        for values, child in self.children.items():
            out.append(f"{self.name}{_labels(self.labelnames, values)} {_num(child.value)}")


class Gauge(Counter):
    """A value that goes up and down (``set`` on the child's ``value``)."""

    kind = "gauge"


class Histogram(_Family):
    """A distribution with fixed bucket bounds."""

    kind = "histogram"

    def __init__(
        self, name: str, help_text: str, labelnames: Sequence[str], bounds: Sequence[float]
    ) -> None:
        super().__init__(name, help_text, labelnames)
        self.bounds = tuple(sorted(float(b) for b in bounds))
        self.children: dict[tuple[str, ...], HistogramChild] = {}

    def labels(self, *values: str) -> HistogramChild:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = HistogramChild(self.bounds)
        return child

    def render(self, out: list[str]) -> None:
        for values, child in self.children.items():
            running = 0
            for bound, n in zip((*self.bounds, float("inf")), child.counts, strict=True):
                running += n
                le = f'le="{_num(bound)}"'
                out.append(f"{self.name}_bucket{_labels(self.labelnames, values, le)} {running}")
            base = _labels(self.labelnames, values)
            out.append(f"{self.name}_sum{base} {_num(child.sum)}")
            out.append(f"{self.name}_count{base} {child.count}")


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """``spec.metrics`` of the Configuration, plus the ``--enable-metrics`` flag."""

    enabled: bool = True
    buckets: tuple[float, ...] = DEFAULT_LATENCY_BUCKETS
    increased_cardinality: bool = False
    path_matching: tuple[str, ...] = ()


def metrics_settings(
    spec: Mapping[str, Any] | None, source: str = "Configuration", enabled: bool = True
) -> MetricsSettings:
    """Read ``spec.metrics`` (``enabled``, ``latencyDistributionBuckets``, ``http``)."""
    raw = (spec or {}).get("metrics") or {}
    if not isinstance(raw, Mapping):
        raise ResourceError(f"{source}: spec.metrics must be a mapping")
    on = enabled and bool(raw.get("enabled", True))
    buckets = DEFAULT_LATENCY_BUCKETS
    given = raw.get("latencyDistributionBuckets")
    if given:
        try:
            buckets = tuple(sorted({float(b) for b in given}))
        except (TypeError, ValueError):
            raise ResourceError(
                f"{source}: spec.metrics.latencyDistributionBuckets must be a list of numbers "
                f"(milliseconds), got {given!r}"
            ) from None
        if any(b <= 0 for b in buckets):
            raise ResourceError(
                f"{source}: spec.metrics.latencyDistributionBuckets must be positive"
            )
    http = raw.get("http") or {}
    matching = tuple(str(p) for p in http.get("pathMatching") or [])
    return MetricsSettings(on, buckets, bool(http.get("increasedCardinality", False)), matching)


# Dapr API paths keep their bounded parts (API, component, topic, target app) and drop
# identifiers (state keys, secret names, invoked method paths), as daprd's low-cardinality
# mode does.
_API_KEEP = {
    "state": 3,
    "secrets": 3,
    "configuration": 3,
    "publish": 4,
    "bulkpublish": 4,
    "bindings": 3,
    "metadata": 2,
    "healthz": 3,
    "shutdown": 2,
    "invoke": 4,
    "subscribe": 4,
}


def _template(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]+\})", pattern)
    rx = "".join("[^/]+" if p.startswith("{") and p.endswith("}") else re.escape(p) for p in parts)
    return re.compile(f"^{rx}$")


class _PathNormaliser:
    def __init__(self, settings: MetricsSettings) -> None:
        self.raw = settings.increased_cardinality
        self.patterns = [(p, _template(p)) for p in settings.path_matching]
        self.cache: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        hit = self.cache.get(path)
        if hit is not None:
            return hit
        out = self._normalise(path)
        if len(self.cache) < 4096:
            self.cache[path] = out
        return out

    def _normalise(self, path: str) -> str:
        for pattern, rx in self.patterns:
            if rx.match(path):
                return pattern
        if self.raw:
            return path
        segs = path.strip("/").split("/")
        if len(segs) >= 2 and segs[0] in {"v1.0", "v1.0-alpha1", "v1.0-beta1"}:
            keep = _API_KEEP.get(segs[1])
            if keep is not None:
                if segs[1] == "invoke" and len(segs) >= 4:
                    return "/" + "/".join(segs[:4])
                return "/" + "/".join(segs[:keep])
        if path in {"/dapr/config", "/dapr/subscribe", "/healthz"}:
            return path
        return ""


class SidecarMetrics:
    """Every family of one sidecar; ``render()`` gives the Prometheus text format."""

    def __init__(
        self, app_id: str, namespace: str = "", settings: MetricsSettings | None = None
    ) -> None:
        self.settings = settings or MetricsSettings()
        self.enabled = self.settings.enabled
        self.app_id = app_id
        self.namespace = namespace
        self.path = _PathNormaliser(self.settings)
        # the hot path's label children, cached per label values
        self._op_children: dict[
            tuple[str, str, str, bool], tuple[CounterChild, HistogramChild]
        ] = {}
        self._http_children: dict[tuple[str, str, int], tuple[Any, ...]] = {}
        self._grpc_children: dict[tuple[str, str], tuple[Any, ...]] = {}
        ms = self.settings.buckets
        self.families: list[_Family] = []
        c, h, g = self._counter, self._histogram, self._gauge
        comp = ("app_id", "component", "namespace", "operation", "success")
        # HTTP server (app -> Dapr)
        self.http_server_request_count = c(
            "dapr_http_server_request_count",
            "Number of HTTP requests started in server.",
            ("app_id", "method", "path"),
        )
        self.http_server_request_bytes = h(
            "dapr_http_server_request_bytes",
            "HTTP request body size if set as ContentLength (uncompressed) in server.",
            ("app_id", "method", "path"),
            SIZE_BUCKETS,
        )
        self.http_server_response_count = c(
            "dapr_http_server_response_count",
            "The number of HTTP responses",
            ("app_id", "method", "path", "status"),
        )
        self.http_server_response_bytes = h(
            "dapr_http_server_response_bytes",
            "HTTP response body size (uncompressed) in server.",
            ("app_id", "method", "path", "status"),
            SIZE_BUCKETS,
        )
        self.http_server_latency = h(
            "dapr_http_server_latency",
            "HTTP request end-to-end latency in server.",
            ("app_id", "method", "path", "status"),
            ms,
        )
        # HTTP client (Dapr -> app)
        self.http_client_sent_bytes = h(
            "dapr_http_client_sent_bytes",
            "Total bytes sent in request body (not including headers)",
            ("app_id", "method", "path"),
            SIZE_BUCKETS,
        )
        self.http_client_received_bytes = h(
            "dapr_http_client_received_bytes",
            "Total bytes received in response bodies (not including headers but including error responses with bodies)",
            ("app_id", "method", "path", "status"),
            SIZE_BUCKETS,
        )
        self.http_client_roundtrip_latency = h(
            "dapr_http_client_roundtrip_latency",
            "Time between first byte of request headers sent to last byte of response received, or terminal error",
            ("app_id", "method", "path", "status"),
            ms,
        )
        self.http_client_completed_count = c(
            "dapr_http_client_completed_count",
            "Count of completed requests",
            ("app_id", "method", "path", "status"),
        )
        # gRPC server
        grpc = ("app_id", "grpc_server_method", "grpc_server_status")
        self.grpc_server_completed = c(
            "dapr_grpc_io_server_completed_rpcs",
            "Count of RPCs by method and status.",
            grpc,
        )
        self.grpc_server_latency = h(
            "dapr_grpc_io_server_server_latency",
            "Distribution of server latency in milliseconds, by method.",
            grpc,
            ms,
        )
        self.grpc_server_received = h(
            "dapr_grpc_io_server_received_bytes_per_rpc",
            "Distribution of received bytes per RPC, by method.",
            ("app_id", "grpc_server_method"),
            BYTES_BUCKETS,
        )
        self.grpc_server_sent = h(
            "dapr_grpc_io_server_sent_bytes_per_rpc",
            "Distribution of total sent bytes per RPC, by method.",
            ("app_id", "grpc_server_method"),
            BYTES_BUCKETS,
        )
        # Components
        self.state_count = c(
            "dapr_component_state_count", "The number of operations performed on the state component", comp
        )  # fmt: skip
        self.state_latency = h(
            "dapr_component_state_latencies", "The latency of the operations performed on the state component", comp, ms
        )  # fmt: skip
        egress = ("app_id", "component", "namespace", "success", "topic")
        ingress = ("app_id", "component", "namespace", "process_status", "topic")
        self.egress_count = c(
            "dapr_component_pubsub_egress_count", "The number of outgoing messages published to the pubsub component", egress
        )  # fmt: skip
        self.egress_latency = h(
            "dapr_component_pubsub_egress_latencies", "The latency of the response from the pubsub component", egress, ms
        )  # fmt: skip
        self.ingress_count = c(
            "dapr_component_pubsub_ingress_count", "The number of incoming messages arriving from the pubsub component", ingress
        )  # fmt: skip
        self.ingress_latency = h(
            "dapr_component_pubsub_ingress_latencies", "The consuming app event processing latency", ingress, ms
        )  # fmt: skip
        self.input_binding_count = c(
            "dapr_component_input_binding_count", "The number of incoming events arriving from the input binding component", ("app_id", "component", "namespace", "success")
        )  # fmt: skip
        self.input_binding_latency = h(
            "dapr_component_input_binding_latencies", "The triggering app event processing latency", ("app_id", "component", "namespace", "success"), ms
        )  # fmt: skip
        self.output_binding_count = c(
            "dapr_component_output_binding_count", "The number of operations invoked on the output binding component", comp
        )  # fmt: skip
        self.output_binding_latency = h(
            "dapr_component_output_binding_latencies", "The latency of the response from the output binding component", comp, ms
        )  # fmt: skip
        self.configuration_count = c(
            "dapr_component_configuration_count", "The number of operations performed on the configuration component", comp
        )  # fmt: skip
        self.configuration_latency = h(
            "dapr_component_configuration_latencies", "The latency of the operations performed on the configuration component", comp, ms
        )  # fmt: skip
        self.secret_count = c(
            "dapr_component_secret_count", "The number of operations performed on the secret component", comp
        )  # fmt: skip
        self.secret_latency = h(
            "dapr_component_secret_latencies", "The latency of the operations performed on the secret component", comp, ms
        )  # fmt: skip
        # Runtime
        self.component_loaded_count = c(
            "dapr_runtime_component_loaded", "The number of successfully loaded components.", ("app_id", "namespace")
        )  # fmt: skip
        self.component_init = c(
            "dapr_runtime_component_init_total", "The number of initialized components.", ("app_id", "component", "namespace")
        )  # fmt: skip
        self.component_init_fail = c(
            "dapr_runtime_component_init_fail_total", "The number of component initialization failures.", ("app_id", "component", "name", "namespace", "reason")
        )  # fmt: skip
        self.inv_req_sent = c(
            "dapr_runtime_service_invocation_req_sent_total", "The number of requests sent via service invocation.", ("app_id", "destination_app_id", "type")
        )  # fmt: skip
        self.inv_req_recv = c(
            "dapr_runtime_service_invocation_req_recv_total", "The number of requests received via service invocation.", ("app_id", "source_app_id", "type")
        )  # fmt: skip
        self.inv_res_sent = c(
            "dapr_runtime_service_invocation_res_sent_total", "The number of responses sent via service invocation.", ("app_id", "destination_app_id", "status", "type")
        )  # fmt: skip
        self.inv_res_recv = c(
            "dapr_runtime_service_invocation_res_recv_total", "The number of responses received via service invocation.", ("app_id", "destination_app_id", "status", "type")
        )  # fmt: skip
        self.inv_res_latency = h(
            "dapr_runtime_service_invocation_res_recv_latency_ms", "The latency of service invocation response.", ("app_id", "destination_app_id", "status", "type"), ms
        )  # fmt: skip
        res = ("app_id", "flow_direction", "name", "namespace", "policy", "status", "target")
        self.resiliency_loaded_count = c(
            "dapr_resiliency_loaded", "Number of resiliency policies loaded.", ("app_id", "name", "namespace")
        )  # fmt: skip
        self.resiliency_count = c(
            "dapr_resiliency_count", "Number of times a resiliency policyKey has been applied to a building block.", res
        )  # fmt: skip
        self.resiliency_activations = c(
            "dapr_resiliency_activations_total", "Number of times a resiliency policyKey has been activated in a building block after a failure or after a state change.", res
        )  # fmt: skip
        self.resiliency_cb_state = g(
            "dapr_resiliency_cb_state", "A resiliency policy's current CircuitBreakerState state. 0 is closed, 1 is half-open, 2 is open, and -1 is unknown.", res
        )  # fmt: skip

    def _counter(self, name: str, help_text: str, labels: Sequence[str]) -> Counter:
        fam = Counter(name, help_text, labels)
        self.families.append(fam)
        return fam

    def _gauge(self, name: str, help_text: str, labels: Sequence[str]) -> Gauge:
        fam = Gauge(name, help_text, labels)
        self.families.append(fam)
        return fam

    def _histogram(
        self, name: str, help_text: str, labels: Sequence[str], bounds: Iterable[float]
    ) -> Histogram:
        fam = Histogram(name, help_text, labels, tuple(bounds))
        self.families.append(fam)
        return fam

    def render(self) -> bytes:
        """Every family with at least one series, in the Prometheus text format 0.0.4."""
        out: list[str] = []
        for fam in self.families:
            if not getattr(fam, "children", None):
                continue
            kind = fam.kind
            if kind == "counter" and not fam.name.endswith("_total"):
                # daprd's OpenCensus counts have no _total suffix; typed as counters, text
                # parsers (prometheus_client's, which the platform's scraper uses) would
                # rename them to *_total, and the dashboards' queries would miss them.
                kind = "untyped"
            out.append(f"# HELP {fam.name} {fam.help}")
            out.append(f"# TYPE {fam.name} {kind}")
            fam.render(out)
        return ("\n".join(out) + "\n").encode() if out else b""

    # -- recording ------------------------------------------------------------------------
    # Each method is one call on the hot path: a dict lookup for the cached child, then
    # plain attribute updates.

    def component_op(
        self, kind: str, component: str, operation: str, success: bool, elapsed_s: float
    ) -> None:
        """A state, configuration, secret or output binding operation (``kind``)."""
        if not self.enabled:
            return
        pair = self._op_children.get((kind, component, operation, success))
        if pair is None:
            key = (self.app_id, component, self.namespace, operation, str(success).lower())
            count, latency = _COMPONENT_FAMILIES[kind]
            pair = getattr(self, count).labels(*key), getattr(self, latency).labels(*key)
            self._op_children[(kind, component, operation, success)] = pair
        pair[0].value += 1.0
        pair[1].observe(elapsed_s * 1000.0)

    def pubsub_egress(self, component: str, topic: str, success: bool, elapsed_s: float) -> None:
        if not self.enabled:
            return
        key = (self.app_id, component, self.namespace, "true" if success else "false", topic)
        self.egress_count.labels(*key).inc()
        self.egress_latency.labels(*key).observe(elapsed_s * 1000.0)

    def pubsub_ingress(
        self, component: str, topic: str, process_status: str, elapsed_s: float
    ) -> None:
        """``process_status`` is ``success``, ``retry`` or ``drop``, as in daprd."""
        if not self.enabled:
            return
        key = (self.app_id, component, self.namespace, process_status, topic)
        self.ingress_count.labels(*key).inc()
        self.ingress_latency.labels(*key).observe(elapsed_s * 1000.0)

    def component_loaded(self, component_type: str) -> None:
        if not self.enabled:
            return
        self.component_loaded_count.labels(self.app_id, self.namespace).inc()
        self.component_init.labels(self.app_id, component_type, self.namespace).inc()

    def component_init_failed(self, component_type: str, name: str, reason: str) -> None:
        if self.enabled:
            self.component_init_fail.labels(
                self.app_id, component_type, name, self.namespace, reason
            ).inc()

    def http_server(
        self, method: str, path: str, status: int, req_bytes: int, resp_bytes: int, elapsed_s: float
    ) -> None:
        if not self.enabled:
            return
        p = self.path(path)
        kids = self._http_children.get((method, p, status))
        if kids is None:
            app, st = self.app_id, str(status)
            kids = self._http_children[(method, p, status)] = (
                self.http_server_request_count.labels(app, method, p),
                self.http_server_request_bytes.labels(app, method, p),
                self.http_server_response_count.labels(app, method, p, st),
                self.http_server_response_bytes.labels(app, method, p, st),
                self.http_server_latency.labels(app, method, p, st),
            )
        kids[0].value += 1.0
        kids[1].observe(req_bytes)
        kids[2].value += 1.0
        kids[3].observe(resp_bytes)
        kids[4].observe(elapsed_s * 1000.0)

    def http_client(
        self, method: str, path: str, status: int, sent: int, received: int, elapsed_s: float
    ) -> None:
        """A call to the app; ``status`` 0 means no response (a network error)."""
        if not self.enabled:
            return
        p = self.path(path)
        s = str(status)
        app = self.app_id
        self.http_client_sent_bytes.labels(app, method, p).observe(sent)
        self.http_client_received_bytes.labels(app, method, p, s).observe(received)
        self.http_client_roundtrip_latency.labels(app, method, p, s).observe(elapsed_s * 1000.0)
        self.http_client_completed_count.labels(app, method, p, s).inc()

    def grpc_server(
        self, method: str, status: str, received: int, sent: int, elapsed_s: float
    ) -> None:
        if not self.enabled:
            return
        kids = self._grpc_children.get((method, status))
        if kids is None:
            key = (self.app_id, method, status)
            kids = self._grpc_children[(method, status)] = (
                self.grpc_server_completed.labels(*key),
                self.grpc_server_latency.labels(*key),
                self.grpc_server_received.labels(self.app_id, method),
                self.grpc_server_sent.labels(self.app_id, method),
            )
        kids[0].value += 1.0
        kids[1].observe(elapsed_s * 1000.0)
        kids[2].observe(received)
        kids[3].observe(sent)

    def invocation_sent(self, destination: str, status: int, elapsed_s: float) -> None:
        """A service invocation this sidecar made (``status`` 0: no response)."""
        if not self.enabled:
            return
        app = self.app_id
        self.inv_req_sent.labels(app, destination, "http").inc()
        key = (app, destination, str(status), "http")
        self.inv_res_recv.labels(*key).inc()
        self.inv_res_latency.labels(*key).observe(elapsed_s * 1000.0)

    def invocation_received(self, source: str, status: int) -> None:
        """A service invocation another sidecar (or this app) asked this sidecar's app for."""
        if not self.enabled:
            return
        self.inv_req_recv.labels(self.app_id, source, "http").inc()
        self.inv_res_sent.labels(self.app_id, source, str(status), "http").inc()

    def resiliency_loaded(self, name: str) -> None:
        if self.enabled:
            self.resiliency_loaded_count.labels(self.app_id, name, self.namespace).inc()

    def resiliency_event(
        self,
        activated: bool,
        name: str,
        policy: str,
        direction: str,
        target: str,
        status: str = "",
    ) -> None:
        """A policy applied (``activated`` False) or activated (a retry, a breaker change)."""
        if not self.enabled:
            return
        key = (self.app_id, direction, name, self.namespace, policy, status, target)
        if not activated:
            self.resiliency_count.labels(*key).inc()
            return
        self.resiliency_activations.labels(*key).inc()
        if policy == "circuitbreaker":
            self.resiliency_cb_state.labels(*key).value = _CB_STATE.get(status, -1)


_CB_STATE = {"closed": 0, "half-open": 1, "open": 2}

_COMPONENT_FAMILIES = {
    "state": ("state_count", "state_latency"),
    "configuration": ("configuration_count", "configuration_latency"),
    "secret": ("secret_count", "secret_latency"),
    "output_binding": ("output_binding_count", "output_binding_latency"),
}


@dataclass(slots=True)
class Stopwatch:
    """``elapsed()`` seconds since creation (``time.perf_counter``)."""

    start: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start
