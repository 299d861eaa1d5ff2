"""``wonderland export --check``: manifests against the vendored upstream schemas, offline.

Each object is checked as the API server of a cluster with the pinned Knative, KServe,
Dapr, Kubeflow Trainer, Katib and JobSet releases would check it under strict field
validation (``kubectl apply`` since 1.27): its kind and version must be served, its
``metadata`` must be a valid ObjectMeta, and the rest must match the kind's structural
schema. A feature that works on this machine but not on a cluster is a warning, not an
error (see :mod:`wonderland.export.local_only`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from wonderland.api.manifests import Manifest, ManifestError, load_paths
from wonderland.errors import NotFoundError
from wonderland.export.catalog import SchemaCatalog, default_catalog
from wonderland.export.local_only import LOCAL_ONLY_RULES, LocalOnlyRule
from wonderland.export.structural import SchemaProblem, StructuralValidator, child_path

__all__ = ["CheckReport", "Finding", "check_manifests", "check_paths", "manifest_files"]

Severity = Literal["error", "warning"]

_SUFFIXES = (".yaml", ".yml", ".json")
# kustomize's own file in a folder is no cluster object (an export tree has one).
_KUSTOMIZE_GROUP = "kustomize.config.k8s.io/"
_KUSTOMIZE_FILES = frozenset({"kustomization.yaml", "kustomization.yml", "Kustomization"})
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Finding:
    """One problem in one object: where (file, document, line, field path) and what."""

    severity: Severity
    source: str
    document: int
    line: int
    object: str
    path: str
    message: str

    def __str__(self) -> str:
        field = f"{self.path}: " if self.path else ""
        return (
            f"{self.source}:{self.line}: {self.severity}: document {self.document} "
            f"({self.object}): {field}{self.message}"
        )


@dataclass(frozen=True)
class CheckReport:
    """Every finding of one check, and how many objects it read."""

    findings: tuple[Finding, ...]
    objects: int
    files: int
    unreadable: tuple[str, ...] = ()

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors and not self.unreadable


def _display(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata")
    name = ""
    if isinstance(meta, dict):
        name = str(meta.get("name") or meta.get("generateName") or "")
    return f"{obj.get('kind') or '?'}/{name}"


class _ObjectCheck:
    def __init__(
        self, catalog: SchemaCatalog, rules: Sequence[LocalOnlyRule], manifest: Manifest
    ) -> None:
        self.catalog = catalog
        self.rules = rules
        self.manifest = manifest
        self.findings: list[Finding] = []

    def add(self, severity: Severity, path: str, message: str) -> None:
        self.findings.append(
            Finding(
                severity=severity,
                source=self.manifest.source,
                document=self.manifest.document,
                line=self.manifest.line_of(path),
                object=_display(self.manifest.obj),
                path=path,
                message=message,
            )
        )

    def add_all(self, severity: Severity, problems: Iterable[SchemaProblem]) -> None:
        for problem in problems:
            self.add(severity, problem.path, problem.message)

    def run(self) -> list[Finding]:
        obj = self.manifest.obj
        api_version = obj.get("apiVersion")
        kind = obj.get("kind")
        if not api_version and not kind:
            self.add(
                "error",
                "",
                "not a Kubernetes object: it has no apiVersion and kind (pass manifests only)",
            )
            return self.findings
        if not isinstance(api_version, str) or not api_version:
            self.add("error", "apiVersion", "required field is missing")
            return self.findings
        if not isinstance(kind, str) or not kind:
            self.add("error", "kind", "required field is missing")
            return self.findings
        if api_version.startswith(_KUSTOMIZE_GROUP):
            return self.findings  # kustomize's own file, read by kubectl, not applied
        schema = self.catalog.get(api_version, kind)
        if schema is None:
            self.add("error", "apiVersion", self._not_served(api_version, kind))
            return self.findings
        if schema.deprecated:
            self.add(
                "warning",
                "apiVersion",
                f"{api_version} {kind} is deprecated in {schema.source.repo} {schema.source.tag}",
            )
        meta = self.catalog.object_meta()
        self.add_all(
            "error",
            StructuralValidator(meta.defs).validate(obj.get("metadata"), meta.schema, "metadata"),
        )
        self._metadata(obj.get("metadata"), schema.namespaced)
        validator = StructuralValidator(schema.defs)
        root = dict(validator.resolve(schema.schema))
        root["properties"] = {
            k: v for k, v in (root.get("properties") or {}).items() if k != "metadata"
        }
        rest = {k: v for k, v in obj.items() if k != "metadata"}
        self.add_all("error", validator.validate(rest, root))
        for rule in self.rules:
            self.add_all("warning", rule(obj))
        return self.findings

    def _not_served(self, api_version: str, kind: str) -> str:
        group = api_version.rpartition("/")[0]
        served = self.catalog.versions_of(group, kind)
        if served:
            source = self.catalog.get(served[0], kind)
            origin = f" by {source.source.repo} {source.source.tag}" if source else ""
            return f"{api_version} {kind} is not served{origin}: use " + " or ".join(
                f"apiVersion: {v}" for v in served
            )
        projects = ", ".join(f"{s.repo} {s.tag}" for s in self.catalog.sources)
        return (
            f"no vendored schema for {api_version} {kind}: the check knows the kinds of "
            f"{projects} (check the apiVersion and kind)"
        )

    def _metadata(self, meta: Any, namespaced: bool) -> None:
        if meta is None:
            self.add("error", "metadata", "required field is missing")
            return
        if not isinstance(meta, dict):
            return  # the ObjectMeta schema has said so
        name = meta.get("name")
        if not name and not meta.get("generateName"):
            self.add("error", "metadata.name", "required field is missing (or set generateName)")
        if isinstance(name, str) and name and (len(name) > 253 or not _DNS_SUBDOMAIN.match(name)):
            self.add(
                "error",
                "metadata.name",
                f'"{name}" is not a valid name: lower-case letters, digits, "-" and ".", '
                "starting and ending with a letter or digit",
            )
        namespace = meta.get("namespace")
        if isinstance(namespace, str) and namespace:
            if len(namespace) > 63 or not _DNS_LABEL.match(namespace):
                self.add(
                    "error",
                    "metadata.namespace",
                    f'"{namespace}" is not a valid namespace: at most 63 lower-case letters, '
                    'digits and "-"',
                )
            elif not namespaced:
                self.add(
                    "warning",
                    "metadata.namespace",
                    "this kind is cluster-scoped: the namespace is ignored",
                )
        labels = meta.get("labels")
        if isinstance(labels, dict):
            for key, value in labels.items():
                path = child_path("metadata.labels", str(key))
                prefix, _, label = str(key).rpartition("/")
                if len(label) > 63 or not _LABEL_NAME.match(label):
                    self.add("error", path, f'"{key}" is not a valid label key')
                elif prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
                    self.add("error", path, f'"{prefix}" is not a valid label key prefix')
                if isinstance(value, str) and (len(value) > 63 or not _LABEL_VALUE.match(value)):
                    self.add(
                        "error",
                        path,
                        f'"{value}" is not a valid label value: at most 63 letters, digits, '
                        '"-", "_" and ".", starting and ending with a letter or digit',
                    )


def check_manifests(
    manifests: Sequence[Manifest],
    catalog: SchemaCatalog | None = None,
    rules: Sequence[LocalOnlyRule] = LOCAL_ONLY_RULES,
) -> CheckReport:
    """Check every manifest; never raises for a problem in a manifest."""
    catalog = catalog or default_catalog()
    findings: list[Finding] = []
    for manifest in manifests:
        findings.extend(_ObjectCheck(catalog, rules, manifest).run())
    return CheckReport(
        findings=tuple(findings),
        objects=len(manifests),
        files=len({m.source for m in manifests}),
    )


def manifest_files(paths: Sequence[str], recursive: bool = False) -> list[str]:
    """The manifest files under ``paths`` (``.yaml``, ``.yml``, ``.json``; ``-`` as is); in
    a folder, kustomize's ``kustomization.yaml`` is not one."""
    out: list[str] = []
    for raw in paths:
        path = Path(raw)
        if raw == "-":
            out.append(raw)
        elif path.is_dir():
            pattern = "**/*" if recursive else "*"
            out.extend(
                str(p)
                for p in sorted(path.glob(pattern))
                if p.is_file() and p.suffix in _SUFFIXES and p.name not in _KUSTOMIZE_FILES
            )
        elif path.exists():
            out.append(raw)
        else:
            raise NotFoundError(f'the path "{raw}" does not exist')
    return out


def check_paths(
    paths: Sequence[str], recursive: bool = False, catalog: SchemaCatalog | None = None
) -> CheckReport:
    """Read and check the manifests under ``paths``; a file that does not parse is listed in
    ``unreadable`` and the others are still checked."""
    files = manifest_files(paths, recursive)
    manifests: list[Manifest] = []
    unreadable: list[str] = []
    for name in files:
        try:
            manifests.extend(load_paths([name]))
        except ManifestError as exc:
            unreadable.extend(exc.problems)
    report = check_manifests(manifests, catalog)
    return CheckReport(
        findings=report.findings,
        objects=report.objects,
        files=len(files),
        unreadable=tuple(unreadable),
    )
