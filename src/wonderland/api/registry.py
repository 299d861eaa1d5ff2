"""The kind registry: find a :class:`ResourceKind` by any name a user may type.

``lookup`` accepts what kubectl accepts: the plural (``services``), the singular
(``service``), a short name (``ksvc``), the kind (``Service``) and the fully qualified
``<plural>.<group>`` (``services.serving.knative.dev``). When two groups share a name
(Knative and Dapr both have ``Configuration``) the kind registered first wins, as
kubectl prefers one group; the qualified name always picks exactly.
"""

from __future__ import annotations

from wonderland.api import core_printers
from wonderland.api.kinds import PrinterColumn, ResourceKind
from wonderland.errors import NotFoundError

__all__ = ["all_kinds", "for_object", "lookup", "register"]

_READY = ".status.conditions[?(@.type=='Ready')].status"
_REASON = ".status.conditions[?(@.type=='Ready')].reason"
_AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp")

_KINDS: dict[str, ResourceKind] = {}
_BY_API: dict[tuple[str, str], ResourceKind] = {}
_BY_NAME: dict[str, ResourceKind] = {}


def register(kind: ResourceKind) -> ResourceKind:
    """Add a kind (later areas may add their own); names already taken keep their kind."""
    if kind.resource in _KINDS:
        raise ValueError(f"kind {kind.resource} is registered twice")
    _KINDS[kind.resource] = kind
    for api_version in kind.api_versions():
        _BY_API[(api_version, kind.kind)] = kind
    names = [kind.resource, kind.plural, kind.singular, kind.kind.lower(), *kind.short_names]
    for name in names:
        _BY_NAME.setdefault(name.lower(), kind)
    return kind


def all_kinds() -> list[ResourceKind]:
    """Every registered kind, in registration order."""
    return list(_KINDS.values())


def lookup(name: str) -> ResourceKind:
    """The kind a user means by ``name`` (plural, singular, short name, kind or qualified)."""
    key = name.strip().lower()
    found = _BY_NAME.get(key)
    if found is None and "." in key:
        # kubectl also accepts <plural>.<version>.<group> and <singular>.<group>.
        head, _, group = key.partition(".")
        for candidate in _KINDS.values():
            qualified = {candidate.group, *(f"{v}.{candidate.group}" for v in candidate.versions)}
            if group in qualified and head in (candidate.plural, candidate.singular):
                found = candidate
                break
    if found is None:
        known = ", ".join(sorted({k.plural for k in _KINDS.values()}))
        raise NotFoundError(
            f'the server doesn\'t have a resource type "{name}"; known types: {known}'
        )
    return found


def for_object(api_version: str, kind: str) -> ResourceKind:
    """The kind of an object with this ``apiVersion`` and ``kind``."""
    found = _BY_API.get((api_version, kind))
    if found is None:
        versions = [k for (av, kk), k in _BY_API.items() if kk == kind]
        if versions:
            accepted = ", ".join(sorted(av for (av, kk) in _BY_API if kk == kind))
            raise NotFoundError(
                f'no kind "{kind}" is registered for version "{api_version}"; '
                f"use apiVersion {accepted}"
            )
        raise NotFoundError(
            f'no kind "{kind}" is registered for version "{api_version}"; '
            "wonderland serves Knative Serving, KServe, Dapr, ConfigMap and Secret kinds"
        )
    return found


