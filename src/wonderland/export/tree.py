"""``wonderland export -o DIR``: the objects that run here, mapped for a cluster.

:func:`export_objects` is a pure function from objects (and what their local images are)
to a kustomize tree: ``kustomization.yaml``, one file per object grouped by what it is
for, and ``EXPORT-NOTES.md``. The objects stay the same except where a feature exists on
this machine only:

- Dapr Components whose data stays in one sidecar or one pod (``pubsub.in-memory``,
  ``state.in-memory``, ``state.sqlite``, local secret stores) and the platform's own
  configuration stores become the profile's choice (Redis, Kubernetes Secrets), one warning
  per substitution;
- an InferenceService's ``file://`` (or bare path, or ``models:/``) ``storageUri`` becomes
  ``pvc://<claim>/<name>`` with the PersistentVolumeClaim written next to it, and one with
  no runtime is served by a ClusterServingRuntime of the platform's model server (V2 REST
  and gRPC, KServe's container contract);
- Knative features the platform enables by default or the apps use (tag header routing,
  fieldRef env, ...) and the domain become ``config-features`` / ``config-domain``;
- an ``image`` that names a local folder becomes ``REG/<name>:<source digest>`` with a
  registry, else it is listed;
- a Dapr subscriber that could scale to zero gets ``min-scale: "1"``;
- Secrets become stubs (keys kept, values empty): a tree on disk never holds a secret.

Everything else (TrainingRuntimes, Experiments, ...) is written unchanged. Nothing is
dropped silently: what is mapped and what is left to do are both in the notes, and the
local-only rules of :mod:`wonderland.export.local_only` are run on the result so that any
feature no mapping covers is listed too.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict

from wonderland.export.local_only import LOCAL_ONLY_RULES
from wonderland.export.model_server import extras_for, model_server_ref

__all__ = [
    "PROFILES",
    "ExportTree",
    "LocalImage",
    "Note",
    "Profile",
    "SourceObject",
    "export_objects",
    "image_fields",
]

Obj = dict[str, Any]

MODEL_SERVER_RUNTIME = "wonderland-model-server"
_MLFLOW = "mlflow"
_MLFLOW_PORT = 5000
_MLFLOW_VERSION = "3.17.2"  # the mlflow extra's pin (pyproject.toml)
_KNATIVE_NS = "knative-serving"
_LOCAL_DOMAIN = "127.0.0.1.sslip.io"  # the platform's default domain
_MANAGED_BY = "app.kubernetes.io/managed-by"
_WONDERLAND_DOMAIN = "wonderland.dev"
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_SERVER_FIELDS = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
)


class Profile(BaseModel):
    """What a cluster offers in place of the features only this machine has."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    pubsub_type: str = "pubsub.redis"
    state_type: str = "state.redis"
    configuration_type: str = "configuration.redis"
    secretstore_type: str = "secretstores.kubernetes"
    # ``{namespace}`` is the Component's namespace.
    redis_host: str = "redis-master.{namespace}.svc.cluster.local:6379"
    redis_secret: str = "redis"
    redis_secret_key: str = "redis-password"
    models_claim: str = "models"
    models_claim_size: str = "5Gi"
    domain: str = "example.com"


PROFILES: dict[str, Profile] = {
    "cluster": Profile(
        name="cluster",
        description="Redis (Bitnami chart `redis` in the apps' namespace) for Dapr pub/sub, "
        "state and configuration; Kubernetes Secrets; models on a PersistentVolumeClaim",
    )
}


@dataclass(frozen=True)
class SourceObject:
    """One object to export and where it came from (a file, or the platform's API)."""

    obj: Obj
    source: str


@dataclass(frozen=True)
class LocalImage:
    """An ``image`` that runs from a folder on this machine (``wonderland.yaml``)."""

    image: str
    name: str  # the repository name under the registry: the image name's last part
    context: str  # the folder, as shown to the user
    digest: str | None  # the source digest; None for an existing Python environment
    function: bool = False  # a function's folder: the image runs the function host


NoteKind = Literal["mapped", "todo"]


@dataclass(frozen=True)
class Note:
    """One local-only feature of one object: how it was mapped, or what is left to do."""

    kind: NoteKind
    object: str
    field: str
    text: str

    def __str__(self) -> str:
        where = f" `{self.field}`" if self.field else ""
        return f"{self.object}{where}: {self.text}"


@dataclass(frozen=True)
class ExportTree:
    """The files to write (relative path -> text), the notes and the warnings."""

    files: dict[str, str]
    notes: tuple[Note, ...]
    warnings: tuple[str, ...]
    objects: int
    skipped: tuple[str, ...] = ()

    @property
    def manifests(self) -> list[str]:
        """The paths of the object files (not the kustomization, not the notes)."""
        return [p for p in self.files if p.endswith(".yaml") and p != "kustomization.yaml"]


