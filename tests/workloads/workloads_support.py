"""Manifests and queries the Job and CronJob tests share."""

from __future__ import annotations

from typing import Any

from _support.daemon import wait_until

from wonderland.errors import NotFoundError
from wonderland.store import Store

Obj = dict[str, Any]
JOB_NAME = "batch.kubernetes.io/job-name"


def template(command: str, restart: str = "Never", **pod_spec: Any) -> Obj:
    """A pod template running ``sh -c command`` on this machine."""
    container = {"name": "main", "image": "python:3.12", "command": ["sh", "-c", command]}
    return {"spec": {"restartPolicy": restart, "containers": [container], **pod_spec}}


def job(
    name: str, command: str, restart: str = "Never", pod: Obj | None = None, **spec: Any
) -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": template(command, restart, **(pod or {})), **spec},
    }


def status(store: Store, name: str) -> Obj:
    try:
        return dict(store.get("jobs.batch", "default", name).get("status") or {})
    except NotFoundError:
        return {}


def condition(store: Store, name: str, kind: str) -> Obj | None:
    found = [c for c in status(store, name).get("conditions") or [] if c["type"] == kind]
    return found[0] if found and found[0]["status"] == "True" else None


def pods_of(store: Store, name: str) -> list[Obj]:
    items, _ = store.list("pods", "default", {JOB_NAME: name})
    return sorted(items, key=lambda p: (p["metadata"]["creationTimestamp"], p["metadata"]["name"]))


def running(store: Store, name: str) -> list[Obj]:
    """The pods of a Job that are active (not finished, not being deleted)."""
    return [
        p
        for p in pods_of(store, name)
        if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        and not p["metadata"].get("deletionTimestamp")
    ]


def events_of(store: Store, name: str, kind: str = "Job") -> list[tuple[str, str, str]]:
    items, _ = store.list("events", "default")
    return [
        (e["type"], e["reason"], e["message"])
        for e in sorted(items, key=lambda e: e["metadata"]["resourceVersion"])
        if e["involvedObject"]["name"] == name and e["involvedObject"]["kind"] == kind
    ]


async def finished(store: Store, name: str, timeout: float = 60.0) -> Obj:
    """Wait until the Job is Complete or Failed; its final condition."""

    def done() -> Obj | None:
        return condition(store, name, "Complete") or condition(store, name, "Failed")

    result: Obj = await wait_until(done, timeout, f"job {name} to finish")
    return result


def set_pod_status(store: Store, pod: Obj, **status: Any) -> Obj:
    """Write a pod's status as a kubelet would (for pods no kubelet runs)."""
    current = store.get("pods", "default", pod["metadata"]["name"])
    current["status"] = status
    return store.update_status(current)
