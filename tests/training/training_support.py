"""Manifests and queries the training tests share."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from _support.daemon import wait_until

from wonderland.errors import NotFoundError
from wonderland.platform import Platform
from wonderland.runtime.kubelet import Kubelet
from wonderland.runtime.logs import LogOptions
from wonderland.store import Store

Obj = dict[str, Any]
TRAINJOBS = "trainjobs.trainer.kubeflow.org"
JOBSETS = "jobsets.jobset.x-k8s.io"
JOBSET_NAME = "jobset.sigs.k8s.io/jobset-name"
REPO = Path(__file__).resolve().parents[2]


def trainjob(name: str, runtime: str = "torch-distributed", **trainer: Any) -> Obj:
    spec: Obj = {"runtimeRef": {"name": runtime}}
    extra = trainer.pop("spec", {})
    if trainer:
        spec["trainer"] = trainer
    spec.update(extra)
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": name},
        "spec": spec,
    }


def py(code: str) -> list[str]:
    """A trainer command running ``code`` with the interpreter the node's image maps to."""
    return ["python", "-c", code]


class Trainer:
    """An in-process platform with workloads and training."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.store: Store = platform.store
        self.kubelet = platform.require(Kubelet)

    def create(self, obj: Obj) -> Obj:
        return self.store.create(obj)

    def job(self, name: str) -> Obj:
        return self.store.get(TRAINJOBS, "default", name)

    def status(self, name: str) -> Obj:
        try:
            return dict(self.job(name).get("status") or {})
        except NotFoundError:
            return {}

    def condition(self, name: str, kind: str) -> Obj | None:
        for c in self.status(name).get("conditions") or []:
            if c["type"] == kind and c["status"] == "True":
                return dict(c)
        return None

    def pods(self, name: str) -> list[Obj]:
        items, _ = self.store.list("pods", "default", {JOBSET_NAME: name})
        return sorted(items, key=lambda p: p["metadata"]["name"])

    def log(self, pod: str, container: str = "node") -> str:
        try:
            return self.kubelet.read_log("default", pod, container, False, LogOptions()).decode()
        except Exception:
            return ""

    def events(self, name: str) -> list[str]:
        items, _ = self.store.list("events", "default")
        return [
            f"{e['reason']}: {e['message']}" for e in items if e["involvedObject"]["name"] == name
        ]

    async def finished(self, name: str, timeout: float = 60) -> Obj:
        """The Complete or Failed condition, once there is one."""

        def done() -> Obj | None:
            return self.condition(name, "Complete") or self.condition(name, "Failed")

        try:
            return await wait_until(done, timeout, f"trainjob {name} to finish")
        except AssertionError as exc:
            # what it was doing: its events, and each node pod's phase and last log lines
            pods = [
                f"{p['metadata']['name']} {(p.get('status') or {}).get('phase')}: "
                f"{self.log(p['metadata']['name'])[-600:]!r}"
                for p in self.pods(name)
            ]
            raise AssertionError(f"{exc}; events {self.events(name)}; pods {pods}") from exc


def has_torchrun() -> bool:
    return shutil.which("torchrun", path=str(Path(sys.executable).parent)) is not None
