"""The retraining loop's latency: first drifted request → drift event → TrainJob started →
finished → challenger registered → canary serving → promoted.

A real ``wonderland up`` (its own state directory, tracking server and gateway) with the
manifests of examples/mdlc/ (the policy as shipped: canary 20%, 20 requests, error rate
+0.01, p95 1.2x), then ``examples/mdlc/loop.py`` for ``--rounds`` rounds (each: normal
traffic, drifted traffic, one retrain, one verdict). The drift event comes from the drift
detector of detector.yaml, fed by the InferenceService's payload logger (windows of 50
requests), so "drift detected" includes filling the window. With ``--publish`` the detector
is left out and loop.py publishes the event right after the first drifted request (pub/sub
delivery only). After a promotion the detector re-baselines on the new champion's sample
(detector.yaml: ``--reference_refresh=5``), which drops the drifted rows left in its
window; the next round starts once the detector's ``GET /`` shows that version, so its
normal traffic does not complete a window of the previous round's drifted rows (a false
alarm). After a refused promotion the champion, and so the reference, stays: the leftover
rows can still raise a (reported) false alarm in the next round.

    python bench/monitoring/loop.py [--rounds 3] [--rate 25] [--publish]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
EXAMPLE = REPO / "examples" / "mdlc"
sys.path.insert(0, str(REPO / "tests"))
from _support.daemon import WonderlandDaemon, running_daemon, wait_for  # noqa: E402

STEPS = [
    ("DriftDetected", "drift detected (event delivered)"),
    ("RetrainStarted", "TrainJob created"),
    ("RetrainFinished", "TrainJob Complete"),
    ("ChallengerRegistered", "challenger registered"),
    ("CanaryServing", "canary serving (20%)"),
    ("Promoted", "promoted to champion"),
]


def manifests(detector: bool) -> str:
    names = ["train.yaml", "serve.yaml", "pubsub.yaml", "retrain.yaml"]
    names += ["detector.yaml"] if detector else []
    docs: list[dict[str, Any]] = []
    for name in names:
        docs += [d for d in yaml.safe_load_all((EXAMPLE / name).read_text()) if d]
    for doc in docs:
        if doc["kind"] == "Service" and doc["metadata"]["name"] == "mdlc-retrain":
            container = doc["spec"]["template"]["spec"]["containers"][0]
            # this checkout's wonderland in the subscriber and its rollout Jobs
            container["env"].append(
                {"name": "PYTHONPATH", "value": f"{EXAMPLE / 'retrain'}:{REPO / 'src'}"}
            )
            for e in container["env"]:
                if e["name"] == "ROLLOUT_ARGS":
                    e["value"] += " --interval 0.5"
    return yaml.safe_dump_all(docs)


def detector_version(gateway: str) -> str:
    """The model version whose sample the detector compares with ("" when it does not say)."""
    try:
        r = httpx.get(
            gateway + "/",
            headers={"Host": "drift-detector.default.127.0.0.1.sslip.io"},
            timeout=5,
            trust_env=False,
        )
        return str(r.json()["reference"]["version"]) if r.status_code == 200 else ""
    except (httpx.HTTPError, ValueError, KeyError):
        return ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=25.0)
    parser.add_argument(
        "--publish", action="store_true", help="no detector: publish the drift event by hand"
    )
    args = parser.parse_args()
    rounds: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        d = WonderlandDaemon.in_tmp(Path(tmp), cwd=REPO)
        d.env["WONDERLAND_MLFLOW_IDLE_SECONDS"] = "600"
        d.env["WONDERLAND_MLFLOW_POLL_SECONDS"] = "0.5"
        d.env["PYTHONPATH"] = str(REPO / "src")
        with running_daemon(d):
            d.ok("apply", "-f", "-", stdin=manifests(not args.publish))

            def ready(kind: str, name: str) -> bool:
                out = d.run("get", kind, name, "-o", "json")
                obj = json.loads(out.stdout) if out.returncode == 0 else {}
                conds = (obj.get("status") or {}).get("conditions") or []
                return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

            wait_for(lambda: ready("isvc", "iris-mdlc"), 300, "iris-mdlc Ready", log=d.log)
            wait_for(lambda: ready("ksvc", "mdlc-retrain"), 300, "mdlc-retrain Ready")
            if not args.publish:
                wait_for(lambda: ready("ksvc", "drift-detector"), 300, "drift-detector Ready")
            for i in range(args.rounds):
                argv = [
                    sys.executable,
                    str(EXAMPLE / "loop.py"),
                    "--json",
                    "--rate",
                    str(args.rate),
                    "--normal-seconds",
                    "5",
                    "--timeout",
                    "300",
                ]
                if args.publish:
                    argv.append("--publish")
                out = subprocess.run(
                    argv, env=d.env, capture_output=True, text=True, check=False, timeout=400
                )
                print(out.stdout, end="", file=sys.stderr)
                if out.returncode != 0:
                    print(out.stderr, file=sys.stderr)
                    return 1
                rounds.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(f"round {i + 1}: {rounds[-1]}", file=sys.stderr)
                if not args.publish and "Promoted" in rounds[-1]:
                    described = d.ok("models", "describe", "iris-mdlc@champion")
                    found = re.search(r"iris-mdlc version (\d+)", described)
                    champion = found.group(1) if found else ""
                    wait_for(
                        lambda v=champion: detector_version(d.gateway) == v,
                        60,
                        f"the detector re-baselined on version {champion}",
                    )
    print(f"| step (seconds after the first drifted request) | p50 of {len(rounds)} | max |")
    print("|---|---|---|")
    for key, label in STEPS:
        values = [r[key] for r in rounds if key in r]
        if values:
            print(f"| {label} | {statistics.median(values):.2f} | {max(values):.2f} |")
    kept = sum("PromotionRefused" in r for r in rounds)
    print(f"\n{len(rounds) - kept} promoted, {kept} kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