# -- the Dapr Components a cluster lacks ------------------------------------------------

# type -> (what replaces it, metadata entries carried over unchanged)
_COMPONENT_ROLES = {
    "pubsub.in-memory": ("pubsub", ()),
    "state.in-memory": ("state", ("keyPrefix", "actorStateStore")),
    "state.sqlite": ("state", ("keyPrefix", "actorStateStore")),
    "configuration.wonderland.configmap": ("configuration", ()),
    "configuration.wonderland.file": ("configuration", ()),
    "secretstores.local.file": ("secretstore", ()),
    "secretstores.local.env": ("secretstore", ()),
}

# Knative feature flags a pod template field needs (config-features keys).
_PODSPEC_FEATURES = {
    "affinity": "kubernetes.podspec-affinity",
    "nodeSelector": "kubernetes.podspec-nodeselector",
    "tolerations": "kubernetes.podspec-tolerations",
    "runtimeClassName": "kubernetes.podspec-runtimeclassname",
    "securityContext": "kubernetes.podspec-securitycontext",
    "initContainers": "kubernetes.podspec-init-containers",
    "hostAliases": "kubernetes.podspec-hostaliases",
    "priorityClassName": "kubernetes.podspec-priorityclassname",
    "schedulerName": "kubernetes.podspec-schedulername",
    "topologySpreadConstraints": "kubernetes.podspec-topologyspreadconstraints",
    "dnsPolicy": "kubernetes.podspec-dnspolicy",
    "dnsConfig": "kubernetes.podspec-dnsconfig",
    "shareProcessNamespace": "kubernetes.podspec-shareprocessnamespace",
    "hostIPC": "kubernetes.podspec-hostipc",
    "hostPID": "kubernetes.podspec-hostpid",
    "hostNetwork": "kubernetes.podspec-hostnetwork",
}

# Kinds the platform's controllers make from others: a cluster's controllers make them too.
_DERIVED_KINDS = frozenset(
    {
        ("serving.knative.dev", "Revision"),
        ("serving.knative.dev", "Route"),
        ("serving.knative.dev", "Configuration"),
        ("", "Pod"),
        ("", "Event"),
        ("", "Node"),
        ("", "PersistentVolume"),
        ("coordination.k8s.io", "Lease"),
        ("metrics.k8s.io", "NodeMetrics"),
        ("metrics.k8s.io", "PodMetrics"),
        ("kubeflow.org", "Trial"),
        ("kubeflow.org", "Suggestion"),
    }
)

# Folder and apply rank per API group (kustomize orders by kind too; this keeps the list
# readable): CRD-less config first, Dapr Components before the apps, Subscriptions last.
_FOLDERS: dict[str, tuple[str, int]] = {
    "": ("config", 1),
    "dapr.io": ("dapr", 3),
    "serving.kserve.io": ("kserve", 5),
    "serving.knative.dev": ("serving", 6),
    "trainer.kubeflow.org": ("training", 7),
    "kubeflow.org": ("training", 7),
    "jobset.x-k8s.io": ("training", 7),
    "batch": ("training", 7),
}


def _group(obj: Obj) -> str:
    api_version = str(obj.get("apiVersion") or "")
    return api_version.rpartition("/")[0]


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
        obj["metadata"] = meta
    return meta


def _name(obj: Obj) -> str:
    return str(_meta(obj).get("name") or "")


def _namespace(obj: Obj) -> str:
    return str(_meta(obj).get("namespace") or "default")


def _display(obj: Obj) -> str:
    return f"{obj.get('kind') or '?'}/{_name(obj)}"


