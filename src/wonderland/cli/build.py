"""``wonderland build``: OCI images of app folders, without a container daemon."""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    build = subparsers.add_parser(
        "build",
        help="build OCI images of app folders without a container daemon",
        description="Build the image of each app folder (or image name that wonderland.yaml "
        "maps to a folder) into the OCI image layout -o DIR: the base image's layers from "
        "--base, one layer with the folder's source, the config from its Dockerfile (FROM, "
        "WORKDIR, COPY . DEST, ENV, LABEL, EXPOSE, CMD, ENTRYPOINT, USER) or Procfile. The "
        "image is named [REG/]<name>:<source digest>, as `wonderland export --registry REG` "
        "names it; an unchanged folder is not built again. Copy it to a registry with "
        "`skopeo copy oci:DIR:REF docker://REF`. See docs/cluster.md.",
    )
    build.add_argument("targets", nargs="+", metavar="PATH|IMAGE", help="app folder or image")
    build.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="DIR|FILE.tar",
        help="the OCI image layout to add the images to (a folder, or a .tar of one)",
    )
    build.add_argument(
        "--base",
        metavar="DIR",
        help="an OCI image layout holding the base image (`skopeo copy docker://python:3.12-slim "
        "oci:DIR:3.12-slim`)",
    )
    build.add_argument("--registry", metavar="REG", help="name the images REG/<name>:<digest>")
    build.add_argument(
        "--push",
        action="store_true",
        help="push each image to its registry (the OCI Distribution API; needs --registry)",
    )
    build.add_argument("--platform", default="linux/amd64", help="OS/ARCH (default linux/amd64)")
    build.add_argument("-q", "--quiet", action="store_true", help="print only the image names")
    build.set_defaults(handler=_build)


def _build(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from wonderland.errors import ConfigError
    from wonderland.export.oci import build_image, read_archive, write_archive
    from wonderland.export.push import push_image
    from wonderland.runtime.images import ImageResolver, image_base_name

    if args.push and not args.registry:
        raise ConfigError("--push needs --registry REG (where to push the images)")
    resolver = ImageResolver(Path("."), [Path.cwd()])
    base = Path(args.base) if args.base else None
    say = None if args.quiet else (lambda line: print(line, file=sys.stderr))
    targets: list[tuple[Path, str]] = []
    for target in args.targets:
        folder = Path(target)
        if folder.is_dir():
            targets.append((folder, folder.resolve().name))
        else:
            targets.append((resolver.resolve(target), image_base_name(target).rsplit("/", 1)[-1]))
    archive = Path(args.output) if args.output.endswith(".tar") else None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "layout" if archive else Path(args.output)
        if archive and archive.is_file():
            read_archive(archive, out)
        for folder, name in targets:
            result = build_image(folder, name, out, base, args.registry, args.platform, say)
            state = "unchanged" if result.cached else "built"
            print(
                f"{result.ref} {result.manifest_digest} ({state}, {result.layers} layer(s), "
                f"{result.size / 1e6:.1f} MB)"
            )
            if args.push:
                pushed = push_image(out, result.ref)
                print(
                    f"pushed {pushed.ref} {pushed.digest} ({pushed.uploaded} blob(s) sent, "
                    f"{pushed.skipped} there already)"
                )
        if archive:
            write_archive(out, archive)
    return 0
