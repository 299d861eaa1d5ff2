"""The ML policies of a runtime: what each framework's plugin injects into the trainer's
pods (upstream's ``torch``, ``mpi``, ``jax``, ``xgboost`` and ``plainml`` plugins).

The variable names and values are upstream's, with one difference a single machine needs:
every node process runs on this host, so the rendezvous address is ``127.0.0.1`` and the
port is a free one picked per TrainJob (``master_port``), not the cluster's fixed 29500
behind ``<trainjob>-node-0-0.<trainjob>``; jobs can then run side by side.
"""

from __future__ import annotations

import base64
import math

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from wonderland.api import quantity
from wonderland.api.schemas.core import (
    ConfigMapVolumeSource,
    ContainerPort,
    EnvVar,
    EnvVarSource,
    FieldSelector,
    KeyToPath,
    ResourceRequirements,
    SecretVolumeSource,
    Volume,
    VolumeMount,
)
from wonderland.api.schemas.trainer import TrainJobObject
from wonderland.training.runtime_info import (
    LAUNCHER,
    NODE,
    TRAINER,
    PodSet,
    RuntimeInfo,
    upsert_env,
    upsert_port,
    upsert_volume,
    upsert_volume_mount,
)

__all__ = [
    "LOCAL_ADDRESS",
    "MPI_RESERVED_ENV",
    "PORT_VARIABLES",
    "TORCH_RESERVED_ENV",
    "XGBOOST_RESERVED_ENV",
    "enforce_ml_policy",
    "gpus_per_node",
    "hostfile",
    "ssh_auth_secret",
]

LOCAL_ADDRESS = "127.0.0.1"
COMPLETION_INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']"

TORCH_RESERVED_ENV = frozenset(
    {"PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT"}
)
XGBOOST_RESERVED_ENV = frozenset(
    {"DMLC_TRACKER_URI", "DMLC_TRACKER_PORT", "DMLC_TASK_ID", "DMLC_NUM_WORKER"}
)
MPI_RESERVED_ENV = frozenset(
    {
        "OMPI_MCA_orte_default_hostfile",
        "OMPI_MCA_plm_rsh_args",
        "OMPI_MCA_orte_keep_fqdn_hostnames",
        "OMPI_MCA_orte_set_default_slots",
    }
)
TORCHTUNE_ENTRYPOINT = ["tune", "run"]
# The variables that carry the rendezvous port (kept when a suspended job is rebuilt).
PORT_VARIABLES = frozenset({"PET_MASTER_PORT", "DMLC_TRACKER_PORT"})
MPI_HOSTFILE_DIR = "/etc/mpi"
MPI_HOSTFILE = "hostfile"


def _value(name: str, value: str) -> EnvVar:
    return EnvVar(name=name, value=value)


def _rank(name: str) -> EnvVar:
    return EnvVar(
        name=name, valueFrom=EnvVarSource(fieldRef=FieldSelector(fieldPath=COMPLETION_INDEX))
    )


def gpus_per_node(resources: ResourceRequirements) -> int:
    """Requests, else limits, of the first resource whose name contains "gpu"."""

    def count(values: dict[str, str | int | float] | None) -> int:
        for name, amount in (values or {}).items():
            if "gpu" in name.lower():
                return math.ceil(quantity.parse(amount))
        return 0

    return count(resources.requests) or count(resources.limits)


def _cpus_per_node(resources: ResourceRequirements) -> int:
    request = (resources.requests or {}).get("cpu")
    limit = (resources.limits or {}).get("cpu")
    chosen = request if request is not None and quantity.parse(request) != 0 else limit
    return math.ceil(quantity.parse(chosen)) if chosen is not None else 0


def _set_nodes(info: RuntimeInfo, job: TrainJobObject) -> PodSet | None:
    trainer_ps = info.by_ancestor(TRAINER)
    trainer = job.spec.trainer
    if trainer_ps is not None and trainer is not None and trainer.numNodes is not None:
        trainer_ps.count = trainer.numNodes
    return trainer_ps


