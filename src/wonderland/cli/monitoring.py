"""``wonderland monitoring prometheus-config``: a Prometheus configuration for the daemon.

It writes ``prometheus.yml`` (one scrape job over ``<home>/monitoring/targets.json``, the
targets the daemon keeps current as Pods come and go) and prints how to run a Prometheus
with it (docs/monitoring.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "monitoring",
        help="metrics: a Prometheus configuration for the platform",
        description="Monitoring the platform with your own tools (docs/monitoring.md).",
    )
    sub = p.add_subparsers(dest="monitoring_command", metavar="COMMAND", required=True)
    config = sub.add_parser(
        "prometheus-config",
        help="write prometheus.yml scraping the daemon and its Pods",
        description="Write a prometheus.yml whose targets (file service discovery) follow the "
        "daemon's Pods as they come and go, and print the command that runs Prometheus with it.",
    )
    config.add_argument(
        "-o",
        "--output-dir",
        metavar="DIR",
        default=None,
        help="where to write prometheus.yml (default: <WONDERLAND_HOME>/monitoring)",
    )
    config.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=None,
        help="the --web.listen-address of the printed command (default: 127.0.0.1:"
        "WONDERLAND_PROMETHEUS_PORT, 9091)",
    )
    config.set_defaults(handler=_prometheus_config)


def _prometheus_config(args: argparse.Namespace) -> int:
    from wonderland.daemon import daemon_info
    from wonderland.monitoring.promconfig import INSTALL_HINT, write_prometheus_config
    from wonderland.settings import Settings

    settings = Settings.from_env()
    state_dir = settings.state_dir
    out_dir = Path(args.output_dir) if args.output_dir else state_dir / "monitoring"
    listen = args.listen or f"127.0.0.1:{settings.prometheus_port or 9091}"
    files = write_prometheus_config(
        state_dir,
        out_dir,
        scrape_interval=settings.prometheus_scrape_interval,
        listen=listen,
        retention=settings.prometheus_retention,
        daemon_running=daemon_info(state_dir) is not None,
    )
    print(f"wrote {files.config}")
    print(f"targets: {files.targets} (the daemon rewrites it as Pods come and go)")
    if not files.daemon_running:
        print(f"no daemon runs on {state_dir} now: the targets appear once `wonderland up` runs")
    if files.binary is None:
        print(f"prometheus is not on PATH: {INSTALL_HINT}")
    print("run:")
    print("  " + " ".join(files.command))
    print(f"then open {files.url}/targets; in Grafana add a Prometheus data source at {files.url}")
    print("(dashboards: deploy/grafana/, provisioning: deploy/grafana/provisioning/)")
    return 0
