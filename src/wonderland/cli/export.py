"""``wonderland export --check``: validate manifests against the upstream CRDs, offline."""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = subparsers.add_parser(
        "export",
        help="check manifests against the real CRDs of a cluster (offline)",
        description="Check manifests as the API server of a cluster with the pinned Knative "
        "Serving, KServe, Dapr, Kubeflow Trainer, Katib and JobSet releases would, with no "
        "cluster: unknown fields, wrong types, missing required fields and bad values are "
        "errors (file:line, document, field path); features that only work on this machine "
        "are warnings. See docs/cluster.md.",
    )
    export.add_argument(
        "--check",
        action="store_true",
        help="only validate the manifests (writing an export tree is not available yet)",
    )
    export.add_argument(
        "-f",
        "--filename",
        action="append",
        default=[],
        metavar="PATH",
        help="a manifest file or directory (repeatable; - reads standard input; default: .)",
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
    if not args.check:
        print(
            "error: only `wonderland export --check` is available so far: writing the export "
            "tree comes later (docs/cluster.md)",
            file=sys.stderr,
        )
        return 2
    report = check_paths(args.filename or ["."], recursive=args.recursive)
    for problem in report.unreadable:
        print(problem)
    for finding in report.findings:
        if finding.severity == "error" or not args.quiet:
            print(finding)
    errors, warnings = len(report.errors) + len(report.unreadable), len(report.warnings)
    print(
        f"{report.objects} object(s) in {report.files} file(s): "
        f"{errors} error(s), {warnings} warning(s)"
    )
    return 0 if report.ok else 1
