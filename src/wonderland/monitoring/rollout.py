"""The rollout after a retrain: challenger → canary → champion (or kept out), as a Job.

``python -m wonderland.monitoring.rollout --trainjob NAME --isvc ISVC --model MODEL`` runs
in a Pod (a Job the retrain subscriber makes next to its TrainJob; the same image on a
cluster). Each step is printed and recorded as a Kubernetes Event on the InferenceService:

1. wait for the TrainJob (``Failed``: event ``RetrainFailed``, exit 1);
2. the version its run registered under alias ``challenger`` (``ChallengerRegistered``);
3. the InferenceService serves ``models:/MODEL@challenger`` as a canary of
   ``--canary-percent`` (KServe's ``canaryTrafficPercent``; the champion's revision keeps
   the rest), and waits until the canary revision takes its share (``CanaryServing``);
4. the two revisions' live figures, read from their model servers' ``/metrics``, are
   judged by :class:`~wonderland.monitoring.promotion.PromotionPolicy`;
5. promoted: alias ``champion`` moves to the challenger's version (tags on the version say
   who, why and which drift event), the InferenceService goes back to
   ``models:/MODEL@champion`` without a canary, which is the version the canary already
   runs (``Promoted``); kept: the champion stays, the version gets the reason as a tag and
   the InferenceService goes back to the champion (``PromotionRefused``).

Needs the ``kubernetes`` client (API access: ``KUBECONFIG`` or in-cluster) and
``MLFLOW_TRACKING_URI``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from wonderland.monitoring.promotion import (
    PromotionPolicy,
    RevisionStats,
    Verdict,
    judge,
    scrape,
)
from wonderland.tracking.client import RestClient

__all__ = ["main"]

ISVC_GROUP, ISVC_VERSION, ISVC_PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
TJ_GROUP, TJ_VERSION, TJ_PLURAL = "trainer.kubeflow.org", "v1alpha1", "trainjobs"
COMPONENT = "mdlc-rollout"

Obj = dict[str, Any]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _say(step: str, message: str) -> None:
    print(f"{_now()} {step}: {message}", flush=True)


def _condition(obj: Mapping[str, Any], ctype: str) -> bool:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype and cond.get("status") == "True":
            return True
    return False


def _wait(check: Callable[[], Any], timeout: float, what: str, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


class _Cluster:
    """The few API calls a rollout makes, through the ``kubernetes`` client."""

    def __init__(self, namespace: str) -> None:
        from kubernetes import client, config

        loader: Any = config
        try:
            loader.load_kube_config()
        except Exception:  # no kubeconfig: in a cluster's Pod
            loader.load_incluster_config()
        self.namespace = namespace
        # the client's stubs type bodies as its models; these calls send and get plain dicts
        self.custom: Any = client.CustomObjectsApi()
        self.core: Any = client.CoreV1Api()
        self._api: Any = client.ApiClient()

    def trainjob(self, name: str) -> Obj:
        return dict(
            self.custom.get_namespaced_custom_object(
                TJ_GROUP, TJ_VERSION, self.namespace, TJ_PLURAL, name
            )
        )

    def isvc(self, name: str) -> Obj:
        return dict(
            self.custom.get_namespaced_custom_object(
                ISVC_GROUP, ISVC_VERSION, self.namespace, ISVC_PLURAL, name
            )
        )

    def patch_predictor(self, name: str, model_patch: Obj, canary: int | None) -> None:
        predictor: Obj = {"model": model_patch, "canaryTrafficPercent": canary}
        self.custom.patch_namespaced_custom_object(
            ISVC_GROUP,
            ISVC_VERSION,
            self.namespace,
            ISVC_PLURAL,
            name,
            {"spec": {"predictor": predictor}},
        )

    def pods(self, selector: str) -> list[Obj]:
        found = self.core.list_namespaced_pod(self.namespace, label_selector=selector)
        return [dict(self._api.sanitize_for_serialization(p)) for p in found.items]

    def event(self, isvc: Obj, reason: str, message: str, warning: bool = False) -> None:
        meta = isvc["metadata"]
        now = datetime.datetime.now(datetime.UTC)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": self.namespace},
            "involvedObject": {
                "apiVersion": f"{ISVC_GROUP}/{ISVC_VERSION}",
                "kind": "InferenceService",
                "name": meta["name"],
                "namespace": self.namespace,
                "uid": meta.get("uid", ""),
            },
            "reason": reason,
            "message": message[:1000],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT},
            "firstTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lastTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "count": 1,
        }
        try:
            self.core.create_namespaced_event(self.namespace, body)
        except Exception as exc:
            _say("warning", f"could not record event {reason}: {exc}")


def _predictor_traffic(isvc: Mapping[str, Any]) -> list[Obj]:
    comps = (isvc.get("status") or {}).get("components") or {}
    return list((comps.get("predictor") or {}).get("traffic") or [])


def _set_version_tags(
    mlflow: RestClient, model: str, version: str, tags: Mapping[str, str]
) -> None:
    for key, value in tags.items():
        mlflow.call(
            "POST",
            "/model-versions/set-tag",
            body={"name": model, "version": version, "key": key, "value": value[:5000]},
        )


def run(args: argparse.Namespace) -> int:
    policy = PromotionPolicy(
        min_requests=args.min_requests,
        max_seconds=args.max_seconds,
        error_rate_margin=args.error_rate_margin,
        latency_ratio=args.latency_ratio,
        latency_slack_seconds=args.latency_slack_ms / 1000,
    )
    cluster = _Cluster(args.namespace)
    tracking = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not tracking:
        print("MLFLOW_TRACKING_URI is not set; the rollout needs the registry", file=sys.stderr)
        return 2
    mlflow = RestClient(tracking)
    isvc = cluster.isvc(args.isvc)
    model = args.model

    # 1. the retrain
    _say("retrain", f"waiting for TrainJob {args.trainjob}")

    def trained() -> str | None:
        job = cluster.trainjob(args.trainjob)
        return next((c for c in ("Complete", "Failed") if _condition(job, c)), None)

    state = _wait(trained, args.train_timeout, f"TrainJob {args.trainjob}")
    if state == "Failed":
        cluster.event(isvc, "RetrainFailed", f"TrainJob {args.trainjob} failed", warning=True)
        _say("retrain", f"TrainJob {args.trainjob} failed; the champion stays")
        return 1
    _say("retrain", f"TrainJob {args.trainjob} finished")

    # 2. the challenger it registered
    mv = mlflow.version_by_alias(model, "challenger")
    version = str(mv["version"])
    run_id = str(mv.get("run_id") or "")
    made_by = ""
    if run_id:
        tags = {t["key"]: t["value"] for t in mlflow.get_run(run_id)["data"].get("tags") or []}
        made_by = tags.get("wonderland.name", "")
    if made_by and made_by != args.trainjob:
        _say(
            "challenger",
            f"{model}@challenger is version {version}, made by {made_by}, not "
            f"{args.trainjob}; nothing to roll out",
        )
        return 1
    try:
        champion = str(mlflow.version_by_alias(model, "champion")["version"])
    except Exception:
        champion = ""
    cluster.event(
        isvc,
        "ChallengerRegistered",
        f"{model} version {version} is the challenger (TrainJob "
        f"{args.trainjob}); champion: version {champion or 'none'}",
    )
    _say("challenger", f"{model} version {version} registered as challenger")

    # 3. the canary
    uri = f"models:/{model}@challenger"
    cluster.patch_predictor(args.isvc, {"storageUri": uri}, args.canary_percent)

    def canary_serving() -> tuple[str, str] | None:
        current = cluster.isvc(args.isvc)
        registry = (current.get("status") or {}).get("modelRegistry") or {}
        traffic = _predictor_traffic(current)
        latest = [t for t in traffic if t.get("tag") == "latest" and t.get("revisionName")]
        prev = [t for t in traffic if t.get("tag") == "prev" and t.get("revisionName")]
        if registry.get("version") != version or not latest or not prev:
            return None
        # until the new revision is Ready, `latest` still resolves to the champion's
        if latest[0]["revisionName"] == prev[0]["revisionName"]:
            return None
        if latest[0].get("percent") != args.canary_percent:
            return None
        return str(latest[0]["revisionName"]), str(prev[0]["revisionName"])

    canary_rev, champion_rev = _wait(canary_serving, args.canary_timeout, "the canary revision")
    started = time.monotonic()
    cluster.event(
        isvc,
        "CanaryServing",
        f"version {version} on revision {canary_rev} takes {args.canary_percent}% of the "
        f"traffic, revision {champion_rev} (champion) {100 - args.canary_percent}%",
    )
    _say(
        "canary",
        f"{canary_rev} (version {version}) {args.canary_percent}% / {champion_rev} (champion) "
        f"{100 - args.canary_percent}%",
    )

    # 4. the verdict
    selector = f"serving.kserve.io/inferenceservice={args.isvc}"
    base = scrape(cluster.pods(selector))
    base_ch, base_ca = base.get(champion_rev), base.get(canary_rev)
    verdict: Verdict | None = None
    _say("watch", policy.describe())
    while verdict is None:
        time.sleep(args.interval)
        now = scrape(cluster.pods(selector))
        ch = now.get(champion_rev, RevisionStats(champion_rev)).since(base_ch)
        ca = now.get(canary_rev, RevisionStats(canary_rev)).since(base_ca)
        verdict = judge(policy, ch, ca, time.monotonic() - started)

    # 5. promote or keep
    drift = cluster.trainjob(args.trainjob)["metadata"].get("annotations") or {}
    why = {
        "wonderland.promotion.by": f"Job {os.environ.get('HOSTNAME', COMPONENT)} (policy: "
        f"{policy.describe()})",
        "wonderland.promotion.reason": verdict.reason,
        "wonderland.promotion.drift_event": drift.get("mdlc.wonderland.dev/drift-event-id", ""),
        "wonderland.promotion.drift_features": drift.get("mdlc.wonderland.dev/drift-features", ""),
        "wonderland.promotion.trainjob": args.trainjob,
    }
    if verdict.promote:
        mlflow.set_alias(model, "champion", version)
        _set_version_tags(mlflow, model, version, {**why, "wonderland.promotion": "promoted"})
        cluster.patch_predictor(args.isvc, {"storageUri": f"models:/{model}@champion"}, None)
        cluster.event(
            isvc, "Promoted", f"{model} version {version} is the champion: {verdict.reason}"
        )
        _say("promoted", f"{model}@champion → version {version}: {verdict.reason}")
    else:
        _set_version_tags(mlflow, model, version, {**why, "wonderland.promotion": "kept"})
        cluster.patch_predictor(args.isvc, {"storageUri": f"models:/{model}@champion"}, None)
        cluster.event(
            isvc,
            "PromotionRefused",
            f"{model} version {version} stays challenger, champion stays version "
            f"{champion or 'none'}: {verdict.reason}",
            warning=True,
        )
        _say("kept", f"champion stays version {champion or 'none'}: {verdict.reason}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wonderland.monitoring.rollout",
        description="Wait for a retrain, canary its challenger, promote it if no worse.",
    )
    parser.add_argument("--trainjob", required=True)
    parser.add_argument("--isvc", required=True, help="the InferenceService to canary")
    parser.add_argument("--model", required=True, help="the registered model")
    parser.add_argument("--namespace", default=os.environ.get("NAMESPACE", "default"))
    parser.add_argument("--canary-percent", type=int, default=20)
    defaults = PromotionPolicy()
    parser.add_argument("--min-requests", type=int, default=defaults.min_requests)
    parser.add_argument("--max-seconds", type=float, default=defaults.max_seconds)
    parser.add_argument("--error-rate-margin", type=float, default=defaults.error_rate_margin)
    parser.add_argument("--latency-ratio", type=float, default=defaults.latency_ratio)
    parser.add_argument(
        "--latency-slack-ms", type=float, default=defaults.latency_slack_seconds * 1000
    )
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between reads")
    parser.add_argument("--train-timeout", type=float, default=900.0)
    parser.add_argument("--canary-timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    if not 0 < args.canary_percent < 100:
        parser.error("--canary-percent must be between 1 and 99")
    try:
        return run(args)
    except (TimeoutError, ValueError) as exc:
        print(f"rollout: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