register(
    ResourceKind(
        group="serving.knative.dev",
        version="v1",
        kind="Service",
        plural="services",
        singular="service",
        short_names=("kservice", "ksvc"),
        categories=("all", "knative", "serving"),
        printer_columns=(
            PrinterColumn("URL", "string", ".status.url"),
            PrinterColumn("LatestCreated", "string", ".status.latestCreatedRevisionName"),
            PrinterColumn("LatestReady", "string", ".status.latestReadyRevisionName"),
            PrinterColumn("Ready", "string", _READY),
            PrinterColumn("Reason", "string", _REASON),
        ),
    )
)
register(
    ResourceKind(
        group="serving.knative.dev",
        version="v1",
        kind="Configuration",
        plural="configurations",
        singular="configuration",
        short_names=("config", "cfg"),
        categories=("all", "knative", "serving"),
        printer_columns=(
            PrinterColumn("LatestCreated", "string", ".status.latestCreatedRevisionName"),
            PrinterColumn("LatestReady", "string", ".status.latestReadyRevisionName"),
            PrinterColumn("Ready", "string", _READY),
            PrinterColumn("Reason", "string", _REASON),
        ),
    )
)
register(
    ResourceKind(
        group="serving.knative.dev",
        version="v1",
        kind="Revision",
        plural="revisions",
        singular="revision",
        short_names=("rev",),
        categories=("all", "knative", "serving"),
        printer_columns=(
            PrinterColumn(
                "Config Name", "string", ".metadata.labels['serving\\.knative\\.dev/configuration']"
            ),
            PrinterColumn(
                "Generation",
                "string",
                ".metadata.labels['serving\\.knative\\.dev/configurationGeneration']",
            ),
            PrinterColumn("Ready", "string", _READY),
            PrinterColumn("Reason", "string", _REASON),
            PrinterColumn("Actual Replicas", "integer", ".status.actualReplicas"),
            PrinterColumn("Desired Replicas", "integer", ".status.desiredReplicas"),
        ),
    )
)
register(
    ResourceKind(
        group="serving.knative.dev",
        version="v1",
        kind="Route",
        plural="routes",
        singular="route",
        short_names=("rt",),
        categories=("all", "knative", "serving"),
        printer_columns=(
            PrinterColumn("URL", "string", ".status.url"),
            PrinterColumn("Ready", "string", _READY),
            PrinterColumn("Reason", "string", _REASON),
        ),
    )
)
register(
    ResourceKind(
        group="serving.kserve.io",
        version="v1beta1",
        kind="InferenceService",
        plural="inferenceservices",
        singular="inferenceservice",
        short_names=("isvc",),
        printer_columns=(
            PrinterColumn("URL", "string", ".status.url"),
            PrinterColumn("Ready", "string", _READY),
            PrinterColumn(
                "Prev",
                "integer",
                ".status.components.predictor.traffic[?(@.tag=='prev')].percent",
            ),
            PrinterColumn(
                "Latest",
                "integer",
                ".status.components.predictor.traffic[?(@.latestRevision==true)].percent",
            ),
            PrinterColumn(
                "PrevRolledoutRevision",
                "string",
                ".status.components.predictor.traffic[?(@.tag=='prev')].revisionName",
                priority=1,
            ),
            PrinterColumn(
                "LatestReadyRevision",
                "string",
                ".status.components.predictor.traffic[?(@.latestRevision==true)].revisionName",
                priority=1,
            ),
            _AGE,
        ),
    )
)
_RUNTIME_COLUMNS = (
    PrinterColumn("Disabled", "boolean", ".spec.disabled"),
    PrinterColumn("ModelType", "string", ".spec.supportedModelFormats[*].name"),
    PrinterColumn("Containers", "string", ".spec.containers[*].name"),
    _AGE,
)
register(
    ResourceKind(
        group="serving.kserve.io",
        version="v1alpha1",
        kind="ServingRuntime",
        plural="servingruntimes",
        singular="servingruntime",
        printer_columns=_RUNTIME_COLUMNS,
    )
)
register(
    ResourceKind(
        group="serving.kserve.io",
        version="v1alpha1",
        kind="ClusterServingRuntime",
        plural="clusterservingruntimes",
        singular="clusterservingruntime",
        namespaced=False,
        printer_columns=_RUNTIME_COLUMNS,
    )
)
register(
    ResourceKind(
        group="dapr.io",
        version="v1alpha1",
        kind="Component",
        plural="components",
        singular="component",
        subresources=(),
    )
)
register(
    ResourceKind(
        group="dapr.io",
        version="v1alpha1",
        kind="Resiliency",
        plural="resiliencies",
        singular="resiliency",
        subresources=(),
    )
)
register(
    ResourceKind(
        group="dapr.io",
        version="v1alpha1",
        kind="Configuration",
        plural="configurations",
        singular="configuration",
        subresources=(),
    )
)
register(
    ResourceKind(
        group="dapr.io",
        version="v2alpha1",
        versions=("v2alpha1", "v1alpha1"),
        kind="Subscription",
        plural="subscriptions",
        singular="subscription",
        subresources=(),
    )
)
register(
    ResourceKind(
        group="",
        version="v1",
        kind="ConfigMap",
        plural="configmaps",
        singular="configmap",
        short_names=("cm",),
        printer_columns=(PrinterColumn("Data", "integer", ".data"), _AGE),
        subresources=(),
    )
)
register(
    ResourceKind(
        group="",
        version="v1",
        kind="Secret",
        plural="secrets",
        singular="secret",
        printer_columns=(
            PrinterColumn("Type", "string", ".type"),
            PrinterColumn("Data", "integer", ".data"),
            _AGE,
        ),
        subresources=(),
    )
)
register(
    ResourceKind(
        group="",
        version="v1",
        kind="Namespace",
        plural="namespaces",
        singular="namespace",
        short_names=("ns",),
        namespaced=False,
        printer_columns=(PrinterColumn("Status", "string", ".status.phase"), _AGE),
    )
)
register(
    ResourceKind(
        group="",
        version="v1",
        kind="Event",
        plural="events",
        singular="event",
        short_names=("ev",),
        printer_columns=(
            PrinterColumn("Last Seen", "date", ".lastTimestamp"),
            PrinterColumn("Type", "string", ".type"),
            PrinterColumn("Reason", "string", ".reason"),
            PrinterColumn("Object", "string", ".involvedObject.name"),
            PrinterColumn("Message", "string", ".message"),
        ),
        subresources=(),
    )
)

