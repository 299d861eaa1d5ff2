"""``s3://bucket/prefix`` on AWS or any S3-compatible endpoint (MinIO, moto, Ceph ...).

Configuration follows KServe's storage initializer: the ``serving.kserve.io/s3-endpoint``,
``s3-usehttps``, ``s3-region``, ``s3-verifyssl`` and ``s3-useanoncredential``
annotations, then the ``AWS_ENDPOINT_URL``/``S3_ENDPOINT``, ``S3_USE_HTTPS``,
``AWS_REGION``/``AWS_DEFAULT_REGION``, ``S3_VERIFY_SSL``, ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY`` environment variables.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wonderland.inference.storage._base import (
    StorageContext,
    StorageError,
    blob_path,
    commit_blob,
    staging_dir,
    write_ref,
)

__all__ = ["S3Object", "S3Prefix", "S3Storage", "s3_client_options"]

_ANNOTATION = "serving.kserve.io/"


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def s3_client_options(annotations: Mapping[str, str], env: Mapping[str, str]) -> dict[str, Any]:
    """boto3 client arguments from KServe's annotations and the usual AWS variables."""
    endpoint = annotations.get(_ANNOTATION + "s3-endpoint") or env.get("S3_ENDPOINT") or ""
    use_https = annotations.get(_ANNOTATION + "s3-usehttps") or env.get("S3_USE_HTTPS") or "1"
    if endpoint and "://" not in endpoint:
        endpoint = ("https://" if _truthy(use_https) else "http://") + endpoint
    endpoint = endpoint or env.get("AWS_ENDPOINT_URL", "")
    region = (
        annotations.get(_ANNOTATION + "s3-region")
        or env.get("AWS_REGION")
        or env.get("AWS_DEFAULT_REGION")
        or "us-east-1"
    )
    verify_raw = annotations.get(_ANNOTATION + "s3-verifyssl") or env.get("S3_VERIFY_SSL") or "1"
    options: dict[str, Any] = {"region_name": region, "verify": _truthy(verify_raw)}
    if env.get("AWS_CA_BUNDLE") and options["verify"]:
        options["verify"] = env["AWS_CA_BUNDLE"]
    if endpoint:
        options["endpoint_url"] = endpoint
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        options["aws_access_key_id"] = env["AWS_ACCESS_KEY_ID"]
        options["aws_secret_access_key"] = env["AWS_SECRET_ACCESS_KEY"]
        if env.get("AWS_SESSION_TOKEN"):
            options["aws_session_token"] = env["AWS_SESSION_TOKEN"]
    anon = annotations.get(_ANNOTATION + "s3-useanoncredential") or env.get(
        "awsAnonymousCredential", ""
    )
    options["anonymous"] = _truthy(anon)
    return options


# How the errors of InferenceServices name the settings a user can fix.
KSERVE_CREDENTIALS = "the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY credentials"
KSERVE_ENDPOINT = "the serving.kserve.io/s3-endpoint annotation or AWS_ENDPOINT_URL/S3_ENDPOINT"


@dataclass(frozen=True)
class S3Object:
    """One object under a prefix: its key, ETag and size, and its path below the prefix."""

    key: str
    etag: str
    size: int
    relative: str


