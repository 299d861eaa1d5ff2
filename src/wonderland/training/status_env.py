"""What lets training code report its progress: upstream's ``trainjobstatus`` plugin.

Every container of the trainer's pods gets ``KUBEFLOW_TRAINER_SERVER_URL`` (the status
endpoint of this TrainJob on the control API), ``KUBEFLOW_TRAINER_SERVER_CA_CERT`` and
``KUBEFLOW_TRAINER_SERVER_TOKEN`` (files under ``/var/run/secrets/kubeflow/trainer``), and
the volume that holds them: a projected service account token for the endpoint's audience
and the control API's certificate from the ConfigMap ``<trainjob>-tls-config``. That is
all ``kubeflow.trainer.update_trainjob_status()`` and the transformers Kubeflow callback
look for. Upstream puts it behind the ``TrainJobStatus`` feature gate; here it is on.
"""

from __future__ import annotations

from typing import Any

from wonderland.api.schemas.core import (
    ConfigMapProjection,
    EnvVar,
    KeyToPath,
    ProjectedVolumeSource,
    ServiceAccountTokenProjection,
    Volume,
    VolumeMount,
    VolumeProjection,
)
from wonderland.api.schemas.trainer import TrainJobObject
from wonderland.control.sources import ControlEndpoint
from wonderland.training.runtime_info import (
    TRAINER,
    RuntimeInfo,
    upsert_env,
    upsert_volume,
    upsert_volume_mount,
)
from wonderland.training.status_endpoint import status_path, token_audience

__all__ = ["MOUNT_PATH", "StatusEnvironment"]

MOUNT_PATH = "/var/run/secrets/kubeflow/trainer"
VOLUME = "kubeflow-trainer-token"
TOKEN_SECONDS = 3600


class StatusEnvironment:
    """Adds the status endpoint's variables and volume to a TrainJob's trainer pods."""

    def __init__(self, endpoint: ControlEndpoint) -> None:
        self.endpoint = endpoint

    def inject(self, info: RuntimeInfo, job: TrainJobObject) -> None:
        trainer = info.by_ancestor(TRAINER)
        if trainer is None:
            return
        ns, name = job.metadata["namespace"], job.metadata["name"]
        env = [
            EnvVar(
                name="KUBEFLOW_TRAINER_SERVER_URL", value=self.endpoint.url + status_path(ns, name)
            ),
            EnvVar(name="KUBEFLOW_TRAINER_SERVER_CA_CERT", value=f"{MOUNT_PATH}/ca.crt"),
            EnvVar(name="KUBEFLOW_TRAINER_SERVER_TOKEN", value=f"{MOUNT_PATH}/token"),
        ]
        for container in trainer.pod_spec.containers:
            upsert_env(container, *env)
            upsert_volume_mount(
                container, VolumeMount(name=VOLUME, mountPath=MOUNT_PATH, readOnly=True)
            )
        volume = Volume(
            name=VOLUME,
            projected=ProjectedVolumeSource(
                sources=[
                    VolumeProjection(
                        serviceAccountToken=ServiceAccountTokenProjection(
                            audience=token_audience(ns, name),
                            expirationSeconds=TOKEN_SECONDS,
                            path="token",
                        )
                    ),
                    VolumeProjection(
                        configMap=ConfigMapProjection(
                            name=f"{name}-tls-config",
                            items=[KeyToPath(key="ca.crt", path="ca.crt")],
                        )
                    ),
                ]
            ),
        )
        trainer.pod_spec.volumes = upsert_volume(trainer.pod_spec.volumes, volume)

    def ca_config_map(
        self, name: str, namespace: str, owner: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"{name}-tls-config",
                "namespace": namespace,
                "ownerReferences": owner,
            },
            "data": {"ca.crt": self.endpoint.ca_pem.decode()},
        }
