"""Table rows of the built-in workload kinds, computed as the API server's printers compute
them (kubernetes ``pkg/printers/internalversion/printers.go``): ``kubectl get pods`` shows
READY, STATUS and RESTARTS worked out from the container statuses, not a JSONPath.

Each function takes the object and returns every cell, wide (priority 1) ones included;
the client hides those unless ``-o wide``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from wonderland.api.kinds import PrinterColumn
from wonderland.api.printing import human_duration

__all__ = [
    "CRONJOB_COLUMNS",
    "JOB_COLUMNS",
    "NODE_COLUMNS",
    "OPTIMIZATIONJOB_COLUMNS",
    "POD_COLUMNS",
    "PVC_COLUMNS",
    "PV_COLUMNS",
    "STORAGECLASS_COLUMNS",
    "TRAINJOB_COLUMNS",
    "cronjob_row",
    "job_row",
    "node_row",
    "optimizationjob_row",
    "pod_row",
    "pv_row",
    "pvc_row",
    "storageclass_row",
    "trainjob_row",
]

Obj = dict[str, Any]
Row = Callable[[Obj], list[Any]]


def _col(name: str, priority: int = 0, type: str = "string", fmt: str = "") -> PrinterColumn:
    return PrinterColumn(name, type, "", priority=priority, format=fmt)


_NAME = _col("Name", fmt="name")
_AGE = _col("Age")

POD_COLUMNS = (
    _NAME,
    _col("Ready"),
    _col("Status"),
    _col("Restarts"),
    _AGE,
    _col("IP", 1),
    _col("Node", 1),
    _col("Nominated Node", 1),
    _col("Readiness Gates", 1),
)
NODE_COLUMNS = (
    _NAME,
    _col("Status"),
    _col("Roles"),
    _AGE,
    _col("Version"),
    _col("Internal-IP", 1),
    _col("External-IP", 1),
    _col("OS-Image", 1),
    _col("Kernel-Version", 1),
    _col("Container-Runtime", 1),
)
JOB_COLUMNS = (
    _NAME,
    _col("Status"),
    _col("Completions"),
    _col("Duration"),
    _AGE,
    _col("Containers", 1),
    _col("Images", 1),
    _col("Selector", 1),
)
CRONJOB_COLUMNS = (
    _NAME,
    _col("Schedule"),
    _col("Timezone"),
    _col("Suspend", type="boolean"),
    _col("Active", type="integer"),
    _col("Last Schedule"),
    _AGE,
    _col("Containers", 1),
    _col("Images", 1),
    _col("Selector", 1),
)
PVC_COLUMNS = (
    _NAME,
    _col("Status"),
    _col("Volume"),
    _col("Capacity"),
    _col("Access Modes"),
    _col("StorageClass"),
    _col("VolumeAttributesClass"),
    _AGE,
    _col("VolumeMode", 1),
)
PV_COLUMNS = (
    _NAME,
    _col("Capacity"),
    _col("Access Modes"),
    _col("Reclaim Policy"),
    _col("Status"),
    _col("Claim"),
    _col("StorageClass"),
    _col("VolumeAttributesClass"),
    _col("Reason"),
    _AGE,
    _col("VolumeMode", 1),
)
STORAGECLASS_COLUMNS = (
    _NAME,
    _col("Provisioner"),
    _col("ReclaimPolicy"),
    _col("VolumeBindingMode"),
    _col("AllowVolumeExpansion"),
    _AGE,
)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    text = value.replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def since(value: str | None, now: datetime | None = None) -> str:
    """kubectl's ``translateTimestampSince``: ``<unknown>`` when unset."""
    then = _parse_time(value)
    if then is None:
        return "<unknown>"
    return human_duration(((now or datetime.now(UTC)) - then).total_seconds())


def _restartable(container: Obj | None) -> bool:
    return bool(container) and (container or {}).get("restartPolicy") == "Always"


