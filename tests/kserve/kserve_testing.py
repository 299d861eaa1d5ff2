"""Helpers for the InferenceService tests: a real `wonderland up` daemon, trained models,
an S3-compatible server (moto) and a CloudEvents sink."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import yaml
from _support.daemon import (
    READY_TIMEOUT,
    WonderlandDaemon,
    daemon_env,
    free_port,
    kill_group,
    wait_for,
)

__all__ = [
    "APPS",
    "DOMAIN",
    "IRIS",
    "READY_TIMEOUT",
    "KServeDaemon",
    "free_port",
    "isvc",
    "model",
    "stop",
    "train_models",
    "wait_for",
]
DOMAIN = "127.0.0.1.sslip.io"
HERE = Path(__file__).resolve().parent
APPS = str(HERE / "kserve_apps.py")
IRIS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]


class KServeDaemon(WonderlandDaemon):
    """One `wonderland up` with its own state directory and gateway port."""

    def __init__(self, tmp: Path) -> None:
        env = daemon_env(tmp, gateway_port=free_port())
        super().__init__(tmp / "home", env, tmp / "daemon.log", cwd=HERE)

    def start(self, manifests: Path) -> None:  # type: ignore[override]
        super().start("-f", str(manifests))

    def kill(self) -> None:  # type: ignore[override]
        self.stop()

    def cli(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        result = self.run(*args, stdin=stdin)
        if check:
            assert result.returncode == 0, f"wonderland {' '.join(args)}: {result.stderr}"
        return result.stdout + result.stderr

    def apply(self, *objs: dict[str, Any]) -> None:
        self.cli("apply", "-f", "-", stdin=yaml.safe_dump_all(objs))

    def get(self, kind: str, name: str) -> dict[str, Any]:
        out = self.cli("get", kind, name, "-o", "json", check=False)
        try:
            return dict(json.loads(out))
        except ValueError:
            return {}

    def condition(self, name: str, ctype: str = "Ready") -> dict[str, Any]:
        for c in (self.get("isvc", name).get("status") or {}).get("conditions") or []:
            if c.get("type") == ctype:
                return dict(c)
        return {}

    def wait_ready(self, name: str, timeout: float = 120.0) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            isvc = self.get("isvc", name)
            st = isvc.get("status") or {}
            if st.get("observedGeneration") != isvc.get("metadata", {}).get("generation"):
                return None
            for c in st.get("conditions") or []:
                if c.get("type") == "Ready" and c.get("status") == "True":
                    return isvc
            return None

        try:
            return dict(wait_for(ready, timeout, f"isvc/{name} Ready"))
        except AssertionError:
            raise AssertionError(
                f"isvc/{name} not Ready: {json.dumps(self.get('isvc', name).get('status'))}\n"
                f"{self.log.read_text()[-3000:]}"
            ) from None

    def host(self, name: str) -> str:
        return f"{name}.default.{DOMAIN}"

    def url(self, name: str) -> str:
        """The status URL of ``name``: its host and the gateway's port."""
        return f"http://{self.host(name)}:{self.gateway.rpartition(':')[2]}"


def isvc(name: str, predictor: dict[str, Any], **spec: Any) -> dict[str, Any]:
    annotations = spec.pop("annotations", None)
    obj: dict[str, Any] = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"predictor": predictor, **spec},
    }
    if annotations:
        obj["metadata"]["annotations"] = annotations
    return obj


def model(fmt: str, uri: str, **extra: Any) -> dict[str, Any]:
    return {"model": {"modelFormat": {"name": fmt}, "storageUri": uri, **extra}}


# -- models ----------------------------------------------------------------------------


def train_models(root: Path) -> dict[str, Path]:
    """sklearn (SVC, and a constant-2 classifier for canaries), xgboost and onnx models."""
    import joblib
    import numpy as np
    import xgboost
    from skl2onnx import to_onnx
    from sklearn import datasets, svm
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression

    iris = datasets.load_iris()
    x, y = iris.data.astype(np.float32), iris.target
    out: dict[str, Path] = {}
    d = root / "sklearn-v1"
    d.mkdir(parents=True)
    joblib.dump(svm.SVC(gamma="scale").fit(x, y), d / "model.joblib")
    out["sklearn"] = d
    d = root / "sklearn-v2"
    d.mkdir()
    joblib.dump(DummyClassifier(strategy="constant", constant=2).fit(x, y), d / "model.joblib")
    out["sklearn-constant"] = d
    d = root / "xgboost"
    d.mkdir()
    booster = xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(x, y)
    booster.save_model(str(d / "model.json"))
    out["xgboost"] = d
    d = root / "onnx"
    d.mkdir()
    lr = LogisticRegression(max_iter=500).fit(x, y)
    onx = to_onnx(lr, x[:1], options={id(lr): {"zipmap": False}})
    (d / "model.onnx").write_bytes(onx.SerializeToString())
    out["onnx"] = d
    d = root / "label"
    d.mkdir()
    (d / "label.txt").write_text("custom-v1\n")
    out["label"] = d
    return out


# -- servers the tests need ------------------------------------------------------------


def stop(proc: subprocess.Popen[bytes]) -> None:
    kill_group(proc, signal.SIGKILL)