def enforce_ml_policy(info: RuntimeInfo, job: TrainJobObject, master_port: int) -> None:
    """Apply the runtime's ML policy (exactly one, or plain) to ``info``."""
    policy = info.ml_policy
    if policy is not None and policy.torch is not None:
        _torch(info, job, master_port)
    elif policy is not None and policy.mpi is not None:
        _mpi(info, job)
    elif policy is not None and policy.jax is not None:
        _jax(info, job, master_port)
    elif policy is not None and policy.xgboost is not None:
        _xgboost(info, job, master_port)
    else:
        _plain(info, job)


def _user_env(info: RuntimeInfo, job: TrainJobObject) -> None:
    node = info.trainer_container()
    if node is not None and job.spec.trainer is not None:
        upsert_env(node, *(job.spec.trainer.env or []))


def _torch(info: RuntimeInfo, job: TrainJobObject, port: int) -> None:
    trainer_ps = _set_nodes(info, job)
    trainer = job.spec.trainer
    procs = "auto"
    if trainer is not None and trainer.numProcPerNode is not None:
        procs = str(trainer.numProcPerNode)
    resources = info.resources_per_node(job)
    gpus = gpus_per_node(resources)
    if procs == "auto" and gpus == 0:
        procs = str(max(1, _cpus_per_node(resources)))
    nodes = trainer_ps.count if trainer_ps is not None else 1
    pet = [
        _value("PET_NNODES", str(nodes)),
        _value("PET_NPROC_PER_NODE", procs),
        _rank("PET_NODE_RANK"),
    ]
    master = [_value("PET_MASTER_ADDR", LOCAL_ADDRESS), _value("PET_MASTER_PORT", str(port))]
    node = info.trainer_container() if trainer is not None else None
    if node is not None and trainer is not None:
        upsert_env(node, *(trainer.env or []))
        upsert_env(node, *pet)
        if (trainer.command or []) != TORCHTUNE_ENTRYPOINT:
            upsert_env(node, *master)
        upsert_port(node, ContainerPort(containerPort=port))
    policy = info.ml_policy
    injection = policy.torch.envInjection if policy and policy.torch else None
    for target in (injection.targets if injection else None) or []:
        ps = info.by_name(target.jobName or "")
        for name in target.containerNames or []:
            container = ps.container(name) if ps is not None else None
            if container is not None:
                upsert_env(container, *pet, *master)


def _jax(info: RuntimeInfo, job: TrainJobObject, port: int) -> None:
    trainer_ps = _set_nodes(info, job)
    node = info.trainer_container() if job.spec.trainer is not None else None
    if node is None:
        return
    nodes = trainer_ps.count if trainer_ps is not None else 1
    upsert_env(
        node,
        _value("JAX_NUM_PROCESSES", str(nodes)),
        _rank("JAX_PROCESS_ID"),
        _value("JAX_COORDINATOR_ADDRESS", f"{LOCAL_ADDRESS}:{port}"),
    )
    upsert_port(node, ContainerPort(containerPort=port))


def _xgboost(info: RuntimeInfo, job: TrainJobObject, port: int) -> None:
    trainer_ps = _set_nodes(info, job)
    node = info.trainer_container() if job.spec.trainer is not None else None
    if node is None:
        return
    nodes = trainer_ps.count if trainer_ps is not None else 1
    workers = nodes * max(gpus_per_node(info.resources_per_node(job)), 1)
    upsert_env(
        node,
        _value("DMLC_TRACKER_URI", LOCAL_ADDRESS),
        _value("DMLC_TRACKER_PORT", str(port)),
        _rank("DMLC_TASK_ID"),
        _value("DMLC_NUM_WORKER", str(workers)),
    )
    upsert_port(node, ContainerPort(containerPort=port))


def _plain(info: RuntimeInfo, job: TrainJobObject) -> None:
    _set_nodes(info, job)
    _user_env(info, job)