def pod_status_reason(pod: Obj) -> tuple[str, int, int, int, str]:
    """(STATUS, ready containers, total containers, restarts, last restart time)."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    reason = status.get("reason") or phase
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    total = len(spec.get("containers") or [])
    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    total += sum(1 for c in init_specs.values() if _restartable(c))
    ready = restarts = sidecar_restarts = 0
    last_restart = sidecar_last = ""

    def later(a: str, b: str) -> str:
        return b if b and (not a or b > a) else a

    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for i, cs in enumerate(init_statuses):
        state = cs.get("state") or {}
        restarts += int(cs.get("restartCount") or 0)
        finished = ((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt", "")
        last_restart = later(last_restart, finished)
        sidecar = _restartable(init_specs.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += int(cs.get("restartCount") or 0)
            sidecar_last = later(sidecar_last, finished)
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if terminated is not None and int(terminated.get("exitCode") or 0) == 0:
            continue
        if sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if terminated is not None:
            if terminated.get("reason"):
                reason = "Init:" + terminated["reason"]
            elif terminated.get("signal"):
                reason = f"Init:Signal:{terminated['signal']}"
            else:
                reason = f"Init:ExitCode:{terminated.get('exitCode', 0)}"
        elif waiting and waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(spec.get('initContainers') or [])}"
        initializing = True
        break
    initialized = any(
        c.get("type") == "Initialized" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    if not initializing or initialized:
        restarts = sidecar_restarts
        last_restart = sidecar_last
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            state = cs.get("state") or {}
            restarts += int(cs.get("restartCount") or 0)
            finished = ((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt", "")
            last_restart = later(last_restart, finished)
            waiting = state.get("waiting")
            terminated = state.get("terminated")
            if waiting and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated is not None:
                if terminated.get("signal"):
                    reason = f"Signal:{terminated['signal']}"
                else:
                    reason = f"ExitCode:{terminated.get('exitCode', 0)}"
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            pod_ready = any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or []
            )
            reason = "Running" if pod_ready else "NotReady"
    if (pod.get("metadata") or {}).get("deletionTimestamp") and phase not in (
        "Succeeded",
        "Failed",
    ):
        reason = "Terminating"
    return reason, ready, total, restarts, last_restart


def pod_row(pod: Obj) -> list[Any]:
    reason, ready, total, restarts, last = pod_status_reason(pod)
    restarts_text = str(restarts)
    if restarts and last:
        restarts_text = f"{restarts} ({since(last)} ago)"
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    ips = status.get("podIPs") or []
    gates = spec.get("readinessGates") or []
    gates_text = "<none>"
    if gates:
        true = sum(
            1
            for g in gates
            for c in status.get("conditions") or []
            if c.get("type") == g.get("conditionType") and c.get("status") == "True"
        )
        gates_text = f"{true}/{len(gates)}"
    return [
        pod["metadata"]["name"],
        f"{ready}/{total}",
        reason,
        restarts_text,
        since(pod["metadata"].get("creationTimestamp")),
        (ips[0].get("ip") if ips else "") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        gates_text,
    ]


def node_row(node: Obj) -> list[Any]:
    status = node.get("status") or {}
    meta = node["metadata"]
    states = []
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            states.append("Ready" if cond.get("status") == "True" else "NotReady")
    if not states:
        states.append("Unknown")
    if (node.get("spec") or {}).get("unschedulable"):
        states.append("SchedulingDisabled")
    roles = sorted(
        key.removeprefix("node-role.kubernetes.io/")
        for key in (meta.get("labels") or {})
        if key.startswith("node-role.kubernetes.io/")
    )
    info = status.get("nodeInfo") or {}
    addresses = status.get("addresses") or []

    def address(kind: str) -> str:
        for a in addresses:
            if a.get("type") == kind:
                return str(a.get("address"))
        return "<none>"

    return [
        meta["name"],
        ",".join(states),
        ",".join(roles) or "<none>",
        since(meta.get("creationTimestamp")),
        info.get("kubeletVersion", ""),
        address("InternalIP"),
        address("ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _has_condition(obj: Obj, ctype: str) -> bool:
    return any(
        c.get("type") == ctype and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


def _containers_images(template: Obj) -> tuple[str, str]:
    containers = ((template.get("spec") or {}).get("containers")) or []
    return (
        ",".join(str(c.get("name", "")) for c in containers),
        ",".join(str(c.get("image", "")) for c in containers),
    )


def format_label_selector(selector: Obj | None) -> str:
    """metav1.FormatLabelSelector: ``a=b,c in (d,e)``; ``<none>`` when empty."""
    if not selector:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op = expr.get("operator")
        values = ",".join(expr.get("values") or [])
        if op == "In":
            parts.append(f"{expr['key']} in ({values})")
        elif op == "NotIn":
            parts.append(f"{expr['key']} notin ({values})")
        elif op == "Exists":
            parts.append(expr["key"])
        elif op == "DoesNotExist":
            parts.append(f"!{expr['key']}")
    return ",".join(parts) or "<none>"


def job_row(job: Obj) -> list[Any]:
    spec = job.get("spec") or {}
    status = job.get("status") or {}
    succeeded = int(status.get("succeeded") or 0)
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif int(spec.get("parallelism") or 0) > 1:
        completions = f"{succeeded}/1 of {spec['parallelism']}"
    else:
        completions = f"{succeeded}/1"
    started = _parse_time(status.get("startTime"))
    finished = _parse_time(status.get("completionTime"))
    if started is None:
        duration = ""
    elif finished is None:
        duration = human_duration((datetime.now(UTC) - started).total_seconds())
    else:
        duration = human_duration((finished - started).total_seconds())
    if _has_condition(job, "Complete"):
        state = "Complete"
    elif _has_condition(job, "Failed"):
        state = "Failed"
    elif job["metadata"].get("deletionTimestamp"):
        state = "Terminating"
    elif _has_condition(job, "Suspended"):
        state = "Suspended"
    elif _has_condition(job, "FailureTarget"):
        state = "FailureTarget"
    else:
        state = "Running"
    names, images = _containers_images(spec.get("template") or {})
    return [
        job["metadata"]["name"],
        state,
        completions,
        duration,
        since(job["metadata"].get("creationTimestamp")),
        names,
        images,
        format_label_selector(spec.get("selector")),
    ]


def cronjob_row(cron: Obj) -> list[Any]:
    spec = cron.get("spec") or {}
    status = cron.get("status") or {}
    last = status.get("lastScheduleTime")
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    names, images = _containers_images(job_spec.get("template") or {})
    return [
        cron["metadata"]["name"],
        spec.get("schedule", ""),
        spec.get("timeZone") or "<none>",
        bool(spec.get("suspend")),
        len(status.get("active") or []),
        since(last) if last else "<none>",
        since(cron["metadata"].get("creationTimestamp")),
        names,
        images,
        format_label_selector(job_spec.get("selector")),
    ]


_MODES = {
    "ReadWriteOnce": "RWO",
    "ReadOnlyMany": "ROX",
    "ReadWriteMany": "RWX",
    "ReadWriteOncePod": "RWOP",
}


def _modes(modes: list[str] | None) -> str:
    return ",".join(_MODES.get(m, m) for m in modes or [])


def pvc_row(pvc: Obj) -> list[Any]:
    spec = pvc.get("spec") or {}
    status = pvc.get("status") or {}
    phase = status.get("phase") or "Pending"
    if pvc["metadata"].get("deletionTimestamp"):
        phase = "Terminating"
    bound = phase == "Bound"
    return [
        pvc["metadata"]["name"],
        phase,
        spec.get("volumeName", ""),
        str((status.get("capacity") or {}).get("storage", "")) if bound else "",
        _modes(status.get("accessModes")) if bound else "",
        spec.get("storageClassName") or "<unset>",
        spec.get("volumeAttributesClassName") or "<unset>",
        since(pvc["metadata"].get("creationTimestamp")),
        spec.get("volumeMode") or "Filesystem",
    ]


def pv_row(pv: Obj) -> list[Any]:
    spec = pv.get("spec") or {}
    status = pv.get("status") or {}
    claim = spec.get("claimRef") or {}
    phase = status.get("phase") or "Pending"
    if pv["metadata"].get("deletionTimestamp"):
        phase = "Terminating"
    return [
        pv["metadata"]["name"],
        str((spec.get("capacity") or {}).get("storage", "")),
        _modes(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy") or "Retain",
        phase,
        f"{claim.get('namespace')}/{claim.get('name')}" if claim else "",
        spec.get("storageClassName", ""),
        spec.get("volumeAttributesClassName") or "<unset>",
        status.get("reason", ""),
        since(pv["metadata"].get("creationTimestamp")),
        spec.get("volumeMode") or "Filesystem",
    ]


def storageclass_row(sc: Obj) -> list[Any]:
    name = sc["metadata"]["name"]
    annotations = sc["metadata"].get("annotations") or {}
    if annotations.get("storageclass.kubernetes.io/is-default-class") == "true":
        name += " (default)"
    return [
        name,
        sc.get("provisioner", ""),
        sc.get("reclaimPolicy") or "Delete",
        sc.get("volumeBindingMode") or "Immediate",
        "true" if sc.get("allowVolumeExpansion") else "false",
        since(sc["metadata"].get("creationTimestamp")),
    ]


# -- trainer.kubeflow.org ------------------------------------------------------------------

TRAINJOB_COLUMNS = (
    _NAME,
    _col("State"),
    _AGE,
    _col("Progress", 1),
    _col("Metrics", 1),
)


def trainjob_row(job: Obj) -> list[Any]:
    """The CRD's columns (State: the type of the last condition, Age), and in wide output
    the progress and the latest metrics the training code reported."""
    status = job.get("status") or {}
    conditions = status.get("conditions") or []
    state = conditions[-1].get("type", "") if conditions else ""
    trainer = status.get("trainerStatus") or {}
    progress = trainer.get("progressPercentage")
    metrics = ",".join(f"{m.get('name')}={m.get('value')}" for m in trainer.get("metrics") or [])
    return [
        job["metadata"]["name"],
        state,
        since(job["metadata"].get("creationTimestamp")),
        f"{progress}%" if progress is not None else "",
        metrics,
    ]


# OptimizationJob (alpha; upstream's CRD has no printer columns yet)
OPTIMIZATIONJOB_COLUMNS = (
    _NAME,
    _col("State"),
    _col("Trials"),
    _col("Best-Trial"),
    _AGE,
    _col("Parameters", 1),
)


def optimizationjob_row(job: Obj) -> list[Any]:
    """State (the type of the last condition that holds), the trials asked for, the best
    trial so far and, in wide output, the parameters it ran with."""
    status = job.get("status") or {}
    holding = [c for c in status.get("conditions") or [] if c.get("status") == "True"]
    result = status.get("result") or {}
    parameters = ",".join(
        f"{p.get('name')}={p.get('value')}" for p in result.get("parameters") or []
    )
    return [
        job["metadata"]["name"],
        holding[-1].get("type", "") if holding else "",
        str((job.get("spec") or {}).get("numTrials", "")),
        result.get("trainJobName") or "",
        since(job["metadata"].get("creationTimestamp")),
        parameters,
    ]


# -- kubeflow.org (Katib) ----------------------------------------------------------------

EXPERIMENT_COLUMNS = (
    _NAME,
    _col("Type"),
    _col("Status"),
    _col("Trials"),
    _col("Best"),
    _col("Age"),
    _col("Best-Trial", 1),
)
TRIAL_COLUMNS = (_NAME, _col("Type"), _col("Status"), _col("Objective"), _AGE)
SUGGESTION_COLUMNS = (
    _NAME,
    _col("Type"),
    _col("Status"),
    _col("Requested"),
    _col("Assigned"),
    _AGE,
)


def _last_condition(obj: Obj) -> tuple[str, str]:
    """The CRDs' ``.status.conditions[-1:]`` type and status."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    if not conditions:
        return "", ""
    return str(conditions[-1].get("type", "")), str(conditions[-1].get("status", ""))


