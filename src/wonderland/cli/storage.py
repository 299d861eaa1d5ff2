"""``wonderland storage pull URI``: fetch a ``storageUri`` into the platform's model cache."""

from __future__ import annotations

import argparse
import os

from wonderland.errors import ConfigError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "storage",
        help="fetch models by storageUri (s3://, http(s)://, pvc://, hf://, file://)",
        description="Model storage as InferenceServices see it (docs/inference-service.md).",
    )
    sub = p.add_subparsers(dest="storage_command", metavar="COMMAND", required=True)
    pull = sub.add_parser(
        "pull",
        help="download (or find) a model and print its local folder",
        description="Resolve a storageUri into the model cache of the state directory, with "
        "a progress bar; InferenceServices that use the same URI then start from the cache.",
    )
    pull.add_argument("uri", help="s3://bucket/prefix, https://host/model.tar.gz, pvc://...")
    pull.add_argument("-n", "--namespace", default="default", help="namespace (for pvc://)")
    pull.add_argument(
        "--annotation",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an InferenceService annotation such as serving.kserve.io/s3-endpoint=host:9000",
    )
    pull.set_defaults(handler=_pull)


def _pull(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from wonderland.inference.storage import StorageContext, fetch
    from wonderland.settings import Settings
    from wonderland.tracking.access import TRACKING_URI_ENV
    from wonderland.tracking.client import discover_tracking_uri
    from wonderland.tracking.uris import is_tracking_uri

    annotations: dict[str, str] = {}
    for item in args.annotation:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--annotation {item!r}: expected KEY=VALUE")
        annotations[key] = value
    settings = Settings.from_env()
    env = dict(os.environ)
    if is_tracking_uri(args.uri) and TRACKING_URI_ENV not in env:
        # models:/ and runs:/ resolve through the running platform's registry
        env[TRACKING_URI_ENV] = discover_tracking_uri(settings.state_dir, env)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(args.uri, total=None)

        def progress(_uri: str, done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        ctx = StorageContext(
            settings.state_dir,
            namespace=args.namespace,
            annotations=annotations,
            progress=progress,
            env=env,
        )
        path = fetch(args.uri, ctx)
    print(path)
    return 0
