"""Where a Pod's metrics are: the scrape targets of the federating endpoint and of a real
Prometheus (file service discovery).

A running Pod is scraped at

- each container port named ``metrics``, ``http-metrics``, ``http-usermetric`` or
  ``dapr-metrics`` (the name Dapr's injector gives daprd's metrics port), native sidecars
  (``initContainers`` with ``restartPolicy: Always``) included, at ``/metrics``;
- ``prometheus.io/port`` and ``prometheus.io/path`` when ``prometheus.io/scrape: "true"``;
- ``prometheus.kserve.io/port`` and ``prometheus.kserve.io/path`` (KServe's runtimes).

Ports here are those of the Pod's spec. The runtime rewrites an app's port to a free one
(as a cluster gives each Pod its own network), so an annotated port that no container
declares stands for the Pod's first port, which is the app's.

Each target carries the Pod's identity as labels, with the names of the peers' metrics:
``namespace``, ``pod``, ``container``, and where they apply ``service``, ``configuration``,
``revision`` (Knative), ``app_id`` (Dapr), ``inferenceservice`` (KServe), ``jobset``
(TrainJobs, trials and JobSets run as JobSets), ``trial`` (Katib).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["METRICS_PORT_NAMES", "ScrapeTarget", "pod_targets", "targets_of"]

METRICS_PORT_NAMES = frozenset({"metrics", "http-metrics", "http-usermetric", "dapr-metrics"})

_LABELS = {
    "serving.knative.dev/service": "service",
    "serving.knative.dev/configuration": "configuration",
    "serving.knative.dev/revision": "revision",
    "serving.kserve.io/inferenceservice": "inferenceservice",
    "jobset.sigs.k8s.io/jobset-name": "jobset",
    "katib.kubeflow.org/trial": "trial",
}


@dataclass(frozen=True)
class ScrapeTarget:
    """One ``/metrics`` to scrape: ``job`` is ``pods``, ``dapr`` or ``kserve``."""

    job: str
    address: str  # host:port
    path: str
    labels: tuple[tuple[str, str], ...]

    @property
    def url(self) -> str:
        return f"http://{self.address}{self.path}"

    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


def _port(value: Any) -> int | None:
    try:
        port = int(value)
    except (TypeError, ValueError):
        return None
    return port if 0 < port < 65536 else None


def _containers(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    sidecars = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    return [*(spec.get("containers") or []), *sidecars]


def pod_targets(pod: Mapping[str, Any]) -> list[ScrapeTarget]:
    """The scrape targets of one Pod; none unless it runs and has an address."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    if meta.get("deletionTimestamp") or status.get("phase") != "Running":
        return []
    ip = status.get("podIP")
    if not ip:
        return []
    host = f"[{ip}]" if ":" in ip else ip
    labels_in = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    base: dict[str, str] = {"namespace": meta.get("namespace", ""), "pod": meta.get("name", "")}
    for key, name in _LABELS.items():
        if labels_in.get(key):
            base[name] = str(labels_in[key])
    if annotations.get("dapr.io/app-id"):
        base["app_id"] = str(annotations["dapr.io/app-id"])

    containers = _containers(pod.get("spec") or {})
    declared: dict[int, str] = {}
    for c in containers:
        for p in c.get("ports") or []:
            number = _port(p.get("containerPort"))
            if number is not None:
                declared.setdefault(number, str(c.get("name", "")))
    first = next(iter(declared), None)

    out: dict[str, ScrapeTarget] = {}

    def add(job: str, port: int, path: str, container: str) -> None:
        address = f"{host}:{port}"
        path = path if path.startswith("/") else f"/{path}"
        if f"{address}{path}" in out:
            return
        labels = {**base, "container": container} if container else dict(base)
        out[f"{address}{path}"] = ScrapeTarget(job, address, path, tuple(sorted(labels.items())))

    for c in containers:
        for p in c.get("ports") or []:
            number = _port(p.get("containerPort"))
            if number is not None and p.get("name") in METRICS_PORT_NAMES:
                job = "dapr" if p.get("name") == "dapr-metrics" else "pods"
                add(job, number, "/metrics", str(c.get("name", "")))

    def annotated(job: str, port_key: str, path_key: str) -> None:
        port = _port(annotations.get(port_key))
        if port is None or port not in declared:
            port = first
        if port is not None:
            add(job, port, str(annotations.get(path_key) or "/metrics"), declared.get(port, ""))

    if str(annotations.get("prometheus.io/scrape", "")).lower() == "true":
        annotated("pods", "prometheus.io/port", "prometheus.io/path")
    if annotations.get("prometheus.kserve.io/port") or annotations.get("prometheus.kserve.io/path"):
        annotated("kserve", "prometheus.kserve.io/port", "prometheus.kserve.io/path")
    return list(out.values())


def targets_of(pods: Iterable[Mapping[str, Any]]) -> list[ScrapeTarget]:
    """Every target of ``pods``, each address and path once."""
    seen: dict[str, ScrapeTarget] = {}
    for pod in pods:
        for target in pod_targets(pod):
            seen.setdefault(target.url, target)
    return list(seen.values())