def _mpi(info: RuntimeInfo, job: TrainJobObject) -> None:
    """Slots and the OpenMPI variables for the launcher; the hostfile lists this machine
    (see :func:`hostfile`), so mpirun starts every rank here without ssh."""
    policy = info.ml_policy
    assert policy is not None and policy.mpi is not None
    mpi = policy.mpi
    trainer = job.spec.trainer
    launcher_as_node = bool(mpi.runLauncherAsNode)
    node_ps = info.by_name(NODE)
    if trainer is not None and trainer.numNodes is not None and node_ps is not None:
        node_ps.count = max(trainer.numNodes - 1, 1) if launcher_as_node else trainer.numNodes
    if trainer is not None and trainer.numProcPerNode is not None:
        mpi.numProcPerNode = trainer.numProcPerNode
    elif (mpi.numProcPerNode or 1) == 1:
        gpus = gpus_per_node(info.resources_per_node(job))
        if gpus > 1:
            mpi.numProcPerNode = gpus
    name = str(job.metadata["name"])
    ssh_volume = Volume(
        name="mpi-ssh-auth",
        secret=SecretVolumeSource(
            secretName=f"{name}-mpi-ssh-auth",
            defaultMode=0o400,
            items=[
                KeyToPath(key="ssh-privatekey", path="id_rsa", mode=0o640),
                KeyToPath(key="ssh-publickey", path="id_rsa.pub", mode=0o644),
                KeyToPath(key="ssh-publickey", path="authorized_keys", mode=0o644),
            ],
        ),
    )
    hostfile_volume = Volume(
        name="mpi-hostfile",
        configMap=ConfigMapVolumeSource(
            name=f"{name}-mpi-hostfile",
            items=[KeyToPath(key=MPI_HOSTFILE, path=MPI_HOSTFILE, mode=0o444)],
        ),
    )
    ssh_path = mpi.sshAuthMountPath or "/root/.ssh"
    for ps in info.pod_sets:
        if ps.name not in (NODE, LAUNCHER):
            continue
        ps.pod_spec.volumes = upsert_volume(ps.pod_spec.volumes, ssh_volume)
        if ps.name == LAUNCHER:
            ps.pod_spec.volumes = upsert_volume(ps.pod_spec.volumes, hostfile_volume)
        for container in ps.pod_spec.containers:
            if container.name != NODE:
                continue
            upsert_volume_mount(container, VolumeMount(name="mpi-ssh-auth", mountPath=ssh_path))
            if ps.name == LAUNCHER:
                upsert_volume_mount(
                    container, VolumeMount(name="mpi-hostfile", mountPath=MPI_HOSTFILE_DIR)
                )
    launcher = info.by_name(LAUNCHER)
    node = launcher.container(NODE) if launcher is not None else None
    if node is not None:
        upsert_env(
            node,
            _value("OMPI_MCA_orte_default_hostfile", f"{MPI_HOSTFILE_DIR}/{MPI_HOSTFILE}"),
            _value("OMPI_MCA_orte_keep_fqdn_hostnames", "true"),
            _value("OMPI_MCA_orte_set_default_slots", str(mpi.numProcPerNode or 1)),
            _value("OMPI_MCA_plm_rsh_args", "-o ConnectionAttempts=10"),
        )
    _user_env(info, job)


def hostfile(info: RuntimeInfo) -> str:
    """The MPI hostfile: every node's slots, on this machine (one line, the slots summed)."""
    policy = info.ml_policy
    if policy is None or policy.mpi is None:
        return ""
    slots = policy.mpi.numProcPerNode or 1
    launcher_as_node = bool(policy.mpi.runLauncherAsNode)
    nodes = 0
    for ps in info.pod_sets:
        if ps.name == NODE or (launcher_as_node and ps.name == LAUNCHER):
            nodes += ps.count * (ps.job.replicas or 1)
    return f"localhost slots={max(nodes, 1) * slots}\n"


def ssh_auth_secret(name: str, namespace: str, owner: list[dict[str, object]]) -> dict[str, object]:
    """``<trainjob>-mpi-ssh-auth``: an ECDSA P-521 key pair as upstream makes it (the
    launcher and nodes mount it; mpirun here starts ranks without ssh, so it is unused)."""
    key = ec.generate_private_key(ec.SECP521R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/ssh-auth",
        "immutable": True,
        "metadata": {
            "name": f"{name}-mpi-ssh-auth",
            "namespace": namespace,
            "ownerReferences": owner,
        },
        "data": {
            "ssh-privatekey": base64.b64encode(private).decode(),
            "ssh-publickey": base64.b64encode(public + b"\n").decode(),
        },
    }
