"""``wonderland data add | describe | list``: datasets onboarded into claims."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wonderland.datasets.client import ControlObjects
    from wonderland.settings import Settings

__all__ = ["get_datasets", "register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "data",
        help="onboard, list and describe datasets (PersistentVolumeClaims with a catalogue)",
        description="Datasets as claims labelled datasets.wonderland.dev/dataset, with their "
        "digest, size, schema and source as annotations (docs/notebooks.md#datasets).",
    )
    sub = p.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    add = sub.add_parser(
        "add",
        help="copy a folder, file, http(s)://, s3:// or hf:// source into a new dataset",
        description="Copy SRC into a new claim NAME, recording its digest, size, CSV/Parquet "
        "schema and source; nothing is left behind when SRC cannot be read.",
    )
    add.add_argument("name", help="the dataset's (and its claim's) name")
    add.add_argument(
        "src",
        help="a folder or file, file://, http(s)://URL, s3://bucket/prefix, "
        "hf://datasets/ORG/NAME[:REVISION] (from the local Hugging Face cache)",
    )
    add.add_argument("-n", "--namespace", default="default", help="namespace (default: default)")
    add.set_defaults(handler=_add)
    describe = sub.add_parser("describe", help="show a dataset's catalogue entry")
    describe.add_argument("name")
    describe.add_argument("-n", "--namespace", default="default")
    describe.set_defaults(handler=_describe)
    listing = sub.add_parser("list", help="list datasets (as `wonderland get datasets`)")
    listing.add_argument("-n", "--namespace", default="default")
    listing.add_argument("-A", "--all-namespaces", action="store_true")
    listing.set_defaults(handler=_list)


def _objects() -> tuple[ControlObjects, Settings]:
    from wonderland.control.client import ControlClient
    from wonderland.datasets.client import ControlObjects
    from wonderland.settings import Settings

    settings = Settings.from_env()
    return ControlObjects(ControlClient.for_state_dir(settings.state_dir)), settings


def _add(args: argparse.Namespace) -> int:
    from wonderland import datasets
    from wonderland.datasets.views import human_size

    objects, settings = _objects()
    dataset = datasets.add(objects, settings.state_dir, args.name, args.src, args.namespace)
    print(
        f"dataset/{dataset.name} added: {dataset.files} files, {human_size(dataset.size)}, "
        f"{dataset.digest}"
    )
    return 0


def _describe(args: argparse.Namespace) -> int:
    from wonderland import datasets
    from wonderland.datasets.views import describe

    objects, _ = _objects()
    print(describe(datasets.get(objects, args.namespace, args.name)))
    return 0


def get_datasets(namespace: str | None) -> int:
    """``wonderland get datasets``: the table, or kubectl's empty answer."""
    import sys

    from wonderland import datasets
    from wonderland.datasets.views import table

    objects, _ = _objects()
    found = datasets.list_datasets(objects, namespace)
    if not found:
        where = "" if namespace is None else f" in {namespace} namespace"
        print(f"No resources found{where}.", file=sys.stderr)
        return 0
    print(table(found, with_namespace=namespace is None))
    return 0


def _list(args: argparse.Namespace) -> int:
    return get_datasets(None if args.all_namespaces else args.namespace)
