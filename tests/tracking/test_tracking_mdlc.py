"""The model life cycle of examples/mdlc/ end to end on a real `wonderland up`, with the
platform's own MLflow: train with a TrainJob that logs to MLflow, register, promote, serve
by alias, retrain, promote behind the evaluation gate, and watch the alias roll out."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support.daemon import WonderlandDaemon, free_port, running_daemon, wait_for
from _support.mlflow import needs_mlflow

pytestmark = [needs_mlflow, pytest.mark.slow, pytest.mark.e2e]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mdlc"
DOMAIN = "127.0.0.1.sslip.io"
IRIS = [6.8, 2.8, 4.8, 1.4, 5.1, 3.5, 1.4, 0.2]


def _get(d: WonderlandDaemon, kind: str, name: str) -> dict[str, Any]:
    out = d.run("get", kind, name, "-o", "json")
    return dict(json.loads(out.stdout)) if out.returncode == 0 else {}


def _condition(obj: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype and c.get("status") == "True":
            return dict(c)
    return None


def _trained(d: WonderlandDaemon, name: str) -> None:
    def done() -> str | None:
        job = _get(d, "trainjob", name)
        for ctype in ("Complete", "Failed"):
            if _condition(job, ctype):
                return ctype
        return None

    state = wait_for(done, 180, f"trainjob/{name} to finish", log=d.log)
    logs = d.run("logs", f"trainjob/{name}").stdout
    assert state == "Complete", logs


def _infer(d: WonderlandDaemon) -> dict[str, Any]:
    body = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": IRIS}]}
    r = httpx.post(
        f"{d.gateway}/v2/models/iris-mdlc/infer",
        json=body,
        headers={"Host": f"iris-mdlc.default.{DOMAIN}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_train_register_promote_serve_retrain_and_roll_out(tmp_path: Path) -> None:
    d = WonderlandDaemon.in_tmp(tmp_path)
    d.env["WONDERLAND_MLFLOW_IDLE_SECONDS"] = "600"
    d.env["WONDERLAND_MLFLOW_POLL_SECONDS"] = "0.5"
    with running_daemon(d):
        d.ok("apply", "-f", str(EXAMPLE / "train.yaml"))
        _trained(d, "iris-v1")
        described = d.ok("models", "describe", "iris-mdlc/1")
        assert "TrainJob default/iris-v1" in described, described
        assert "C: 0.01" in described and "accuracy:" in described, described
        assert "iris" in described.split("Datasets:")[1], described

        # iris-v1 sets the alias champion itself (ALIAS in train.yaml)
        assert "Aliases:    champion" in described, described

        d.ok("apply", "-f", str(EXAMPLE / "serve.yaml"))

        def ready_at(version: str) -> dict[str, Any] | None:
            isvc = _get(d, "isvc", "iris-mdlc")
            st = isvc.get("status") or {}
            registry = st.get("modelRegistry") or {}
            if registry.get("version") == version and _condition(isvc, "Ready"):
                traffic = (st.get("components") or {}).get("predictor", {}).get("traffic") or []
                latest = [t for t in traffic if t.get("latestRevision") and t.get("percent") == 100]
                return isvc if latest else None
            return None

        first = wait_for(lambda: ready_at("1"), 120, "iris-mdlc serving version 1", log=d.log)
        assert first["status"]["modelRegistry"]["pinned"] == "models:/iris-mdlc/1"
        assert len(first["status"]["modelRegistry"]["runId"]) == 32
        assert len(_infer(d)["outputs"][0]["data"]) == 2
        rev1 = first["status"]["components"]["predictor"]["latestReadyRevision"]

        d.ok("apply", "-f", str(EXAMPLE / "steps" / "retrain.yaml"))
        _trained(d, "iris-v2")
        started = time.monotonic()
        out = d.ok(
            "models", "promote", "iris-mdlc", "2", "--alias", "champion", "--if-better", "accuracy"
        )
        assert "→ version 2 (accuracy 0.866667 → 1)" in out, out
        second = wait_for(lambda: ready_at("2"), 120, "iris-mdlc serving version 2", log=d.log)
        rolled = time.monotonic() - started
        assert second["status"]["components"]["predictor"]["latestReadyRevision"] != rev1
        assert second["status"]["modelRegistry"]["pinned"] == "models:/iris-mdlc/2"
        assert _infer(d)["outputs"][0]["data"] == [1, 0]
        print(f"alias moved → version 2 serving in {rolled:.2f}s")

        # the gate: version 1 is worse, so the alias stays on version 2
        refused = d.run(
            "models", "promote", "iris-mdlc", "1", "--alias", "champion", "--if-better", "accuracy"
        )
        assert refused.returncode == 3, refused.stdout + refused.stderr
        assert "not higher than champion (version 2)" in refused.stdout, refused.stdout
        described = d.ok("models", "describe", "iris-mdlc@champion")
        assert "InferenceService default/iris-mdlc" in described, described
        # the cache a pull fills is the one the InferenceService used (keyed by location)
        pulled = Path(d.ok("storage", "pull", "models:/iris-mdlc@champion").strip())
        assert (pulled / "MLmodel").exists() and (pulled / "model.skops").exists()
        assert "TrainJob default/iris-v2" in described, described


def _registry_isvc(name: str, uri: str) -> str:
    return json.dumps(
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": name},
            "spec": {
                "predictor": {"model": {"modelFormat": {"name": "mlflow"}, "storageUri": uri}}
            },
        }
    )


def test_an_unknown_alias_leaves_the_service_not_ready_with_the_registry_message(
    tmp_path: Path,
) -> None:
    d = WonderlandDaemon.in_tmp(tmp_path, gateway_port=free_port())
    with running_daemon(d):
        d.ok("apply", "-f", "-", stdin=_registry_isvc("ghost", "models:/ghost@champion"))

        def not_ready() -> dict[str, Any] | None:
            for c in (_get(d, "isvc", "ghost").get("status") or {}).get("conditions") or []:
                if c["type"] == "Ready" and c["status"] == "False":
                    return dict(c)
            return None

        cond = wait_for(not_ready, 60, "isvc/ghost not Ready", log=d.log)
        assert cond["reason"] == "ModelNotFound", cond
        assert "Registered Model with name=ghost not found" in cond["message"], cond
        bad = d.run("apply", "-f", "-", stdin=_registry_isvc("staged", "models:/iris/Production"))
        assert bad.returncode != 0 and "stages were deprecated" in bad.stderr, bad.stderr
