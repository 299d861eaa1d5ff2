"""``wonderland export``: a kustomize tree for a cluster (``-o``), or only the offline check
of manifests against the upstream CRDs (``--check``)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = subparsers.add_parser(
        "export",
        help="write manifests for a cluster, or check manifests against the real CRDs",
        description="With -o DIR: write the objects of -f PATH (or, with --all, of the "
        "running platform) as a kustomize tree for a cluster, with the features only this "
        "machine has mapped (in-memory and SQLite Dapr components to Redis, file:// models to "
        "a PersistentVolumeClaim, local app folders to registry images) and EXPORT-NOTES.md "
        "saying what was mapped and what is left to do; the tree is then checked. With "
        "--check: check manifests as the API server of a cluster with the pinned Knative "
        "Serving, KServe, Dapr, Kubeflow Trainer, Katib and JobSet releases would, with no "
        "cluster: unknown fields, wrong types, missing required fields and bad values are "
        "errors (file:line, document, field path); features that only work on this machine "
        "are warnings. See docs/cluster.md.",
    )
    export.add_argument(
        "--check", action="store_true", help="only validate the manifests (writes nothing)"
    )
    export.add_argument(
        "-f",
        "--filename",
        action="append",
        default=[],
        metavar="PATH",
        help="a manifest file or directory (repeatable; - reads standard input; default for "
        "--check: .)",
    )
    export.add_argument(
        "--all",
        action="store_true",
        help="export what the running platform holds (read through its API)",
    )
    export.add_argument("-o", "--output", metavar="DIR", help="the folder to write the tree to")
    export.add_argument(
        "--registry",
        metavar="REG",
        help="images of local folders become REG/<name>:<source digest> (else they are listed)",
    )
    export.add_argument(
        "--profile", default="cluster", help="what replaces the local-only features (cluster)"
    )
    export.add_argument(
        "--domain",
        help="the Knative domain on the cluster (config-domain; default: the profile's, "
        "example.com)",
    )
    export.add_argument(
        "-R", "--recursive", action="store_true", help="read directories recursively"
    )
    export.add_argument(
        "-q", "--quiet", action="store_true", help="print errors only, not warnings"
    )
    export.add_argument(
        "--versions",
        action="store_true",
        help="list the vendored schemas (project, tag, commit, kinds) and exit",
    )
    export.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from wonderland.export import check_paths, default_catalog

    if args.versions:
        for source in default_catalog().sources:
            commit = f" ({source.commit[:12]})" if source.commit else ""
            print(f"{source.repo} {source.tag}{commit}, {source.licence}")
            for kind in source.kinds:
                print(f"  {kind}")
        return 0
    if args.check:
        return _report(check_paths(args.filename or ["."], recursive=args.recursive), args.quiet)
    return _write(args)


def _write(args: argparse.Namespace) -> int:
    from pathlib import Path

    from wonderland.api.manifests import load_paths
    from wonderland.errors import ConfigError
    from wonderland.export import PROFILES, SourceObject, check_paths, export_objects
    from wonderland.export.output import write_tree
    from wonderland.export.sources import local_images
    from wonderland.export.tree import image_fields

    if not args.output:
        raise ConfigError(
            "give -o DIR (the folder to write the export to), or --check to only validate"
        )
    if bool(args.filename) == bool(args.all):
        raise ConfigError("give -f PATH (manifests to export) or --all (the running platform)")
    profile = PROFILES.get(args.profile)
    if profile is None:
        raise ConfigError(
            f"--profile {args.profile}: no such profile; the profiles are: " + ", ".join(PROFILES)
        )
    if args.domain:
        profile = profile.model_copy(update={"domain": args.domain})
    if args.all:
        from wonderland.control.client import ControlClient
        from wonderland.export.platform import platform_objects
        from wonderland.settings import Settings

        client = ControlClient.for_state_dir(Settings.from_env().state_dir)
        try:
            objects = platform_objects(client)
        finally:
            client.close()
        search = [Path.cwd()]
    else:
        objects = [SourceObject(m.obj, m.source) for m in load_paths(args.filename, args.recursive)]
        search = [
            Path(f) if Path(f).is_dir() else Path(f).parent for f in args.filename if f != "-"
        ]
    images = local_images(
        (str(c["image"]) for o in objects for _, c in image_fields(o.obj.get("spec"))), search
    )
    tree = export_objects(objects, profile, images, args.registry)
    out = Path(args.output)
    write_tree(tree, out)
    if not args.quiet:
        for warning in tree.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    todo = sum(1 for n in tree.notes if n.kind == "todo")
    print(
        f"wrote {tree.objects} object(s) to {out}/ (kustomization.yaml, EXPORT-NOTES.md): "
        f"{len(tree.warnings)} substitution(s), {todo} thing(s) left to do in EXPORT-NOTES.md"
    )
    if tree.skipped:
        print(f"left out {len(tree.skipped)} object(s) the cluster's controllers make")
    return _report(check_paths([str(out)], recursive=True), quiet=True, prefix="check: ")


def _report(report: object, quiet: bool, prefix: str = "") -> int:
    from wonderland.export import CheckReport

    assert isinstance(report, CheckReport)
    for problem in report.unreadable:
        print(problem)
    for finding in report.findings:
        if finding.severity == "error" or not quiet:
            print(finding)
    errors, warnings = len(report.errors) + len(report.unreadable), len(report.warnings)
    print(
        f"{prefix}{report.objects} object(s) in {report.files} file(s): "
        f"{errors} error(s), {warnings} warning(s)"
    )
    return 0 if report.ok else 1
