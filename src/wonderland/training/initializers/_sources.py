"""Each scheme's way to fill the staging folder: the Hugging Face cache, S3, and the
storage registry's ``fetch`` for http(s)://, file://, pvc:// and plain paths."""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wonderland.inference.storage import (
    PICKLE_SUFFIXES,
    S3Prefix,
    StorageContext,
    StorageError,
    fetch,
    hf_cache_dir,
    hf_snapshot,
)
from wonderland.training.initializers._config import (
    MODEL_ALLOW_PATTERNS,
    MODEL_IGNORE_PATTERNS,
    InitializerConfig,
    InitializerError,
    matches,
)

__all__ = ["Copied", "populate"]

log = logging.getLogger("wonderland.training.initializers")

# Per-file lines stop here; a dataset of a million images would otherwise flood the log.
FILE_LINES = 200
# A long download says how far it got at most this often.
PROGRESS_EVERY = 5.0
# Set by the TrainJob controller where it mounted the claims a pvc:// source names.
PVC_ROOT_ENV = "WONDERLAND_PVC_ROOT"
# Where a pod finds its namespace when POD_NAMESPACE is not set (upstream's cache
# initializer reads the same file).
NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass
class Copied:
    """What went into the destination, and what was left out and why."""

    files: int = 0
    bytes: int = 0
    ignored: list[str] = field(default_factory=list)  # matched IGNORE_PATTERNS
    not_allowed: list[str] = field(default_factory=list)  # outside the model allow list
    pickles: list[str] = field(default_factory=list)  # from a remote source
    names: list[str] = field(default_factory=list)  # what was copied
    seen: int = 0

    def announce(self, line: str) -> None:
        """Log what is about to be fetched (the first FILE_LINES files)."""
        if self.files < FILE_LINES:
            log.info("%s", line)
        elif self.files == FILE_LINES:
            log.info("... (more files follow; the summary counts them all)")

    def add(self, rel: str, size: int) -> None:
        self.names.append(rel)
        self.files += 1
        self.bytes += size


def populate(
    config: InitializerConfig, staging: Path, dest: Path, env: Mapping[str, str]
) -> Copied:
    """Fill ``staging`` from ``config.storage_uri``; ``dest`` is where the files will be
    once the caller commits (the log names it)."""
    scheme = config.scheme
    if scheme == "hf":
        return _from_hf(config, staging, dest, env)
    if scheme == "s3":
        return _from_s3(config, staging, dest, env)
    return _from_registry(config, staging, dest, env)


# -- hf:// ------------------------------------------------------------------------------


def hf_repo(config: InitializerConfig) -> tuple[str, str]:
    """``(repo id, revision)`` of ``hf://org/name[:revision]``, read as upstream reads it:
    a dataset is the first two segments, a model the whole path."""
    rest = config.storage_uri.split("://", 1)[1].strip("/")
    parts = [p for p in rest.split("/") if p]
    if config.kind == "dataset":
        if len(parts) < 2:
            raise InitializerError(
                f"storageUri {config.shown_uri}: expected hf://<org>/<dataset>[:<revision>]"
            )
        parts = parts[:2]
    elif not 1 <= len(parts) <= 2:
        raise InitializerError(
            f"storageUri {config.shown_uri}: expected hf://<org>/<model>[:<revision>]"
        )
    repo, _, revision = "/".join(parts).partition(":")
    return repo, revision


def _from_hf(
    config: InitializerConfig, staging: Path, dest: Path, env: Mapping[str, str]
) -> Copied:
    repo, revision = hf_repo(config)
    log.info("Downloading %s: %s", config.kind, repo)
    log.info("-" * 40)
    if config.access_token:
        log.info("ACCESS_TOKEN is set but not needed: hf:// reads the local cache")
    try:
        snapshot = hf_snapshot(config.storage_uri, repo, revision, env=env, repo_type=config.kind)
    except StorageError as exc:
        raise InitializerError(
            f"{exc}; if the cache is elsewhere, set HF_HUB_CACHE or HF_HOME in "
            f"spec.initializer.{config.kind}.env"
        ) from None
    log.info(
        "Reading %s from the local Hugging Face cache %s (revision %s, commit %s)",
        repo,
        hf_cache_dir(env),
        revision or "main",
        snapshot.name,
    )
    allow: tuple[str, ...] | None = None
    ignore = config.ignore_patterns
    if config.kind == "model":
        allow = MODEL_ALLOW_PATTERNS
        ignore = ignore if ignore is not None else MODEL_IGNORE_PATTERNS
    copied = Copied()
    for rel, src in _walk(snapshot):
        copied.seen += 1
        if allow is not None and not matches(rel, allow):
            copied.not_allowed.append(rel)
            continue
        if ignore is not None and matches(rel, ignore):
            copied.ignored.append(rel)
            log.info("Skipping ignored file: %s", rel)
            continue
        if not src.exists():
            raise InitializerError(
                f"storageUri {config.shown_uri}: {rel} is in the cached snapshot of {repo} "
                f"but its content ({os.path.realpath(src)}) is missing, as after an "
                f"interrupted download; run `hf download {repo}"
                f"{' --repo-type dataset' if config.kind == 'dataset' else ''} "
                "--force-download` on this machine"
            )
        copied.announce(f"Copying {rel} to {dest / rel}")
        copied.add(rel, _copy(src, staging / rel))
    return copied


