"""``wonderland logs``: the logs of a pod, or of every pod of a workload, as kubectl shows them.

``pod/NAME`` (or a bare pod name) reads that pod's container; ``ksvc/NAME``, ``rev/NAME``,
``job/NAME``, ``jobset/NAME`` and ``trainjob/NAME`` read every pod of the service, revision,
Job, JobSet or TrainJob, each line prefixed with ``[pod/NAME/CONTAINER]`` when there is more
than one. With ``-f`` on such a workload, pods that start later (a TrainJob's nodes after
its initializers) are followed too, and it ends once the workload has finished. Everything
goes through the control API's ``pods/log``, so the flags mean what kubectl's do.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wonderland.api.kinds import ResourceKind
    from wonderland.control.client import ControlClient

__all__ = ["register"]

# [KIND/]NAME -> the label that selects the pods of that kind of object
_SELECTORS = {
    "services.serving.knative.dev": "serving.knative.dev/service",
    "revisions.serving.knative.dev": "serving.knative.dev/revision",
    "configurations.serving.knative.dev": "serving.knative.dev/configuration",
    "jobs.batch": "batch.kubernetes.io/job-name",
    "jobsets.jobset.x-k8s.io": "jobset.sigs.k8s.io/jobset-name",
    "trainjobs.trainer.kubeflow.org": "jobset.sigs.k8s.io/jobset-name",
}
# Kinds that finish: following them ends once they have and their logs are read.
_FINISHING = ("jobs.batch", "jobsets.jobset.x-k8s.io", "trainjobs.trainer.kubeflow.org")
_FINISHED = ("Complete", "Completed", "Failed")
POLL = 0.5


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    logs = subparsers.add_parser(
        "logs",
        help="print the logs of a pod, or of the pods of a service, revision, job or trainjob",
    )
    logs.add_argument(
        "target",
        metavar="[KIND/]NAME",
        help="pod/NAME (or NAME), ksvc/NAME, rev/NAME, job/NAME, jobset/NAME or trainjob/NAME",
    )
    logs.add_argument("-n", "--namespace", default=None, help="namespace (default: default)")
    logs.add_argument("-c", "--container", default=None, help="the container (default: the first)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("--tail", type=int, default=-1, help="the last N lines only")
    logs.add_argument("-p", "--previous", action="store_true", help="the previous instance")
    logs.add_argument("--timestamps", action="store_true", help="prefix each line with its time")
    logs.add_argument("--since", default=None, help="only newer lines, e.g. 5s, 2m, 1h")
    logs.add_argument("--prefix", action="store_true", help="prefix lines with the pod name")
    logs.add_argument("--all-containers", action="store_true", help="every container of the pod(s)")
    logs.set_defaults(handler=_logs)


def _client() -> ControlClient:
    from wonderland.control.client import ControlClient
    from wonderland.settings import Settings

    return ControlClient.for_state_dir(Settings.from_env().state_dir)


def _seconds(text: str) -> int:
    from wonderland.errors import InvalidError

    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except (ValueError, IndexError):
        raise InvalidError("--since", f'"{text}" is not a duration; write 10s, 5m or 1h') from None


def _workload(target: str) -> tuple[ResourceKind | None, str]:
    """The kind (None for a pod or a bare name) and the name ``target`` names."""
    from wonderland.api import registry

    kind_name, _, name = target.rpartition("/")
    kind = registry.lookup(kind_name) if kind_name else None
    if kind is not None and kind.resource == "pods":
        kind = None
    return kind, name


def _pods(client: ControlClient, namespace: str, target: str) -> list[dict[str, Any]]:
    from wonderland.api import registry
    from wonderland.control.client import object_path
    from wonderland.errors import NotFoundError

    pods_kind = registry.lookup("pods")
    kind, name = _workload(target)
    if kind is None:
        try:
            return [client.request("GET", object_path(pods_kind, namespace, name))]
        except NotFoundError:
            if "/" in target:
                raise
            kind = registry.lookup("ksvc")  # a bare name that is no pod: a service's
    pods = _listing(client, namespace, kind, name)
    if not pods:
        raise NotFoundError(f'no pods of {kind.singular} "{name}" in namespace "{namespace}"')
    return pods


def _listing(
    client: ControlClient, namespace: str, kind: ResourceKind, name: str
) -> list[dict[str, Any]]:
    from wonderland.api import registry
    from wonderland.control.client import object_path
    from wonderland.errors import InvalidError

    label = _SELECTORS.get(kind.resource)
    if label is None:
        raise InvalidError(
            "target",
            f"logs are read from pods; {kind.plural} have none "
            "(use pod/, ksvc/, rev/, job/, jobset/ or trainjob/)",
        )
    listing = client.request(
        "GET",
        object_path(registry.lookup("pods"), namespace),
        params={"labelSelector": f"{label}={name}"},
    )
    return sorted(listing["items"], key=lambda p: p["metadata"].get("creationTimestamp", ""))


def _containers(pod: dict[str, Any], container: str | None, every: bool) -> list[str]:
    spec = pod.get("spec") or {}
    names = [c["name"] for c in spec.get("containers") or []]
    inits = [c["name"] for c in spec.get("initContainers") or []]
    if container:
        return [container]
    if every:
        return [*inits, *names]
    default = (pod["metadata"].get("annotations") or {}).get(
        "kubectl.kubernetes.io/default-container"
    )
    return [default or names[0]]


def _logs(args: argparse.Namespace) -> int:
    from wonderland.api import registry
    from wonderland.control.client import object_path

    client = _client()
    namespace = args.namespace or "default"
    workload, _ = _workload(args.target)
    following = args.follow and workload is not None
    pods = [] if following else _pods(client, namespace, args.target)
    streams = [
        (pod["metadata"]["name"], c)
        for pod in pods
        for c in _containers(pod, args.container, args.all_containers)
    ]
    prefixed = args.prefix or len(streams) > 1 or following
    params: dict[str, str] = {}
    if args.follow:
        params["follow"] = "true"
    if args.tail >= 0:
        params["tailLines"] = str(args.tail)
    if args.previous:
        params["previous"] = "true"
    if args.timestamps:
        params["timestamps"] = "true"
    if args.since:
        params["sinceSeconds"] = str(_seconds(args.since))
    kind = registry.lookup("pods")
    lock = threading.Lock()

    def copy(pod: str, container: str) -> None:
        path = object_path(kind, namespace, pod) + "/log"
        label = f"[pod/{pod}/{container}] " if prefixed else ""
        pending = b""
        for chunk in client.stream_bytes(path, {**params, "container": container}):
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            if lines:
                text = "".join(f"{label}{line.decode('utf-8', 'replace')}\n" for line in lines)
                with lock:
                    sys.stdout.write(text)
                    sys.stdout.flush()
        if pending:
            with lock:
                sys.stdout.write(f"{label}{pending.decode('utf-8', 'replace')}\n")
                sys.stdout.flush()

    workload, name = _workload(args.target)
    if args.follow and workload is not None:
        return _follow_workload(client, namespace, workload, name, args, copy)
    if len(streams) == 1 or not args.follow:
        for pod, container in streams:
            copy(pod, container)
        return 0
    errors: list[BaseException] = []

    def run(pod: str, container: str) -> None:
        try:
            copy(pod, container)
        except BaseException as exc:  # reported after the other streams end
            errors.append(exc)

    threads = [threading.Thread(target=run, args=s, daemon=True) for s in streams]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return 0


def _started(pod: dict[str, Any], container: str) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    statuses += (pod.get("status") or {}).get("initContainerStatuses") or []
    for status in statuses:
        if status.get("name") == container:
            state = status.get("state") or {}
            return "running" in state or "terminated" in state
    return False


def _finished(client: ControlClient, namespace: str, kind: ResourceKind, name: str) -> bool:
    from wonderland.control.client import object_path
    from wonderland.errors import NotFoundError

    if kind.resource not in _FINISHING:
        return False
    try:
        obj = client.request("GET", object_path(kind, namespace, name))
    except NotFoundError:
        return True
    return any(
        c.get("type") in _FINISHED and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


def _follow_workload(
    client: ControlClient,
    namespace: str,
    kind: ResourceKind,
    name: str,
    args: argparse.Namespace,
    copy: Callable[[str, str], None],
) -> int:
    """Follow every pod of the workload as its containers start, until it has finished
    (a TrainJob's nodes start after its initializers: they are followed when they do)."""
    import time

    threads: dict[tuple[str, str], threading.Thread] = {}
    errors: list[BaseException] = []

    def run(pod: str, container: str) -> None:
        try:
            copy(pod, container)
        except BaseException as exc:  # reported after the other streams end
            errors.append(exc)

    while True:
        done = _finished(client, namespace, kind, name)
        for pod in _listing(client, namespace, kind, name):
            for container in _containers(pod, args.container, args.all_containers):
                key = (pod["metadata"]["name"], container)
                if key not in threads and _started(pod, container):
                    thread = threading.Thread(target=run, args=key, daemon=True)
                    threads[key] = thread
                    thread.start()
        if done and not any(t.is_alive() for t in threads.values()):
            break
        time.sleep(POLL)
    if errors:
        raise errors[0]
    return 0
