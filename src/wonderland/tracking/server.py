"""MLflow's tracking server as a platform component, run lean (see :mod:`mlflow_process`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["lean_command", "lean_environment"]


def lean_environment(
    *,
    backend_store_uri: str,
    artifacts_dir: Path,
    port: int,
    host: str = "127.0.0.1",
    allowed_hosts: Iterable[str] = (),
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of ``python -m wonderland.tracking.mlflow_process``: what ``mlflow
    server --workers 1 --serve-artifacts`` sets for its workers, with the job runner off."""
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "_MLFLOW_SERVER_FILE_STORE": backend_store_uri,
            "_MLFLOW_SERVER_REGISTRY_STORE": backend_store_uri,
            "_MLFLOW_SERVER_ARTIFACT_ROOT": "mlflow-artifacts:/",
            "_MLFLOW_SERVER_SERVE_ARTIFACTS": "true",
            "_MLFLOW_SERVER_ARTIFACT_DESTINATION": str(artifacts_dir),
            "_MLFLOW_SGI_NAME": "uvicorn",
            "_MLFLOW_IN_JOB_EXECUTOR": "false",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "WONDERLAND_MLFLOW_HOST": host,
            "WONDERLAND_MLFLOW_LISTEN_PORT": str(port),
        }
    )
    hosts = [h for h in allowed_hosts if h]
    if hosts:
        # MLflow's DNS-rebinding check: loopback is allowed by default; the gateway's
        # host names (mlflow.<domain>, mlflow.<ns>.svc.cluster.local) are added
        loopback = ["localhost", "127.0.0.1", "[::1]", "localhost:*", "127.0.0.1:*", "[[]::1]:*"]
        extra = [p for h in hosts for p in (h, f"{h}:*")]
        env["MLFLOW_SERVER_ALLOWED_HOSTS"] = ",".join(loopback + extra)
    # the server never goes through a proxy meant for workloads
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "grpc_proxy"):
        env.pop(var, None)
    return env


def lean_command(python: str | None = None) -> list[str]:
    return [python or sys.executable, "-m", "wonderland.tracking.mlflow_process"]
