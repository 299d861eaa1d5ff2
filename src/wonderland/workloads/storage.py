"""Persistent storage: the default StorageClass, a local-path provisioner and the binder.

As kind ships ``standard`` (rancher local-path), the platform installs a default
StorageClass ``standard`` whose provisioner ``wonderland.dev/local-path`` makes a folder
under ``<state>/volumes/pvc-<uid>`` for each claim, with ``volumeBindingMode: Immediate``
(one node: nothing to wait for). Claims bind to a matching existing PersistentVolume first
(``volumeName``, or the smallest Available one of the class), as the PV controller does.

The protection finalizers are kept as on a cluster: a claim a running pod uses stays
``Terminating`` until the pod is gone; a volume stays until its claim is. With
``reclaimPolicy: Delete`` the folder is removed with the claim; with ``Retain`` the volume
becomes ``Released`` and keeps the data.
"""

from __future__ import annotations

import logging
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

from wonderland.api import quantity
from wonderland.controllers import Result
from wonderland.errors import ConflictError, NotFoundError, WonderlandError
from wonderland.store import Store
from wonderland.workloads.admission import DEFAULT_STORAGE_CLASS

__all__ = [
    "PROVISIONER",
    "ClaimReconciler",
    "VolumeReconciler",
    "claim_path",
    "ensure_default_class",
]

log = logging.getLogger("wonderland.workloads.storage")

Obj = dict[str, Any]
PROVISIONER = "wonderland.dev/local-path"
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"
PVCS = "persistentvolumeclaims"
PVS = "persistentvolumes"


def ensure_default_class(store: Store) -> None:
    """Create ``standard`` unless a StorageClass of that name exists."""
    try:
        store.get("storageclasses.storage.k8s.io", None, DEFAULT_STORAGE_CLASS)
    except NotFoundError:
        store.create(
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": DEFAULT_STORAGE_CLASS,
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": PROVISIONER,
                "reclaimPolicy": "Delete",
                "volumeBindingMode": "Immediate",
                "allowVolumeExpansion": False,
            }
        )


def _get(store: Store, resource: str, namespace: str | None, name: str) -> Obj | None:
    try:
        return store.get(resource, namespace, name)
    except NotFoundError:
        return None


def _storage(obj: Obj, key: str) -> Decimal:
    spec = obj.get("spec") or {}
    if key == "capacity":
        value = (spec.get("capacity") or {}).get("storage", 0)
    else:
        value = ((spec.get("resources") or {}).get("requests") or {}).get("storage", 0)
    return quantity.parse(value)


def _in_use(store: Store, namespace: str, claim: str) -> list[str]:
    pods, _ = store.list("pods", namespace)
    users = []
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            if (volume.get("persistentVolumeClaim") or {}).get("claimName") == claim:
                users.append(pod["metadata"]["name"])
    return users


