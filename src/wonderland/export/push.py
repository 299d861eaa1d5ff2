"""Pushing an image of an OCI image layout to a registry (the OCI Distribution API).

Blobs the registry has already are skipped (``HEAD``), those another repository of the
registry took earlier in the run are mounted from it, the others uploaded in one ``PUT``
each, then the manifest is put under its tag, authenticated as the registry asks
(:class:`~wonderland.export.registry.RegistryClient`).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import httpx

from wonderland.export.oci import ImageBuildError
from wonderland.export.registry import ImageRef, RegistryClient

__all__ = ["ImageRef", "PushResult", "push_image"]

_ACCEPT = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class PushResult:
    ref: str
    digest: str
    uploaded: int  # blobs sent
    skipped: int  # blobs the registry had
    mounted: int = 0  # blobs the registry linked from another repository it holds


def push_image(
    layout: Path,
    ref: str,
    transport: httpx.BaseTransport | None = None,
    creds: str | None = None,
    pushed: dict[str, str] | None = None,
) -> PushResult:
    """Push the image ``ref`` of the OCI image layout ``layout`` to the registry its name
    starts with, as ``creds`` (``USER:PASSWORD``) or the user an auth file names for it
    when the registry asks; ``transport`` replaces the network (tests).

    ``pushed`` (blob digest -> ``host/repository``) is where earlier pushes of a run put
    their blobs, updated here: a blob another repository of the same registry took is
    mounted from it (the OCI Distribution API's cross-repository mount), so the layers
    that images share (the base's) are sent once."""
    index = json.loads((layout / "index.json").read_text())
    entry = next(
        (
            m
            for m in index.get("manifests") or []
            if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == ref
        ),
        None,
    )
    if entry is None:
        raise ImageBuildError(f"{layout}: holds no image {ref}")

    def blob(digest: str) -> bytes:
        return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()

    manifest_bytes = blob(entry["digest"])
    manifest = json.loads(manifest_bytes)
    target = ImageRef.parse(ref)
    registry = RegistryClient(target, transport, creds)
    known = pushed if pushed is not None else {}
    counts = {"sent": 0, "there": 0, "mounted": 0}
    try:
        for desc in [*manifest["layers"], manifest["config"]]:
            digest = str(desc["digest"])
            host, _, repository = known.get(digest, "").partition("/")
            source = repository if host == target.host and repository != target.repository else None
            how = registry.push_blob(digest, functools.partial(blob, digest), source)
            counts[how] += 1
            known.setdefault(digest, f"{target.host}/{target.repository}")
        digest = registry.push_manifest(manifest_bytes, manifest.get("mediaType", _ACCEPT))
    finally:
        registry.close()
    return PushResult(
        ref, digest or entry["digest"], counts["sent"], counts["there"], counts["mounted"]
    )