def image_fields(node: Any, path: str = "spec") -> Iterator[tuple[str, Obj]]:
    """Every mapping with a string ``image`` under ``node`` (containers, a TrainJob's
    ``trainer``): its field path and the mapping (setting ``mapping["image"]`` changes the
    object)."""
    if isinstance(node, dict):
        if isinstance(node.get("image"), str):
            yield path, node
        for key, value in node.items():
            if isinstance(value, dict | list):
                yield from image_fields(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from image_fields(item, f"{path}[{i}]")


class _Exporter:
    def __init__(
        self, profile: Profile, images: Mapping[str, LocalImage], registry: str | None
    ) -> None:
        self.profile = profile
        self.images = images
        self.registry = registry.rstrip("/") if registry else None
        self.notes: list[Note] = []
        self.warnings: list[str] = []
        self.skipped: list[str] = []
        self.out: list[Obj] = []
        self.model_formats: dict[tuple[str, str], None] = {}
        self.features: dict[str, str] = {}
        self.features_given = False  # the objects hold a config-features of their own
        # (namespace or None, claim name) of the claims the models moved to
        self.claims: dict[tuple[str | None, str], None] = {}

    # -- notes --

    def mapped(self, obj: Obj, path: str, text: str, source: str | None = None) -> None:
        note = Note("mapped", _display(obj), path, text)
        self.notes.append(note)
        self.warnings.append(f"{source}: {note}" if source else str(note))

    def todo(self, obj: Obj, path: str, text: str) -> None:
        self.notes.append(Note("todo", _display(obj), path, text))

    # -- the walk --

    def run(self, objects: Sequence[SourceObject]) -> None:
        objs = [(copy.deepcopy(o.obj), o.source) for o in objects]
        all_objs = [o for o, _ in objs]
        subscribers = self._subscribers(all_objs)
        # Before the mapping rewrites models:/ URIs: who reads the model registry.
        tracking_users = [o for o in all_objs if _uses_registry(o)]
        for obj, source in objs:
            if not self._keep(obj):
                continue
            self._clean(obj)
            group, kind = _group(obj), obj.get("kind")
            if group == "dapr.io" and kind == "Component":
                self._component(obj, source, all_objs)
            elif group == "serving.kserve.io" and kind == "InferenceService":
                self._inference_service(obj, source)
            elif group == "serving.knative.dev" and kind == "Service":
                self._knative_service(obj, source, subscribers)
            elif group == "" and kind == "Secret":
                self._secret(obj)
            elif group == "storage.k8s.io" and kind == "StorageClass":
                prov = obj.get("provisioner")
                if isinstance(prov, str) and prov.startswith(_WONDERLAND_DOMAIN):
                    self.todo(
                        obj,
                        "provisioner",
                        f'not exported: "{prov}" makes folders on this machine; claims use '
                        "the cluster's default StorageClass (kind's is also named standard)",
                    )
                    continue
            elif (
                group == ""
                and kind == "ConfigMap"
                and _namespace(obj) == _KNATIVE_NS
                and _name(obj) == "config-features"
            ):
                data = obj.get("data") or {}
                self.features.update({str(k): str(v) for k, v in data.items()})
                self.features_given = True
                continue
            self._images(obj)
            self._platform_keys(obj)
            self.out.append(obj)
        self._knative_config()
        self._local_registry()
        self._model_server()
        self._tracking([o for o in tracking_users if any(o is kept for kept in self.out)])
        self._claims()
        self._leftovers()

    def _keep(self, obj: Obj) -> bool:
        meta = _meta(obj)
        if (_group(obj), obj.get("kind")) in _DERIVED_KINDS or meta.get("ownerReferences"):
            self.skipped.append(_display(obj))
            return False
        labels = meta.get("labels") or {}
        if obj.get("kind") == "ClusterServingRuntime" and labels.get(_MANAGED_BY) == "wonderland":
            self.skipped.append(_display(obj))  # the platform's built-ins; KServe ships its own
            return False
        return not (obj.get("kind") == "Namespace" and _name(obj) in ("default", _KNATIVE_NS))

    def _clean(self, obj: Obj) -> None:
        obj.pop("status", None)
        meta = _meta(obj)
        for key in _SERVER_FIELDS:
            meta.pop(key, None)
        annotations = meta.get("annotations")
        if isinstance(annotations, dict):
            annotations.pop(_LAST_APPLIED, None)
            if not annotations:
                meta.pop("annotations")

    # -- Dapr --

    def _redis_metadata(self, obj: Obj) -> list[Obj]:
        return [
            {
                "name": "redisHost",
                "value": self.profile.redis_host.format(namespace=_namespace(obj)),
            },
            {
                "name": "redisPassword",
                "secretKeyRef": {
                    "name": self.profile.redis_secret,
                    "key": self.profile.redis_secret_key,
                },
            },
        ]

    def _component(self, obj: Obj, source: str, all_objs: list[Obj]) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        local = str(spec.get("type") or "")
        if local not in _COMPONENT_ROLES:
            return
        role, carried = _COMPONENT_ROLES[local]
        old = [m for m in spec.get("metadata") or [] if isinstance(m, dict)]
        kept = [m for m in old if m.get("name") in carried]
        dropped = [str(m.get("name")) for m in old if m.get("name") not in carried]
        extra = f" (dropped metadata: {', '.join(dropped)})" if dropped else ""
        if role == "secretstore":
            new_type = self.profile.secretstore_type
            spec["metadata"] = kept
            self.todo(
                obj,
                "spec.type",
                "create Kubernetes Secrets holding the keys the local store read "
                f"(`kubectl create secret generic NAME --from-literal=KEY=VALUE`){extra}",
            )
            how = "Kubernetes Secrets"
        else:
            new_type = {
                "pubsub": self.profile.pubsub_type,
                "state": self.profile.state_type,
                "configuration": self.profile.configuration_type,
            }[role]
            spec["metadata"] = self._redis_metadata(obj) + kept
            obj.setdefault("auth", {"secretStore": "kubernetes"})
            host = self.profile.redis_host.format(namespace=_namespace(obj))
            how = (
                f"Redis at {host}, password from Secret "
                f"{self.profile.redis_secret}/{self.profile.redis_secret_key}"
            )
            if role == "configuration":
                self._seed_configuration(obj, local, old, all_objs)
        spec["type"] = new_type
        spec["version"] = "v1"
        self.mapped(obj, "spec.type", f'"{local}" -> "{new_type}" ({how}){extra}', source)

    def _seed_configuration(
        self, obj: Obj, local: str, old: list[Obj], all_objs: list[Obj]
    ) -> None:
        values = {str(m.get("name")): m.get("value") for m in old}
        keys: list[str] = []
        if local == "configuration.wonderland.configmap":
            cm_name = str(values.get("configMapName") or "")
            for other in all_objs:
                if other.get("kind") == "ConfigMap" and _name(other) == cm_name:
                    keys = [str(k) for k in (other.get("data") or {})]
                    seeds = "; ".join(
                        f'redis-cli SET {k} "{v}||1"' for k, v in (other.get("data") or {}).items()
                    )
                    self.todo(
                        obj,
                        "spec.metadata",
                        f"the flags were ConfigMap {cm_name} (keys {', '.join(keys)}); seed "
                        f"Redis once (`value||version`): `{seeds}`; change them there from then on",
                    )
                    return
            where = f"ConfigMap {cm_name}"
        else:
            where = f"the file {values.get('path') or values.get('file') or '?'}"
        self.todo(obj, "spec.metadata", f"seed Redis with the keys of {where} (`SET key value||1`)")

    def _subscribers(self, objs: list[Obj]) -> tuple[set[str], bool]:
        ids: set[str] = set()
        everyone = False
        for obj in objs:
            if _group(obj) == "dapr.io" and obj.get("kind") == "Subscription":
                scopes = obj.get("scopes")
                if isinstance(scopes, list) and scopes:
                    ids.update(str(s) for s in scopes)
                else:
                    everyone = True
        return ids, everyone

    # -- Knative --

    def _knative_service(self, obj: Obj, source: str, subscribers: tuple[set[str], bool]) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        template = spec.get("template")
        if isinstance(template, dict):
            meta = template.setdefault("metadata", {})
            annotations = meta.setdefault("annotations", {})
            app_id = annotations.get("dapr.io/app-id")
            dapr = str(annotations.get("dapr.io/enabled", "")).lower() == "true"
            ids, everyone = subscribers
            min_scale = str(annotations.get("autoscaling.knative.dev/min-scale", "0"))
            if dapr and (everyone or app_id in ids) and min_scale in ("", "0"):
                annotations["autoscaling.knative.dev/min-scale"] = "1"
                self.mapped(
                    obj,
                    "spec.template.metadata.annotations",
                    'min-scale "1": a Dapr subscriber scaled to zero has no sidecar to '
                    "receive messages on a cluster",
                    source,
                )
            if not annotations:
                meta.pop("annotations")
            if not meta:
                template.pop("metadata")
            pod = template.get("spec")
            if isinstance(pod, dict):
                self._pod_features(pod)
        for target in spec.get("traffic") or []:
            if isinstance(target, dict) and target.get("tag"):
                self.features.setdefault("tag-header-based-routing", "Enabled")

    def _pod_features(self, pod: Obj) -> None:
        for key, flag in _PODSPEC_FEATURES.items():
            if key in pod:
                self.features.setdefault(flag, "Enabled")
        for container in pod.get("containers") or []:
            for env in (container.get("env") or []) if isinstance(container, dict) else []:
                source = env.get("valueFrom") if isinstance(env, dict) else None
                if isinstance(source, dict) and (
                    "fieldRef" in source or "resourceFieldRef" in source
                ):
                    self.features.setdefault("kubernetes.podspec-fieldref", "Enabled")
        for volume in pod.get("volumes") or []:
            if isinstance(volume, dict) and "persistentVolumeClaim" in volume:
                self.features.setdefault("kubernetes.podspec-persistent-volume-claim", "Enabled")
                self.features.setdefault("kubernetes.podspec-persistent-volume-write", "Enabled")

    def _knative_config(self) -> None:
        apps = {("serving.knative.dev", "Service"), ("serving.kserve.io", "InferenceService")}
        if not self.features_given and not any(
            (_group(o), o.get("kind")) in apps for o in self.out
        ):
            return
        # The platform routes the Knative-Serving-Tag header unless told not to; Knative
        # does only when the flag is on.
        self.features.setdefault("tag-header-based-routing", "Enabled")
        features = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "config-features", "namespace": _KNATIVE_NS},
            "data": dict(sorted(self.features.items())),
        }
        self.out.append(features)
        self.notes.append(
            Note(
                "mapped",
                "ConfigMap/config-features",
                "data",
                "the Knative features the apps rely on: "
                + ", ".join(f"{k}: {v}" for k, v in sorted(self.features.items())),
            )
        )
        has_domain = any(
            o.get("kind") == "ConfigMap"
            and _name(o) == "config-domain"
            and _namespace(o) == _KNATIVE_NS
            for o in self.out
        )
        if not has_domain:
            domain = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "config-domain", "namespace": _KNATIVE_NS},
                "data": {self.profile.domain: ""},
            }
            self.out.append(domain)
            if self.profile.domain == _LOCAL_DOMAIN:
                text = (
                    f"the same URLs as on this machine: *.{_LOCAL_DOMAIN} resolves to "
                    "127.0.0.1, so forward a local port to the ingress (`kubectl port-forward "
                    "-n kourier-system svc/kourier 8080:80`) or export with --domain"
                )
            else:
                text = (
                    f"URLs end in .{self.profile.domain} instead of this machine's "
                    f"{_LOCAL_DOMAIN}: put your domain here (or apply Knative's "
                    "serving-default-domain.yaml for sslip.io and delete this file)"
                )
            self.todo(domain, "data", text)

    def _local_registry(self) -> None:
        """Knative resolves image tags to digests from its controller's pod, which cannot
        reach a registry on the host (kind's ``localhost:5001``): skip resolving there."""
        if not self.registry or not any(n.field.endswith(".image") for n in self.notes):
            return
        host = self.registry.split("/", 1)[0]
        if not (
            host.startswith(("localhost", "127.0.0.1", "kind-registry"))
            or host.split(":")[0].endswith(".local")
        ):
            return
        skip = ",".join(dict.fromkeys(["kind.local", "ko.local", "dev.local", host]))
        config = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "config-deployment", "namespace": _KNATIVE_NS},
            "data": {"registries-skipping-tag-resolving": skip},
        }
        self.out.append(config)
        self.mapped(
            config,
            "data.registries-skipping-tag-resolving",
            f"{host} is on this machine: Knative's controller cannot resolve its tags "
            "(merged into the cluster's config-deployment by kubectl apply)",
        )

    # -- KServe --

    def _inference_service(self, obj: Obj, source: str) -> None:
        predictor = (obj.get("spec") or {}).get("predictor")
        model = predictor.get("model") if isinstance(predictor, dict) else None
        if not isinstance(model, dict):
            if isinstance(predictor, dict) and predictor.get("containers") is None:
                self.todo(
                    obj,
                    "spec.predictor",
                    "no predictor.model: this InferenceService keeps the runtime the cluster's "
                    "KServe picks for it",
                )
            return
        uri = model.get("storageUri")
        if isinstance(uri, str) and _local_uri(uri):
            claim = self.profile.models_claim
            new = f"pvc://{claim}/{_name(obj)}"
            model["storageUri"] = new
            self.claims[(_meta(obj).get("namespace"), claim)] = None
            local = uri.removeprefix("file://")
            if uri.startswith("models:/"):
                copy_from = f"the files of the registered model {uri} (`wonderland models get`)"
            else:
                copy_from = f"{local} (relative paths start where `wonderland up` ran)"
            self.mapped(obj, "spec.predictor.model.storageUri", f"{uri} -> {new}", source)
            self.todo(
                obj,
                "spec.predictor.model.storageUri",
                f"copy {copy_from} into the claim {claim} at /{_name(obj)}/ (for example "
                f"from a pod mounting it: `kubectl cp {local} POD:/mnt/{claim}/{_name(obj)}`)",
            )
        if not model.get("runtime"):
            fmt = model.get("modelFormat") or {}
            name = str(fmt.get("name") or "") if isinstance(fmt, dict) else ""
            version = str(fmt.get("version") or "") if isinstance(fmt, dict) else ""
            if name:
                model["runtime"] = MODEL_SERVER_RUNTIME
                self.model_formats[(name, version.split(".")[0])] = None
                self.notes.append(
                    Note(
                        "mapped",
                        _display(obj),
                        "spec.predictor.model.runtime",
                        f"{MODEL_SERVER_RUNTIME}: the same model server as here "
                        "(ClusterServingRuntime in kserve/)",
                    )
                )

    def _model_server(self) -> None:
        if not self.model_formats:
            return
        extras = extras_for(name for name, _ in self.model_formats)
        image = model_server_ref(self.registry, extras)
        runtime: Obj = {
            "apiVersion": "serving.kserve.io/v1alpha1",
            "kind": "ClusterServingRuntime",
            "metadata": {
                "name": MODEL_SERVER_RUNTIME,
                "annotations": {
                    "prometheus.kserve.io/port": "8080",
                    "prometheus.kserve.io/path": "/metrics",
                },
            },
            "spec": {
                "supportedModelFormats": [
                    {"name": name, **({"version": v} if v else {}), "autoSelect": False}
                    for name, v in self.model_formats
                ],
                "protocolVersions": ["v1", "v2", "grpc-v2"],
                "containers": [
                    {
                        "name": "kserve-container",
                        "image": image,
                        "command": ["wonderland", "serve"],
                        "args": [
                            "--model_name={{.Name}}",
                            "--model_dir=/mnt/models",
                            "--host=0.0.0.0",
                            "--http_port=8080",
                            "--grpc_port=8081",
                        ],
                        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "privileged": False,
                            "runAsNonRoot": True,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "resources": {
                            "requests": {"cpu": "1", "memory": "2Gi"},
                            "limits": {"cpu": "1", "memory": "2Gi"},
                        },
                    }
                ],
            },
        }
        self.out.append(runtime)
        self.todo(
            runtime,
            "spec.containers[0].image",
            f"build and push the model server image {image}: `wonderland build "
            f"--model-server{' --extras ' + ','.join(extras) if extras else ''}"
            f"{' --registry ' + self.registry if self.registry else ''} --base BASE -o images/ "
            "--push` (the package and its dependencies on python:3.12-slim, entry point "
            "`wonderland serve`); REST on 8080 and gRPC on 8081 (Knative exposes one port: REST)",
        )

    # -- MLflow --

    def _tracking(self, users: list[Obj]) -> None:
        """The registry's server, as the platform runs it here: MLflow's tracking server
        with its runs and models on a claim, and ``MLFLOW_TRACKING_URI`` in the containers
        of the objects that use it (the platform sets it in every container here)."""
        if not users:
            return
        taken = {
            (str(o.get("kind")), _name(o))
            for o in self.out
            if o.get("kind") in ("Deployment", "Service") and _name(o) == _MLFLOW
        }
        if taken:
            return  # the objects bring their own
        namespace = _meta(users[0]).get("namespace")
        ns = str(namespace or "default")
        url = f"http://{_MLFLOW}.{ns}.svc.cluster.local:{_MLFLOW_PORT}"
        for obj in users:
            for path, container in image_fields(obj.get("spec")):
                env = container.setdefault("env", [])
                if not isinstance(env, list) or any(
                    isinstance(e, dict) and e.get("name") == "MLFLOW_TRACKING_URI" for e in env
                ):
                    continue
                env.append({"name": "MLFLOW_TRACKING_URI", "value": url})
                self.notes.append(
                    Note(
                        "mapped",
                        _display(obj),
                        f"{path}.env",
                        f"MLFLOW_TRACKING_URI={url} (the platform sets it here)",
                    )
                )
        meta = {"name": _MLFLOW, **({"namespace": namespace} if namespace else {})}
        labels = {"app.kubernetes.io/name": _MLFLOW}
        hosts = [
            f"{host}{port}"
            for host in (
                _MLFLOW,
                f"{_MLFLOW}.{ns}",
                f"{_MLFLOW}.{ns}.svc",
                f"{url[7:].split(':')[0]}",
            )
            for port in ("", f":{_MLFLOW_PORT}")
        ]
        claim: Obj = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {**meta, "labels": labels},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": self.profile.models_claim_size}},
            },
        }
        deployment: Obj = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {**meta, "labels": labels},
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},  # one writer of the SQLite store
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": _MLFLOW,
                                "image": f"ghcr.io/mlflow/mlflow:v{_MLFLOW_VERSION}",
                                "command": [
                                    "mlflow",
                                    "server",
                                    "--host=0.0.0.0",
                                    f"--port={_MLFLOW_PORT}",
                                    "--backend-store-uri=sqlite:////mlflow/mlflow.db",
                                    "--artifacts-destination=/mlflow/artifacts",
                                    "--serve-artifacts",
                                    "--allowed-hosts=" + ",".join(hosts),
                                ],
                                "ports": [{"name": "http", "containerPort": _MLFLOW_PORT}],
                                "readinessProbe": {
                                    "httpGet": {"path": "/health", "port": _MLFLOW_PORT}
                                },
                                "volumeMounts": [{"name": "data", "mountPath": "/mlflow"}],
                                "resources": {
                                    "requests": {"cpu": "250m", "memory": "512Mi"},
                                    "limits": {"memory": "1Gi"},
                                },
                            }
                        ],
                        "volumes": [
                            {"name": "data", "persistentVolumeClaim": {"claimName": _MLFLOW}}
                        ],
                    },
                },
            },
        }
        service: Obj = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {**meta, "labels": labels},
            "spec": {
                "selector": labels,
                "ports": [{"name": "http", "port": _MLFLOW_PORT, "targetPort": _MLFLOW_PORT}],
            },
        }
        self.out += [claim, deployment, service]
        users_text = ", ".join(_display(o) for o in users)
        self.mapped(
            deployment,
            "",
            f"the model registry ({users_text} use it): MLflow {_MLFLOW_VERSION}'s tracking "
            f"server at {url}, runs and models on the claim {_MLFLOW}",
        )
        self.todo(
            deployment,
            "",
            "the runs and registered models of this machine do not move: train and register "
            "again on the cluster (or copy them with MLflow's export tools), so that models:/ "
            f"names resolve there; `kubectl port-forward svc/{_MLFLOW} {_MLFLOW_PORT}` opens "
            "its UI",
        )

    def _claims(self) -> None:
        for namespace, claim in self.claims:
            self.out.append(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"name": claim, **({"namespace": namespace} if namespace else {})},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": self.profile.models_claim_size}},
                    },
                }
            )

    # -- everything --

    def _secret(self, obj: Obj) -> None:
        keys: list[str] = []
        for field_name in ("data", "stringData"):
            data = obj.get(field_name)
            if isinstance(data, dict):
                keys += [str(k) for k in data]
                obj[field_name] = {k: "" for k in data}
        if keys:
            self.todo(
                obj,
                "data",
                f"a stub: fill in {', '.join(keys)} (the values stay on this machine)",
            )

    def _images(self, obj: Obj) -> None:
        for path, container in image_fields(obj.get("spec")):
            image = str(container["image"])
            local = self.images.get(image)
            if local is None:
                continue
            where = f"{path}.image"
            if local.digest is None:
                self.todo(
                    obj,
                    where,
                    f"{image} runs in the Python environment {local.context} here: build an "
                    "image with its packages and set image to it",
                )
            elif self.registry:
                new = f"{self.registry}/{local.name}:{local.digest[:16]}"
                container["image"] = new
                if local.function:
                    # Here the host runs from this machine's environment; there, the image's.
                    dropped = [k for k in ("command", "args", "workingDir") if k in container]
                    for key in dropped:
                        container.pop(key)
                    if dropped:
                        self.notes.append(
                            Note(
                                "mapped",
                                _display(obj),
                                path,
                                f"{', '.join(dropped)} dropped: the function's image starts "
                                "its host (`wonderland build func NAME`)",
                            )
                        )
                self.notes.append(Note("mapped", _display(obj), where, f"{image} -> {new}"))
                how = f"`wonderland build func {local.name}`" if local.function else "build"
                self.todo(
                    obj,
                    where,
                    f"{how} {local.context} and push it as {new} (tag = its source digest)"
                    if not local.function
                    else f"{how} from {local.context} and push it as {new} (tag = its source "
                    "digest)",
                )
            else:
                self.todo(
                    obj,
                    where,
                    f"{image} is the folder {local.context} here: build and push it, then "
                    "set image (or export again with --registry REG)",
                )

    def _platform_keys(self, obj: Obj) -> None:
        for path, mapping in _metadata_maps(obj):
            for key in list(mapping):
                domain = str(key).partition("/")[0]
                if domain == _WONDERLAND_DOMAIN or domain.endswith("." + _WONDERLAND_DOMAIN):
                    self.todo(
                        obj, f"{path}.{key}", "read by this platform only; no effect on a cluster"
                    )

    def _leftovers(self) -> None:
        for obj in self.out:
            for rule in LOCAL_ONLY_RULES:
                for problem in rule(obj):
                    self.todo(obj, problem.path, problem.message)


