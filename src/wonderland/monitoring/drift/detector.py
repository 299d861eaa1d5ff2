"""The drift detector's core: windows of logged inputs tested against the reference sample.

Request events (``org.kubeflow.serving.inference.request``) of each InferenceService add
their rows to that service's window; every ``batch_size`` rows the window is tested
(:func:`~wonderland.monitoring.drift.stats.compare`) and emptied (tumbling windows). The
statistics go to the metrics, and a window that drifts becomes a CloudEvent
(:func:`drift_event`) handed to every :class:`EventPublisher`. A drifted window is gone once
tested, so each event is about rows no earlier event covered. No web framework here: the
server (``server.py``) only parses and calls :meth:`DriftDetector.receive`.

:meth:`DriftDetector.rebaseline` switches to another reference (the new champion's
sample, ``refresh.py``): its columns must be the current ones (the model's inputs), else
the current reference stays; a switch empties the pending windows.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from wonderland.monitoring.cloudevents import REQUEST_TYPE, LoggedEvent
from wonderland.monitoring.drift.features import ColumnMismatch, columns_of
from wonderland.monitoring.drift.reference import Reference
from wonderland.monitoring.drift.stats import DriftReport, compare

__all__ = [
    "DRIFT_EVENT_TYPE",
    "DetectorConfig",
    "DriftDetector",
    "EventPublisher",
    "drift_event",
]

log = logging.getLogger("wonderland.monitoring.drift")

DRIFT_EVENT_TYPE = "org.kubeflow.serving.inference.drift"
SUMMARY_FEATURES = 64  # features summarized in the metrics (an image has thousands)


class EventPublisher(Protocol):
    """Where a drift CloudEvent goes (a Dapr pub/sub topic, a reply URL); ``publish`` must
    not raise: it logs and counts its own failures."""

    name: str

    async def publish(self, event: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class DetectorConfig:
    """The knobs: window size (rows), alpha (before Bonferroni), the minimum sample per
    feature, the event's type and source (``{namespace}``/``{name}`` filled in), and the
    InferenceService watched (``--model_name``: the label of the reference's metrics)."""

    batch_size: int = 100
    alpha: float = 0.05
    min_samples: int = 30
    event_type: str = DRIFT_EVENT_TYPE
    event_source: str = "/wonderland/drift-detector/{namespace}/{name}"
    model_name: str = ""


@dataclass
class _Window:
    rows: dict[str, list[Any]]
    size: int = 0
    last: DriftReport | None = None
    tested: int = 0
    drifted: int = 0
    shown: int = 0  # the fill number of the window on the gauges and ``last``


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def drift_event(
    report: DriftReport,
    namespace: str,
    name: str,
    reference: str,
    config: DetectorConfig,
    reference_version: str = "",
) -> dict[str, Any]:
    """The CloudEvent (structured, JSON) of a window that drifted (see docs/monitoring.md);
    ``referenceVersion`` is the registered model version whose sample it was tested against
    ("" when the reference is not from the registry)."""
    now = _now()
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "type": config.event_type,
        "source": config.event_source.format(namespace=namespace, name=name),
        "time": now,
        "datacontenttype": "application/json",
        "data": {
            "inferenceService": name,
            "namespace": namespace,
            "detected": report.detected,
            "features": [f.as_event() for f in report.features],
            "windowSize": report.window_size,
            "threshold": report.threshold,
            "reference": reference,
            "referenceVersion": reference_version,
            "time": now,
        },
    }


@dataclass
class _Metrics:
    registry: CollectorRegistry
    score: Gauge = field(init=False)
    p_value: Gauge = field(init=False)
    detected: Gauge = field(init=False)
    windows: Counter = field(init=False)
    errors: Counter = field(init=False)
    reference_version: Gauge = field(init=False)
    reference_errors: Counter = field(init=False)
    reference_rows: Gauge = field(init=False)
    reference_summary: Gauge = field(init=False)

    def __post_init__(self) -> None:
        labels = ["inferenceservice", "feature", "method"]
        r = self.registry
        self.score = Gauge(
            "wonderland_drift_score",
            "the last window's statistic per feature (KS D, chi-squared, PSI)",
            labels,
            registry=r,
        )
        self.p_value = Gauge(
            "wonderland_drift_p_value", "the last window's p-value per feature", labels, registry=r
        )
        self.detected = Gauge(
            "wonderland_drift_detected",
            "1 when the last window drifted from the reference sample",
            ["inferenceservice"],
            registry=r,
        )
        self.windows = Counter(
            "wonderland_drift_windows_total",
            "windows tested, by outcome",
            ["inferenceservice", "drift"],
            registry=r,
        )
        self.errors = Counter(
            "wonderland_drift_errors_total",
            "logged requests the detector could not read (columns, body)",
            ["inferenceservice", "reason"],
            registry=r,
        )
        self.reference_version = Gauge(
            "wonderland_drift_reference_version",
            "the registered model version whose training sample is the reference",
            ["inferenceservice"],
            registry=r,
        )
        self.reference_rows = Gauge(
            "wonderland_drift_reference_rows",
            "rows and columns of the reference sample",
            ["inferenceservice", "what"],
            registry=r,
        )
        self.reference_summary = Gauge(
            "wonderland_drift_reference_summary",
            "the reference sample per feature: mean, stddev, min, max (numeric) or "
            f"categories (categorical), for its first {SUMMARY_FEATURES} features",
            ["inferenceservice", "feature", "kind", "stat"],
            registry=r,
        )
        self.reference_errors = Counter(
            "wonderland_drift_reference_errors_total",
            "new references not switched to (columns: not the model's inputs; unreadable)",
            ["inferenceservice", "reason"],
            registry=r,
        )