def _objective_value(obj: Obj, metrics: list[Obj]) -> str:
    """The objective metric's value by its strategy (min/max/latest), as Katib ranks trials."""
    objective = (obj.get("spec") or {}).get("objective") or {}
    name = objective.get("objectiveMetricName")
    strategy = next(
        (s.get("value") for s in objective.get("metricStrategies") or [] if s.get("name") == name),
        "latest",
    )
    for metric in metrics:
        if metric.get("name") == name:
            value = metric.get(strategy or "latest") or metric.get("latest") or ""
            return f"{name}={value}" if value else ""
    return ""


def experiment_row(exp: Obj) -> list[Any]:
    """The CRD's columns (Type and Status of the last condition, Age), the trial counts
    (succeeded/total) and the best objective value so far; wide output adds the best trial."""
    kind, state = _last_condition(exp)
    status = exp.get("status") or {}
    optimal = status.get("currentOptimalTrial") or {}
    metrics = (optimal.get("observation") or {}).get("metrics") or []
    trials = f"{status.get('trialsSucceeded', 0)}/{status.get('trials', 0)}"
    return [
        exp["metadata"]["name"],
        kind,
        state,
        trials,
        _objective_value(exp, metrics),
        since(exp["metadata"].get("creationTimestamp")),
        optimal.get("bestTrialName") or "",
    ]


def trial_row(trial: Obj) -> list[Any]:
    kind, state = _last_condition(trial)
    metrics = ((trial.get("status") or {}).get("observation") or {}).get("metrics") or []
    return [
        trial["metadata"]["name"],
        kind,
        state,
        _objective_value(trial, metrics),
        since(trial["metadata"].get("creationTimestamp")),
    ]


def suggestion_row(suggestion: Obj) -> list[Any]:
    kind, state = _last_condition(suggestion)
    return [
        suggestion["metadata"]["name"],
        kind,
        state,
        str((suggestion.get("spec") or {}).get("requests", "")),
        str((suggestion.get("status") or {}).get("suggestionCount", "")),
        since(suggestion["metadata"].get("creationTimestamp")),
    ]