# -- s3:// ------------------------------------------------------------------------------

_S3_CREDENTIALS = (
    "the ACCESS_KEY_ID/SECRET_ACCESS_KEY variables (the initializer's env or secretRef)"
)
_S3_ENDPOINT = "ENDPOINT (the server's URL, such as http://127.0.0.1:9000, for MinIO)"


def _from_s3(
    config: InitializerConfig, staging: Path, dest: Path, env: Mapping[str, str]
) -> Copied:
    source = S3Prefix(
        config.storage_uri,
        s3_options(config, env),
        credentials=_S3_CREDENTIALS,
        endpoint=_S3_ENDPOINT,
    )
    log.info("Downloading files from S3 bucket: %s, prefix: %s", source.bucket, source.prefix)
    log.info("-" * 40)
    objects = source.objects()
    if not objects:
        raise InitializerError(
            f"storageUri {config.shown_uri}: no objects under "
            f"s3://{source.bucket}/{source.prefix} at {source.where}; check the bucket and "
            "prefix"
        )
    ignore = config.ignore_patterns
    copied = Copied()
    for obj in objects:
        copied.seen += 1
        # upstream matches the object's whole key, not its path below the prefix
        if ignore is not None and matches(obj.key, ignore):
            copied.ignored.append(obj.key)
            log.info("Skipping ignored file: %s", obj.key)
            continue
        copied.announce(f"Downloading {obj.key} to {dest / obj.relative}")
        progress = _ProgressLog(f"s3://{source.bucket}/{obj.key}", obj.size)
        source.download(obj, staging / obj.relative, progress)
        copied.add(obj.relative, obj.size)
        _note_pickle(config, copied, obj.relative)
    log.info("Files have been downloaded")
    return copied


def s3_options(config: InitializerConfig, env: Mapping[str, str]) -> dict[str, Any]:
    """boto3 client arguments from ENDPOINT, REGION, ACCESS_KEY_ID, SECRET_ACCESS_KEY and
    ROLE_ARN; without keys, boto3's own chain (AWS_* variables, ~/.aws) as OpenDAL's."""
    options: dict[str, Any] = {}
    endpoint = config.endpoint or ""
    if endpoint and "://" not in endpoint:
        endpoint = "https://" + endpoint  # OpenDAL's rule for an endpoint without scheme
    if endpoint:
        options["endpoint_url"] = endpoint
    options["region_name"] = (
        config.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    )
    if bool(config.access_key_id) != bool(config.secret_access_key):
        given, missing = (
            ("ACCESS_KEY_ID", "SECRET_ACCESS_KEY")
            if config.access_key_id
            else ("SECRET_ACCESS_KEY", "ACCESS_KEY_ID")
        )
        raise InitializerError(
            f"{given} is set but {missing} is not; set both (or neither, to use "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws)"
        )
    try:
        import boto3  # type: ignore[import-untyped]
    except ImportError:
        raise InitializerError(
            "s3:// needs boto3; install it with `pip install 'wonderland[s3]'`"
        ) from None
    if config.access_key_id:
        options["aws_access_key_id"] = config.access_key_id
        options["aws_secret_access_key"] = config.secret_access_key
    elif boto3.session.Session().get_credentials() is None:
        raise InitializerError(
            f"storageUri {config.shown_uri}: no S3 credentials; set ACCESS_KEY_ID and "
            f"SECRET_ACCESS_KEY in spec.initializer.{config.kind}.env or in the Secret that "
            "its secretRef names (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
        )
    if config.role_arn:
        options.update(_assume_role(config, options))
    return options