def _metadata_maps(obj: Obj) -> Iterator[tuple[str, dict[str, Any]]]:
    meta = _meta(obj)
    for name in ("labels", "annotations"):
        if isinstance(meta.get(name), dict):
            yield f"metadata.{name}", meta[name]
    template = (
        (obj.get("spec") or {}).get("template") if isinstance(obj.get("spec"), dict) else None
    )
    if isinstance(template, dict) and isinstance(template.get("metadata"), dict):
        for name in ("labels", "annotations"):
            if isinstance(template["metadata"].get(name), dict):
                yield f"spec.template.metadata.{name}", template["metadata"][name]


def _uses_registry(obj: Obj) -> bool:
    """Whether ``obj`` reads the model registry: a ``models:/`` URI anywhere in it, or a
    TrainJob (the platform gives each an MLflow run here)."""
    if obj.get("kind") == "TrainJob":
        return True

    def walk(node: Any) -> bool:
        if isinstance(node, str):
            return "models:/" in node
        if isinstance(node, dict):
            return any(walk(v) for v in node.values())
        if isinstance(node, list):
            return any(walk(v) for v in node)
        return False

    return walk(obj.get("spec"))


def _local_uri(uri: str) -> bool:
    return uri.startswith(("file://", "models:/")) or "://" not in uri


