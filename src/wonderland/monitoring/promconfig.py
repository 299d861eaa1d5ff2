"""A Prometheus configuration that scrapes what the daemon's file service discovery lists.

``prometheus.yml`` has one scrape job, ``wonderland``, that reads
``<state_dir>/monitoring/targets.json`` (written by :class:`~wonderland.monitoring.filesd
.FileSDWriter`). Each target group there carries its own ``job`` (``wonderland``, ``pods``,
``dapr``, ``kserve``) and ``__metrics_path__``; Prometheus keeps labels that discovery sets
over the scrape job's defaults, so the Pods' paths and jobs are honoured as they are. The
same file serves a user's own Prometheus (``wonderland monitoring prometheus-config``) and
the managed one (``wonderland up --prometheus``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from wonderland.monitoring.filesd import TARGETS_FILE

__all__ = [
    "CONFIG_NAME",
    "INSTALL_HINT",
    "PrometheusConfigFiles",
    "duration",
    "prometheus_binary",
    "prometheus_command",
    "prometheus_config",
    "write_prometheus_config",
]

CONFIG_NAME = "prometheus.yml"
INSTALL_HINT = "apt-get install prometheus (Debian, Ubuntu), or put a Prometheus 2.x binary on PATH"
# Prometheus's own default; a slower scrape never waits longer than this for an answer
MAX_SCRAPE_TIMEOUT = 10.0


def duration(seconds: float) -> str:
    """``seconds`` as a Prometheus duration: ``10s``, ``500ms``."""
    if seconds >= 1 and float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{max(1, round(seconds * 1000))}ms"


def prometheus_config(targets_file: Path, scrape_interval: float = 10.0) -> dict[str, Any]:
    """The configuration (as a mapping; ``yaml.safe_dump`` it) scraping ``targets_file``."""
    interval = duration(scrape_interval)
    return {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": duration(min(scrape_interval, MAX_SCRAPE_TIMEOUT)),
            "evaluation_interval": interval,
        },
        "scrape_configs": [
            {
                # every target's job, path and identity labels come from the file
                "job_name": "wonderland",
                "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "30s"}],
            }
        ],
    }


def prometheus_binary() -> str | None:
    """The ``prometheus`` on PATH, or None."""
    return shutil.which("prometheus")


def prometheus_command(
    binary: str,
    config: Path,
    storage: Path,
    listen: str,
    retention: str = "15d",
) -> list[str]:
    """``prometheus`` with ``config``, its TSDB in ``storage``, listening on ``listen``."""
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={storage}",
        f"--web.listen-address={listen}",
        f"--storage.tsdb.retention.time={retention}",
    ]


@dataclass(frozen=True)
class PrometheusConfigFiles:
    """What :func:`write_prometheus_config` wrote and how to run Prometheus with it."""

    config: Path
    targets: Path
    command: list[str]
    url: str
    binary: str | None  # None: prometheus is not on PATH
    daemon_running: bool


def write_prometheus_config(
    state_dir: Path,
    out_dir: Path,
    *,
    scrape_interval: float = 10.0,
    listen: str = "127.0.0.1:9091",
    retention: str = "15d",
    daemon_running: bool = False,
) -> PrometheusConfigFiles:
    """Write ``out_dir/prometheus.yml`` for the daemon on ``state_dir``; say how to run it."""
    out_dir = out_dir.expanduser().absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = state_dir.expanduser().absolute() / TARGETS_FILE
    config = out_dir / CONFIG_NAME
    text = yaml.safe_dump(prometheus_config(targets, scrape_interval), sort_keys=False)
    config.write_text(
        "# Scrapes the wonderland daemon on "
        f"{state_dir} and its Pods (file service discovery: {targets}).\n{text}"
    )
    binary = prometheus_binary()
    command = prometheus_command(
        binary or "prometheus", config, out_dir / "data", listen, retention
    )
    return PrometheusConfigFiles(
        config, targets, command, f"http://{listen}", binary, daemon_running
    )
