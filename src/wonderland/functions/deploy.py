"""``func deploy``: build the function once, then create or update its Knative Service on
the local platform through the control API. A code or ``func.yaml`` change makes a new
revision (the source digest is on the revision template); an unchanged redeploy leaves
the Service as it is, as ``kubectl apply`` would.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wonderland.errors import ConfigError, InvalidError, NotFoundError
from wonderland.functions.build import ENV_DIR, build_function
from wonderland.functions.envs import ResourceLookup, decode_secret_data, referenced_resources
from wonderland.functions.funcyaml import FunctionConfig, load_config
from wonderland.functions.kube import KubeClient, find_kubeconfig, resource_path
from wonderland.functions.loader import detect_layout
from wonderland.functions.manifest import (
    FUNCTION_NAME_LABEL,
    FUNCTION_RUNTIME_LABEL,
    build_service,
)
from wonderland.functions.subscriptions import apply_subscriptions, dapr_annotations

__all__ = ["DeployResult", "deploy_function", "platform_client", "platform_lookup"]

_SKIP_DIRS = {".func", ".git", "__pycache__", ".venv", ".pytest_cache", ".mypy_cache"}


@dataclass(frozen=True)
class DeployResult:
    """What ``func deploy`` did."""

    name: str
    namespace: str
    url: str
    revision: str
    created: bool
    service: dict[str, Any]


def platform_client(environ: Mapping[str, str] | None = None) -> KubeClient | None:
    """A client for the running platform, or None when no kubeconfig is found."""
    path = find_kubeconfig(environ)
    return KubeClient.from_kubeconfig(path) if path is not None else None


def platform_lookup(client: KubeClient | None = None) -> ResourceLookup | None:
    """Reads Secrets and ConfigMaps from the platform (None when there is no platform)."""
    client = client or platform_client()
    if client is None:
        return None
    found = client

    def lookup(kind: str, namespace: str, name: str) -> Mapping[str, str]:
        obj = found.get(kind, namespace, name)
        if obj is None:
            raise NotFoundError(
                f"func.yaml run.envs refers to {kind} {namespace}/{name}, which does not exist "
                f"on the platform; create it (wonderland apply -f ...) first"
            )
        if kind == "Secret":
            return decode_secret_data(obj)
        return {k: str(v) for k, v in (obj.get("data") or {}).items()}

    return lookup


def source_digest(root: Path) -> str:
    """A digest of the function's files (not of caches and build output)."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for filename in sorted(filenames):
            if filename.endswith((".pyc", ".pyo")):
                continue
            path = Path(dirpath) / filename
            digest.update(str(path.relative_to(root)).encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def image_name(config: FunctionConfig) -> str:
    """The image Knative's ``func`` would build: ``image``, else ``registry/name:latest``."""
    if config.data.get("image"):
        return str(config.data["image"])
    registry = str(config.data.get("registry") or "dev.local").rstrip("/")
    return f"{registry}/{config.name}:latest"


def _service_container(service: dict[str, Any], root: Path, python: Path, invoke: str) -> None:
    """Make the Service's container run the function host from the built environment."""
    container = service["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [str(python), "-m", "wonderland.functions.host"]
    container["args"] = ["--invoke", invoke, str(root)]
    container["workingDir"] = str(root)


def _check_references(config: FunctionConfig, lookup: ResourceLookup, namespace: str) -> None:
    for kind, name, key in referenced_resources(config.run_envs):
        data = lookup(kind, namespace, name)
        if key is not None and key not in data:
            raise NotFoundError(
                f"func.yaml run.envs refers to key {key!r} of {kind} {namespace}/{name}, which "
                f"has keys {', '.join(sorted(data)) or '(none)'}; fix the key or the {kind}"
            )


def _ready(service: Mapping[str, Any]) -> tuple[bool, str]:
    status = service.get("status") or {}
    if (status.get("observedGeneration") or 0) < (service.get("metadata") or {}).get(
        "generation", 0
    ):
        return False, "waiting for the controller"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            if condition.get("status") == "True":
                return True, ""
            if condition.get("status") == "False":
                reason = condition.get("reason") or ""
                raise ConfigError(
                    f"the Service did not become Ready: {reason} {condition.get('message') or ''}"
                    "; see `wonderland logs`"
                )
            return False, str(condition.get("message") or condition.get("reason") or "")
    return False, "no Ready condition yet"


def deploy_function(
    path: Path,
    *,
    namespace: str | None = None,
    rebuild: bool = False,
    wait: bool = True,
    timeout: float = 120.0,
    client: KubeClient | None = None,
    environ: Mapping[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> DeployResult:
    """Build the function and create or update its Knative Service."""
    say = progress or (lambda _line: None)
    env = os.environ if environ is None else environ
    root = path.resolve()
    config = load_config(root)
    if not config.name:
        raise InvalidError(f"{config.path}: name is not set; add `name: <function-name>`")
    config.check_runnable_here()
    detect_layout(root)
    client = client or platform_client(env)
    if client is None:
        raise ConfigError(
            "no running platform found (no kubeconfig in the state directory); start it with "
            "`wonderland up` in another terminal, or set WONDERLAND_HOME to its state directory"
        )
    ns = namespace or config.namespace
    built = build_function(root, force=rebuild)
    say(
        f"Built {config.name}"
        + (f" (installed {', '.join(built.installed)})" if built.installed else " (cached)")
    )
    lookup = platform_lookup(client)
    if lookup is not None:
        _check_references(config, lookup, ns)
    service = build_service(
        config,
        image=image_name(config),
        namespace=ns,
        environ=env,
        source_digest=source_digest(root),
        source_path=str(root),
        extra_annotations=dapr_annotations(config) if config.subscriptions else None,
    )
    _service_container(service, root, built.python, config.invoke)
    # Subscriptions first: a sidecar reads them when its replica starts.
    for name in apply_subscriptions(client, config, ns):
        say(f"Applied Subscription {ns}/{name}")
    existed = client.get("Service", ns, config.name) is not None
    applied = client.apply(service)
    say(f"{'Updated' if existed else 'Created'} Service {ns}/{config.name}")
    deadline = time.monotonic() + timeout
    current = applied
    while wait:
        fetched = client.get("Service", ns, config.name)
        current = fetched or current
        ok, why = _ready(current)
        if ok:
            break
        if time.monotonic() > deadline:
            raise ConfigError(
                f"Service {ns}/{config.name} is not Ready after {timeout:g}s ({why}); check "
                "`wonderland describe ksvc " + config.name + "` and the function's logs"
            )
        time.sleep(0.2)
    status = current.get("status") or {}
    return DeployResult(
        name=config.name,
        namespace=ns,
        url=str(status.get("url") or ""),
        revision=str(
            status.get("latestReadyRevisionName") or status.get("latestCreatedRevisionName") or ""
        ),
        created=not existed,
        service=current,
    )


def delete_function(
    path: Path, *, namespace: str | None = None, client: KubeClient | None = None
) -> list[str]:
    """Remove the function's Service and Subscriptions; return what was deleted."""
    config = load_config(path.resolve())
    client = client or platform_client()
    if client is None:
        raise ConfigError("no running platform found; start it with `wonderland up`")
    ns = namespace or config.namespace
    if client.get("Service", ns, config.name) is None:
        raise NotFoundError(f"function {config.name} is not deployed in namespace {ns}")
    deleted: list[str] = []
    selector = f"{FUNCTION_NAME_LABEL}={config.name}"
    listing = client.request(
        "GET", resource_path("Subscription", ns) + f"?labelSelector={selector}"
    )
    for item in (listing or {}).get("items") or []:
        name = item["metadata"]["name"]
        client.delete("Subscription", ns, name)
        deleted.append(f"Subscription {ns}/{name}")
    client.delete("Service", ns, config.name)
    deleted.append(f"Service {ns}/{config.name}")
    return deleted


@dataclass(frozen=True)
class DeployedFunction:
    """One row of ``func list``."""

    name: str
    namespace: str
    runtime: str
    url: str
    ready: str


def list_functions(
    namespace: str | None = "default", client: KubeClient | None = None
) -> list[DeployedFunction]:
    """The deployed functions (Services labelled ``function.knative.dev/name``);
    ``namespace`` None lists every namespace."""
    client = client or platform_client()
    if client is None:
        raise ConfigError("no running platform found; start it with `wonderland up`")
    base = "/apis/serving.knative.dev/v1/" + (
        f"namespaces/{namespace}/services" if namespace else "services"
    )
    listing = client.request("GET", f"{base}?labelSelector={FUNCTION_NAME_LABEL}")
    out: list[DeployedFunction] = []
    for item in (listing or {}).get("items") or []:
        meta, status = item.get("metadata") or {}, item.get("status") or {}
        ready = next(
            (
                str(c.get("status"))
                for c in status.get("conditions") or []
                if c.get("type") == "Ready"
            ),
            "Unknown",
        )
        out.append(
            DeployedFunction(
                name=str(meta.get("name")),
                namespace=str(meta.get("namespace")),
                runtime=str((meta.get("labels") or {}).get(FUNCTION_RUNTIME_LABEL, "")),
                url=str(status.get("url") or ""),
                ready=ready,
            )
        )
    return sorted(out, key=lambda f: (f.namespace, f.name))


__all__ += ["ENV_DIR", "delete_function", "image_name", "list_functions", "source_digest"]
