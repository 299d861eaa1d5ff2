"""A client of one repository of a registry (the OCI Distribution API): blobs, manifests,
and authentication as the registry asks.

A registry on this machine (``localhost``, ``127.0.0.1``, ``*.local``) is spoken to over
plain HTTP, any other over HTTPS. A registry that answers 401 gets what its challenge asks
for: Basic authentication with the credentials, or a Bearer token from its token server
(asked with the credentials, or anonymously when there are none) for the actions the
client needs on the repository. The credentials are ``--creds USER:PASSWORD`` or those
``podman login``/``docker login`` saved (:mod:`wonderland.export.credentials`); a
registry that refuses them, or wants some and finds none, is an error naming the image,
the registry and what to do.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from wonderland.export.credentials import Credentials, find_credentials
from wonderland.export.oci import ImageBuildError

__all__ = ["MANIFEST_TYPES", "ImageRef", "RegistryClient"]

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_LOGIN = (
    "it wants credentials: log in first (`podman login {host}`, `skopeo login {host}` or "
    "`docker login {host}`: wonderland reads the file they write, or REGISTRY_AUTH_FILE), "
    "or give --creds USER:PASSWORD"
)


@dataclass(frozen=True)
class ImageRef:
    """``host[:port]/repository:tag`` or ``host[:port]/repository@sha256:...``."""

    host: str
    repository: str
    tag: str

    @classmethod
    def parse(cls, ref: str, what: str = "build with --registry REG to push") -> ImageRef:
        if "@" in ref:
            name, _, tag = ref.partition("@")
        else:
            name, _, tag = ref.rpartition(":")
        if not name or not tag or "/" in tag:
            raise ImageBuildError(f"{ref}: not an image name with a tag (REG/NAME:TAG)")
        first, _, rest = name.partition("/")
        if not rest or not ("." in first or ":" in first or first == "localhost"):
            raise ImageBuildError(f"{ref}: no registry in the name; {what}")
        return cls(first, rest, tag)

    def __str__(self) -> str:
        sep = "@" if self.tag.startswith("sha256:") else ":"
        return f"{self.host}/{self.repository}{sep}{self.tag}"

    @property
    def base_url(self) -> str:
        host = self.host.split(":")[0]
        local = host in ("localhost", "127.0.0.1") or host.endswith(".local")
        return f"{'http' if local else 'https'}://{self.host}"


class RegistryClient:
    """One repository of a registry, spoken to over the OCI Distribution API as ``user``
    would: authenticated as the registry asks on a 401, for ``actions`` (``pull`` or
    ``pull,push``) on the repository; errors name the image, the registry and what to do.
    """

    def __init__(
        self,
        ref: ImageRef,
        transport: httpx.BaseTransport | None,
        creds: str | None,
        actions: str = "pull,push",
    ) -> None:
        self.ref = ref
        self.actions = actions
        self.http = httpx.Client(
            base_url=ref.base_url, transport=transport, timeout=120.0, follow_redirects=True
        )
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
        # One token for the whole push (or pull) of the image.
        params["scope"] = f"repository:{self.ref.repository}:{self.actions}"
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
        verb = "push" if "push" in self.actions else "pull"
        sep = "@" if self.ref.tag.startswith("sha256:") else ":"
        image = f"{self.ref.repository}{sep}{self.ref.tag}"
        try:
            errors = response.json().get("errors") or []
            detail = "; ".join(str(e.get("message") or e.get("code")) for e in errors)
        except (ValueError, AttributeError):
            detail = response.text[:200].strip()
        if response.status_code == 403:
            found = self._credentials()
            who = f"the user {found.username}" if found else "an anonymous user"
            other = ", or push to a repository you may write (--registry)"
            why = (
                f"{why}; {who} may not {verb} {self.ref.repository}: ask for the rights "
                f"there{other if verb == 'push' else ''}"
            )
        return ImageBuildError(
            f"the registry {self.ref.host} refused the {verb} of {image} "
            f"(HTTP {response.status_code}{': ' + detail if detail else ''}); "
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

    def get_manifest(self, reference: str) -> tuple[bytes, str]:
        """The manifest (or index) ``reference`` names: its bytes and media type."""
        url = f"/v2/{self.ref.repository}/manifests/{reference}"
        got = self.request("GET", url, headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if got.status_code != 200:
            raise self._refused(got, f"it has no manifest {reference}: check the name")
        media = got.headers.get("Content-Type", "").split(";")[0].strip()
        return got.content, media

    def get_blob(self, digest: str) -> bytes:
        """The blob ``digest``, checked against it."""
        got = self.request("GET", f"/v2/{self.ref.repository}/blobs/{digest}")
        if got.status_code != 200:
            raise self._refused(got, f"it did not give the blob {digest}")
        if "sha256:" + hashlib.sha256(got.content).hexdigest() != digest:
            raise ImageBuildError(
                f"{self.ref}: the blob {digest} the registry {self.ref.host} gave does not "
                "match its digest; pull again"
            )
        return got.content
