"""Vendor the upstream schemas that ``wonderland export --check`` validates against.

Writes ``src/wonderland/export/schemas/``: one JSON file per upstream project holding, for
each kind and served version, the CRD's ``openAPIV3Schema`` with the descriptions and the
CEL rules left out (they are most of the bytes and the check does not use them), and
``manifest.json`` naming the repository, path, tag, commit, licence and sha256 of every
source file.

The CRDs are read from git checkouts of the upstream repositories at the pinned tags::

    python tools/vendor_export_schemas.py \\
        --repo knative/serving=/path/to/serving.git --repo kserve/kserve=... \\
        --kubernetes /path/to/kubernetes_validate/kubernetes-json-schema/v1.33.0-local-strict/_definitions.json

The Kubernetes core kinds come from the JSON-schema rendering of the Kubernetes v1.33.0
OpenAPI that the ``kubernetes-validate`` wheel bundles (its ``-local-strict`` variant); only
the definitions the listed kinds reach are kept.

The descriptions left out of the schemas go to ``descriptions.json.gz`` for the console's
field docs: per kind, each field path (``spec.traffic[].tag``, ``*`` for a map's key) with
its upstream description, every distinct text stored once. ``--descriptions-only`` writes
that file alone. The core kinds' descriptions (and ObjectMeta's, which every CRD's
``metadata`` gets) come from the installed ``kubernetes`` Python client's models.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).resolve().parent.parent / "src" / "wonderland" / "export" / "schemas"


@dataclass(frozen=True)
class Source:
    name: str
    repo: str
    tag: str
    licence: str
    paths: tuple[str, ...]


SOURCES = (
    Source(
        "knative-serving",
        "knative/serving",
        "knative-v1.21.3",
        "Apache-2.0",
        tuple(
            f"config/core/300-resources/{name}.yaml"
            for name in ("service", "configuration", "route", "domain-mapping")
        ),
    ),
    Source(
        "kserve",
        "kserve/kserve",
        "v0.20.0",
        "Apache-2.0",
        tuple(
            f"config/crd/full/serving.kserve.io_{name}.yaml"
            for name in (
                "inferenceservices",
                "servingruntimes",
                "clusterservingruntimes",
                "inferencegraphs",
            )
        ),
    ),
    Source(
        "dapr",
        "dapr/dapr",
        "v1.18.3",
        "Apache-2.0",
        tuple(
            f"charts/dapr/crds/{name}.yaml"
            for name in ("components", "subscription", "configuration", "resiliency")
        ),
    ),
    Source(
        "kubeflow-trainer",
        "kubeflow/trainer",
        "v2.3.0",
        "Apache-2.0",
        tuple(
            f"manifests/base/crds/trainer.kubeflow.org_{name}.yaml"
            for name in ("trainjobs", "trainingruntimes", "clustertrainingruntimes")
        ),
    ),
    Source(
        "katib",
        "kubeflow/katib",
        "v0.19.0",
        "Apache-2.0",
        ("manifests/v1beta1/components/crd/experiment.yaml",),
    ),
    # Kubeflow's platform components: the PodDefault webhook and the notebook controller.
    Source(
        "kubeflow",
        "kubeflow/kubeflow",
        "v1.10.0",
        "Apache-2.0",
        (
            "components/admission-webhook/manifests/base/crd.yaml",
            "components/notebook-controller/config/crd/bases/kubeflow.org_notebooks.yaml",
        ),
    ),
    # The JobSet release Kubeflow Trainer v2.3.0 builds on (its go.mod).
    Source(
        "jobset",
        "kubernetes-sigs/jobset",
        "v0.12.0",
        "Apache-2.0",
        ("config/components/crd/bases/jobset.x-k8s.io_jobsets.yaml",),
    ),
)

KUBERNETES_VERSION = "v1.33.0"
KUBERNETES_SOURCE = {
    "name": "kubernetes",
    "repo": "kubernetes/kubernetes",
    "tag": KUBERNETES_VERSION,
    "commit": None,
    "via": "the JSON-schema rendering of its OpenAPI in the kubernetes-validate 1.33.1 wheel "
    "(PyPI, sha256 fd910cff492ea32c85b8733fedd31dd0cf582925d3b3a3e73ceda1876f87bdcb)",
    "licence": "Apache-2.0",
    "path": "kubernetes_validate/kubernetes-json-schema/v1.33.0-local-strict/_definitions.json",
}
# The core kinds the platform's manifests (and an export) use: apiVersion -> definitions.
KUBERNETES_KINDS = {
    ("v1", "ConfigMap"): "io.k8s.api.core.v1.ConfigMap",
    ("v1", "Secret"): "io.k8s.api.core.v1.Secret",
    ("v1", "Namespace"): "io.k8s.api.core.v1.Namespace",
    ("v1", "Pod"): "io.k8s.api.core.v1.Pod",
    ("v1", "Service"): "io.k8s.api.core.v1.Service",
    ("v1", "ServiceAccount"): "io.k8s.api.core.v1.ServiceAccount",
    ("v1", "PersistentVolumeClaim"): "io.k8s.api.core.v1.PersistentVolumeClaim",
    ("v1", "PersistentVolume"): "io.k8s.api.core.v1.PersistentVolume",
    ("apps/v1", "Deployment"): "io.k8s.api.apps.v1.Deployment",
    ("apps/v1", "StatefulSet"): "io.k8s.api.apps.v1.StatefulSet",
    ("batch/v1", "Job"): "io.k8s.api.batch.v1.Job",
    ("batch/v1", "CronJob"): "io.k8s.api.batch.v1.CronJob",
    ("rbac.authorization.k8s.io/v1", "Role"): "io.k8s.api.rbac.v1.Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "io.k8s.api.rbac.v1.RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "io.k8s.api.rbac.v1.ClusterRole",
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
    ): "io.k8s.api.rbac.v1.ClusterRoleBinding",
    ("storage.k8s.io/v1", "StorageClass"): "io.k8s.api.storage.v1.StorageClass",
}
CLUSTER_SCOPED = {
    "Namespace",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "StorageClass",
}
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

# Keys that only document, or that the check does not evaluate (CEL rules, defaults,
# merge strategies): dropping them keeps the package small.
DROP = {
    "description",
    "default",
    "example",
    "x-kubernetes-validations",
    "x-kubernetes-patch-strategy",
    "x-kubernetes-patch-merge-key",
    "x-kubernetes-group-version-kind",
    "x-kubernetes-unions",
    "$schema",
}


def strip(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in DROP:
                continue
            if key == "properties":
                # property names are data, not keywords: never drop one called "description"
                out[key] = {name: strip(sub) for name, sub in value.items()}
            elif key == "format" and value in ("int32", "int64", "double", "float"):
                continue
            else:
                out[key] = strip(value)
        return out
    if isinstance(node, list):
        return [strip(item) for item in node]
    return node


def descriptions(node: Any, path: str = "", out: dict[str, str] | None = None) -> dict[str, str]:
    """Every field path of an OpenAPI schema that has a description, with it (``$ref``s
    are followed by :func:`core_descriptions`, CRD schemas have none)."""
    out = {} if out is None else out
    if not isinstance(node, dict):
        return out
    text = node.get("description")
    if isinstance(text, str) and text.strip() and path not in out:
        out[path] = " ".join(text.split())
    for name, sub in (node.get("properties") or {}).items():
        descriptions(sub, f"{path}.{name}" if path else name, out)
    if isinstance(node.get("items"), dict):
        descriptions(node["items"], path + "[]", out)
    if isinstance(node.get("additionalProperties"), dict):
        descriptions(node["additionalProperties"], f"{path}.*" if path else "*", out)
    return out


def core_descriptions(defs: dict[str, Any], name: str) -> dict[str, str]:
    """A core kind's descriptions, its definitions' ``$ref``s followed (10 levels deep:
    the core schemas are recursive only through JSON-schema props, which no kind here
    uses)."""

    def walk(node: Any, path: str, out: dict[str, str], depth: int) -> None:
        if not isinstance(node, dict) or depth > 10:
            return
        ref = node.get("$ref")
        if isinstance(ref, str):
            target = defs.get(ref.rsplit("/", 1)[-1])
            merged = {**(target or {}), **{k: v for k, v in node.items() if k != "$ref"}}
            walk(merged, path, out, depth + 1)
            return
        text = node.get("description")
        if isinstance(text, str) and text.strip() and path not in out:
            out[path] = " ".join(text.split())
        for branch in node.get("anyOf") or []:  # pydantic's optional: X or null
            if isinstance(branch, dict) and branch.get("type") != "null":
                walk(branch, path, out, depth + 1)
        for key, sub in (node.get("properties") or {}).items():
            walk(sub, f"{path}.{key}" if path else key, out, depth + 1)
        if isinstance(node.get("items"), dict):
            walk(node["items"], path + "[]", out, depth + 1)
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}.*" if path else "*", out, depth + 1)

    found: dict[str, str] = {}
    walk({"$ref": f"#/$defs/{name}"}, "", found, 0)
    return found


def client_descriptions() -> tuple[dict[str, dict[str, str]], dict[str, Any]]:
    """The core kinds' descriptions (and ObjectMeta's, as ``meta/v1/ObjectMeta``) from the
    installed ``kubernetes`` Python client, whose models are pydantic models generated from
    the Kubernetes OpenAPI with its descriptions; and the source to cite."""
    import kubernetes
    from kubernetes.client import models

    out: dict[str, dict[str, str]] = {}
    wanted = {(a, k): f"V1{k}" for (a, k) in KUBERNETES_KINDS}
    wanted[("meta/v1", "ObjectMeta")] = "V1ObjectMeta"
    for (api_version, kind), name in wanted.items():
        schema = getattr(models, name).model_json_schema(by_alias=True)
        defs = {**schema.pop("$defs", {}), "__root__": schema}
        out[f"{api_version}/{kind}"] = core_descriptions(defs, "__root__")
    version = kubernetes.__version__
    source = {"repo": "kubernetes-client/python", "tag": f"v{version}", "commit": None}
    return out, source


def crd_descriptions(source: Source, git_dir: str) -> dict[str, dict[str, str]]:
    """Per served kind of ``source``'s CRDs, its field descriptions."""
    kinds: dict[str, dict[str, str]] = {}
    for path in source.paths:
        for doc in yaml.safe_load_all(git_show(git_dir, source.tag, path)):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if version.get("served", True):
                    key = f"{spec['group']}/{version['name']}/{spec['names']['kind']}"
                    kinds[key] = descriptions(version["schema"]["openAPIV3Schema"])
    return kinds


