"""The file service discovery file follows the Pods; the Prometheus configuration and its
command; in-process, with a real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _support.daemon import wait_until

from wonderland.monitoring.filesd import FileSDWriter, daemon_targets
from wonderland.monitoring.promconfig import duration, prometheus_config
from wonderland.settings import Settings
from wonderland.store import Store

SRC = Path(__file__).resolve().parents[2] / "src"


def _pod(name: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"serving.knative.dev/revision": "hello-00001"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/path": "/stats"},
        },
        "spec": {
            "containers": [{"name": "app", "image": "app", "ports": [{"containerPort": port}]}]
        },
    }


def _run(store: Store, name: str) -> None:
    pod = store.get("pods", "default", name)
    pod["status"] = {"phase": "Running", "podIP": "127.0.0.1"}
    store.update_status(pod)


def _groups(path: Path) -> list[dict[str, Any]]:
    return list(json.loads(path.read_text())) if path.exists() else []


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = Store.open(tmp_path)
    try:
        yield opened
    finally:
        opened.close()


async def test_the_file_follows_pods_as_they_run_and_go(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "monitoring" / "targets.json"
    info = {"monitoring": {"url": "http://0.0.0.0:9090", "state": "running"}}
    writer = FileSDWriter(store, path, lambda: daemon_targets(info))
    store.create(_pod("a", 41001))
    _run(store, "a")
    await writer.start()
    try:
        groups = _groups(path)
        assert groups == [
            {
                "targets": ["127.0.0.1:9090"],
                "labels": {
                    "job": "wonderland",
                    "__metrics_path__": "/metrics",
                    "component": "daemon",
                },
            },
            {
                "targets": ["127.0.0.1:41001"],
                "labels": {
                    "job": "pods",
                    "__metrics_path__": "/stats",
                    "container": "app",
                    "namespace": "default",
                    "pod": "a",
                    "revision": "hello-00001",
                },
            },
        ]
        store.create(_pod("b", 41002))
        await wait_until(lambda: writer.writes == 1 and store.get("pods", "default", "b"), 5)
        assert len(_groups(path)) == 2  # b does not run yet: not a target, file untouched
        _run(store, "b")
        await wait_until(lambda: len(_groups(path)) == 3, 5, "b's target")
        writes = writer.writes
        pod = store.get("pods", "default", "b")
        pod["metadata"]["labels"]["unrelated"] = "change"
        store.update(pod)
        store.delete("pods", "default", "a")
        await wait_until(lambda: len(_groups(path)) == 2, 5, "a's target to go")
        assert [g["targets"] for g in _groups(path)] == [["127.0.0.1:9090"], ["127.0.0.1:41002"]]
        assert writer.writes == writes + 1  # the label change left the targets as they were
        assert not [p for p in path.parent.iterdir() if p.name != "targets.json"]
    finally:
        await writer.stop()
    # after the daemon: its own target stays (a scraper shows it down), the Pods' go
    assert [g["targets"] for g in _groups(path)] == [["127.0.0.1:9090"]]


def test_daemon_targets_skip_a_failed_endpoint_and_keep_a_distinct_gateway() -> None:
    info = {
        "monitoring": {"url": "http://127.0.0.1:9090", "state": "failed"},
        "gateway": "http://127.0.0.1:8080",
    }
    assert [(t.address, t.label_dict()) for t in daemon_targets(info)] == [
        ("127.0.0.1:8080", {"component": "gateway"})
    ]


def test_the_configuration_reads_the_file_at_the_interval_set() -> None:
    config = prometheus_config(Path("/h/monitoring/targets.json"), 0.5)
    assert config["global"] == {
        "scrape_interval": "500ms",
        "scrape_timeout": "500ms",
        "evaluation_interval": "500ms",
    }
    (job,) = config["scrape_configs"]
    assert job["file_sd_configs"][0]["files"] == ["/h/monitoring/targets.json"]
    assert (
        duration(10) == "10s"
        and prometheus_config(Path("t"), 30)["global"]["scrape_timeout"] == "10s"
    )


def test_settings_refuse_a_bad_prometheus_setting() -> None:
    from wonderland.errors import ConfigError

    with pytest.raises(ConfigError, match="must be off or on"):
        Settings.from_env({"WONDERLAND_PROMETHEUS": "yes"})
    with pytest.raises(ConfigError, match="not a Prometheus duration"):
        Settings.from_env({"WONDERLAND_PROMETHEUS_RETENTION": "2 weeks"})
    settings = Settings.from_env({"WONDERLAND_PROMETHEUS_SCRAPE_INTERVAL": "2"})
    assert (settings.prometheus, settings.prometheus_port) == ("off", 9091)
    assert settings.prometheus_scrape_interval == 2.0


def test_prometheus_config_command_writes_the_file_and_says_what_to_run(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WONDERLAND_")}
    env.update(WONDERLAND_HOME=str(tmp_path / "home"), PYTHONPATH=str(SRC))
    out = tmp_path / "prom"
    done = subprocess.run(
        [sys.executable, "-m", "wonderland", "monitoring", "prometheus-config", "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load((out / "prometheus.yml").read_text())
    files = config["scrape_configs"][0]["file_sd_configs"][0]["files"]
    assert files == [str(tmp_path / "home" / "monitoring" / "targets.json")]
    assert f"--config.file={out / 'prometheus.yml'}" in done.stdout
    assert "--web.listen-address=127.0.0.1:9091" in done.stdout
    assert "no daemon runs on" in done.stdout
