"""The program: ``python -m wonderland.training.initializers dataset|model [--dest DIR]``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from wonderland.errors import WonderlandError
from wonderland.training.initializers._config import (
    DATASET_PATH,
    MODEL_ALLOW_PATTERNS,
    MODEL_PATH,
    InitializerError,
    Kind,
    load_config,
)
from wonderland.training.initializers._sources import Copied, populate, size_text
from wonderland.training.initializers._staging import StagedFolder

__all__ = ["Initialized", "initialize", "main"]

log = logging.getLogger("wonderland.training.initializers")

# Upstream's log format (pkg/initializers/*/__main__.py), with the time really in UTC.
LOG_FORMAT = "%(asctime)s %(levelname)-8s [%(filename)s:%(lineno)d] %(message)s"
LOG_DATEFMT = "%Y-%m-%dT%H:%M:%SZ"

# How many names a summary line lists before "+N more".
LISTED = 5


class Terminated(BaseException):
    """SIGTERM arrived (the pod is being deleted); a BaseException so that no library's
    ``except Exception`` retry loop swallows it."""


@dataclass(frozen=True)
class Initialized:
    """Where the files went and how many."""

    dest: Path
    files: int
    bytes: int


def initialize(kind: Kind, dest: Path | None, env: Mapping[str, str]) -> Initialized:
    """Put the files ``STORAGE_URI`` (in ``env``) names into ``dest`` (by default
    upstream's ``/workspace/dataset`` or ``/workspace/model``), whole or not at all."""
    config = load_config(kind, env)
    explicit = dest is not None
    target = dest if dest is not None else Path(DATASET_PATH if kind == "dataset" else MODEL_PATH)
    target = Path(os.path.abspath(target))
    if not explicit and not target.parent.is_dir():
        raise InitializerError(
            f"{target.parent} does not exist: the {kind} initializer runs in a pod whose "
            f"`initializer` volume is mounted at {target.parent}; outside a pod, pass "
            "--dest DIR"
        )
    with StagedFolder(target, create_parents=explicit) as staged:
        copied = populate(config, staged.path, target, env)
        _report_left_out(config.shown_uri, copied)
        if copied.files == 0:
            raise InitializerError(_nothing_copied(config.kind, config.shown_uri, copied))
        staged.commit()
    if copied.pickles:
        log.warning(
            "%s %s pickle%s: loading one runs any code it carries; load only what you "
            "trust (torch.load defaults to weights_only=True since PyTorch 2.6)",
            _listed(copied.pickles),
            "is a" if len(copied.pickles) == 1 else "are",
            "" if len(copied.pickles) == 1 else "s",
        )
    log.info(
        "%s has been downloaded: %s, %s in %s",
        "Dataset" if kind == "dataset" else "Model",
        _files(copied.names),
        f"{copied.bytes:,} bytes"
        + (f" ({size_text(copied.bytes)})" if copied.bytes >= 1000 else ""),
        target,
    )
    return Initialized(target, copied.files, copied.bytes)


def _report_left_out(uri: str, copied: Copied) -> None:
    if copied.ignored:
        log.info(
            "Skipped %s that match%s IGNORE_PATTERNS", _files(copied.ignored), _es(copied.ignored)
        )
    if copied.not_allowed:
        log.info(
            "Left out %s that the model allow patterns (%s) do not match, as upstream does: %s",
            _files(copied.not_allowed),
            ", ".join(MODEL_ALLOW_PATTERNS),
            _listed(copied.not_allowed),
        )
        weights = [n for n in copied.not_allowed if n.endswith((".bin", ".pt", ".pth", ".h5"))]
        if weights and not any(n.endswith((".safetensors", ".gguf")) for n in copied.names):
            log.warning(
                "%s has weights only as %s, which hf:// models leave out; convert them to "
                "safetensors or give the model as s3://, pvc:// or a path",
                uri,
                _listed(weights),
            )


def _nothing_copied(kind: Kind, shown: str, copied: Copied) -> str:
    if copied.seen == 0:
        return f"storageUri {shown}: the source holds no files; put the {kind}'s files there"
    reasons = []
    if copied.not_allowed:
        reasons.append(
            f"{len(copied.not_allowed)} by the model allow patterns "
            f"({', '.join(MODEL_ALLOW_PATTERNS)})"
        )
    if copied.ignored:
        reasons.append(f"{len(copied.ignored)} by IGNORE_PATTERNS")
    every = "its only file is" if copied.seen == 1 else f"all {copied.seen} files are"
    return (
        f"storageUri {shown}: nothing to copy, {every} left out ({' and '.join(reasons)}); "
        "change IGNORE_PATTERNS or the source"
    )


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:LISTED])
    return shown + (f" (+{len(names) - LISTED} more)" if len(names) > LISTED else "")


def _files(items: Sequence[object]) -> str:
    return "1 file" if len(items) == 1 else f"{len(items)} files"


def _es(items: Sequence[object]) -> str:
    return "es" if len(items) == 1 else ""


# -- the command --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run one initializer; the exit status is 0, 1 (its last stderr line says why), 2
    (bad arguments), 130 (interrupted) or 143 (SIGTERM)."""
    parser = argparse.ArgumentParser(
        prog="python -m wonderland.training.initializers",
        description="Kubeflow Trainer's dataset and model initializers: fetch what "
        "STORAGE_URI names (hf://, s3://, http(s)://, file://, pvc://, a path) into "
        "/workspace/dataset or /workspace/model.",
    )
    parser.add_argument("kind", choices=("dataset", "model"), help="which initializer")
    parser.add_argument(
        "--dest",
        type=Path,
        metavar="DIR",
        help="where the files go (default: /workspace/dataset or /workspace/model, as "
        "upstream; in a pod /workspace is the `initializer` volume)",
    )
    args = parser.parse_args(argv)
    _configure_logging()
    kind: Kind = args.kind
    log.info(
        "Starting dataset initialization"
        if kind == "dataset"
        else "Starting pre-trained model initialization"
    )
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        initialize(kind, args.dest, os.environ)
    except Terminated:
        log.error("Stopped by SIGTERM; the %s was not written", kind)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        log.error("Interrupted; the %s was not written", kind)
        return 128 + signal.SIGINT
    except WonderlandError as exc:
        log.error("%s", _one_line(str(exc)))
        return 1
    except Exception as exc:
        # not foreseen: the traceback helps a bug report, the last line stays the reason
        traceback.print_exc()
        log.error("%s", _one_line(f"{type(exc).__name__}: {exc}"))
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter(LOG_FORMAT, LOG_DATEFMT)
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # boto3 and httpx say every request at INFO; only their warnings belong in a pod's log
    root.setLevel(logging.WARNING)
    log.setLevel(logging.INFO)
    logging.getLogger("wonderland.inference.storage").setLevel(logging.INFO)