class ClaimReconciler:
    """PersistentVolumeClaims: provision, bind, protect."""

    resource: str = PVCS
    owns: tuple[str, ...] = ()
    watches: tuple[str, ...] = ("pods", PVS)

    def __init__(self, store: Store, state_dir: Path, record: Any) -> None:
        self.store = store
        self.root = state_dir / "volumes"
        self.record = record

    async def reconcile(self, namespace: str, name: str) -> Result | None:
        pvc = _get(self.store, PVCS, namespace, name)
        if pvc is None:
            return None
        meta = pvc["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if meta.get("deletionTimestamp"):
            if PVC_PROTECTION in finalizers and not _in_use(self.store, namespace, name):
                meta["finalizers"] = [f for f in finalizers if f != PVC_PROTECTION]
                try:
                    self.store.update(pvc)
                except (ConflictError, NotFoundError):
                    return Result(requeue_after=0.1)
            return None
        if PVC_PROTECTION not in finalizers:
            meta["finalizers"] = [*finalizers, PVC_PROTECTION]
            try:
                pvc = self.store.update(pvc)
            except (ConflictError, NotFoundError):
                return Result(requeue_after=0.1)
        status = pvc.get("status") or {}
        spec = pvc.get("spec") or {}
        if status.get("phase") == "Bound":
            volume = spec.get("volumeName")
            if volume and _get(self.store, PVS, None, volume) is None:
                self._status(pvc, {"phase": "Lost"})
                self.record(
                    self.store,
                    pvc,
                    "Warning",
                    "ClaimLost",
                    f"Bound claim has lost its PersistentVolume {volume}. Data on the volume "
                    "is lost!",
                    "persistentvolume-controller",
                )
            return None
        pv = self._find(pvc)
        if pv is None:
            pv = self._provision(pvc)
        if pv is None:
            if status.get("phase") != "Pending":
                self._status(pvc, {"phase": "Pending"})
            return None
        self._bind(pvc, pv)
        return None

    def _find(self, pvc: Obj) -> Obj | None:
        spec = pvc.get("spec") or {}
        wanted_class = spec.get("storageClassName") or ""
        request = _storage(pvc, "request")
        modes = set(spec.get("accessModes") or [])
        if spec.get("volumeName"):
            pv = _get(self.store, PVS, None, spec["volumeName"])
            if pv is None:
                return None
            claim = (pv.get("spec") or {}).get("claimRef") or {}
            if claim and claim.get("uid") not in (None, pvc["metadata"]["uid"]):
                return None
            return pv
        volumes, _ = self.store.list(PVS)
        best: Obj | None = None
        for pv in volumes:
            pv_spec = pv.get("spec") or {}
            if pv_spec.get("claimRef") or (pv.get("status") or {}).get("phase") not in (
                None,
                "Available",
                "Pending",
            ):
                continue
            if pv["metadata"].get("deletionTimestamp"):
                continue
            if (pv_spec.get("storageClassName") or "") != wanted_class:
                continue
            if not modes <= set(pv_spec.get("accessModes") or []):
                continue
            if _storage(pv, "capacity") < request:
                continue
            if best is None or _storage(pv, "capacity") < _storage(best, "capacity"):
                best = pv
        return best

    def _provision(self, pvc: Obj) -> Obj | None:
        spec = pvc.get("spec") or {}
        class_name = spec.get("storageClassName")
        if not class_name:
            return None
        sc = _get(self.store, "storageclasses.storage.k8s.io", None, class_name)
        if sc is None:
            self.record(
                self.store,
                pvc,
                "Warning",
                "ProvisioningFailed",
                f'storageclass.storage.k8s.io "{class_name}" not found',
                "persistentvolume-controller",
            )
            return None
        if sc.get("provisioner") != PROVISIONER:
            self.record(
                self.store,
                pvc,
                "Normal",
                "ExternalProvisioning",
                f"Waiting for a volume to be created either by the external provisioner "
                f"'{sc.get('provisioner')}' or manually by the system administrator. If volume "
                "creation is delayed, please verify that the provisioner is running and "
                "correctly registered.",
                "persistentvolume-controller",
            )
            return None
        uid = pvc["metadata"]["uid"]
        name = f"pvc-{uid}"
        existing = _get(self.store, PVS, None, name)
        if existing is not None:
            return existing
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o777)
        request = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "0")
        pv = self.store.create(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {
                    "name": name,
                    "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
                    "finalizers": [PV_PROTECTION],
                },
                "spec": {
                    "capacity": {"storage": str(request)},
                    "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
                    "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or "Delete",
                    "storageClassName": class_name,
                    "volumeMode": spec.get("volumeMode") or "Filesystem",
                    "hostPath": {"path": str(folder), "type": "DirectoryOrCreate"},
                    "claimRef": {
                        "apiVersion": "v1",
                        "kind": "PersistentVolumeClaim",
                        "namespace": pvc["metadata"]["namespace"],
                        "name": pvc["metadata"]["name"],
                        "uid": uid,
                    },
                },
            }
        )
        self.record(
            self.store,
            pvc,
            "Normal",
            "ProvisioningSucceeded",
            f"Successfully provisioned volume {name}",
            PROVISIONER,
        )
        return pv

    def _bind(self, pvc: Obj, pv: Obj) -> None:
        meta = pvc["metadata"]
        claim_ref = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
        }
        if (pv.get("spec") or {}).get("claimRef", {}).get("uid") != meta["uid"]:
            pv["spec"]["claimRef"] = claim_ref
            pv = self.store.update(pv)
        pv_status = {"phase": "Bound"}
        if pv.get("status") != pv_status:
            pv["status"] = pv_status
            self.store.update_status(pv)
        if (pvc.get("spec") or {}).get("volumeName") != pv["metadata"]["name"]:
            pvc["spec"]["volumeName"] = pv["metadata"]["name"]
            annotations = dict(meta.get("annotations") or {})
            annotations["pv.kubernetes.io/bind-completed"] = "yes"
            annotations["pv.kubernetes.io/bound-by-controller"] = "yes"
            provisioner = (pv["metadata"].get("annotations") or {}).get(
                "pv.kubernetes.io/provisioned-by"
            )
            if provisioner:
                annotations["volume.kubernetes.io/storage-provisioner"] = provisioner
            meta["annotations"] = annotations
            pvc = self.store.update(pvc)
        pv_spec = pv.get("spec") or {}
        self._status(
            pvc,
            {
                "phase": "Bound",
                "accessModes": list(pv_spec.get("accessModes") or []),
                "capacity": {"storage": str((pv_spec.get("capacity") or {}).get("storage", ""))},
            },
        )

    def _status(self, pvc: Obj, status: Obj) -> None:
        if pvc.get("status") == status:
            return
        pvc = dict(pvc)
        pvc["status"] = status
        try:
            self.store.update_status(pvc)
        except (ConflictError, NotFoundError):
            pass