def _assume_role(config: InitializerConfig, options: Mapping[str, Any]) -> dict[str, str]:
    """Temporary keys for ROLE_ARN through STS AssumeRole, as OpenDAL takes them (the STS
    endpoint is AWS's, or AWS_ENDPOINT_URL_STS)."""
    import boto3
    from botocore.exceptions import (  # type: ignore[import-untyped]
        BotoCoreError,
        ClientError,
    )

    keys = {k: v for k, v in options.items() if k.startswith("aws_")}
    try:
        sts = boto3.session.Session().client("sts", region_name=options["region_name"], **keys)
        answer = sts.assume_role(
            RoleArn=config.role_arn, RoleSessionName=f"{config.kind}-initializer"
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise InitializerError(
            f"ROLE_ARN {config.role_arn}: STS refused AssumeRole ({code}: {exc}); check the "
            "role's trust policy and the ACCESS_KEY_ID/SECRET_ACCESS_KEY that assume it"
        ) from None
    except BotoCoreError as exc:
        raise InitializerError(
            f"ROLE_ARN {config.role_arn}: cannot reach STS ({exc}); set AWS_ENDPOINT_URL_STS "
            "when STS is not AWS's, or drop ROLE_ARN"
        ) from None
    creds = answer["Credentials"]
    return {
        "aws_access_key_id": str(creds["AccessKeyId"]),
        "aws_secret_access_key": str(creds["SecretAccessKey"]),
        "aws_session_token": str(creds["SessionToken"]),
    }


# -- http(s)://, file://, pvc://, paths: the storage registry ---------------------------


def _from_registry(
    config: InitializerConfig, staging: Path, dest: Path, env: Mapping[str, str]
) -> Copied:
    scheme = config.scheme
    log.info("Downloading %s: %s", config.kind, config.shown_uri)
    log.info("-" * 40)
    progress = _ProgressLog(config.shown_uri, None)
    # Only http(s):// (its download cache) and pvc:// (the claims' folders) use the state
    # directory; a local path needs none, and its settings are then not read at all.
    # In a TrainJob's pod a pvc:// claim is mounted under PVC_MOUNT_ROOT (as KServe's
    # storage initializer mounts it); elsewhere its folder is found in the state directory.
    mounted = env.get(PVC_ROOT_ENV, "").strip()
    ctx = StorageContext(
        _state_dir(env) if scheme in ("http", "https", "pvc") else Path("."),
        namespace=namespace(env),
        env=dict(env),
        progress=lambda _uri, done, total: progress(done, total),
        claims=(lambda _ns, claim: Path(mounted) / claim) if mounted else None,
    )
    # The initializer copies files and loads none of them; the training code decides how
    # to load what it finds (pickles included), so none is refused here.
    source = fetch(config.storage_uri, ctx, refuse_remote_pickles=False)
    if scheme in ("http", "https"):
        log.info("Downloaded %s (kept in the cache %s)", config.shown_uri, source)
    _refuse_overlap(config, source, dest, staging)
    entries = [(source.name, source)] if source.is_file() else _walk(source)
    copied = Copied()
    for rel, src in entries:
        copied.seen += 1
        if config.ignore_patterns is not None and matches(rel, config.ignore_patterns):
            copied.ignored.append(rel)
            log.info("Skipping ignored file: %s", rel)
            continue
        copied.announce(f"Copying {rel} to {dest / rel}")
        copied.add(rel, _copy(src, staging / rel))
        if scheme in ("http", "https"):
            _note_pickle(config, copied, rel)
    return copied


def _state_dir(env: Mapping[str, str]) -> Path:
    from wonderland.settings import Settings

    return Settings.from_env(env).state_dir


def namespace(env: Mapping[str, str]) -> str:
    """The pod's namespace (for pvc://): POD_NAMESPACE, the service account's namespace
    file, else ``default``."""
    if env.get("POD_NAMESPACE", "").strip():
        return env["POD_NAMESPACE"].strip()
    try:
        return NAMESPACE_FILE.read_text().strip() or "default"
    except OSError:
        return "default"


def _refuse_overlap(config: InitializerConfig, source: Path, dest: Path, staging: Path) -> None:
    src = source.resolve()
    for path in (dest.resolve(), staging.resolve()):
        if src == path or src.is_relative_to(path) or path.is_relative_to(src):
            raise InitializerError(
                f"storageUri {config.shown_uri}: the source {src} and the destination "
                f"{dest} overlap; copy the files somewhere else first"
            )


# -- helpers ----------------------------------------------------------------------------


def _walk(root: Path) -> list[tuple[str, Path]]:
    """Every file below ``root`` as (``/``-separated path, path), sorted; symlinked
    folders are followed once (a link back up is not followed again)."""
    found: list[tuple[str, Path]] = []
    seen: set[tuple[int, int]] = set()

    def visit(folder: Path, prefix: str) -> None:
        st = folder.stat()
        if (st.st_dev, st.st_ino) in seen:
            return
        seen.add((st.st_dev, st.st_ino))
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            path = Path(entry.path)
            rel = prefix + entry.name
            if entry.is_dir():
                visit(path, rel + "/")
            else:
                found.append((rel, path))

    visit(root, "")
    return found


def _copy(src: Path, target: Path) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copyfile(src, target)
        shutil.copymode(src, target)
    except OSError as exc:
        raise InitializerError(f"cannot copy {src} to {target}: {exc.strerror or exc}") from None
    return target.stat().st_size


def _note_pickle(config: InitializerConfig, copied: Copied, rel: str) -> None:
    if config.kind == "model" and rel.lower().endswith(PICKLE_SUFFIXES):
        copied.pickles.append(rel)


class _ProgressLog:
    """Logs how far a long download got, at most every PROGRESS_EVERY seconds."""

    def __init__(self, what: str, total: int | None) -> None:
        self.what = what
        self.total = total
        self.last = time.monotonic()

    def __call__(self, done: int, total: int | None = None) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY:
            return
        self.last = now
        total = total if total is not None else self.total
        if total:
            log.info(
                "%s: %s of %s (%d%%)",
                self.what,
                size_text(done),
                size_text(total),
                100 * done // total,
            )
        else:
            log.info("%s: %s so far", self.what, size_text(done))


def size_text(n: int) -> str:
    """``1234567`` -> ``1.2 MB`` (powers of 1000, as download tools print them)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"
