"""``wonderland top [revisions|models|sidecars|jobs]``: the newest metrics of each object,
from the daemon's history (``/wonderland/v1/top``), as a table refreshed in place."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Any

__all__ = ["register", "render_top"]

_UNITS = {
    "request_rate": ("REQ/S", "rate"),
    "error_rate": ("ERR/S", "rate"),
    "latency_p50": ("P50", "seconds"),
    "latency_p95": ("P95", "seconds"),
    "latency_p99": ("P99", "seconds"),
    "replicas": ("REPLICAS", "count"),
    "desired_replicas": ("DESIRED", "count"),
    "in_flight": ("IN-FLIGHT", "count"),
    "queue_depth": ("QUEUED", "count"),
    "cold_starts": ("COLD", "count"),
    "progress": ("PROGRESS", "percent"),
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "top",
        help="live request rates, latencies and replicas of revisions, models, sidecars, jobs",
        description="Show the newest metrics of each revision, model, Dapr sidecar or training "
        "job from the daemon's metrics history, refreshed in place (docs/monitoring.md).",
    )
    p.add_argument(
        "kind",
        nargs="?",
        default="revisions",
        choices=("revisions", "models", "sidecars", "jobs"),
        help="what to list (default: revisions)",
    )
    p.add_argument("-n", "--namespace", default="", help="only this namespace (default: all)")
    p.add_argument("--once", action="store_true", help="print one table and exit")
    p.add_argument(
        "--interval",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds between refreshes (default: 2)",
    )
    p.set_defaults(handler=_top)


def _cell(series: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    unit = _UNITS.get(series, ("", "value"))[1]
    if unit == "seconds":
        return f"{value * 1000:.1f}ms" if value < 1 else f"{value:.2f}s"
    if unit == "count":
        return f"{value:g}" if value == int(value) else f"{value:.1f}"
    if unit == "percent":
        return f"{value:.0f}%"
    if unit == "rate":
        return f"{value:.2f}"
    return f"{value:.4g}"


def render_top(data: dict[str, Any]) -> Any:
    """A rich Table of a ``/wonderland/v1/top`` answer."""
    from rich.table import Table

    kind = str(data.get("kind", ""))
    columns: list[str] = [str(c) for c in data.get("columns") or []]
    items: list[dict[str, Any]] = data.get("items") or []
    stamp = data.get("lastScrape")
    caption = (
        f"scraped {time.strftime('%H:%M:%S', time.localtime(float(stamp)))}, every "
        f"{float(data.get('step') or 0):g}s"
        if stamp
        else "no scrape yet"
    )
    table = Table(box=None, header_style="bold", caption=caption, title=kind)
    table.add_column("NAMESPACE", overflow="fold")
    table.add_column("NAME", overflow="fold")
    for c in columns:
        header = _UNITS.get(c, (c.removeprefix("metric:").upper(), ""))[0]
        table.add_column(header, justify="right")
    for item in items:
        values = item.get("values") or {}
        table.add_row(
            str(item.get("namespace", "")),
            str(item.get("name", "")),
            *(_cell(c, values.get(c)) for c in columns),
        )
    if not items:
        table.add_row("", f"(no {kind} with metrics yet)", *("" for _ in columns))
    return table


def _piped_width() -> int:
    try:
        return max(80, int(os.environ.get("COLUMNS", "")))
    except ValueError:
        return 200


def _top(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live

    from wonderland.errors import ConfigError
    from wonderland.monitoring.client import read_top
    from wonderland.settings import Settings

    if args.interval <= 0:
        raise ConfigError(f"--interval {args.interval:g} must be more than 0 seconds")
    state_dir = Settings.from_env().state_dir
    # piped or redirected: rich would cut rows at 80 columns; names must stay whole
    console = Console() if sys.stdout.isatty() else Console(width=_piped_width())
    if args.once:
        console.print(render_top(read_top(state_dir, args.kind, args.namespace)))
        return 0
    if not console.is_terminal:  # piped: one table per refresh, as they come
        while True:
            console.print(render_top(read_top(state_dir, args.kind, args.namespace)))
            console.file.flush()
            time.sleep(args.interval)
    with Live(
        render_top(read_top(state_dir, args.kind, args.namespace)),
        console=console,
        auto_refresh=False,
    ) as live:
        while True:
            time.sleep(args.interval)
            live.update(render_top(read_top(state_dir, args.kind, args.namespace)), refresh=True)