class VolumeReconciler:
    """PersistentVolumes: Available/Bound/Released, reclaim, protection."""

    resource: str = PVS
    owns: tuple[str, ...] = ()
    watches: tuple[str, ...] = (PVCS,)

    def __init__(self, store: Store, state_dir: Path) -> None:
        self.store = store
        self.root = state_dir / "volumes"

    async def reconcile(self, namespace: str, name: str) -> Result | None:
        pv = _get(self.store, PVS, None, name)
        if pv is None:
            return None
        spec = pv.get("spec") or {}
        claim = spec.get("claimRef") or {}
        bound_claim = None
        if claim:
            bound_claim = _get(self.store, PVCS, claim.get("namespace"), claim.get("name", ""))
            if (
                bound_claim is not None
                and claim.get("uid")
                and bound_claim["metadata"]["uid"] != claim["uid"]
            ):
                bound_claim = None
        meta = pv["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if meta.get("deletionTimestamp"):
            if PV_PROTECTION in finalizers and bound_claim is None:
                meta["finalizers"] = [f for f in finalizers if f != PV_PROTECTION]
                try:
                    self.store.update(pv)
                except (ConflictError, NotFoundError):
                    return Result(requeue_after=0.1)
            return None
        if PV_PROTECTION not in finalizers:
            meta["finalizers"] = [*finalizers, PV_PROTECTION]
            try:
                pv = self.store.update(pv)
            except (ConflictError, NotFoundError):
                return Result(requeue_after=0.1)
        if not claim or (bound_claim is None and not claim.get("uid")):
            # a volume pre-bound to a claim not made yet (a claimRef without uid) waits for
            # it, as the PV controller keeps it Available; only a bound claim's loss releases
            phase = "Available"
        elif bound_claim is not None:
            phase = (
                "Bound" if (bound_claim.get("spec") or {}).get("volumeName") == name else "Pending"
            )
        else:
            phase = "Released"
        if phase == "Released" and spec.get("persistentVolumeReclaimPolicy", "Retain") == "Delete":
            self._reclaim(pv)
            return None
        status = {"phase": phase}
        if pv.get("status") != status:
            pv = dict(pv)
            pv["status"] = status
            try:
                self.store.update_status(pv)
            except (ConflictError, NotFoundError):
                return Result(requeue_after=0.1)
        return None

    def _reclaim(self, pv: Obj) -> None:
        provisioned = (pv["metadata"].get("annotations") or {}).get(
            "pv.kubernetes.io/provisioned-by"
        ) == PROVISIONER
        path = ((pv.get("spec") or {}).get("hostPath") or {}).get("path")
        if provisioned and path and Path(path).parent == self.root:
            shutil.rmtree(path, ignore_errors=True)
        meta = pv["metadata"]
        meta["finalizers"] = [f for f in meta.get("finalizers") or [] if f != PV_PROTECTION]
        try:
            pv = self.store.update(pv)
            self.store.delete(PVS, None, meta["name"])
        except (ConflictError, NotFoundError):
            pass


def claim_path(store: Store, namespace: str, claim: str) -> Path:
    """The folder of the PersistentVolume ``claim`` is bound to (what a pod mounts)."""
    pvc = _get(store, "persistentvolumeclaims", namespace, claim)
    if pvc is None:
        raise NotFoundError(f'persistentvolumeclaim "{claim}" not found in namespace "{namespace}"')
    volume = (pvc.get("spec") or {}).get("volumeName")
    pv = _get(store, PVS, None, volume) if volume else None
    if pv is None:
        raise WonderlandError(f'persistentvolumeclaim "{claim}" is not bound')
    spec = pv.get("spec") or {}
    path = (spec.get("local") or spec.get("hostPath") or {}).get("path")
    if not path:
        raise WonderlandError(f'the PersistentVolume "{volume}" has no local or hostPath source')
    return Path(path)
