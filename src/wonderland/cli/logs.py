"""``wonderland logs``: the logs of a pod, or of every pod of a workload, as kubectl shows them.

``pod/NAME`` (or a bare pod name) reads that pod's container; ``ksvc/NAME``, ``rev/NAME``
and ``job/NAME`` read every pod of the service, revision or Job, each line prefixed with
``[pod/NAME/CONTAINER]`` when there is more than one. Everything goes through the control
API's ``pods/log``, so the flags mean what kubectl's do.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wonderland.control.client import ControlClient

__all__ = ["register"]

# [KIND/]NAME -> the label that selects the pods of that kind of object
_SELECTORS = {
    "services.serving.knative.dev": "serving.knative.dev/service",
    "revisions.serving.knative.dev": "serving.knative.dev/revision",
    "configurations.serving.knative.dev": "serving.knative.dev/configuration",
    "jobs.batch": "batch.kubernetes.io/job-name",
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    logs = subparsers.add_parser(
        "logs",
        help="print the logs of a pod, or of the pods of a service, revision or job",
    )
    logs.add_argument(
        "target",
        metavar="[KIND/]NAME",
        help="pod/NAME (or NAME), ksvc/NAME, rev/NAME or job/NAME",
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


def _pods(client: ControlClient, namespace: str, target: str) -> list[dict[str, Any]]:
    from wonderland.api import registry
    from wonderland.control.client import object_path
    from wonderland.errors import InvalidError, NotFoundError

    pods_kind = registry.lookup("pods")
    kind_name, _, name = target.rpartition("/")
    kind = registry.lookup(kind_name) if kind_name else None
    if kind is None or kind.resource == "pods":
        try:
            return [client.request("GET", object_path(pods_kind, namespace, name))]
        except NotFoundError:
            if kind is not None:
                raise
            kind = registry.lookup("ksvc")  # a bare name that is no pod: a service's
    label = _SELECTORS.get(kind.resource)
    if label is None:
        raise InvalidError(
            "target",
            f"logs are read from pods; {kind.plural} have none (use pod/, ksvc/, rev/ or job/)",
        )
    listing = client.request(
        "GET", object_path(pods_kind, namespace), params={"labelSelector": f"{label}={name}"}
    )
    pods = sorted(listing["items"], key=lambda p: p["metadata"].get("creationTimestamp", ""))
    if not pods:
        raise NotFoundError(f'no pods of {kind.singular} "{name}" in namespace "{namespace}"')
    return pods


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
    pods = _pods(client, namespace, args.target)
    streams = [
        (pod["metadata"]["name"], c)
        for pod in pods
        for c in _containers(pod, args.container, args.all_containers)
    ]
    prefixed = args.prefix or len(streams) > 1
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
