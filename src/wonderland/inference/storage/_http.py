"""``http(s)://``: a single file or an archive (tar, tar.gz, zip), unpacked."""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from wonderland.inference.storage._base import (
    StorageContext,
    StorageError,
    commit_blob,
    is_archive,
    read_ref,
    redact,
    staging_dir,
    unpack,
    write_ref,
)

__all__ = ["HTTPStorage"]

log = logging.getLogger("wonderland.inference.storage")

_ARCHIVE_TYPES = {
    "application/zip": ".zip",
    "application/x-zip-compressed": ".zip",
    "application/x-tar": ".tar",
    "application/gzip": ".tar.gz",
    "application/x-gzip": ".tar.gz",
    "application/x-gtar": ".tar.gz",
}


class HTTPStorage:
    """Downloads once, revalidates with ETag/Last-Modified, keeps the copy by digest."""

    def fetch(self, uri: str, ctx: StorageContext) -> Path:
        shown = redact(uri)
        ref = read_ref(ctx, uri)
        headers: dict[str, str] = {}
        if ref is not None:
            if ref.get("etag"):
                headers["If-None-Match"] = ref["etag"]
            if ref.get("last_modified"):
                headers["If-Modified-Since"] = ref["last_modified"]
        staged = staging_dir(ctx)
        try:
            try:
                # trust_env=False: the platform's replicas proxy through the gateway; the
                # model download must go straight to the server the user named.
                with (
                    httpx.Client(follow_redirects=True, timeout=60, trust_env=False) as client,
                    client.stream("GET", uri, headers=headers) as resp,
                ):
                    if resp.status_code == 304 and ref is not None:
                        return ctx.cache_dir / "blobs" / ref["digest"]
                    if resp.status_code >= 400:
                        raise StorageError(
                            f"storageUri {shown}: the server answered {resp.status_code} "
                            f"{resp.reason_phrase}; check the URL and that the file is public"
                        )
                    name = _file_name(uri, resp)
                    download = staged / "download"
                    digest = _download(resp, download, shown, ctx)
                    validators = {
                        "etag": resp.headers.get("etag", ""),
                        "last_modified": resp.headers.get("last-modified", ""),
                    }
            except httpx.HTTPError as exc:
                if ref is not None:
                    log.warning("%s unreachable (%s); using the cached copy", shown, exc)
                    return ctx.cache_dir / "blobs" / ref["digest"]
                raise StorageError(
                    f"storageUri {shown}: cannot download ({type(exc).__name__}: {exc}); check "
                    "that the server is up and reachable from this machine"
                ) from None
            blob = staged / "blob"
            if is_archive(name):
                archive = staged / name
                download.rename(archive)
                unpack(archive, blob, shown)
            else:
                blob.mkdir()
                download.rename(blob / name)
            final = commit_blob(ctx, f"sha256-{digest}", blob)
            write_ref(ctx, uri, {"digest": final.name, **validators})
            return final
        finally:
            shutil.rmtree(staged, ignore_errors=True)


def _file_name(uri: str, resp: httpx.Response) -> str:
    disposition = resp.headers.get("content-disposition", "")
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename" and value.strip('"'):
            return Path(value.strip('"')).name
    name = Path(unquote(urlsplit(uri).path)).name or "model"
    ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
    if not is_archive(name) and ctype in _ARCHIVE_TYPES:
        name += _ARCHIVE_TYPES[ctype]
    return name


def _download(resp: httpx.Response, dest: Path, uri: str, ctx: StorageContext) -> str:
    total_header = resp.headers.get("content-length")
    encoded = resp.headers.get("content-encoding", "identity") != "identity"
    total = int(total_header) if total_header and total_header.isdigit() else None
    digest = hashlib.sha256()
    done = 0
    with dest.open("wb") as out:
        for chunk in resp.iter_raw() if not encoded else resp.iter_bytes():
            out.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            if ctx.progress is not None:
                ctx.progress(uri, done, None if encoded else total)
    if total is not None and not encoded and done != total:
        raise StorageError(
            f"storageUri {uri}: the download stopped at {done} of {total} bytes; try again"
        )
    return digest.hexdigest()
