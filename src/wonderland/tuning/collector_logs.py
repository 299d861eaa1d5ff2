"""The log of Katib's StdOut collector sidecar, ``metrics-logger-and-collector``.

On a cluster Katib's pod webhook rewrites a StdOut trial's primary container to write its
output to ``/var/log/katib/metrics.log`` and adds the sidecar, which prints that file as
it parses it, so the training output is in the *sidecar's* log; the Kubeflow SDK's
``OptimizerClient.get_job_logs`` reads exactly that container. Here nothing is injected:
metrics are read from the primary container's own log, and a log request for
``metrics-logger-and-collector`` on a StdOut trial's primary pod is answered with the
primary container's log. Other pods, other collectors and the trial's other pods (which
get no sidecar on a cluster either) are refused as unknown containers, as before.
"""

from __future__ import annotations

from typing import Any

from wonderland.api.schemas.katib import TrialObject
from wonderland.errors import NotFoundError
from wonderland.store import Store
from wonderland.training.trainjobs import TRAINJOBS
from wonderland.tuning.admission import TRIALS
from wonderland.tuning.trials import TRIAL_LABEL
from wonderland.workloads.views import ObjectMetaView

__all__ = ["METRICS_COLLECTOR_CONTAINER", "StdOutCollectorLogs"]

Obj = dict[str, Any]
METRICS_COLLECTOR_CONTAINER = "metrics-logger-and-collector"
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"


class StdOutCollectorLogs:
    """A :class:`~wonderland.runtime.kubelet.ContainerLogAlias` for StdOut trials' pods."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __call__(self, pod: Obj, container: str) -> str | None:
        if container != METRICS_COLLECTOR_CONTAINER:
            return None
        meta = ObjectMetaView.model_validate(pod.get("metadata") or {})
        trial = self._trial(meta)
        if trial is None or trial.spec.metricsCollector.kind() not in ("", "StdOut"):
            return None
        primary = trial.spec.primaryPodLabels or {}
        if any(meta.labels.get(key) != value for key, value in primary.items()):
            return None
        return trial.spec.primaryContainerName or None

    def _trial(self, pod: ObjectMetaView) -> TrialObject | None:
        """The trial whose run made the pod: a Job trial labels its pods, a TrainJob trial
        labels the TrainJob its JobSet's pods are named after."""
        name = pod.labels.get(TRIAL_LABEL)
        if name is None and JOBSET_NAME_LABEL in pod.labels:
            try:
                run = self.store.get(TRAINJOBS, pod.namespace, pod.labels[JOBSET_NAME_LABEL])
            except NotFoundError:
                return None
            name = ObjectMetaView.model_validate(run["metadata"]).labels.get(TRIAL_LABEL)
        if name is None:
            return None
        try:
            return TrialObject.model_validate(self.store.get(TRIALS, pod.namespace, name))
        except NotFoundError:
            return None
