"""The retraining loop of examples/mdlc/ end to end on a real `wonderland up`: iris-v1 is the
champion and serves; its payload logger sends every request to the drift detector
(`wonderland/drift-detector`), which compares windows of them with the champion's training
sample; normal traffic raises nothing, drifted traffic makes it publish a drift CloudEvent
through the real Dapr pub/sub to the retrain subscriber, which starts a TrainJob (once per
event id) and a rollout Job; the challenger it registers serves a canary, the policy reads
both revisions' live metrics and promotes it; the detector then re-baselines on version 2's
training sample; examples/mdlc/loop.py prints each step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from _support.daemon import WonderlandDaemon, running_daemon, wait_for
from _support.mlflow import needs_mlflow

# the first training, the detector's windows, the retrain and the canary: minutes on a busy machine
pytestmark = [needs_mlflow, pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "mdlc"


def _get(d: WonderlandDaemon, kind: str, name: str) -> dict[str, Any]:
    out = d.run("get", kind, name, "-o", "json")
    return dict(json.loads(out.stdout)) if out.returncode == 0 else {}


def _true(obj: dict[str, Any], ctype: str) -> bool:
    return any(
        c.get("type") == ctype and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


def _loop_manifests() -> str:
    """The example's manifests, as `wonderland up -f examples/mdlc` applies them, with the
    retrain subscriber importing this checkout's wonderland and a short canary."""
    docs: list[dict[str, Any]] = []
    for name in ("train.yaml", "serve.yaml", "detector.yaml", "pubsub.yaml", "retrain.yaml"):
        docs += [d for d in yaml.safe_load_all((EXAMPLE / name).read_text()) if d]
    for doc in docs:
        if doc["kind"] == "Service" and doc["metadata"]["name"] == "mdlc-retrain":
            container = doc["spec"]["template"]["spec"]["containers"][0]
            env = [e for e in container["env"] if e["name"] != "ROLLOUT_ARGS"]
            env += [
                {"name": "PYTHONPATH", "value": f"{EXAMPLE / 'retrain'}:{ROOT / 'src'}"},
                {
                    "name": "ROLLOUT_ARGS",
                    # a freshly started canary's first requests are slow on a busy machine;
                    # the latency thresholds are the unit tests' business
                    "value": "--canary-percent 20 --min-requests 10 --max-seconds 60 "
                    "--interval 0.5 --latency-slack-ms 50",
                },
            ]
            container["env"] = env
    return yaml.safe_dump_all(docs)


def test_drift_event_retrains_canaries_and_promotes_the_challenger(tmp_path: Path) -> None:
    d = WonderlandDaemon.in_tmp(tmp_path, cwd=ROOT)
    d.env["WONDERLAND_MLFLOW_IDLE_SECONDS"] = "600"
    d.env["WONDERLAND_MLFLOW_POLL_SECONDS"] = "0.5"
    with running_daemon(d):
        d.ok("apply", "-f", "-", stdin=_loop_manifests())

        def serving_v1() -> bool:
            isvc = _get(d, "isvc", "iris-mdlc")
            reg = (isvc.get("status") or {}).get("modelRegistry") or {}
            return reg.get("version") == "1" and _true(isvc, "Ready")

        wait_for(serving_v1, 180, "iris-mdlc serving the champion, version 1", log=d.log)
        wait_for(
            lambda: _true(_get(d, "ksvc", "mdlc-retrain"), "Ready"), 120, "the retrain subscriber"
        )
        # the detector waited for the champion's reference sample (--reference_wait)
        wait_for(
            lambda: _true(_get(d, "ksvc", "drift-detector"), "Ready"),
            120,
            "the drift detector",
            log=d.log,
        )

        env = {**d.env, "PYTHONPATH": str(ROOT / "src")}
        loop = subprocess.run(
            [
                sys.executable,
                str(EXAMPLE / "loop.py"),
                "--json",
                "--normal-seconds",
                # 125 normal requests: two full windows of the detector (50) tested clean
                "5",
                "--rate",
                "25",
                "--timeout",
                "150",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=200,
            check=False,
        )
        out = loop.stdout
        print(out)  # the steps and their times (pytest -s shows them)
        assert loop.returncode == 0, out + loop.stderr + d.log.read_text(errors="replace")[-3000:]
        for step in (
            "drift detected",
            "retrain started",
            "retrain finished",
            "challenger registered",
            "canary serving",
            "promoted",
        ):
            assert step in out, out
        # the drifted feature and the event's source: the detector, not a hand-made event
        assert "petal length" in out, out
        assert "from /wonderland/drift-detector/default/iris-mdlc" in out, out
        assert "published" not in out, out
        assert "20%" in out, out  # the canary's share
        steps = json.loads(out.strip().splitlines()[-1])
        assert steps.pop("beforeDrift") == [], out  # normal traffic raised no drift
        order = ["DriftDetected", "RetrainStarted", "ChallengerRegistered", "CanaryServing"]
        order.append("Promoted")
        assert sorted((k for k in steps if k in order), key=steps.__getitem__) == order, steps
        # the TrainJob's end is polled: it shows up in the same round as the registration
        assert steps["RetrainStarted"] < steps["RetrainFinished"] < steps["CanaryServing"], steps
        assert steps["DriftDetected"] > 0, steps  # after the first drifted request

        # the champion moved; the InferenceService serves it alone, without a canary
        described = d.ok("models", "describe", "iris-mdlc@champion")
        assert "iris-mdlc version 2" in described, described

        # the detector followed the alias: version 2's training sample is its reference now
        def detector() -> dict[str, Any] | None:
            try:
                r = httpx.get(
                    d.gateway + "/",
                    headers={"Host": "drift-detector.default.127.0.0.1.sslip.io"},
                    timeout=5,
                    trust_env=False,
                )
                status: dict[str, Any] = r.json()
            except (httpx.HTTPError, ValueError):
                return None
            return status if status.get("reference", {}).get("version") == "2" else None

        status = wait_for(detector, 60, "the drift detector re-baselined on version 2", log=d.log)
        assert status["reference"]["uri"] == "models:/iris-mdlc/2/reference.csv", status
        assert "error" not in status["reference"], status

        def all_on_v2() -> dict[str, Any] | None:
            isvc = _get(d, "isvc", "iris-mdlc")
            st = isvc.get("status") or {}
            traffic = (st.get("components") or {}).get("predictor", {}).get("traffic") or []
            if (st.get("modelRegistry") or {}).get("version") == "2" and [
                t for t in traffic if t.get("percent") == 100
            ]:
                return isvc
            return None

        isvc = wait_for(all_on_v2, 60, "version 2 taking all the traffic", log=d.log)
        assert isvc["spec"]["predictor"]["model"]["storageUri"] == "models:/iris-mdlc@champion"
        assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]
        trainjobs = json.loads(d.ok("get", "trainjobs", "-o", "json"))["items"]
        retrains = [t for t in trainjobs if t["metadata"]["name"].startswith("iris-retrain-")]
        assert len(retrains) == 1, [t["metadata"]["name"] for t in retrains]
