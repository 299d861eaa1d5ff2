"""The retraining subscriber: a drift event on the `drift` topic starts a TrainJob.

Dapr delivers each event of the Subscription (subscription.yaml) to POST /drift as a
structured CloudEvent. wonderland.monitoring.retrain makes the TrainJob from trainjob.yaml
(once per ce-id, never two at a time); this app also starts the rollout Job that
canaries the challenger and promotes it (python -m wonderland.monitoring.rollout) and
records what happened as Events on the InferenceService. API access: the kubernetes
client (KUBECONFIG on this platform, the ServiceAccount's token on a cluster).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from wonderland.monitoring.retrain import DriftEvent, DriftEventError, Retrainer
from wonderland.tracking.resolve import resolve_version

log = logging.getLogger("mdlc-retrain")
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

NAMESPACE = os.environ.get("NAMESPACE", "default")
LOOP = os.environ.get("LOOP", "iris-mdlc")
MODEL = os.environ.get("MODEL", "iris-mdlc")
IMAGE = os.environ.get("ROLLOUT_IMAGE", "wonderland/mdlc-retrain")
TEMPLATE = Path(os.environ.get("TRAINJOB_TEMPLATE", Path(__file__).parent / "trainjob.yaml"))
# The rollout's settings (python -m wonderland.monitoring.rollout --help)
ROLLOUT_ARGS = os.environ.get("ROLLOUT_ARGS", "--canary-percent 20").split()

try:
    config.load_kube_config()
except Exception:  # no kubeconfig: a Pod of a cluster
    config.load_incluster_config()
custom, batch, core = client.CustomObjectsApi(), client.BatchV1Api(), client.CoreV1Api()


class TrainJobs:
    """wonderland.monitoring.retrain.TrainJobApi through the kubernetes client."""

    args = ("trainer.kubeflow.org", "v1alpha1")

    def list(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        found = custom.list_namespaced_custom_object(
            *self.args, namespace, "trainjobs", label_selector=label_selector
        )
        return list(found.get("items") or [])

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(
                custom.get_namespaced_custom_object(*self.args, namespace, "trainjobs", name)
            )
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(
            custom.create_namespaced_custom_object(*self.args, namespace, "trainjobs", body)
        )


retrainer = Retrainer(TrainJobs(), yaml.safe_load(TEMPLATE.read_text()), LOOP)


def rollout_job(trainjob: dict[str, Any], isvc: str) -> dict[str, Any]:
    name = trainjob["metadata"]["name"]
    container: dict[str, Any] = {
        "name": "rollout",
        "image": IMAGE,
        "command": ["python", "-m", "wonderland.monitoring.rollout"],
        "args": [
            "--trainjob",
            name,
            "--isvc",
            isvc,
            "--model",
            MODEL,
            "--namespace",
            NAMESPACE,
            *ROLLOUT_ARGS,
        ],
    }
    if os.environ.get("PYTHONPATH"):  # the same code as this app (a development checkout)
        container["env"] = [{"name": "PYTHONPATH", "value": os.environ["PYTHONPATH"]}]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"{name}-rollout",
            "namespace": NAMESPACE,
            "labels": {"mdlc.wonderland.dev/loop": LOOP},
        },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": "mdlc-retrain",
                    "automountServiceAccountToken": True,
                    "containers": [container],
                }
            },
        },
    }


def record(isvc: str, reason: str, message: str) -> None:
    body = {
        "metadata": {"generateName": f"{isvc}.", "namespace": NAMESPACE},
        "involvedObject": {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "name": isvc,
            "namespace": NAMESPACE,
        },
        "reason": reason,
        "message": message,
        "type": "Normal",
        "source": {"component": "mdlc-retrain"},
        "count": 1,
    }
    try:
        core.create_namespaced_event(NAMESPACE, body)
    except client.ApiException as exc:
        log.warning("could not record event %s: %s", reason, exc.reason)


def deciding_rollout() -> str:
    """A rollout Job of this loop that has not finished (its challenger is still on the
    canary): drift events meanwhile describe the champion's reference, not news."""
    jobs = batch.list_namespaced_job(NAMESPACE, label_selector=f"mdlc.wonderland.dev/loop={LOOP}")
    for job in jobs.items:
        conditions = (job.status.conditions if job.status else None) or []
        if not any(c.type in ("Complete", "Failed") and c.status == "True" for c in conditions):
            return str(job.metadata.name)
    return ""


def stale(event: DriftEvent) -> str:
    """Why the event describes a former champion (its window was tested against another
    version's reference, before the detector re-baselined), or "" when it is news."""
    tracking = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not event.reference_version or not tracking:
        return ""
    try:
        champion = resolve_version(f"models:/{MODEL}@champion", tracking, timeout=10).version
    except Exception as exc:  # the registry is down: act on the event
        log.warning("could not read %s@champion: %s", MODEL, exc)
        return ""
    if champion and champion != event.reference_version:
        return f"tested against version {event.reference_version}; the champion is {champion}"
    return ""


def on_drift(event: DriftEvent) -> str:
    rollout = deciding_rollout()
    if rollout:
        log.info("dropped drift event %s: rollout %s is still deciding", event.id, rollout)
        return "DROP"
    why = stale(event)
    if why:
        log.info("dropped drift event %s: %s", event.id, why)
        return "DROP"
    outcome = retrainer.on_event(event)
    log.info("%s: %s", outcome.action, outcome.message)
    if outcome.action == "started":
        record(
            event.inference_service,
            "DriftDetected",
            f"drift in {event.summary()} (event {event.id} from {event.source})",
        )
        job = retrainer.api.get(event.namespace, outcome.trainjob) or {}
        batch.create_namespaced_job(NAMESPACE, rollout_job(job, event.inference_service))
        record(event.inference_service, "RetrainStarted", outcome.message)
    return "SUCCESS" if outcome.action in ("started", "duplicate") else "DROP"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > 1 << 20:
            return await _reply(send, 413, {"status": "DROP", "error": "event over 1 MiB"})
        if not message.get("more_body"):
            break
    if scope["path"] in ("/healthz", "/"):
        return await _reply(send, 200, {"status": "ok"})
    if scope["path"] != "/drift" or scope["method"] != "POST":
        return await _reply(send, 404, {"error": "POST drift events to /drift"})
    try:
        event = DriftEvent.from_cloudevent(json.loads(body))
    except (ValueError, DriftEventError) as exc:
        log.warning("dropped an event: %s", exc)
        return await _reply(send, 200, {"status": "DROP", "error": str(exc)})
    try:
        status = await asyncio.to_thread(on_drift, event)
    except client.ApiException as exc:  # the API is down or refused: Dapr retries
        log.warning("retrain for event %s failed: %s", event.id, exc.reason)
        return await _reply(send, 200, {"status": "RETRY", "error": str(exc.reason)})
    await _reply(send, 200, {"status": status})


async def _reply(send: Any, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": data})