def write_descriptions(kinds: dict[str, dict[str, str]], sources: list[dict[str, Any]]) -> None:
    """``descriptions.json.gz``: each distinct text once, kinds' paths pointing at them."""
    texts: list[str] = []
    index: dict[str, int] = {}
    table: dict[str, dict[str, int]] = {}
    for key in sorted(kinds):
        table[key] = {}
        for path, text in sorted(kinds[key].items()):
            if text not in index:
                index[text] = len(texts)
                texts.append(text)
            table[key][path] = index[text]
    body = {
        "note": "Generated by tools/vendor_export_schemas.py; do not edit by hand.",
        "sources": sources,
        "texts": texts,
        "kinds": table,
    }
    text = json.dumps(body, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    # gzip (mtime 0: the same input gives the same bytes): the field paths repeat a lot
    packed = gzip.compress((text + "\n").encode("utf-8"), compresslevel=9, mtime=0)
    (OUT / "descriptions.json.gz").write_bytes(packed)


def git_show(git_dir: str, tag: str, path: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", git_dir, "show", f"{tag}:{path}"], check=True, capture_output=True
    ).stdout


def git_commit(git_dir: str, tag: str) -> str:
    out = subprocess.run(
        ["git", "--git-dir", git_dir, "rev-parse", f"{tag}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def vendor_crds(source: Source, git_dir: str) -> tuple[dict[str, Any], dict[str, Any]]:
    kinds: dict[str, Any] = {}
    files = []
    for path in source.paths:
        raw = git_show(git_dir, source.tag, path)
        files.append({"path": path, "sha256": hashlib.sha256(raw).hexdigest()})
        for doc in yaml.safe_load_all(raw):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if not version.get("served", True):
                    continue
                api_version = f"{spec['group']}/{version['name']}"
                key = f"{api_version}/{spec['names']['kind']}"
                kinds[key] = {
                    "scope": spec["scope"],
                    "storage": bool(version.get("storage")),
                    "deprecated": bool(version.get("deprecated")),
                    "file": path,
                    "schema": strip(version["schema"]["openAPIV3Schema"]),
                }
    entry = {
        "name": source.name,
        "repo": source.repo,
        "tag": source.tag,
        "commit": git_commit(git_dir, source.tag),
        "licence": source.licence,
        "files": files,
        "kinds": sorted(kinds),
    }
    return {"kinds": kinds}, entry


def _core(node: Any) -> Any:
    """The kubernetes-validate rendering back to OpenAPI terms: one type, no null."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if ref == "#/$defs/io.k8s.apimachinery.pkg.util.intstr.IntOrString":
            return {"x-kubernetes-int-or-string": True}
        out = {}
        for key, value in node.items():
            if key == "type" and isinstance(value, list):
                types = [t for t in value if t != "null"]
                out[key] = types[0] if len(types) == 1 else types
            elif key == "properties":
                out[key] = {name: _core(sub) for name, sub in value.items()}
            else:
                out[key] = _core(value)
        return out
    if isinstance(node, list):
        return [_core(item) for item in node]
    return node


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value.rsplit("/", 1)[-1])
            else:
                _refs(value, found)
    elif isinstance(node, list):
        for item in node:
            _refs(item, found)


def vendor_kubernetes(definitions_path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    raw = Path(definitions_path).read_bytes()
    defs = json.loads(raw)["$defs"]
    wanted = set(KUBERNETES_KINDS.values()) | {OBJECT_META}
    todo = list(wanted)
    while todo:
        name = todo.pop()
        found: set[str] = set()
        _refs(defs[name], found)
        for ref in found - wanted:
            wanted.add(ref)
            todo.append(ref)
    kept = {
        name: _core(strip(defs[name]))
        for name in sorted(wanted)
        if name != "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
    }
    kinds = {
        f"{api_version}/{kind}": {
            "scope": "Cluster" if kind in CLUSTER_SCOPED else "Namespaced",
            "storage": True,
            "deprecated": False,
            "file": KUBERNETES_SOURCE["path"],
            "schema": {"$ref": f"#/$defs/{definition}"},
        }
        for (api_version, kind), definition in sorted(KUBERNETES_KINDS.items())
    }
    entry = dict(KUBERNETES_SOURCE)
    entry["files"] = [
        {"path": KUBERNETES_SOURCE["path"], "sha256": hashlib.sha256(raw).hexdigest()}
    ]
    entry["kinds"] = sorted(kinds)
    return {"kinds": kinds, "$defs": kept}, entry


def _canon(node: Any) -> str:
    return json.dumps(node, sort_keys=True, separators=(",", ":"))


def share(body: dict[str, Any]) -> dict[str, Any]:
    """Move every schema that occurs twice or more (and is not tiny) to ``$defs``.

    KServe repeats the full container and pod schemas for the predictor, transformer,
    explainer and their workers: sharing them takes its file from 750 kB to under 90 kB.
    The check follows ``$ref`` as it reads, so the schemas mean the same.
    """
    counts: dict[str, int] = {}

    def count(node: Any) -> None:
        if isinstance(node, dict):
            text = _canon(node)
            if len(text) >= 400:
                counts[text] = counts.get(text, 0) + 1
            for key, value in node.items():
                if key == "properties":
                    for sub in value.values():
                        count(sub)
                else:
                    count(value)
        elif isinstance(node, list):
            for item in node:
                count(item)

    for kind in body["kinds"].values():
        count(kind["schema"])
    shared = {text for text, n in counts.items() if n >= 2}
    defs: dict[str, Any] = dict(body.get("$defs", {}))

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            text = _canon(node)
            if text in shared:
                key = "s" + hashlib.sha256(text.encode()).hexdigest()[:12]
                if key not in defs:
                    defs[key] = {}
                    defs[key] = inner(node)
                return {"$ref": f"#/$defs/{key}"}
            return inner(node)
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        return node

    def inner(node: dict[str, Any]) -> dict[str, Any]:
        return {
            key: {name: rewrite(sub) for name, sub in value.items()}
            if key == "properties"
            else rewrite(value)
            for key, value in node.items()
        }

    kinds = {key: dict(kind, schema=rewrite(kind["schema"])) for key, kind in body["kinds"].items()}
    out: dict[str, Any] = {"kinds": kinds}
    if defs:
        out["$defs"] = defs
    return out


def write(name: str, body: dict[str, Any]) -> None:
    text = json.dumps(body, separators=(",", ":"), sort_keys=True)
    (OUT / f"{name}.json").write_text(text + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", action="append", default=[], help="owner/name=GIT_DIR")
    parser.add_argument("--kubernetes", help="kubernetes-validate _definitions.json")
    parser.add_argument(
        "--descriptions-only", action="store_true", help="write descriptions.json alone"
    )
    args = parser.parse_args()
    git_dirs = dict(item.split("=", 1) for item in args.repo)
    OUT.mkdir(parents=True, exist_ok=True)
    described: dict[str, dict[str, str]] = {}
    cited: list[dict[str, Any]] = []
    for source in SOURCES:
        described.update(crd_descriptions(source, git_dirs[source.repo]))
        commit = git_commit(git_dirs[source.repo], source.tag)
        cited.append({"repo": source.repo, "tag": source.tag, "commit": commit})
    core, client = client_descriptions()
    cited.append(client)
    meta = core["meta/v1/ObjectMeta"]
    for paths in described.values():  # a CRD's metadata is ObjectMeta, left bare upstream
        for path, text in meta.items():
            paths.setdefault(f"metadata.{path}" if path else "metadata", text)
    described.update(core)
    write_descriptions(described, cited)
    if args.descriptions_only:
        return
    if not args.kubernetes:
        parser.error("--kubernetes is required unless --descriptions-only")
    entries = []
    for source in SOURCES:
        body, entry = vendor_crds(source, git_dirs[source.repo])
        write(source.name, share(body))
        entries.append(entry)
    body, entry = vendor_kubernetes(args.kubernetes)
    write("kubernetes", body)
    entries.append(entry)
    manifest = {
        "note": "Generated by tools/vendor_export_schemas.py; do not edit by hand.",
        "sources": entries,
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
