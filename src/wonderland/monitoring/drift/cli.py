"""The drift detector's command line: flags, the reference, the publishers, the server.

KServe's drift detector sample passes ``--model_name``, ``--http_port``, ``--protocol``,
``--storage_uri``, ``--reply_url``, ``--event_type``, ``--event_source`` and then
``DriftDetector --drift_batch_size N``; the same args work here. The port is ``$PORT``
when set (Knative's runtime contract), else ``--http_port``. Drift events go to the Dapr
pub/sub topic ``--pubsub``/``--topic`` when a Dapr sidecar is next to it
(``DAPR_HTTP_PORT``), and to ``--reply_url`` when given. A ``models:/NAME@ALIAS/...``
reference is re-resolved every ``--reference_refresh`` seconds: when the alias moves, the
new version's sample becomes the reference (``refresh.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Sequence

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m wonderland.monitoring.drift",
        description="Detect data drift in an InferenceService's logged requests against a "
        "reference sample (KS with Bonferroni, chi-squared, PSI).",
    )
    p.add_argument(
        "--storage_uri",
        required=True,
        help="the reference sample: file://, pvc://, models:/, runs:/, s3://, ...",
    )
    p.add_argument(
        "--reference_wait",
        type=float,
        default=0.0,
        help="seconds to keep retrying a reference that cannot be read yet (a models:/ alias "
        "the first training has not set), before giving up; 0: give up at once",
    )
    p.add_argument(
        "--reference_refresh",
        type=float,
        default=30.0,
        help="seconds between looks at the registry for a models:/NAME@ALIAS reference: when "
        "the alias moves, the new version's sample becomes the reference; 0: never",
    )
    p.add_argument(
        "--model_name",
        default="",
        help="the InferenceService watched (events' name when the logger sends none)",
    )
    p.add_argument(
        "--namespace",
        default=os.environ.get("POD_NAMESPACE", ""),
        help="namespace of the storage URI's pvc:// claims",
    )
    p.add_argument("--http_port", type=int, default=8080, help="used when $PORT is not set")
    p.add_argument("--host", default="127.0.0.1", help="listen address (0.0.0.0 on a cluster)")
    p.add_argument(
        "--drift_batch_size",
        type=int,
        default=100,
        help="rows per window (KServe's CIFAR-10 sample uses 5000)",
    )
    p.add_argument(
        "--p_val", type=float, default=0.05, help="alpha before the Bonferroni correction"
    )
    p.add_argument(
        "--min_samples",
        type=int,
        default=30,
        help="fewest values of a feature in a window to test it",
    )
    p.add_argument(
        "--feature_names", default="", help="comma-separated column names of an NPY reference"
    )
    p.add_argument(
        "--categorical_features", default="", help="comma-separated columns to treat as categorical"
    )
    p.add_argument("--pubsub", default="pubsub", help="the Dapr pub/sub component")
    p.add_argument("--topic", default="drift", help="the Dapr topic of drift events")
    p.add_argument("--reply_url", default="", help="also post drift events here")
    p.add_argument(
        "--sink_url", default="", help="pass every received CloudEvent on to this payload sink"
    )
    p.add_argument("--event_type", default="org.kubeflow.serving.inference.drift")
    p.add_argument("--event_source", default="/wonderland/drift-detector/{namespace}/{name}")
    p.add_argument(
        "--protocol",
        default="",
        help="accepted for KServe's sample; V1 and V2 bodies are both read",
    )
    p.add_argument(
        "detector",
        nargs="?",
        default="DriftDetector",
        help="KServe sample's detector name (DriftDetector)",
    )
    return p


def _names(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = parser().parse_args(argv)
    if args.detector != "DriftDetector":
        print(
            f"unknown detector {args.detector!r}; this server runs DriftDetector", file=sys.stderr
        )
        return 2
    if args.drift_batch_size < 2 or not 0 < args.p_val < 1:
        print("--drift_batch_size must be at least 2 and --p_val between 0 and 1", file=sys.stderr)
        return 2
    if args.reference_refresh < 0:
        print("--reference_refresh is seconds (0 to never re-resolve)", file=sys.stderr)
        return 2
    from wonderland.errors import WonderlandError
    from wonderland.monitoring.drift.reference import ReferenceSource

    log = logging.getLogger("wonderland.monitoring.drift")
    try:
        source = ReferenceSource(
            args.storage_uri,
            args.namespace or "default",
            _names(args.feature_names),
            _names(args.categorical_features),
        )
    except WonderlandError as exc:
        print(f"drift detector: {exc}", file=sys.stderr)
        return 2
    deadline = time.monotonic() + max(0.0, args.reference_wait)
    waited = False
    while True:
        try:
            reference = source.load()
            break
        except WonderlandError as exc:
            if time.monotonic() >= deadline:
                print(f"drift detector: {exc}", file=sys.stderr)
                return 1
            if not waited:
                log.info("waiting up to %gs for the reference: %s", args.reference_wait, exc)
                waited = True
            time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
    log.info(
        "reference %s%s: %d rows, columns %s",
        reference.uri,
        f" (version {reference.version})" if reference.version else "",
        reference.rows,
        ", ".join(f"{c} ({reference.kinds[c]})" for c in reference.columns),
    )
    try:
        asyncio.run(_serve(args, source, reference))
    except KeyboardInterrupt:
        pass
    return 0


async def _serve(args: argparse.Namespace, source: object, reference: object) -> None:
    import uvicorn
    from prometheus_client import CollectorRegistry

    from wonderland.monitoring.drift.detector import DetectorConfig, DriftDetector, EventPublisher
    from wonderland.monitoring.drift.publish import (
        DaprPublisher,
        PayloadForwarder,
        ReplyPublisher,
        events_counter,
    )
    from wonderland.monitoring.drift.reference import Reference, ReferenceSource
    from wonderland.monitoring.drift.refresh import ReferenceRefresher
    from wonderland.monitoring.drift.server import DriftDetectorApp

    assert isinstance(reference, Reference) and isinstance(source, ReferenceSource)
    log = logging.getLogger("wonderland.monitoring.drift")
    registry = CollectorRegistry()
    counter = events_counter(registry)
    publishers: list[EventPublisher] = []
    dapr_port = os.environ.get("DAPR_HTTP_PORT", "")
    if dapr_port.isdigit():
        publishers.append(DaprPublisher(int(dapr_port), args.pubsub, args.topic, counter))
    if args.reply_url:
        publishers.append(ReplyPublisher(args.reply_url, counter))
    if not publishers:
        log.warning(
            "no Dapr sidecar (DAPR_HTTP_PORT) and no --reply_url: drift shows in the metrics only"
        )
    config = DetectorConfig(
        batch_size=args.drift_batch_size,
        alpha=args.p_val,
        min_samples=args.min_samples,
        event_type=args.event_type,
        event_source=args.event_source,
        model_name=args.model_name,
    )
    detector = DriftDetector(reference, config, registry, publishers)
    forwarder = PayloadForwarder(args.sink_url, registry) if args.sink_url else None
    app = DriftDetectorApp(detector, registry, forwarder)
    port = int(os.environ.get("PORT") or args.http_port)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=args.host, port=port, lifespan="off", access_log=False, log_level="warning"
        )
    )
    log.info(
        "drift detector on http://%s:%d, events to %s",
        args.host,
        port,
        ", ".join(p.name for p in publishers) or "metrics only",
    )
    watch: asyncio.Task[None] | None = None
    if source.follows_alias and args.reference_refresh > 0:
        refresher = ReferenceRefresher(source, detector, args.reference_refresh)
        watch = asyncio.get_running_loop().create_task(refresher.run())
        log.info("following %s: re-resolved every %gs", args.storage_uri, args.reference_refresh)
    try:
        await server.serve()
    finally:
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        await detector.drain()
        if forwarder is not None:
            await forwarder.close()
