"""The Trial controller: Katib's ``trial_controller.go`` with its metrics collectors.

A Trial's ``runSpec`` (a batch/v1 Job or a Trainer TrainJob, named as the trial) is created
with the labels ``katib.kubeflow.org/experiment`` and ``katib.kubeflow.org/trial``,
``KATIB_TRIAL_NAME`` in the primary container's environment and, for the File collector,
Katib's ``metrics-volume`` at the metrics file's directory; for the ``Push`` collector, what
:class:`~wonderland.tuning.push.PushCollectorAccess` gives (so that
``kubeflow.katib.report_metrics`` there reaches the platform's DB manager). Its ``failureCondition`` and
``successCondition`` decide the end. When it succeeded the collector reads the primary
pod (:mod:`.collectors`) into the observation log, and the trial is ``Succeeded`` when the
objective metric is there, ``MetricsUnavailable`` (naming the metric, the collector and
the last lines read) when not. A Push trial's ``status.observation`` follows the
observation log while the run runs, as Katib's Trial controller reads the DB manager's log.
With early-stopping rules the collector reads while the run runs, and a trial that breaks a rule is ``EarlyStopped`` and its run stopped. Unless
``retainRun``, the run is deleted once the trial ended.

With MLflow tracking, each trial gets an MLflow run before its Job or TrainJob is made (in
the experiment named after the Katib Experiment, with the parameter assignments as params;
:mod:`wonderland.tracking.runs`), which that Job or TrainJob continues
(``tracking.wonderland.dev/run-id``); when the trial ends, its observation log is logged to
the run as metrics and the run ended: FINISHED (Succeeded), KILLED (EarlyStopped, Killed) or
FAILED.
"""

from __future__ import annotations

import copy
import math
import posixpath
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wonderland.api.owners import controller_ref
from wonderland.api.schemas.katib import Metric, TrialObject
from wonderland.controllers import Result
from wonderland.controllers.events import EventRecorder
from wonderland.datasets.lineage import mlflow_input, mounted_datasets, run_spec_pod_specs
from wonderland.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidError,
    NotFoundError,
    WonderlandError,
)
from wonderland.store import Store
from wonderland.store.status import replace_status
from wonderland.tracking.access import TrackingAccess
from wonderland.tracking.runs import (
    RUN_ID_ANNOTATION,
    RUN_PENDING_ANNOTATION,
    MetricPoint,
    RunRequest,
    WorkloadRuns,
    annotate,
    experiment_name,
    opted_out,
    run_pending,
)
from wonderland.tuning import job_conditions
from wonderland.tuning.admission import TRIALS
from wonderland.tuning.collectors import (
    METRICS_VOLUME,
    CollectedMetrics,
    PodFiles,
    parse_json,
    parse_text,
    trainer_status_metrics,
)
from wonderland.tuning.earlystopping import broken_rule
from wonderland.tuning.observations import MetricLog, ObservationLogStore
from wonderland.tuning.push import DBManagerNotStartedError, PushCollectorAccess, TrialInjection
from wonderland.tuning.status import (
    UNAVAILABLE,
    TrialObservationView,
    TrialStatusView,
    objective_value,
)
from wonderland.tuning.suggestions import EXPERIMENT_LABEL
from wonderland.tuning.templates import JOB, RUN_KINDS, TRAINJOB

__all__ = ["TRIAL_LABEL", "TrialReconciler", "observation"]

Obj = dict[str, Any]
TRIAL_LABEL = "katib.kubeflow.org/trial"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
COMPONENT = "trial-controller"
EARLY_STOP_POLL = 0.3
PUSH_POLL = 0.5  # how often a running Push trial's observation is refreshed from the log


def _utcnow() -> datetime:
    return datetime.now(UTC)


def observation(logs: list[MetricLog], strategies: list[str]) -> list[Metric]:
    """Katib's ``getMetrics``: min, max and latest of each metric with a strategy."""
    out: list[Metric] = []
    for name in strategies:
        metric = Metric(name=name, min=UNAVAILABLE, max=UNAVAILABLE, latest=UNAVAILABLE)
        latest_at: datetime | None = None
        for log in logs:
            if log.name != name:
                continue
            try:
                number = float(log.value)
            except ValueError:
                number = None
            if number is not None:
                if metric.min == UNAVAILABLE:
                    metric.min = metric.max = log.value
                elif number < float(metric.min):
                    metric.min = log.value
                elif number > float(metric.max):
                    metric.max = log.value
            if latest_at is None or not latest_at > log.timestamp:
                latest_at = log.timestamp
                metric.latest = log.value
        out.append(metric)
    return out