class S3Prefix:
    """The objects under ``s3://bucket/prefix`` and verified downloads of them.

    ``options`` are boto3 client arguments (``s3_client_options`` builds them for
    InferenceServices) plus ``anonymous``; ``credentials`` and ``endpoint`` say, in the
    errors, which settings the caller's users write (annotations, env names).
    Every error is a :class:`StorageError` that names the URI and the endpoint.
    """

    def __init__(
        self,
        uri: str,
        options: Mapping[str, Any],
        *,
        credentials: str = KSERVE_CREDENTIALS,
        endpoint: str = KSERVE_ENDPOINT,
    ) -> None:
        try:
            import boto3  # type: ignore[import-untyped]
            from botocore import UNSIGNED  # type: ignore[import-untyped]
            from botocore.config import Config  # type: ignore[import-untyped]
            from botocore.exceptions import (  # type: ignore[import-untyped]
                BotoCoreError,
                ClientError,
            )
        except ImportError:
            raise StorageError(
                f"storageUri {uri}: s3:// needs boto3; install it with "
                "`pip install 'wonderland[s3]'`"
            ) from None
        self.uri = uri
        self.bucket, _, self.prefix = uri[len("s3://") :].partition("/")
        if not self.bucket:
            raise StorageError(f"storageUri {uri}: expected s3://<bucket>/<prefix>")
        self._credentials = credentials
        self._endpoint = endpoint
        self._errors: tuple[type[Exception], type[Exception]] = (ClientError, BotoCoreError)
        kwargs = dict(options)
        anonymous = kwargs.pop("anonymous", False)
        config = Config(signature_version=UNSIGNED) if anonymous else None
        self.where: str = kwargs.get("endpoint_url", "AWS S3")
        with self.translated_errors():
            self._client = boto3.session.Session().client("s3", config=config, **kwargs)

    @contextlib.contextmanager
    def translated_errors(self) -> Iterator[None]:
        """Turn botocore's errors into a StorageError that says what to check."""
        client_error, botocore_error = self._errors
        try:
            yield
        except client_error as exc:
            code = exc.response.get("Error", {}).get("Code", "")  # type: ignore[attr-defined]
            raise StorageError(
                f"storageUri {self.uri}: S3 at {self.where} refused ({code}: {exc}); check "
                f"the bucket name and {self._credentials}"
            ) from None
        except botocore_error as exc:
            raise StorageError(
                f"storageUri {self.uri}: cannot reach S3 at {self.where} ({exc}); check "
                f"{self._endpoint}"
            ) from None

    def objects(self) -> list[S3Object]:
        """Every object under the prefix (not ``prefix2/...``), sorted by key."""
        with self.translated_errors():
            return [
                S3Object(key, etag, size, _relative(key, self.prefix))
                for key, etag, size in _list(self._client, self.bucket, self.prefix)
            ]

    def download(
        self, obj: S3Object, target: Path, progress: Callable[[int], None] | None = None
    ) -> None:
        """Write ``obj`` to ``target``, checking its size and (single-part uploads) its MD5
        ETag; ``progress`` gets the bytes of this object received so far."""
        target.parent.mkdir(parents=True, exist_ok=True)
        with self.translated_errors():
            body = self._client.get_object(Bucket=self.bucket, Key=obj.key)["Body"]
            md5 = hashlib.md5(usedforsecurity=False)
            got = 0
            with target.open("wb") as out:
                for chunk in body.iter_chunks(1 << 20):
                    out.write(chunk)
                    md5.update(chunk)
                    got += len(chunk)
                    if progress is not None:
                        progress(got)
        if got != obj.size:
            raise StorageError(
                f"storageUri {self.uri}: s3://{self.bucket}/{obj.key} came with {got} of "
                f"{obj.size} bytes; try again"
            )
        plain = obj.etag.strip('"')
        if "-" not in plain and len(plain) == 32 and plain != md5.hexdigest():
            raise StorageError(
                f"storageUri {self.uri}: s3://{self.bucket}/{obj.key} does not match its ETag "
                "(MD5); the download is corrupt, try again"
            )


class S3Storage:
    """Lists the prefix, keys the cache by (key, ETag, size) of every object, and
    downloads only when that listing is new; each object's size (and MD5 ETag, for
    objects uploaded in one part) is checked."""

    def fetch(self, uri: str, ctx: StorageContext) -> Path:
        source = S3Prefix(uri, s3_client_options(ctx.annotations, ctx.env))
        objects = source.objects()
        if not objects:
            raise StorageError(
                f"storageUri {uri}: no objects under s3://{source.bucket}/{source.prefix} at "
                f"{source.where}; check the bucket and prefix"
            )
        listing = "\n".join(f"{o.key}\t{o.etag}\t{o.size}" for o in objects)
        digest = "s3-" + hashlib.sha256(listing.encode()).hexdigest()
        if blob_path(ctx, digest).exists():
            write_ref(ctx, uri, {"digest": digest})
            return blob_path(ctx, digest)
        staged = staging_dir(ctx)
        try:
            blob = staged / "blob"
            total = sum(o.size for o in objects)
            done = 0
            report = ctx.progress
            for obj in objects:

                def progress(got: int, base: int = done) -> None:
                    if report is not None:
                        report(uri, base + got, total)

                source.download(obj, blob / obj.relative, progress)
                done += obj.size
            final = commit_blob(ctx, digest, blob)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        write_ref(ctx, uri, {"digest": digest})
        return final


def _list(client: Any, bucket: str, prefix: str) -> list[tuple[str, str, int]]:
    found: list[tuple[str, str, int]] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents") or []:
            key = str(item["Key"])
            if key.endswith("/"):
                continue
            # A prefix "models/iris" must not match "models/iris2/...".
            partial = prefix and key != prefix and not prefix.endswith("/")
            if partial and not key.startswith(prefix + "/"):
                continue
            found.append((key, str(item.get("ETag", "")), int(item.get("Size", 0))))
    return sorted(found)


def _relative(key: str, prefix: str) -> str:
    if key == prefix:
        return Path(key).name
    rel = key[len(prefix) :].lstrip("/") if prefix else key
    parts = [p for p in rel.split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or Path(key).name
