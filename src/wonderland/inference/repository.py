"""The model repository: names -> versions -> loaded models, with load and unload.

Two layouts are served. ``--model_dir DIR`` serves one model named ``--model_name``;
``--model-repository ROOT`` serves one model per subfolder, named after it. Either
model folder may hold numeric version subfolders (``iris/1``, ``iris/2``, Triton's
layout); each version is loaded and a request without a version goes to the highest.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wonderland.inference.batching import AdaptiveBatcher
from wonderland.inference.errors import (
    ModelConfigError,
    ModelNotFoundError,
    ModelNotReadyError,
)
from wonderland.inference.generation import TextGenerationModel
from wonderland.inference.metrics import ModelMetrics
from wonderland.inference.model import ArrayModel, CustomModel

__all__ = ["BatchingOptions", "ModelEntry", "ModelRepository", "ModelSource"]

log = logging.getLogger("wonderland.inference")


@dataclass(slots=True)
class BatchingOptions:
    """Adaptive batching settings; ``max_batch_size=1`` turns merging off."""

    max_batch_size: int = 64
    max_latency_ms: float = 0.0
    max_queue_size: int = 1024


@dataclass(slots=True)
class ModelSource:
    """Where a model comes from: its folder, and the format if not detected from files."""

    name: str
    path: Path
    model_format: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ModelEntry:
    """One loaded (or failed) model version."""

    name: str
    version: str | None
    state: str  # READY, LOADING, UNAVAILABLE
    reason: str = ""
    model: ArrayModel | CustomModel | TextGenerationModel | None = None
    batcher: AdaptiveBatcher | None = None
    metrics: ModelMetrics | None = None

    @property
    def ready(self) -> bool:
        return self.state == "READY"


def _version_dirs(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    return sorted(
        (p for p in path.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
    )


class ModelRepository:
    """Registry of served models; loading runs on a worker thread."""

    def __init__(
        self,
        sources: list[ModelSource] | None = None,
        root: Path | None = None,
        batching: BatchingOptions | None = None,
        executor: Executor | None = None,
        model_format: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.root = root
        self.default_options = options or {}
        self.batching = batching or BatchingOptions()
        self.default_format = model_format
        self._sources: dict[str, ModelSource] = {s.name: s for s in sources or []}
        self._models: dict[str, dict[str | None, ModelEntry]] = {}
        self._executor = executor or ThreadPoolExecutor(4, thread_name_prefix="model")
        self._load_lock = asyncio.Lock()
        self._loading = True  # until the first load_all() has finished

    # -- lookup ---------------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self._models)

    def versions(self, name: str) -> list[str]:
        return [v for v in self._models.get(name, {}) if v is not None]

    def entries(self) -> list[ModelEntry]:
        return [e for versions in self._models.values() for e in versions.values()]

    def all_ready(self) -> bool:
        """Every model is ready; a repository server with nothing loaded is ready too."""
        entries = self.entries()
        if not entries:
            return self.root is not None and not self._sources and not self._loading
        return all(e.ready for e in entries)

    def get(self, name: str, version: str | None = None) -> ModelEntry:
        versions = self._models.get(name)
        if not versions:
            raise ModelNotFoundError(
                f"model {name!r} is not served here; models: {self.names() or 'none'}"
            )
        if version is None:
            if None in versions:
                return versions[None]
            return versions[max(versions, key=lambda v: int(v or 0))]
        entry = versions.get(version)
        if entry is None:
            raise ModelNotFoundError(
                f"model {name!r} has no version {version!r}; versions: "
                f"{self.versions(name) or 'none (unversioned)'}"
            )
        return entry

    def ready_entry(self, name: str, version: str | None = None) -> ModelEntry:
        entry = self.get(name, version)
        if entry.state != "READY":
            why = f" ({entry.reason})" if entry.reason else ""
            raise ModelNotReadyError(f"model {name!r} is not ready: {entry.state.lower()}{why}")
        return entry

    # -- loading --------------------------------------------------------------------------

    def source(self, name: str) -> ModelSource:
        src = self._sources.get(name)
        if src is not None:
            return src
        if self.root is not None and _plain_name(name):
            path = self.root / name
            if path.is_dir():
                return ModelSource(name, path, self.default_format, dict(self.default_options))
        raise ModelNotFoundError(
            f"no model {name!r} to load"
            + (f" in repository {self.root}" if self.root else "")
            + "; load names a folder of the model repository"
        )

    def discover(self) -> list[ModelSource]:
        found = dict(self._sources)
        if self.root is not None:
            if not self.root.is_dir():
                raise ModelConfigError(
                    f"model repository {self.root} is not a directory; pass a folder with one "
                    "subfolder per model"
                )
            for p in sorted(self.root.iterdir()):
                if p.is_dir() and not p.name.startswith((".", "_")) and p.name not in found:
                    found[p.name] = ModelSource(
                        p.name, p, self.default_format, dict(self.default_options)
                    )
        return list(found.values())

    def index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        known = {s.name for s in self.discover()} | set(self._models)
        for name in sorted(known):
            versions = self._models.get(name)
            if not versions:
                if not ready_only:
                    out.append({"name": name, "state": "UNAVAILABLE", "reason": "unloaded"})
                continue
            for v, e in versions.items():
                if ready_only and not e.ready:
                    continue
                item: dict[str, Any] = {"name": name}
                if v is not None:
                    item["version"] = v
                item["state"] = e.state
                item["reason"] = e.reason
                out.append(item)
        return out

    async def load_all(self) -> None:
        try:
            for src in self.discover():
                try:
                    await self.load(src.name)
                except Exception as exc:
                    log.error("model %s failed to load: %s", src.name, exc)
        finally:
            self._loading = False

    async def load(self, name: str) -> list[ModelEntry]:
        """(Re)load ``name`` from its folder; the old version keeps serving until then."""
        src = self.source(name)
        async with self._load_lock:
            loop = asyncio.get_running_loop()
            dirs = _version_dirs(src.path)
            plan: list[tuple[str | None, Path]] = (
                [(d.name, d) for d in dirs] if dirs else [(None, src.path)]
            )
            if name not in self._models:
                self._models[name] = {v: ModelEntry(name, v, "LOADING") for v, _ in plan}
            new: dict[str | None, ModelEntry] = {}
            errors = []
            for version, path in plan:
                try:
                    model = await loop.run_in_executor(
                        self._executor, self._build, src, path, version
                    )
                except Exception as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                    errors.append(reason)
                    new[version] = ModelEntry(name, version, "UNAVAILABLE", reason)
                    continue
                new[version] = self._entry(name, version, model)
            old = self._models.get(name, {})
            self._models[name] = new
            for entry in old.values():
                await _close(entry)
            if errors:
                raise ModelConfigError(f"model {name!r} failed to load: {'; '.join(errors)}")
            return list(new.values())

    def add_model(self, model: ArrayModel | CustomModel | TextGenerationModel) -> ModelEntry:
        """Serve an already loaded model object (library use and tests)."""
        entry = self._entry(model.name, model.version, model)
        self._models.setdefault(model.name, {})[model.version] = entry
        return entry

    def _entry(
        self, name: str, version: str | None, model: ArrayModel | CustomModel | TextGenerationModel
    ) -> ModelEntry:
        metrics = ModelMetrics(name, version)
        batcher = None
        if isinstance(model, ArrayModel):
            b = self.batching
            batcher = AdaptiveBatcher(
                name if version is None else f"{name}/{version}",
                model.predict_arrays,
                ThreadPoolExecutor(1, thread_name_prefix=f"predict-{name}"),
                b.max_batch_size,
                b.max_latency_ms,
                b.max_queue_size,
                metrics,
            )
        elif isinstance(model, TextGenerationModel):
            b = self.batching
            model.configure_batching(b.max_batch_size, b.max_queue_size, b.max_latency_ms)
        return ModelEntry(name, version, "READY", "", model, batcher, metrics)

    def _build(
        self, src: ModelSource, path: Path, version: str | None
    ) -> ArrayModel | CustomModel | TextGenerationModel:
        from wonderland.inference.runtimes import create_model, detect_format

        fmt = src.model_format or detect_format(path)
        model = create_model(fmt, src.name, path, version, **src.options)
        model.load()
        if not isinstance(model, (ArrayModel, CustomModel, TextGenerationModel)):
            raise ModelConfigError(f"runtime {fmt!r} built {type(model).__name__}, not a model")
        return model

    async def unload(self, name: str) -> None:
        if name not in self._models:
            raise ModelNotFoundError(
                f"model {name!r} is not loaded; models: {self.names() or 'none'}"
            )
        async with self._load_lock:
            versions = self._models.pop(name, {})
            for entry in versions.values():
                await _close(entry)

    async def close(self) -> None:
        for entry in self.entries():
            await _close(entry)


async def _close(entry: ModelEntry) -> None:
    if entry.batcher is not None:
        await entry.batcher.close(shutdown_executor=True)  # each entry owns its thread
    if isinstance(entry.model, CustomModel):
        await entry.model.close()
    if isinstance(entry.model, TextGenerationModel):
        entry.model.close()  # a generation in flight stops at its next token


def _plain_name(name: str) -> bool:
    """A model name that names a folder directly inside the repository."""
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".")
