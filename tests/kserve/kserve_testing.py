"""Helpers for the InferenceService tests: a real `wonderland up` daemon, trained models,
an S3-compatible server (moto) and a CloudEvents sink."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

READY_TIMEOUT = 30.0
DOMAIN = "127.0.0.1.sslip.io"
HERE = Path(__file__).resolve().parent
APPS = str(HERE / "kserve_apps.py")
IRIS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


class KServeDaemon:
    """One `wonderland up` with its own state directory and gateway port."""

    def __init__(self, tmp: Path) -> None:
        self.home = tmp / "home"
        self.gateway_port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WONDERLAND_")}
        self.env.update(
            WONDERLAND_HOME=str(self.home),
            WONDERLAND_API_PORT="0",
            WONDERLAND_GATEWAY_PORT=str(self.gateway_port),
            HOME=str(tmp),
        )
        self.log = tmp / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.gateway = f"http://127.0.0.1:{self.gateway_port}"

    def start(self, manifests: Path) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "wonderland", "up", "-f", str(manifests)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=str(HERE),
            )
        info = self.home / "daemon.json"

        def up() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            return info.exists()

        wait_for(up, READY_TIMEOUT, "the daemon")

    def kill(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def cli(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "wonderland", *args],
            env=self.env,
            capture_output=True,
            text=True,
            input=stdin,
            timeout=60,
            check=False,
        )
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


def start_moto(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, log.read_text()
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
            return True
        return False

    try:
        wait_for(up, READY_TIMEOUT, "moto")
    except BaseException:
        stop(proc)
        raise
    return proc, url


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
