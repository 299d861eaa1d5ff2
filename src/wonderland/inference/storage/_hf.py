"""``hf://<org>/<model>[:<revision>]`` from the local Hugging Face cache only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from wonderland.inference.storage._base import StorageContext, StorageError

__all__ = ["HFCacheStorage", "hf_cache_dir", "hf_snapshot"]

# The hub cache keeps each repository in "<type>s--<org>--<name>" (huggingface_hub's layout).
_REPO_TYPES = ("model", "dataset", "space")


def hf_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """The hub cache huggingface_hub would use with this environment (``HF_HUB_CACHE``,
    ``HUGGINGFACE_HUB_CACHE``, ``HF_HOME``, ``XDG_CACHE_HOME``, then ``~/.cache``)."""
    e = env if env is not None else os.environ
    if e.get("HF_HUB_CACHE"):
        return Path(e["HF_HUB_CACHE"]).expanduser()
    if e.get("HUGGINGFACE_HUB_CACHE"):
        return Path(e["HUGGINGFACE_HUB_CACHE"]).expanduser()
    home = Path(e["HF_HOME"]).expanduser() if e.get("HF_HOME") else None
    if home is None:
        xdg = e.get("XDG_CACHE_HOME") or str(Path(e.get("HOME", "~")).expanduser() / ".cache")
        home = Path(xdg) / "huggingface"
    return home / "hub"


def hf_snapshot(
    uri: str,
    repo: str,
    revision: str = "",
    *,
    env: Mapping[str, str] | None = None,
    repo_type: str = "model",
    command: str = "",
) -> Path:
    """The snapshot folder of ``repo`` at ``revision`` (a branch, tag or commit; ``main``
    when empty) in the local hub cache; never downloads.

    A repository or revision that is not there raises a StorageError that names the cache
    and the command (``command``, by default ``hf download``) that puts it there.
    """
    if repo_type not in _REPO_TYPES:
        raise ValueError(f"repo_type must be one of {_REPO_TYPES}, not {repo_type!r}")
    cache = hf_cache_dir(env)
    folder = cache / (f"{repo_type}s--" + repo.replace("/", "--"))
    if not command:
        command = f"hf download {repo}"
        if repo_type != "model":
            command += f" --repo-type {repo_type}"
        if revision:
            command += f" --revision {revision}"
    hint = (
        f"hf:// {repo_type}s come from the local Hugging Face cache ({cache}) only; run "
        f"`{command}` on this machine first"
    )
    if not folder.is_dir():
        raise StorageError(f"storageUri {uri}: {repo} is not in the cache; {hint}")
    revision = revision or "main"
    ref = folder / "refs" / revision
    commit = ref.read_text().strip() if ref.is_file() else revision
    snapshot = folder / "snapshots" / commit
    if not snapshot.is_dir():
        raise StorageError(
            f"storageUri {uri}: revision {revision!r} of {repo} is not in the cache; {hint}"
        )
    return snapshot


class HFCacheStorage:
    """A snapshot folder of the Hugging Face hub cache; never downloads."""

    def fetch(self, uri: str, ctx: StorageContext) -> Path:
        repo, _, revision = uri[len("hf://") :].partition(":")
        repo = repo.strip("/")
        if repo.count("/") != 1:
            raise StorageError(f"storageUri {uri}: expected hf://<org>/<model>[:<revision>]")
        return hf_snapshot(
            uri, repo, revision, env=ctx.env, command=f"huggingface-cli download {repo}"
        )
