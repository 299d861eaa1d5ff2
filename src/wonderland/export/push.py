"""Pushing an image of an OCI image layout to a registry (the OCI Distribution API).

Blobs the registry has already are skipped (``HEAD``), the others uploaded in one ``PUT``
each, then the manifest is put under its tag. A registry on this machine (``localhost``,
``127.0.0.1``, ``*.local``) is spoken to over plain HTTP, any other over HTTPS. A
registry that asks for a bearer token gets an anonymous one; one that wants credentials
is refused with what to do (``skopeo copy`` with ``--dest-creds``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx

from wonderland.export.oci import ImageBuildError

__all__ = ["ImageRef", "PushResult", "push_image"]

_ACCEPT = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class ImageRef:
    """``host[:port]/repository:tag``."""

    host: str
    repository: str
    tag: str

    @classmethod
    def parse(cls, ref: str) -> ImageRef:
        name, _, tag = ref.rpartition(":")
        if not name or "/" in tag:
            raise ImageBuildError(f"{ref}: not an image name with a tag (REG/NAME:TAG)")
        first, _, rest = name.partition("/")
        if not rest or not ("." in first or ":" in first or first == "localhost"):
            raise ImageBuildError(
                f"{ref}: no registry in the name; build with --registry REG to push"
            )
        return cls(first, rest, tag)

    @property
    def base_url(self) -> str:
        host = self.host.split(":")[0]
        local = host in ("localhost", "127.0.0.1") or host.endswith(".local")
        return f"{'http' if local else 'https'}://{self.host}"


@dataclass(frozen=True)
class PushResult:
    ref: str
    digest: str
    uploaded: int  # blobs sent
    skipped: int  # blobs the registry had


class _Registry:
    def __init__(self, ref: ImageRef, transport: httpx.BaseTransport | None) -> None:
        self.ref = ref
        self.http = httpx.Client(base_url=ref.base_url, transport=transport, timeout=120.0)
        self.token: str | None = None

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        url: str,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = dict(headers or {})
        try:
            for _ in range(2):
                if self.token:
                    sent["Authorization"] = f"Bearer {self.token}"
                response = self.http.request(method, url, content=content, headers=sent)
                if response.status_code != 401 or self.token is not None:
                    break
                self.token = self._anonymous_token(response)
        except httpx.HTTPError as exc:
            raise ImageBuildError(
                f"push to {self.ref.base_url} failed: {exc} (is the registry running there?)"
            ) from None
        return response

    def _anonymous_token(self, response: httpx.Response) -> str:
        challenge = response.headers.get("WWW-Authenticate", "")
        if not challenge.lower().startswith("bearer "):
            raise self._refused(response, "it wants credentials")
        params = dict(
            part.strip().split("=", 1) for part in challenge[7:].split(",") if "=" in part
        )
        params = {k: v.strip('"') for k, v in params.items()}
        realm = params.pop("realm", "")
        token = None
        try:
            answer = self.http.get(realm, params=params)
            if answer.status_code == 200:
                body = answer.json()
                token = body.get("token") or body.get("access_token")
        except (httpx.HTTPError, ValueError):
            token = None
        if not token:
            raise self._refused(response, "it gives no anonymous token")
        return str(token)

    def _refused(self, response: httpx.Response, why: str) -> ImageBuildError:
        try:
            errors = response.json().get("errors") or []
            detail = "; ".join(str(e.get("message") or e.get("code")) for e in errors)
        except ValueError:
            detail = response.text[:200]
        return ImageBuildError(
            f"the registry {self.ref.host} refused the push of {self.ref.repository}:"
            f"{self.ref.tag} (HTTP {response.status_code}{': ' + detail if detail else ''}); "
            f"{why}: push with `skopeo copy --dest-creds USER:PASSWORD oci:DIR:REF "
            "docker://REF`"
        )

    def push_blob(self, digest: str, data: bytes) -> bool:
        base = f"/v2/{self.ref.repository}/blobs"
        if self.request("HEAD", f"{base}/{digest}").status_code == 200:
            return False
        started = self.request("POST", f"{base}/uploads/")
        if started.status_code != 202 or "Location" not in started.headers:
            raise self._refused(started, "it did not start the upload")
        location = started.headers["Location"]
        sep = "&" if "?" in location else "?"
        done = self.request(
            "PUT",
            f"{location}{sep}digest={digest}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        if done.status_code != 201:
            raise self._refused(done, f"it did not take the blob {digest}")
        return True

    def push_manifest(self, data: bytes, media_type: str) -> str:
        url = f"/v2/{self.ref.repository}/manifests/{self.ref.tag}"
        done = self.request("PUT", url, content=data, headers={"Content-Type": media_type})
        if done.status_code != 201:
            raise self._refused(done, "it did not take the manifest")
        return str(done.headers.get("Docker-Content-Digest", ""))


def push_image(layout: Path, ref: str, transport: httpx.BaseTransport | None = None) -> PushResult:
    """Push the image ``ref`` of the OCI image layout ``layout`` to the registry its name
    starts with; ``transport`` replaces the network (tests)."""
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
    registry = _Registry(ImageRef.parse(ref), transport)
    try:
        uploaded = skipped = 0
        for desc in [*manifest["layers"], manifest["config"]]:
            if registry.push_blob(desc["digest"], blob(desc["digest"])):
                uploaded += 1
            else:
                skipped += 1
        digest = registry.push_manifest(manifest_bytes, manifest.get("mediaType", _ACCEPT))
    finally:
        registry.close()
    return PushResult(ref, digest or entry["digest"], uploaded, skipped)
