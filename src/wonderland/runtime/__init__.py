"""The process supervisor: replicas as local processes, probes, logs, images, companions."""

from __future__ import annotations

from wonderland.runtime import companions
from wonderland.runtime.env import PodInfo, container_env, expand
from wonderland.runtime.images import BuildError, BuiltImage, ImageResolver, image_base_name
from wonderland.runtime.probes import ProbeSpec, run_probe
from wonderland.runtime.supervisor import Replica, ReplicaTemplate, Supervisor

__all__ = [
    "BuildError",
    "BuiltImage",
    "ImageResolver",
    "PodInfo",
    "ProbeSpec",
    "Replica",
    "ReplicaTemplate",
    "Supervisor",
    "companions",
    "container_env",
    "expand",
    "image_base_name",
    "run_probe",
]
