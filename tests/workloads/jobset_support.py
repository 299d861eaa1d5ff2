"""Manifests and queries the JobSet tests share."""

from __future__ import annotations

from typing import Any

from _support.daemon import wait_until
from workloads_support import template

from wonderland.errors import NotFoundError
from wonderland.store import Store

Obj = dict[str, Any]
JOBSETS = "jobsets.jobset.x-k8s.io"
JOBSET_NAME = "jobset.sigs.k8s.io/jobset-name"
# A shell's view of the wall clock, cheaper than starting python for it.
STAMP = "$(date +%s.%N)"


def rjob(
    name: str,
    command: str,
    replicas: int | None = None,
    parallelism: int = 1,
    restart: str = "Never",
    pod: Obj | None = None,
    **extra: Any,
) -> Obj:
    """A replicated job whose pods run ``sh -c command``; fails a Job at the first failed pod."""
    job_spec: Obj = {
        "parallelism": parallelism,
        "completions": parallelism,
        "backoffLimit": 0,
        "template": template(command, restart, **(pod or {})),
    }
    out: Obj = {"name": name, "template": {"spec": job_spec}, **extra}
    if replicas is not None:
        out["replicas"] = replicas
    return out


def jobset(name: str, *rjobs: Obj, **spec: Any) -> Obj:
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": name},
        "spec": {"replicatedJobs": list(rjobs), **spec},
    }


def js_status(store: Store, name: str) -> Obj:
    try:
        return dict(store.get(JOBSETS, "default", name).get("status") or {})
    except NotFoundError:
        return {}


def js_condition(store: Store, name: str, kind: str, status: str = "True") -> Obj | None:
    found = [c for c in js_status(store, name).get("conditions") or [] if c["type"] == kind]
    return found[0] if found and found[0]["status"] == status else None


async def js_finished(store: Store, name: str, timeout: float = 30.0) -> Obj:
    """Wait until the JobSet is Completed or Failed; its final condition."""

    def done() -> Obj | None:
        return js_condition(store, name, "Completed") or js_condition(store, name, "Failed")

    result: Obj = await wait_until(done, timeout, f"jobset {name} to finish")
    return result


def jobs_of(store: Store, name: str) -> list[Obj]:
    items, _ = store.list("jobs.batch", "default", {JOBSET_NAME: name})
    return items


def pods_of(store: Store, name: str) -> list[Obj]:
    items, _ = store.list("pods", "default", {JOBSET_NAME: name})
    return sorted(items, key=lambda p: p["metadata"]["name"])


def trace(path: Any) -> dict[str, float]:
    """``what stamp`` lines of a trace file, by what (the last stamp of each)."""
    out: dict[str, float] = {}
    for line in path.read_text().splitlines():
        what, stamp = line.split()
        out[what] = float(stamp)
    return out
