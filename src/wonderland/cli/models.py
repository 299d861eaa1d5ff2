"""``wonderland models``: promotion by alias behind an evaluation gate, and lineage.

A thin layer over :mod:`wonderland.tracking.registry`; the registry is the platform's
MLflow (``MLFLOW_TRACKING_URI``, else the running daemon's), or ``--tracking-uri``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = subparsers.add_parser(
        "models", help="the model registry: promote, describe; logged payloads"
    )
    sub = models.add_subparsers(dest="models_command", metavar="COMMAND", required=True)

    promote = sub.add_parser(
        "promote",
        help="point an alias at a version (only if it beats the current holder)",
        description=(
            "Move ALIAS of the registered model NAME to VERSION. With --if-better METRIC the "
            "alias moves only when VERSION's run recorded a better METRIC than the current "
            "holder's run (higher, or lower with --lower-is-better). InferenceServices whose "
            "storageUri is models:/NAME@ALIAS roll out the new version."
        ),
    )
    promote.add_argument("name", metavar="NAME")
    promote.add_argument("version", metavar="VERSION")
    promote.add_argument("--alias", required=True, help="e.g. champion")
    promote.add_argument("--if-better", default="", metavar="METRIC", help="the evaluation gate")
    promote.add_argument(
        "--lower-is-better", action="store_true", help="METRIC is a loss: lower wins"
    )
    _tracking_flag(promote)
    promote.set_defaults(handler=_promote)

    describe = sub.add_parser(
        "describe",
        help="lineage: version → run → workload → params, metrics, code, data → served where",
    )
    describe.add_argument("ref", metavar="NAME[@ALIAS|/VERSION]")
    _tracking_flag(describe)
    describe.set_defaults(handler=_describe)

    payloads = sub.add_parser(
        "payloads",
        help="the newest logged requests and responses of an InferenceService",
        description=(
            "Show what the platform's payload sink stored for InferenceService NAME (its "
            "logger.url at http://payload-logger.wonderland-system.svc.cluster.local, or a "
            "drift detector's --sink_url): request and response joined on ce-id, newest first."
        ),
    )
    payloads.add_argument("name", metavar="NAME")
    payloads.add_argument("-n", "--namespace", default="default")
    payloads.add_argument("--limit", type=int, default=20, help="at most this many (1-1000)")
    payloads.add_argument("-o", "--output", choices=("table", "json"), default="table")
    payloads.set_defaults(handler=_payloads)


def _tracking_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="the MLflow server (default: MLFLOW_TRACKING_URI, else the running platform's)",
    )


def _tracking_uri(args: argparse.Namespace) -> str:
    from wonderland.errors import ConfigError
    from wonderland.settings import Settings
    from wonderland.tracking.client import discover_tracking_uri

    if args.tracking_uri:
        return str(args.tracking_uri)
    url = discover_tracking_uri(Settings.from_env().state_dir, os.environ)
    if not url:
        raise ConfigError(
            "no MLflow tracking server: start the platform (wonderland up, with the mlflow "
            "extra: pip install 'wonderland[mlflow]'), set MLFLOW_TRACKING_URI or pass "
            "--tracking-uri"
        )
    return url


def _promote(args: argparse.Namespace) -> int:
    from wonderland.tracking.client import RestClient
    from wonderland.tracking.registry import promote

    with RestClient(_tracking_uri(args)) as client:
        done = promote(
            client,
            args.name,
            args.version,
            args.alias,
            if_better=args.if_better,
            direction="minimize" if args.lower_is_better else "maximize",
        )
    if done.moved:
        print(f"{done.name}@{done.alias} → version {done.version} ({done.reason})")
        return 0
    print(f"{done.name}@{done.alias} not moved: {done.reason}")
    return 3


def _describe(args: argparse.Namespace) -> int:
    from wonderland.tracking.client import RestClient
    from wonderland.tracking.registry import lineage

    with RestClient(_tracking_uri(args)) as client:
        found = lineage(client, args.ref, _isvcs())
    rows: list[tuple[str, str]] = [
        ("Model", f"{found.name} version {found.version}"),
        ("Aliases", ", ".join(found.aliases) or "(none)"),
        ("Source", found.source),
        ("Run", f"{found.run_id} ({found.run_name}, {found.status})" if found.run_id else "(none)"),
        ("Experiment", found.experiment or "(none)"),
        ("Made by", found.workload or "(not a platform workload)"),
        ("Code", _code(found.code_digest, found.git_commit)),
    ]
    width = max(len(k) for k, _ in rows) + 1
    lines = [f"{k + ':':<{width}} {v}" for k, v in rows]
    lines.append("Parameters:" + ("" if found.params else " (none)"))
    lines += [f"  {k}: {v}" for k, v in sorted(found.params.items())]
    lines.append("Metrics:" + ("" if found.metrics else " (none)"))
    lines += [f"  {k}: {v:g}" for k, v in sorted(found.metrics.items())]
    lines.append("Datasets:" + ("" if found.datasets else " (none recorded)"))
    lines += [f"  {d}" for d in found.datasets]
    lines.append("Served by:" + ("" if found.served else " (no InferenceService)"))
    lines += [
        f"  InferenceService {s.namespace}/{s.name} ({s.storage_uri}) {s.url}".rstrip()
        for s in found.served
    ]
    print("\n".join(lines))
    return 0


def _payloads(args: argparse.Namespace) -> int:
    import json

    from wonderland.monitoring.client import read_payloads
    from wonderland.settings import Settings

    items = read_payloads(Settings.from_env().state_dir, args.name, args.namespace, args.limit)
    if args.output == "json":
        print(json.dumps(items, indent=2))
        return 0
    if not items:
        print(f"no payloads logged for InferenceService {args.namespace}/{args.name}")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("RECEIVED", "ID", "COMPONENT"):
        table.add_column(column, no_wrap=True)
    for column in ("REQUEST", "RESPONSE"):
        table.add_column(column, overflow="ellipsis", no_wrap=True)
    for item in items:
        table.add_row(
            item["received"],
            item["id"],
            item["component"],
            _part(item.get("request")),
            _part(item.get("response")),
        )
    Console().print(table)
    return 0


def _part(part: dict[str, Any] | None) -> str:
    if part is None:
        return "(not logged)"
    if part.get("omitted"):
        return f"({part['size']} bytes, over WONDERLAND_PAYLOAD_MAX_BYTES)"
    text = str(part.get("body") or f"({part['size']} bytes {part.get('contentType')})")
    return text if len(text) <= 60 else text[:57] + "..."


def _code(digest: str, commit: str) -> str:
    parts = [p for p in (digest, f"git {commit}" if commit else "") if p]
    return ", ".join(parts) or "(not recorded)"


def _isvcs() -> list[dict[str, Any]]:
    """Every InferenceService of the running platform, or none when it is not running."""
    from wonderland.errors import WonderlandError

    try:
        from wonderland.control.client import ControlClient
        from wonderland.settings import Settings

        client = ControlClient.for_state_dir(Settings.from_env().state_dir)
        listing = client.request("GET", "/apis/serving.kserve.io/v1beta1/inferenceservices")
    except (WonderlandError, OSError):
        return []
    items: list[dict[str, Any]] = listing.get("items") or []
    return items