class DriftDetector:
    """Windows per InferenceService, tests, metrics and events (see the module docstring)."""

    def __init__(
        self,
        reference: Reference,
        config: DetectorConfig,
        registry: CollectorRegistry,
        publishers: Sequence[EventPublisher] = (),
    ) -> None:
        self.reference = reference
        self.config = config
        self.publishers = list(publishers)
        self.metrics = _Metrics(registry)
        self.windows: dict[tuple[str, str], _Window] = {}
        self.last_error = ""
        self.events_sent = 0
        self.switches = 0
        self._filled = 0  # windows filled so far, numbered in order
        self.reference_error = ""
        self._tasks: set[asyncio.Task[None]] = set()
        self._show_version(reference)

    def _show_version(self, reference: Reference) -> None:
        if reference.version.isdigit():
            gauge = self.metrics.reference_version.labels(self.config.model_name)
            gauge.set(int(reference.version))
        self._show_summary(reference)

    def _show_summary(self, reference: Reference) -> None:
        """The reference sample's shape and per-feature statistics as gauges (what the
        console's model page shows next to the drift statistics)."""
        name = self.config.model_name
        rows, summary = self.metrics.reference_rows, self.metrics.reference_summary
        summary.clear()  # a re-baseline: the old sample's features go
        rows.labels(name, "rows").set(reference.rows)
        rows.labels(name, "columns").set(len(reference.columns))
        for column in reference.columns[:SUMMARY_FEATURES]:
            kind = reference.kinds.get(column, "numeric")
            values = reference.values[column]
            if kind == "categorical":
                summary.labels(name, column, kind, "categories").set(len({str(v) for v in values}))
                continue
            numbers = np.asarray(
                [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)],
                np.float64,
            )
            numbers = numbers[np.isfinite(numbers)]
            if not len(numbers):
                continue
            for stat, value in (
                ("mean", numbers.mean()),
                ("stddev", numbers.std()),
                ("min", numbers.min()),
                ("max", numbers.max()),
            ):
                summary.labels(name, column, kind, stat).set(float(value))

    def rebaseline(self, reference: Reference) -> bool:
        """Compare with ``reference`` from now on; False (the current one stays, the error
        logged, counted and on the status) when its columns are not the current ones."""
        old = self.reference
        if reference.columns != old.columns:
            self.refuse_reference(
                reference.version,
                "columns",
                f"reference {reference.uri} has the columns [{', '.join(reference.columns)}] "
                f"but the model's inputs, the current reference's ({old.uri}), are "
                f"[{', '.join(old.columns)}]; still comparing with "
                f"{_version_text(old)}: register a sample whose header names the model's "
                "inputs in the same order",
            )
            return False
        self.reference = reference
        self.reference_error = ""
        self.switches += 1
        for (_, name), window in self.windows.items():
            window.rows = {c: [] for c in reference.columns}
            window.size = 0
            window.shown = self._filled  # results of the old reference still in flight
            self.metrics.detected.labels(name).set(0)
        self._show_version(reference)
        log.info(
            "re-baselined: comparing with %s (%s, %d rows) instead of %s; pending windows emptied",
            _version_text(reference),
            reference.uri,
            reference.rows,
            _version_text(old),
        )
        return True

    def refuse_reference(self, version: str, reason: str, message: str) -> None:
        """A new reference that is not switched to: logged, counted (``reason``: columns,
        unreadable) and shown on the status."""
        self.metrics.reference_errors.labels(self.config.model_name, reason).inc()
        self.reference_error = f"version {version or '?'}: {message}"
        log.error("drift detector: not re-baselined to %s", self.reference_error)

    def _window(self, key: tuple[str, str]) -> _Window:
        window = self.windows.get(key)
        if window is None:
            window = self.windows[key] = _Window({c: [] for c in self.reference.columns})
        return window

    def observe(self, event: LoggedEvent) -> list[tuple[str, str, dict[str, list[Any]]]]:
        """Add a request event's rows; the full windows it completed, taken out.

        A body that does not fit the reference raises ValueError (ColumnMismatch names the
        columns); other event types are ignored."""
        if event.type != REQUEST_TYPE:
            return []
        key = (event.namespace or "default", event.inference_service)
        try:
            features = columns_of(event.data, self.reference.columns)
        except ValueError as exc:
            reason = "columns" if isinstance(exc, ColumnMismatch) else "body"
            self.metrics.errors.labels(key[1], reason).inc()
            message = f"InferenceService {key[0]}/{key[1]}: {exc}"
            if message != self.last_error:
                log.error("drift detector: %s", message)
            self.last_error = message
            raise ValueError(message) from None
        window = self._window(key)
        full: list[tuple[str, str, dict[str, list[Any]]]] = []
        rows = len(features[self.reference.columns[0]]) if self.reference.columns else 0
        for column, values in features.items():
            window.rows[column].extend(values)
        window.size += rows
        size = self.config.batch_size
        while window.size >= size:
            batch = {c: v[:size] for c, v in window.rows.items()}
            window.rows = {c: v[size:] for c, v in window.rows.items()}
            window.size -= size
            full.append((key[0], key[1], batch))
        return full

    async def receive(self, event: LoggedEvent) -> None:
        """Observe ``event``; test the windows it filled in the background (against the
        reference of the moment they filled)."""
        ref = self.reference
        for namespace, name, batch in self.observe(event):
            self._filled += 1
            test = self._test(ref, namespace, name, batch, self._filled)
            task = asyncio.get_running_loop().create_task(test)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _test(
        self, ref: Reference, namespace: str, name: str, batch: dict[str, list[Any]], seq: int
    ) -> None:
        cfg = self.config
        try:
            report = await asyncio.to_thread(
                compare, ref.values, batch, ref.kinds, alpha=cfg.alpha, min_samples=cfg.min_samples
            )
        except Exception:
            log.exception("drift detector: testing a window of %s/%s failed", namespace, name)
            return
        self.record(namespace, name, report, seq)
        if report.detected:
            event = drift_event(report, namespace, name, ref.uri, cfg, ref.version)
            log.warning(
                "drift detected in %s/%s: %s",
                namespace,
                name,
                ", ".join(
                    f"{f.name} {f.method} p={f.p_value:.3g}"
                    for f in report.features
                    if f.drift and f.p_value is not None
                ),
            )
            await asyncio.gather(*(p.publish(event) for p in self.publishers))
            self.events_sent += 1

    def record(self, namespace: str, name: str, report: DriftReport, seq: int = 0) -> None:
        """Put a tested window's statistics on the metrics and the status. Windows are
        tested concurrently: a result older (``seq``, the window's fill number) than the
        one shown, or than a re-baselining, is counted but does not replace it."""
        m = self.metrics
        m.windows.labels(name, "true" if report.detected else "false").inc()
        window = self._window((namespace, name))
        window.tested += 1
        window.drifted += int(report.detected)
        if seq and seq <= window.shown:
            return
        window.shown = max(window.shown, seq)
        window.last = report
        for f in report.features:
            m.score.labels(name, f.name, f.method).set(f.score)
            if f.p_value is not None:
                m.p_value.labels(name, f.name, f.method).set(f.p_value)
        m.detected.labels(name).set(1 if report.detected else 0)

    async def drain(self) -> None:
        """Wait for the tests in flight (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def status(self) -> dict[str, Any]:
        """What ``GET /`` shows: the reference, the windows and the last results."""
        ref = self.reference
        out: dict[str, Any] = {
            "reference": {
                "uri": ref.uri,
                "rows": ref.rows,
                "columns": [{"name": c, "kind": ref.kinds[c]} for c in ref.columns],
                "version": ref.version,
                "switches": self.switches,
            },
            "batchSize": self.config.batch_size,
            "alpha": self.config.alpha,
            "publishers": [p.name for p in self.publishers],
            "eventsSent": self.events_sent,
            "inferenceServices": [],
        }
        if self.last_error:
            out["lastError"] = self.last_error
        if self.reference_error:
            out["reference"]["error"] = self.reference_error
        for (namespace, name), window in sorted(self.windows.items()):
            item: dict[str, Any] = {
                "namespace": namespace,
                "name": name,
                "pending": window.size,
                "windowsTested": window.tested,
                "windowsDrifted": window.drifted,
            }
            if window.last is not None:
                item["last"] = {
                    "detected": window.last.detected,
                    "threshold": window.last.threshold,
                    "features": [f.as_event() for f in window.last.features],
                    "skipped": list(window.last.skipped),
                }
            out["inferenceServices"].append(item)
        return out


def _version_text(reference: Reference) -> str:
    return f"version {reference.version}" if reference.version else reference.uri