register(
    ResourceKind(
        group="",
        version="v1",
        kind="Pod",
        plural="pods",
        singular="pod",
        short_names=("po",),
        categories=("all",),
        printer_columns=core_printers.POD_COLUMNS,
        row=core_printers.pod_row,
        graceful_deletion=True,
        read_subresources=("log",),
    )
)
register(
    ResourceKind(
        group="",
        version="v1",
        kind="Node",
        plural="nodes",
        singular="node",
        short_names=("no",),
        namespaced=False,
        printer_columns=core_printers.NODE_COLUMNS,
        row=core_printers.node_row,
    )
)
register(
    ResourceKind(
        group="",
        version="v1",
        kind="PersistentVolumeClaim",
        plural="persistentvolumeclaims",
        singular="persistentvolumeclaim",
        short_names=("pvc",),
        printer_columns=core_printers.PVC_COLUMNS,
        row=core_printers.pvc_row,
    )
)
register(
    ResourceKind(
        group="",
        version="v1",
        kind="PersistentVolume",
        plural="persistentvolumes",
        singular="persistentvolume",
        short_names=("pv",),
        namespaced=False,
        printer_columns=core_printers.PV_COLUMNS,
        row=core_printers.pv_row,
    )
)
register(
    ResourceKind(
        group="storage.k8s.io",
        version="v1",
        kind="StorageClass",
        plural="storageclasses",
        singular="storageclass",
        short_names=("sc",),
        namespaced=False,
        printer_columns=core_printers.STORAGECLASS_COLUMNS,
        row=core_printers.storageclass_row,
        subresources=(),
    )
)
register(
    ResourceKind(
        group="batch",
        version="v1",
        kind="Job",
        plural="jobs",
        singular="job",
        categories=("all",),
        printer_columns=core_printers.JOB_COLUMNS,
        row=core_printers.job_row,
    )
)
register(
    ResourceKind(
        group="batch",
        version="v1",
        kind="CronJob",
        plural="cronjobs",
        singular="cronjob",
        short_names=("cj",),
        categories=("all",),
        printer_columns=core_printers.CRONJOB_COLUMNS,
        row=core_printers.cronjob_row,
    )
)
# Kubeflow Trainer v2: the CRDs' names and columns (no shortNames upstream).
register(
    ResourceKind(
        group="trainer.kubeflow.org",
        version="v1alpha1",
        kind="TrainJob",
        plural="trainjobs",
        singular="trainjob",
        printer_columns=core_printers.TRAINJOB_COLUMNS,
        row=core_printers.trainjob_row,
    )
)
# Trainer's OptimizationJob (main branch, in no release yet): no printer columns upstream;
# these show the state, the trial budget and the best trial.
register(
    ResourceKind(
        group="trainer.kubeflow.org",
        version="v1alpha1",
        kind="OptimizationJob",
        plural="optimizationjobs",
        singular="optimizationjob",
        printer_columns=core_printers.OPTIMIZATIONJOB_COLUMNS,
        row=core_printers.optimizationjob_row,
    )
)
register(
    ResourceKind(
        group="trainer.kubeflow.org",
        version="v1alpha1",
        kind="TrainingRuntime",
        plural="trainingruntimes",
        singular="trainingruntime",
        printer_columns=(_AGE,),
        subresources=(),
    )
)
register(
    ResourceKind(
        group="trainer.kubeflow.org",
        version="v1alpha1",
        kind="ClusterTrainingRuntime",
        plural="clustertrainingruntimes",
        singular="clustertrainingruntime",
        namespaced=False,
        printer_columns=(_AGE,),
        subresources=(),
    )
)
# Katib v1beta1: the CRDs' names, categories and columns (no shortNames upstream); the
# experiment's wide output adds the best trial and its objective value.
register(
    ResourceKind(
        group="kubeflow.org",
        version="v1beta1",
        kind="Experiment",
        plural="experiments",
        singular="experiment",
        categories=("all", "kubeflow", "katib"),
        printer_columns=core_printers.EXPERIMENT_COLUMNS,
        row=core_printers.experiment_row,
    )
)
register(
    ResourceKind(
        group="kubeflow.org",
        version="v1beta1",
        kind="Trial",
        plural="trials",
        singular="trial",
        categories=("all", "kubeflow", "katib"),
        printer_columns=core_printers.TRIAL_COLUMNS,
        row=core_printers.trial_row,
    )
)
register(
    ResourceKind(
        group="kubeflow.org",
        version="v1beta1",
        kind="Suggestion",
        plural="suggestions",
        singular="suggestion",
        categories=("all", "kubeflow", "katib"),
        printer_columns=core_printers.SUGGESTION_COLUMNS,
        row=core_printers.suggestion_row,
    )
)
# Kubeflow's PodDefault (admission webhook) and Notebook (notebook controller) CRDs: their
# names, no shortNames or printer columns upstream.
register(
    ResourceKind(
        group="kubeflow.org",
        version="v1alpha1",
        kind="PodDefault",
        plural="poddefaults",
        singular="poddefault",
        printer_columns=(_AGE,),
        subresources=(),
    )
)
register(
    ResourceKind(
        group="kubeflow.org",
        version="v1",
        kind="Notebook",
        plural="notebooks",
        singular="notebook",
        printer_columns=(_AGE,),
    )
)
# metrics.k8s.io: live usage from the kubelet (``kubectl top``), never stored.
register(
    ResourceKind(
        group="metrics.k8s.io",
        version="v1beta1",
        kind="NodeMetrics",
        plural="nodes",
        singular="",
        namespaced=False,
        subresources=(),
        verbs=("get", "list"),
    )
)
register(
    ResourceKind(
        group="metrics.k8s.io",
        version="v1beta1",
        kind="PodMetrics",
        plural="pods",
        singular="",
        subresources=(),
        verbs=("get", "list"),
    )
)
register(
    ResourceKind(
        group="coordination.k8s.io",
        version="v1",
        kind="Lease",
        plural="leases",
        singular="lease",
        printer_columns=(
            PrinterColumn("Holder", "string", ".spec.holderIdentity"),
            _AGE,
        ),
        subresources=(),
    )
)
# jobset.x-k8s.io: as the JobSet CRD of kubernetes-sigs/jobset v0.12 (no short names, no
# categories, these printer columns).
register(
    ResourceKind(
        group="jobset.x-k8s.io",
        version="v1alpha2",
        kind="JobSet",
        plural="jobsets",
        singular="jobset",
        printer_columns=(
            PrinterColumn(
                "TerminalState",
                "string",
                ".status.terminalState",
                description="Final state of JobSet",
            ),
            PrinterColumn(
                "Restarts", "string", ".status.restarts", description="Number of restarts"
            ),
            PrinterColumn(
                "Completed", "string", ".status.conditions[?(@.type=='Completed')].status"
            ),
            PrinterColumn("Suspended", "string", ".spec.suspend", description="JobSet suspended"),
            PrinterColumn(
                "Age",
                "date",
                ".metadata.creationTimestamp",
                description="Time this JobSet was created",
            ),
        ),
    )
)
