"""Pushing an image of an OCI image layout to a registry (the OCI Distribution API).

Blobs the registry has already are skipped (``HEAD``), those another repository of the
registry took earlier in the run are mounted from it, the others uploaded in one ``PUT``
each, then the manifest is put under its tag. A registry on this machine (``localhost``,
``127.0.0.1``, ``*.local``) is spoken to over plain HTTP, any other over HTTPS.

A registry that answers 401 gets what its challenge asks for: Basic authentication with
the credentials, or a Bearer token from its token server (asked with the credentials, or
anonymously when there are none) for pulling and pushing the repository. The credentials
are ``--creds USER:PASSWORD`` or those ``podman login``/``docker login`` saved
(:mod:`wonderland.export.credentials`); a registry that refuses them, or wants some and
finds none, is an error naming the image, the registry and what to do.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from wonderland.export.credentials import Credentials, find_credentials
from wonderland.export.oci import ImageBuildError

__all__ = ["ImageRef", "PushResult", "push_image"]

_ACCEPT = "application/vnd.oci.image.manifest.v1+json"
_LOGIN = (
    "it wants credentials: log in first (`podman login {host}`, `skopeo login {host}` or "
    "`docker login {host}`: wonderland reads the file they write, or REGISTRY_AUTH_FILE), "
    "or give --creds USER:PASSWORD"
)


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
    mounted: int = 0  # blobs the registry linked from another repository it holds


class _Registry:
    def __init__(
        self, ref: ImageRef, transport: httpx.BaseTransport | None, creds: str | None
    ) -> None:
        self.ref = ref
        self.http = httpx.Client(base_url=ref.base_url, transport=transport, timeout=120.0)
        self.creds = creds
        self.credentials: Credentials | None = None
        self.looked_up = False
        self.authorization: str | None = None

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        url: str,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """The response to the request, authenticated as the registry asks on a 401 (the
        request is sent again once)."""
        sent = dict(headers or {})
        try:
            for attempt in range(2):
                if self.authorization:
                    sent["Authorization"] = self.authorization
                response = self.http.request(method, url, content=content, headers=sent)
                if response.status_code != 401:
                    return response
                if attempt == 1:
                    raise self._refused(response, self._why_unauthorized())
                self.authorization = self._authorize(response)
        except httpx.HTTPError as exc:
            raise ImageBuildError(
                f"push to {self.ref.base_url} failed: {exc} (is the registry running there?)"
            ) from None
        return response

    def _credentials(self) -> Credentials | None:
        if not self.looked_up:
            self.credentials = find_credentials(self.ref.host, self.ref.repository, self.creds)
            self.looked_up = True
        return self.credentials

    def _why_unauthorized(self) -> str:
        found = self._credentials()
        if found is None:
            return _LOGIN.format(host=self.ref.host)
        return (
            f"the credentials of {found.source} (user {found.username}) were refused: check "
            f"them, or log in again (`podman login {self.ref.host}`)"
        )

    def _authorize(self, response: httpx.Response) -> str:
        """The ``Authorization`` header the challenge of a 401 asks for: Basic with the
        credentials, or a Bearer token from the challenge's realm (with the credentials
        when there are some, anonymous otherwise)."""
        challenge = response.headers.get("WWW-Authenticate", "")
        scheme, _, rest = challenge.partition(" ")
        found = self._credentials()
        if scheme.lower() == "basic":
            if found is None:
                raise self._refused(response, _LOGIN.format(host=self.ref.host))
            return found.basic()
        if scheme.lower() != "bearer":
            raise self._refused(
                response,
                f"it asks for {scheme or 'an unknown'} authentication, not Basic or Bearer",
            )
        params = {
            k.strip(): v.strip().strip('"')
            for k, _, v in (p.partition("=") for p in re.findall(r'[^,]+="[^"]*"|[^,]+', rest))
        }
        realm = params.pop("realm", "")
        params.pop("error", None)
        # One token for the whole push: pull and push on the repository.
        params["scope"] = f"repository:{self.ref.repository}:pull,push"
        auth = (found.username, found.password) if found is not None else None
        try:
            answer = self.http.get(realm, params=params, auth=auth)
        except httpx.HTTPError as exc:
            why = f"its token server {realm} did not answer ({exc})"
            raise self._refused(response, why) from None
        if answer.status_code in (401, 403):
            raise self._refused(answer, f"its token server {realm}: {self._why_unauthorized()}")
        token = None
        try:
            body = answer.json() if answer.status_code == 200 else {}
            token = body.get("token") or body.get("access_token")
        except ValueError:
            token = None
        if not token:
            raise self._refused(
                answer, f"its token server {realm} gave no token (HTTP {answer.status_code})"
            )
        return f"Bearer {token}"

    def _refused(self, response: httpx.Response, why: str) -> ImageBuildError:
        try:
            errors = response.json().get("errors") or []
            detail = "; ".join(str(e.get("message") or e.get("code")) for e in errors)
        except (ValueError, AttributeError):
            detail = response.text[:200].strip()
        if response.status_code == 403:
            found = self._credentials()
            who = f"the user {found.username}" if found else "an anonymous user"
            why = (
                f"{why}; {who} may not push to {self.ref.repository}: ask for push rights "
                "there, or push to a repository you may write (--registry)"
            )
        return ImageBuildError(
            f"the registry {self.ref.host} refused the push of {self.ref.repository}:"
            f"{self.ref.tag} (HTTP {response.status_code}{': ' + detail if detail else ''}); "
            f"{why}"
        )

    def push_blob(self, digest: str, data: Callable[[], bytes], mount_from: str | None) -> str:
        """Put the blob unless the repository has it: ``"sent"``, ``"there"``, or
        ``"mounted"`` when the registry links it from ``mount_from`` (another repository
        of its own that took it earlier) instead of taking the bytes again."""
        base = f"/v2/{self.ref.repository}/blobs"
        if self.request("HEAD", f"{base}/{digest}").status_code == 200:
            return "there"
        query = f"?mount={digest}&from={mount_from}" if mount_from else ""
        started = self.request("POST", f"{base}/uploads/{query}")
        if mount_from and started.status_code == 201:
            return "mounted"
        if started.status_code != 202 or "Location" not in started.headers:
            raise self._refused(started, "it did not start the upload")
        location = started.headers["Location"]
        sep = "&" if "?" in location else "?"
        done = self.request(
            "PUT",
            f"{location}{sep}digest={digest}",
            content=data(),
            headers={"Content-Type": "application/octet-stream"},
        )
        if done.status_code != 201:
            raise self._refused(done, f"it did not take the blob {digest}")
        return "sent"

    def push_manifest(self, data: bytes, media_type: str) -> str:
        url = f"/v2/{self.ref.repository}/manifests/{self.ref.tag}"
        done = self.request("PUT", url, content=data, headers={"Content-Type": media_type})
        if done.status_code != 201:
            raise self._refused(done, "it did not take the manifest")
        return str(done.headers.get("Docker-Content-Digest", ""))


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
    registry = _Registry(target, transport, creds)
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