class TrialReconciler:
    """Runs Trials (see the module docstring)."""

    resource: str = TRIALS
    owns: tuple[str, ...] = tuple(RUN_KINDS.values())
    watches: tuple[str, ...] = ()

    def __init__(
        self,
        store: Store,
        record: EventRecorder,
        observations: ObservationLogStore,
        pods: PodFiles,
        forget: Callable[[str], None] | None = None,
        clock: Callable[[], datetime] = _utcnow,
        push: PushCollectorAccess | None = None,
        tracking: TrackingAccess | None = None,
    ) -> None:
        self.store = store
        self.record = record
        self.observations = observations
        self.pods = pods
        self.forget = forget
        self.clock = clock
        self.push = push
        self.runs = (
            WorkloadRuns(tracking, store, record, TRIALS, COMPONENT)
            if tracking is not None
            else None
        )

    async def reconcile(self, namespace: str, name: str) -> Result | None:
        try:
            raw = self.store.get(TRIALS, namespace, name)
        except NotFoundError:
            if self.forget is not None:
                self.forget(name)
            return None
        trial = TrialObject.model_validate(raw)
        status = TrialStatusView.model_validate(raw.get("status") or {})
        before = status.dump()
        now = self.clock()
        requeue: float | None = None
        if not status.conditions:
            status.set("Created", "True", "TrialCreated", "Trial is created", now)
            status.startTime = status.startTime or status.conditions[-1].lastUpdateTime
        run_spec = trial.spec.runSpec or {}
        resource = RUN_KINDS.get((str(run_spec.get("apiVersion")), str(run_spec.get("kind"))))
        if resource is None:
            status.finish(
                "Failed",
                "TrialFailed",
                "Trial has failed: runSpec is neither a "
                "batch/v1 Job nor a trainer.kubeflow.org/v1alpha1 TrainJob",
                now,
            )
        elif not status.completed():
            if status.datasets is None:
                read = mounted_datasets(self.store, namespace, run_spec_pod_specs(run_spec))
                status.datasets = [d.to_dict() for d in read] or None
            pending = self._needs_run(raw, trial, resource)
            requeue = self._run(raw, trial, resource, status, now, pending)
            if pending:
                raw = await self._track(raw, trial, resource)
        # the status first: the experiment moves on to its next trial while the run is
        # cleaned up (a crash in between deletes the run on the next reconcile)
        if status.dump() != before:
            self._write_status(namespace, name, status)
        runs = self._runs()
        if runs is not None and status.completed() and runs.owns_open_run(raw):
            state = status.state()
            await runs.end(
                raw,
                succeeded=state == "Succeeded",
                killed=state in ("EarlyStopped", "Killed"),
                metrics=self._metric_points(name),
            )
        if status.completed() and resource is not None and not trial.spec.retainRun:
            try:
                self.store.delete(resource, namespace, name)
            except NotFoundError:
                pass
        return Result(requeue_after=requeue) if requeue is not None else None

    # -- the MLflow run -----------------------------------------------------------------

    def _runs(self) -> WorkloadRuns | None:
        return self.runs if self.runs is not None and self.runs.enabled else None

    def _needs_run(self, raw: Obj, trial: TrialObject, resource: str) -> bool:
        """Whether the trial's MLflow run is still to be made: tracking is on, nothing
        opted out, and its Job or TrainJob is not made yet or waits for the run."""
        runs = self._runs()
        meta = raw["metadata"]
        if runs is None or runs.run_id(raw) is not None:
            return False
        run_spec = trial.spec.runSpec or {}
        experiment = (meta.get("labels") or {}).get(EXPERIMENT_LABEL, "")
        if (
            opted_out(meta.get("annotations"))
            or opted_out((run_spec.get("metadata") or {}).get("annotations"))
            or opted_out(self._experiment_annotations(meta["namespace"], experiment))
        ):
            return False
        try:
            child = self.store.get(resource, meta["namespace"], meta["name"])
        except NotFoundError:
            return True
        # made before tracking was (its pods run without a run), or made waiting for it
        return run_pending(child)

    async def _track(self, raw: Obj, trial: TrialObject, resource: str) -> Obj:
        """Make the trial's MLflow run (``raw`` as stored after), then hand it to the Job or
        TrainJob made waiting for it (:data:`RUN_PENDING_ANNOTATION`); without a run (MLflow
        failed, a Warning event says why) the child goes on without one."""
        runs = self._runs()
        assert runs is not None
        meta = raw["metadata"]
        experiment = (meta.get("labels") or {}).get(EXPERIMENT_LABEL, "")
        run_spec = trial.spec.runSpec or {}
        params = {a.name: a.value for a in trial.spec.parameterAssignments or []}
        request = RunRequest(
            kind="Trial",
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
            experiment=experiment_name(meta["namespace"], experiment or meta["name"]),
            run_name=meta["name"],
            tags={"katib.experiment": experiment, "katib.trial": meta["name"]},
            params=params,
            code=self._code_folder(trial, run_spec),
        )
        raw, run_id = await runs.ensure(raw, request)
        release: dict[str, str | None] = {RUN_PENDING_ANNOTATION: None}
        if run_id is not None:
            release[RUN_ID_ANNOTATION] = run_id
            read = mounted_datasets(self.store, meta["namespace"], run_spec_pod_specs(run_spec))
            if read:
                await runs.log_inputs(raw, run_id, [mlflow_input(d) for d in read])
        annotate(self.store, resource, meta["namespace"], meta["name"], release)
        return raw

    def _experiment_annotations(self, namespace: str, name: str) -> dict[str, str]:
        if not name:
            return {}
        try:
            found = self.store.get("experiments.kubeflow.org", namespace, name)
        except NotFoundError:
            return {}
        return dict(found["metadata"].get("annotations") or {})

    @staticmethod
    def _code_folder(trial: TrialObject, run_spec: Obj) -> Path | None:
        """The primary container's ``workingDir`` of a Job trial, when absolute."""
        if (run_spec.get("apiVersion"), run_spec.get("kind")) != JOB:
            return None
        pod = ((run_spec.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in pod.get("containers") or []:
            if container.get("name") == trial.spec.primaryContainerName:
                workdir = str(container.get("workingDir") or "")
                return Path(workdir) if posixpath.isabs(workdir) else None
        return None

    def _metric_points(self, name: str) -> list[MetricPoint]:
        """The trial's observation log as MLflow metrics: numeric values only, steps
        counted per metric in the order observed."""
        steps: dict[str, int] = {}
        out: list[MetricPoint] = []
        for log in self.observations.get(name):
            try:
                value = float(log.value)
            except ValueError:
                continue
            if not math.isfinite(value):
                continue
            step = steps.get(log.name, 0)
            steps[log.name] = step + 1
            out.append((log.name, value, step, int(log.timestamp.timestamp() * 1000)))
        return out

    # -- the run ------------------------------------------------------------------------

    def _run(
        self,
        raw: Obj,
        trial: TrialObject,
        resource: str,
        status: TrialStatusView,
        now: datetime,
        pending: bool = False,
    ) -> float | None:
        meta = raw["metadata"]
        try:
            run = self.store.get(resource, meta["namespace"], meta["name"])
        except NotFoundError:
            run = None
        if run is None:
            try:
                body = self._desired_run(raw, trial, pending)
            except DBManagerNotStartedError:
                return EARLY_STOP_POLL  # the platform is still starting its services
            except InvalidError as exc:
                status.finish("Failed", "TrialFailed", f"Trial has failed: {exc}", now)
                return None
            try:
                self.store.create(body)
            except AlreadyExistsError:
                return None
            except InvalidError as exc:
                status.finish(
                    "Failed",
                    "TrialFailed",
                    f"Trial has failed: the {body['kind']} of the trial template is invalid: {exc}",
                    now,
                )
                return None
            kind = body["kind"]
            self.record(
                self.store,
                raw,
                "Normal",
                "JobCreated",
                f"{kind} {meta['name']} has been created",
                COMPONENT,
            )
            return None
        failed = job_conditions.parse(trial.spec.failureCondition).holds(run)
        succeeded = job_conditions.parse(trial.spec.successCondition).holds(run)
        if failed:
            reason, message = _condition_text(run, "Failed")
            collected = self._collect(trial, run)
            self._observe(trial, status, collected)
            status.finish(
                "Failed",
                "TrialFailed" + (f". Job reason: {reason}" if reason else ""),
                "Trial has failed" + (f". Job message: {message}" if message else ""),
                now,
            )
            self.record(
                self.store, raw, "Normal", "JobFailed", f"Job {meta['name']} has failed", COMPONENT
            )
            return None
        if succeeded:
            collected = self._collect(trial, run)
            self._observe(trial, status, collected)
            metrics = status.observation.metrics if status.observation else None
            if objective_value(trial.spec.objective, metrics) != UNAVAILABLE:
                status.finish("Succeeded", "TrialSucceeded", "Trial has succeeded", now)
                self.record(
                    self.store,
                    raw,
                    "Normal",
                    "JobSucceeded",
                    f"Job {meta['name']} has succeeded",
                    COMPONENT,
                )
            else:
                status.finish(
                    "MetricsUnavailable",
                    "MetricsUnavailable",
                    self._unavailable_message(trial, collected),
                    now,
                )
                self.record(
                    self.store,
                    raw,
                    "Warning",
                    "MetricsUnavailable",
                    f"Metrics are not available for Job {meta['name']}",
                    COMPONENT,
                )
            return None
        if not status.is_true("Running"):
            status.set("Running", "True", "TrialRunning", "Trial is running", now)
        rules = trial.spec.earlyStoppingRules or []
        push = trial.spec.metricsCollector.kind() == "Push"
        if not rules and not push:
            return None
        collected = self._collect(trial, run)
        self._observe(trial, status, collected)
        if not rules:
            return PUSH_POLL
        assert trial.spec.objective is not None
        logs = self.observations.get(str(meta["name"]))
        rule = broken_rule(rules, logs, trial.spec.objective)
        if rule is None:
            return EARLY_STOP_POLL
        status.finish("EarlyStopped", "TrialEarlyStopped", "Trial is early stopped", now)
        self._stop(resource, run)
        return None

    def _stop(self, resource: str, run: Obj) -> None:
        """Stop an early-stopped run: suspended when retained (its pods go, the object
        stays), else deleted with the trial's end."""
        body = copy.deepcopy(run)
        body.setdefault("spec", {})["suspend"] = True
        try:
            self.store.update(body)
        except (ConflictError, InvalidError, NotFoundError):
            pass

    def _desired_run(self, raw: Obj, trial: TrialObject, pending: bool = False) -> Obj:
        meta = raw["metadata"]
        run = copy.deepcopy(trial.spec.runSpec or {})
        labels = {
            TRIAL_LABEL: meta["name"],
            EXPERIMENT_LABEL: (meta.get("labels") or {}).get(EXPERIMENT_LABEL, ""),
        }
        run_meta = run.setdefault("metadata", {})
        run_meta["name"] = meta["name"]
        run_meta["namespace"] = meta["namespace"]
        run_meta["labels"] = {**(run_meta.get("labels") or {}), **labels}
        run_meta["ownerReferences"] = [controller_ref(raw)]
        run_id = WorkloadRuns.run_id(raw) if self._runs() is not None else None
        if run_id is not None:
            run_meta["annotations"] = {
                **(run_meta.get("annotations") or {}),
                RUN_ID_ANNOTATION: run_id,
            }
        elif pending:
            run_meta["annotations"] = {
                **(run_meta.get("annotations") or {}),
                RUN_PENDING_ANNOTATION: "true",
            }
        env = {"name": "KATIB_TRIAL_NAME", "value": str(meta["name"])}
        push = self._push_injection(trial)
        if (run.get("apiVersion"), run.get("kind")) == JOB:
            template = run.setdefault("spec", {}).setdefault("template", {})
            tmeta = template.setdefault("metadata", {})
            tmeta["labels"] = {**(tmeta.get("labels") or {}), **labels}
            pod = template.setdefault("spec", {})
            for container in pod.get("containers") or []:
                if container.get("name") == trial.spec.primaryContainerName:
                    container["env"] = [*(container.get("env") or []), env]
                    if trial.spec.metricsCollector.kind() == "File":
                        self._metrics_volume(trial, pod, container)
            if push is not None:
                push.apply_to_pod_spec(pod, trial.spec.primaryContainerName or "")
        elif (run.get("apiVersion"), run.get("kind")) == TRAINJOB:
            trainer = run.setdefault("spec", {}).setdefault("trainer", {})
            trainer["env"] = [*(trainer.get("env") or []), env]
            if push is not None:
                push.apply_to_trainjob(run)
        return run

    def _push_injection(self, trial: TrialObject) -> TrialInjection | None:
        """What a Push trial's primary container needs to reach the DB manager; None for
        other collectors."""
        if trial.spec.metricsCollector.kind() != "Push":
            return None
        if self.push is None:
            raise InvalidError(
                "spec.metricsCollector.collector.kind",
                "Push needs Katib's DB manager, which this platform does not serve; use the "
                "StdOut or File collector, or install the tuning plugin with its Push collector",
            )
        return self.push.trial_injection(str(trial.metadata["name"]))

    @staticmethod
    def _metrics_volume(trial: TrialObject, pod: Obj, container: Obj) -> None:
        """Katib's ``metrics-volume``: an emptyDir at the metrics file's directory, unless a
        mount of the container already holds the file."""
        source = trial.spec.metricsCollector.source
        path = source.fileSystemPath.path if source and source.fileSystemPath else ""
        folder = posixpath.dirname(path)
        for mount in container.get("volumeMounts") or []:
            prefix = str(mount.get("mountPath", "")).rstrip("/")
            if path.startswith(prefix + "/"):
                return
        pod["volumes"] = [*(pod.get("volumes") or []), {"name": METRICS_VOLUME, "emptyDir": {}}]
        container["volumeMounts"] = [
            *(container.get("volumeMounts") or []),
            {"name": METRICS_VOLUME, "mountPath": folder},
        ]

    # -- metrics ------------------------------------------------------------------------

    def _primary_pod(self, trial: TrialObject, run: Obj) -> Obj | None:
        meta = run["metadata"]
        selector = dict(trial.spec.primaryPodLabels or {})
        if run.get("kind") == "Job":
            selector[JOB_NAME_LABEL] = meta["name"]
        else:
            selector[JOBSET_NAME_LABEL] = meta["name"]
        items, _ = self.store.list("pods", meta["namespace"], selector)
        if not items:
            return None
        # The last attempt: a Job's failed pods come before the one that succeeded.
        succeeded = [p for p in items if (p.get("status") or {}).get("phase") == "Succeeded"]
        pool = succeeded or items
        return sorted(pool, key=lambda p: str(p["metadata"].get("creationTimestamp", "")))[-1]

    def _collect(self, trial: TrialObject, run: Obj) -> CollectedMetrics:
        """Read the collector's source, and append what it found that is new to the log."""
        objective = trial.spec.objective
        assert objective is not None
        names = objective.metric_names()
        collector = trial.spec.metricsCollector
        kind = collector.kind() or "StdOut"
        name = str(trial.metadata["name"])
        if kind == "Push":
            return CollectedMetrics(
                self.observations.get(name),
                "the Push collector (metrics reported through Katib's DB manager API)",
            )
        pod = self._primary_pod(trial, run)
        container = trial.spec.primaryContainerName or "node"
        filters = (
            collector.source.filter.metricsFormat
            if collector.source and collector.source.filter
            else None
        )
        found = CollectedMetrics(source=f"the {kind} collector")
        if pod is not None and kind == "StdOut":
            lines = self.pods.log_lines(pod, container)
            found = CollectedMetrics(
                parse_text(lines, names, filters),
                f'the StdOut collector (log of container "{container}" of pod '
                f'"{pod["metadata"]["name"]}")',
                lines[-5:],
            )
        elif pod is not None and kind == "File":
            fs = collector.source.fileSystemPath if collector.source else None
            assert fs is not None
            lines, host = self.pods.file_lines(pod, container, fs.path)
            where = f'the File collector ({fs.format} file {fs.path} of pod "{pod["metadata"]["name"]}")'
            try:
                logs = (
                    parse_json(lines, names)
                    if fs.format == "JSON"
                    else parse_text(lines, names, filters)
                )
            except WonderlandError as exc:
                logs = []
                where += f": {exc}"
            if not lines and not host.exists():
                where += ": the file does not exist"
            found = CollectedMetrics(logs, where, lines[-5:])
        if run.get("kind") == "TrainJob" and not any(
            log.name == objective.objectiveMetricName for log in found.logs
        ):
            reported = trainer_status_metrics(run, names)
            if reported:
                found = CollectedMetrics(reported, "the TrainJob's status.trainerStatus.metrics")
        known = self.observations.get(name)
        fresh = found.logs[len(known) :] if len(found.logs) > len(known) else []
        if fresh:
            self.observations.report(name, fresh)
        return found

    def _observe(
        self, trial: TrialObject, status: TrialStatusView, found: CollectedMetrics
    ) -> None:
        objective = trial.spec.objective
        assert objective is not None
        strategies = [s.name for s in objective.metricStrategies or []] or objective.metric_names()
        logs = self.observations.get(str(trial.metadata["name"]))
        if logs:
            status.observation = TrialObservationView(metrics=observation(logs, strategies))

    @staticmethod
    def _unavailable_message(trial: TrialObject, found: CollectedMetrics) -> str:
        objective = trial.spec.objective
        assert objective is not None
        return (
            f'Metrics are not available: the objective metric "{objective.objectiveMetricName}" '
            f"was not found by {found.source}; {found.describe_tail()}. Print lines such as "
            f"{objective.objectiveMetricName}=0.25 (or set "
            "metricsCollectorSpec.source.filter.metricsFormat)"
        )

    def _write_status(self, namespace: str, name: str, status: TrialStatusView) -> None:
        replace_status(self.store, TRIALS, namespace, name, status.dump())


def _condition_text(run: Obj, kind: str) -> tuple[str, str]:
    for cond in (run.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return str(cond.get("reason") or ""), str(cond.get("message") or "")
    return "", ""