# -- the tree ---------------------------------------------------------------------------


def _place(obj: Obj) -> tuple[str, int]:
    group, kind = _group(obj), str(obj.get("kind") or "object")
    if kind == "Namespace":
        return "namespaces", 0
    if group == "" and _namespace(obj) == _KNATIVE_NS:
        return "knative-serving", 2
    if group == "dapr.io" and kind == "Subscription":
        return "dapr", 9
    if ((obj.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/name") == _MLFLOW:
        return "tracking", 4
    if group == "serving.kserve.io":
        return "kserve", 4 if kind.endswith("ServingRuntime") else 8
    return _FOLDERS.get(group, ("other", 7))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", text.lower()).strip("-") or "object"


_HEADER = "# Written by `wonderland export`; EXPORT-NOTES.md says what was mapped and why.\n"


def _dump(obj: Obj) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, width=100)


def _notes_text(tree_notes: Sequence[Note], profile: Profile, registry: str | None) -> str:
    lines = [
        "# Export notes",
        "",
        f"Profile `{profile.name}`: {profile.description}.",
        f"Registry: `{registry}`."
        if registry
        else "Registry: none given (images are listed below).",
        "",
        "Check the tree offline with `wonderland export --check -R -f .` and on the cluster "
        "with `kubectl apply -k . --dry-run=server`; apply with `kubectl apply -k . "
        "--server-side` once Knative, KServe and Dapr run there (docs/cluster.md).",
        "",
        "## Mapped for the cluster",
        "",
    ]
    # By object (then in the order the mapping made them), so each object's notes sit together.
    ordered = sorted(tree_notes, key=lambda n: n.object)
    mapped = [n for n in ordered if n.kind == "mapped"]
    todo = [n for n in ordered if n.kind == "todo"]
    lines += [f"- {n}" for n in mapped] or ["- nothing: every object is written as it was"]
    lines += ["", "## Left to do", ""]
    lines += [f"- {n}" for n in todo] or ["- nothing"]
    uses_redis = any("Redis at" in n.text for n in mapped)
    if uses_redis:
        lines += [
            "",
            "## Redis",
            "",
            "The Dapr Components above use Redis. Install it in the apps' namespace, for example "
            "`helm install redis oci://registry-1.docker.io/bitnamicharts/redis`, which makes "
            f"the Service `redis-master` and the Secret `{profile.redis_secret}` (key "
            f"`{profile.redis_secret_key}`).",
        ]
    return "\n".join(lines) + "\n"


def export_objects(
    objects: Sequence[SourceObject],
    profile: Profile,
    images: Mapping[str, LocalImage] | None = None,
    registry: str | None = None,
) -> ExportTree:
    """Map ``objects`` for a cluster; ``images`` names the images that are local folders
    (by the ``image`` string as written). Never raises for what an object holds."""
    exporter = _Exporter(profile, images or {}, registry)
    exporter.run(objects)
    files: dict[str, str] = {}
    ranks: dict[str, int] = {}
    for obj in exporter.out:
        folder, rank = _place(obj)
        base = f"{folder}/{_slug(str(obj.get('kind')))}-{_slug(_name(obj))}"
        path = f"{base}.yaml"
        if path in files:
            path = f"{base}-{_slug(_namespace(obj))}.yaml"
        n = 2
        while path in files:
            path, n = f"{base}-{n}.yaml", n + 1
        files[path] = _HEADER + _dump(obj)
        ranks[path] = rank
    resources = sorted(files, key=lambda p: (ranks[p], p))
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
    }
    notes = tuple(exporter.notes)
    out = {
        "kustomization.yaml": _HEADER + _dump(kustomization),
        **{p: files[p] for p in resources},
        "EXPORT-NOTES.md": _notes_text(notes, profile, exporter.registry),
    }
    return ExportTree(
        files=out,
        notes=notes,
        warnings=tuple(exporter.warnings),
        objects=len(exporter.out),
        skipped=tuple(exporter.skipped),
    )
