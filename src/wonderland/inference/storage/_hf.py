"""``hf://<org>/<model>[:<revision>]`` from the local Hugging Face cache only."""

from __future__ import annotations

from pathlib import Path

from wonderland.inference.storage._base import StorageContext, StorageError

__all__ = ["HFCacheStorage", "hf_cache_dir"]


def hf_cache_dir(env: dict[str, str] | None = None) -> Path:
    import os

    e = env if env is not None else dict(os.environ)
    if e.get("HF_HUB_CACHE"):
        return Path(e["HF_HUB_CACHE"]).expanduser()
    if e.get("HUGGINGFACE_HUB_CACHE"):
        return Path(e["HUGGINGFACE_HUB_CACHE"]).expanduser()
    home = Path(e["HF_HOME"]).expanduser() if e.get("HF_HOME") else None
    if home is None:
        xdg = e.get("XDG_CACHE_HOME") or str(Path(e.get("HOME", "~")).expanduser() / ".cache")
        home = Path(xdg) / "huggingface"
    return home / "hub"


class HFCacheStorage:
    """A snapshot folder of the Hugging Face hub cache; never downloads."""

    def fetch(self, uri: str, ctx: StorageContext) -> Path:
        repo, _, revision = uri[len("hf://") :].partition(":")
        repo = repo.strip("/")
        if repo.count("/") != 1:
            raise StorageError(f"storageUri {uri}: expected hf://<org>/<model>[:<revision>]")
        cache = hf_cache_dir(dict(ctx.env))
        folder = cache / ("models--" + repo.replace("/", "--"))
        hint = (
            f"hf:// models come from the local Hugging Face cache ({cache}) only; run "
            f"`huggingface-cli download {repo}` on this machine first"
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
