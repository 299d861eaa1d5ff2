"""The MLflow tracking server process, run lean: ``python -m wonderland.tracking.mlflow_process``.

What ``mlflow server`` does before it starts its web server, without its job runner and
huey consumers (seven more processes, each importing mlflow) and with one uvicorn
worker, so one process holds the store (SQLite needs one writer):

1. the backend and registry stores are created or migrated (``initialize_backend_stores``);
2. uvicorn serves ``mlflow.server.fastapi_app:app`` (the REST API, the artifact proxy and
   the UI), configured by the ``_MLFLOW_SERVER_*`` variables ``mlflow server`` sets for its
   workers (:func:`wonderland.tracking.server.lean_environment` builds them).

The variables are private to MLflow; the version is pinned in the ``mlflow`` extra and a
test starts this process against the pinned version.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    host = os.environ.get("WONDERLAND_MLFLOW_HOST", "127.0.0.1")
    port = int(os.environ["WONDERLAND_MLFLOW_LISTEN_PORT"])
    backend = os.environ["_MLFLOW_SERVER_FILE_STORE"]
    registry = os.environ.get("_MLFLOW_SERVER_REGISTRY_STORE", backend)
    artifact_root = os.environ["_MLFLOW_SERVER_ARTIFACT_ROOT"]

    import uvicorn
    from mlflow.server.handlers import initialize_backend_stores

    initialize_backend_stores(backend, registry, artifact_root)
    uvicorn.run(
        "mlflow.server.fastapi_app:app",
        host=host,
        port=port,
        workers=1,
        log_level=os.environ.get("WONDERLAND_MLFLOW_LOG_LEVEL", "warning"),
        access_log=False,
        lifespan="on",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
