"""Watch the retraining loop go round: normal iris traffic, then drifted traffic, and each step.

Run it against `wonderland up -f examples/mdlc` (README.md):

    python examples/mdlc/loop.py

It sends normal traffic to the InferenceService iris-mdlc (rows of the iris data set, the
distribution the model was trained on), then drifted traffic (the petal features scaled
up), and prints each step as it happens, with the seconds since the first drifted request.
The InferenceService's payload logger sends every request to the drift detector
(detector.yaml), which tests each window of requests against the champion's training
sample and publishes the drift event the subscriber acts on:

    drift detected        the features the detector flagged (its event's id and source)
    retrain started       the TrainJob the drift event started
    retrain finished      its end
    challenger registered the new version
    canary serving        the traffic split between the two revisions
    promoted / kept       the verdict of the promotion policy and why

A step seen during the normal traffic is printed too (a false alarm) and listed under
`beforeDrift` with `--json`. `--publish` is for running the rest of the loop without the
detector (where its image is not deployed, e.g. a cluster without it built): it publishes
one drift CloudEvent itself through the retrain subscriber's Dapr sidecar. Needs the
kubernetes client, httpx and scikit-learn (the iris data); the platform's kubeconfig is
found as the CLI finds it ($WONDERLAND_HOME, default ~/.wonderland).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from kubernetes import client, config

STEPS = {
    "DriftDetected": "drift detected",
    "RetrainStarted": "retrain started",
    "RetrainFailed": "retrain failed",
    "ChallengerRegistered": "challenger registered",
    "CanaryServing": "canary serving",
    "Promoted": "promoted",
    "PromotionRefused": "kept",
}
FINAL = ("Promoted", "PromotionRefused", "RetrainFailed")


def home() -> Path:
    return Path(os.environ.get("WONDERLAND_HOME") or Path.home() / ".wonderland")


def gateway_url() -> str:
    info = json.loads((home() / "daemon.json").read_text())
    return str(info["gateway"])


class Traffic(threading.Thread):
    """Iris requests at ``rate`` per second; ``drifted`` switches to shifted inputs."""

    def __init__(self, url: str, host: str, model: str, rate: float) -> None:
        super().__init__(daemon=True)
        self.url, self.host, self.model, self.rate = url, host, model, rate
        from sklearn.datasets import load_iris

        self.normal: list[list[float]] = load_iris().data.tolist()
        # the same rows every run: normal traffic is a fixed sample of the training data
        self.random = random.Random(0)
        self.drifted = False
        self.first_drifted: float | None = None
        self.sent = self.failed = 0
        self.stop = threading.Event()

    def row(self) -> list[float]:
        row = list(self.random.choice(self.normal))
        if self.drifted:
            row[2] *= 2.5  # petal length and width far outside the training data
            row[3] *= 2.5
        return row

    def run(self) -> None:
        with httpx.Client(timeout=10, trust_env=False) as http:
            while not self.stop.is_set():
                drifted = self.drifted
                body = {
                    "inputs": [
                        {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": self.row()}
                    ]
                }
                if drifted and self.first_drifted is None:
                    self.first_drifted = time.monotonic()
                try:
                    r = http.post(
                        f"{self.url}/v2/models/{self.model}/infer",
                        json=body,
                        headers={"Host": self.host},
                    )
                    self.failed += r.status_code != 200
                except httpx.HTTPError:
                    self.failed += 1
                self.sent += 1
                self.stop.wait(1 / self.rate)


def publish_drift(namespace: str, isvc: str, app_id: str = "mdlc-retrain") -> str:
    """One drift CloudEvent through a sidecar's publish API (Dapr's /v1.0/publish)."""
    files = glob.glob(str(home() / "dapr" / "apps" / f"{app_id}.{namespace}@*.json"))
    if not files:
        raise SystemExit(f"no running Dapr sidecar of {app_id}; is retrain.yaml applied?")
    port = json.loads(Path(files[0]).read_text())["httpPort"]
    event_id = str(uuid.uuid4())
    event = {
        "specversion": "1.0",
        "id": event_id,
        "type": "org.kubeflow.serving.inference.drift",
        "source": f"/wonderland/drift-detector/{namespace}/{isvc}",
        "datacontenttype": "application/json",
        "data": {
            "inferenceService": isvc,
            "namespace": namespace,
            "detected": True,
            "features": [
                {
                    "name": "petal_length",
                    "method": "ks",
                    "score": 0.93,
                    "pValue": 1e-12,
                    "drift": True,
                },
                {
                    "name": "sepal_width",
                    "method": "ks",
                    "score": 0.08,
                    "pValue": 0.61,
                    "drift": False,
                },
            ],
            "windowSize": 100,
            "reference": f"models:/{isvc}@champion",
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    }
    r = httpx.post(
        f"http://127.0.0.1:{port}/v1.0/publish/pubsub/drift",
        json=event,
        headers={"Content-Type": "application/cloudevents+json"},
        trust_env=False,
    )
    r.raise_for_status()
    return event_id


class Watcher:
    """Prints the loop's Events on the InferenceService (and the TrainJob's end) once each."""

    def __init__(
        self, namespace: str, isvc: str, since: float, say: Callable[[str, str], None]
    ) -> None:
        self.namespace, self.isvc, self.say = namespace, isvc, say
        self.core, self.custom = client.CoreV1Api(), client.CustomObjectsApi()
        self.seen: set[str] = set()
        self.steps: dict[str, float] = {}
        self.before_drift: list[str] = []  # steps seen while the traffic was normal
        self.trainjob = ""
        self.since = since

    def prime(self) -> None:
        """Earlier rounds' events are history: mark them seen without printing them."""
        for ev in self.core.list_namespaced_event(self.namespace).items:
            self.seen.add(ev.metadata.name)

    def poll(self, drifted: bool = True) -> str | None:
        events = self.core.list_namespaced_event(self.namespace).items
        rank = list(STEPS)  # events of the same second in the loop's order
        for ev in sorted(
            events,
            key=lambda e: (
                e.metadata.creation_timestamp or 0,
                rank.index(e.reason) if e.reason in rank else len(rank),
            ),
        ):
            involved = ev.involved_object
            if ev.metadata.name in self.seen or involved.name != self.isvc:
                continue
            self.seen.add(ev.metadata.name)
            if ev.reason not in STEPS or ev.reason in self.steps:
                continue
            if not drifted:
                self.before_drift.append(str(ev.reason))
            self.steps[ev.reason] = time.monotonic()
            self.say(STEPS[ev.reason], ev.message)
            if ev.reason == "RetrainStarted":
                self.trainjob = ev.message.split()[1]
            if ev.reason in FINAL:
                return str(ev.reason)
        if self.trainjob and "RetrainFinished" not in self.steps:
            job = self.custom.get_namespaced_custom_object(
                "trainer.kubeflow.org", "v1alpha1", self.namespace, "trainjobs", self.trainjob
            )
            for cond in (job.get("status") or {}).get("conditions") or []:
                if cond.get("type") == "Complete" and cond.get("status") == "True":
                    self.steps["RetrainFinished"] = time.monotonic()
                    self.say("retrain finished", f"TrainJob {self.trainjob} Complete")
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--isvc", default="iris-mdlc")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--domain", default="127.0.0.1.sslip.io")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--normal-seconds", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--publish",
        action="store_true",
        help="publish a drift event instead of waiting for the detector",
    )
    parser.add_argument("--json", action="store_true", help="print the steps' times as JSON")
    args = parser.parse_args(argv)

    config.load_kube_config(str(home() / "kubeconfig"))
    traffic = Traffic(
        gateway_url(), f"{args.isvc}.{args.namespace}.{args.domain}", args.isvc, args.rate
    )
    start = time.monotonic()

    def say(step: str, message: str) -> None:
        t0 = traffic.first_drifted or start
        print(f"[{time.monotonic() - t0:7.2f}s] {step:22} {message}", flush=True)

    watcher = Watcher(args.namespace, args.isvc, start, say)
    watcher.prime()
    say("normal traffic", f"{args.rate:g} requests/s for {args.normal_seconds:g}s")
    traffic.start()
    normal_until = time.monotonic() + args.normal_seconds
    while time.monotonic() < normal_until:
        watcher.poll(drifted=False)  # a drift event now would be a false alarm
        time.sleep(0.1)
    traffic.drifted = True
    while traffic.first_drifted is None:
        time.sleep(0.01)
    say("drifted traffic", "petal length and width x2.5")
    if args.publish:
        say("published", f"drift event {publish_drift(args.namespace, args.isvc)} (--publish)")
    outcome = None
    deadline = time.monotonic() + args.timeout
    while outcome is None and time.monotonic() < deadline:
        outcome = watcher.poll()
        time.sleep(0.1)
    traffic.stop.set()
    traffic.join()
    say("traffic", f"{traffic.sent} requests, {traffic.failed} failed")
    if args.json:
        t0 = traffic.first_drifted or start
        steps: dict[str, object] = {k: round(v - t0, 3) for k, v in watcher.steps.items()}
        steps["beforeDrift"] = watcher.before_drift
        print(json.dumps(steps))
    if outcome is None:
        print(f"no verdict after {args.timeout:g}s", file=sys.stderr)
        return 1
    return 0 if outcome != "RetrainFailed" else 1


if __name__ == "__main__":
    sys.exit(main())
