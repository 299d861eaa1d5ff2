"""Pulling a base image from a registry into an OCI image layout on disk.

``wonderland build --base REG/NAME:TAG`` takes the base from the user's registry: the
manifest for the build's platform (from an index when the name has several), its config
and layers, each checked against its digest, go into a layout of their own under the
cache (``$XDG_CACHE_HOME/wonderland/bases``), which the build then reads as it reads
``--base DIR``. A later build asks the registry for the manifest only: layers the cache
holds are not fetched again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import httpx

from wonderland.export.layers import default_cache
from wonderland.export.oci import ImageBuildError
from wonderland.export.registry import ImageRef, RegistryClient

__all__ = ["default_bases", "looks_like_image", "pull_base"]

_INDEXES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
_REF_NAME = "org.opencontainers.image.ref.name"


def default_bases() -> Path:
    """``bases`` beside the build's layer cache (``$XDG_CACHE_HOME/wonderland``)."""
    return default_cache().parent / "bases"


def looks_like_image(value: str) -> bool:
    """Whether ``--base VALUE`` names an image in a registry rather than a folder."""
    first, sep, _ = value.partition("/")
    named = ":" in value.rpartition("/")[2] or "@" in value
    return bool(sep) and ("." in first or ":" in first or first == "localhost") and named


def pull_base(
    ref: str,
    cache: Path | None = None,
    platform: tuple[str, str] = ("linux", "amd64"),
    creds: str | None = None,
    transport: httpx.BaseTransport | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """The OCI image layout (in ``cache``) that holds the image ``ref`` for ``platform``,
    pulled from its registry as ``creds`` or the user an auth file names for it."""
    say = progress or (lambda _line: None)
    image = ImageRef.parse(ref, "give the registry, e.g. --base registry.example/python:3.12")
    layout = (cache or default_bases()) / hashlib.sha256(ref.encode()).hexdigest()[:16]
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def have(digest: str) -> bool:
        return (blobs / digest.removeprefix("sha256:")).is_file()

    def put(data: bytes, digest: str) -> str:
        path = blobs / digest.removeprefix("sha256:")
        if not path.is_file():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return digest

    client = RegistryClient(image, transport, creds, actions="pull")
    try:
        data, media = client.get_manifest(image.tag)
        doc = json.loads(data)
        if media in _INDEXES or "manifests" in doc:
            os_, arch = platform
            chosen = next(
                (
                    m
                    for m in doc.get("manifests") or []
                    if (m.get("platform") or {}).get("os") == os_
                    and (m.get("platform") or {}).get("architecture") == arch
                ),
                None,
            )
            if chosen is None:
                raise ImageBuildError(f"--base {ref}: the registry has no {os_}/{arch} image")
            data, media = client.get_manifest(chosen["digest"])
            doc = json.loads(data)
        fetched = 0
        for desc in [doc["config"], *doc["layers"]]:
            if not have(desc["digest"]):
                say(f"--base {ref}: pull {desc['digest'][:19]} ({int(desc['size']) / 1e6:.1f} MB)")
                put(client.get_blob(desc["digest"]), desc["digest"])  # checked by get_blob
                fetched += 1
        digest = put(data, "sha256:" + hashlib.sha256(data).hexdigest())
    finally:
        client.close()
    say(f"--base {ref}: {digest[:19]} ({fetched} blob(s) pulled, into {layout})")
    entry = {
        "mediaType": media or doc.get("mediaType") or "application/vnd.oci.image.manifest.v1+json",
        "digest": digest,
        "size": len(data),
        "annotations": {_REF_NAME: ref},
    }
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}\n')
    (layout / "index.json").write_text(
        json.dumps({"schemaVersion": 2, "manifests": [entry]}, indent=2) + "\n"
    )
    return layout
