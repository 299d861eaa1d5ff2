"""The vendored upstream schemas: which kinds the check knows, at which version, from where.

``schemas/manifest.json`` lists every source (repository, tag, commit, licence, the files
read and their sha256) and the kinds each one gives; ``schemas/<source>.json`` holds, per
``<apiVersion>/<Kind>``, the CRD's ``openAPIV3Schema`` (the Kubernetes core kinds: their
OpenAPI definitions), with shared sub-schemas under ``$defs``.
``schemas/descriptions.json.gz`` keeps the upstream descriptions the schemas leave out, per
kind and field path, for the console's field docs. ``tools/vendor_export_schemas.py``
writes them all.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = [
    "KindSchema",
    "SchemaCatalog",
    "SchemaSource",
    "SourceFile",
    "default_catalog",
    "descriptions_source",
    "field_descriptions",
]

_PACKAGE = "wonderland.export"


class SourceFile(BaseModel):
    """One upstream file a schema was read from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    sha256: str


class SchemaSource(BaseModel):
    """One upstream project, pinned to a tag (and commit) under its licence."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    repo: str
    tag: str
    commit: str | None = None
    via: str | None = None
    licence: str
    path: str | None = None
    files: tuple[SourceFile, ...]
    kinds: tuple[str, ...]


class _Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    note: str
    sources: tuple[SchemaSource, ...]


@dataclass(frozen=True)
class KindSchema:
    """The schema of one kind at one version, and what resolves its ``$ref``s."""

    api_version: str
    kind: str
    scope: str
    storage: bool
    deprecated: bool
    schema: dict[str, Any]
    defs: dict[str, Any]
    source: SchemaSource

    @property
    def namespaced(self) -> bool:
        return self.scope == "Namespaced"


class SchemaCatalog:
    """Every vendored kind, looked up by ``apiVersion`` and ``kind``."""

    def __init__(self, sources: tuple[SchemaSource, ...], bodies: dict[str, dict[str, Any]]):
        self.sources = sources
        self._kinds: dict[tuple[str, str], KindSchema] = {}
        for source in sources:
            body = bodies[source.name]
            defs = body.get("$defs", {})
            for key, entry in body["kinds"].items():
                api_version, _, kind = key.rpartition("/")
                self._kinds[(api_version, kind)] = KindSchema(
                    api_version=api_version,
                    kind=kind,
                    scope=entry["scope"],
                    storage=entry["storage"],
                    deprecated=entry["deprecated"],
                    schema=entry["schema"],
                    defs=defs,
                    source=source,
                )

    @classmethod
    def load(cls) -> SchemaCatalog:
        """The catalog shipped in the package (``wonderland/export/schemas``)."""
        folder = resources.files(_PACKAGE).joinpath("schemas")
        manifest = _Manifest.model_validate_json(folder.joinpath("manifest.json").read_text())
        bodies = {
            source.name: json.loads(folder.joinpath(f"{source.name}.json").read_text())
            for source in manifest.sources
        }
        return cls(manifest.sources, bodies)

    def get(self, api_version: str, kind: str) -> KindSchema | None:
        return self._kinds.get((api_version, kind))

    def versions_of(self, group: str, kind: str) -> list[str]:
        """The vendored ``apiVersion``s of ``kind`` in ``group`` (to say what is served)."""
        return sorted(
            api_version
            for (api_version, name) in self._kinds
            if name == kind and api_version.rpartition("/")[0] == group
        )

    def kinds(self) -> list[KindSchema]:
        return sorted(self._kinds.values(), key=lambda k: (k.source.name, k.api_version, k.kind))

    def object_meta(self) -> KindSchema:
        """ObjectMeta, from the Kubernetes core definitions (every kind's ``metadata``)."""
        for source in self.sources:
            if source.name == "kubernetes":
                configmap = self._kinds[("v1", "ConfigMap")]
                return KindSchema(
                    api_version="meta/v1",
                    kind="ObjectMeta",
                    scope="Namespaced",
                    storage=True,
                    deprecated=False,
                    schema={"$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
                    defs=configmap.defs,
                    source=source,
                )
        raise LookupError("the vendored schemas lack the Kubernetes core definitions")


@cache
def default_catalog() -> SchemaCatalog:
    """The shipped catalog, read once per process."""
    return SchemaCatalog.load()


@cache
def _descriptions() -> tuple[list[str], dict[str, dict[str, int]], list[dict[str, Any]]]:
    packed = resources.files(_PACKAGE).joinpath("schemas", "descriptions.json.gz").read_bytes()
    body = json.loads(gzip.decompress(packed))
    return body["texts"], body["kinds"], body["sources"]


def descriptions_source(api_version: str, kind: str) -> str:
    """Whose descriptions a kind's are: its CRD's repository and tag, or, for the core
    kinds, the Kubernetes Python client whose models carry them."""
    vendored = default_catalog().get(api_version, kind)
    if vendored is not None and vendored.source.name != "kubernetes":
        return f"{vendored.source.repo} {vendored.source.tag}"
    *_, sources = _descriptions()
    client = [s for s in sources if s.get("repo") == "kubernetes-client/python"]
    return f"{client[0]['repo']} {client[0]['tag']}" if client else "upstream"


@cache
def field_descriptions(api_version: str, kind: str) -> Mapping[str, str]:
    """The upstream description of each field of a kind that has one, by field path
    (``""`` the kind, ``spec.traffic[].tag``, ``*`` for a map's key); empty when the
    upstream schema carries none. Read once per process."""
    texts, kinds, _ = _descriptions()
    paths = kinds.get(f"{api_version}/{kind}") or {}
    return {path: texts[i] for path, i in paths.items()}
