"""``wonderland build``: OCI images of app folders and of the model server, without a
container daemon."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from wonderland.export import SourceObject

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    build = subparsers.add_parser(
        "build",
        help="build OCI images of app folders and the model server without a container daemon",
        description="Build the image of each target into the OCI image layout -o DIR: the "
        "base image's layers from --base, a layer of the folder's requirements.txt (pip "
        "install --target, cached by its digest) when it has no Dockerfile, one layer with "
        "the folder's source (.dockerignore honoured), the config from its Dockerfile (FROM, "
        "WORKDIR, COPY . DEST, COPY FILE DEST, ENV, LABEL, EXPOSE, CMD, ENTRYPOINT, USER; RUN "
        "pip install makes the dependency layer) or Procfile. A "
        "target is an app folder, an image name that wonderland.yaml maps to a folder, "
        "ksvc/NAME or isvc/NAME (from -f PATH, else the running platform), func NAME (the "
        "function's folder, run by the function host); --all builds "
        "every local image of the manifests and the model server if they need it; "
        "--model-server builds the model server's KServe runtime image. Images are named "
        "[REG/]<name>:<source digest>, as `wonderland export --registry REG` names them; an "
        "unchanged source is not built again. See docs/cluster.md.",
    )
    build.add_argument(
        "targets",
        nargs="*",
        metavar="PATH|IMAGE|ksvc/NAME|isvc/NAME|func NAME",
        help="app folder, image name, a Knative Service / InferenceService of the manifests, "
        "or a function (func NAME: the folder whose func.yaml names it)",
    )
    build.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="DIR|FILE.tar",
        help="the OCI image layout to add the images to (a folder, or a .tar of one)",
    )
    build.add_argument(
        "--base",
        metavar="DIR|REG/NAME:TAG",
        help="the base image: an OCI image layout holding it (`skopeo copy "
        "docker://python:3.12-slim oci:DIR:3.12-slim`), or an image in your registry, pulled "
        "into the cache ($XDG_CACHE_HOME/wonderland/bases) with the credentials of --push",
    )
    build.add_argument("--registry", metavar="REG", help="name the images REG/<name>:<digest>")
    build.add_argument(
        "--push",
        action="store_true",
        help="push each image to its registry (the OCI Distribution API; needs --registry)",
    )
    build.add_argument(
        "--creds",
        metavar="USER:PASSWORD",
        help="the registry's credentials for --push and a --base from a registry (default: those `podman login` or "
        "`docker login` saved: $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json, "
        "~/.config/containers/auth.json, ~/.docker/config.json)",
    )
    build.add_argument("--platform", default="linux/amd64", help="OS/ARCH (default linux/amd64)")
    build.add_argument(
        "--all",
        action="store_true",
        help="every local image of the manifests (-f PATH, else the running platform), and the "
        "model server when an InferenceService needs it",
    )
    build.add_argument(
        "-f",
        "--filename",
        action="append",
        default=[],
        metavar="PATH",
        help="manifests to read ksvc/NAME, isvc/NAME and --all from (repeatable)",
    )
    build.add_argument("-R", "--recursive", action="store_true", help="read -f folders recursively")
    build.add_argument(
        "--model-server",
        action="store_true",
        help="build the model server's image (the ClusterServingRuntime of `wonderland export` "
        "names it REG/model-server:<version>[-<extras>])",
    )
    build.add_argument(
        "--extras",
        default="",
        metavar="LIST",
        help="the package's extras in the model server image, comma-separated (sklearn, "
        "xgboost, lightgbm, onnx, torch, huggingface, mlflow)",
    )
    build.add_argument(
        "--wheel", metavar="FILE", help="the package's wheel for the model server image"
    )
    build.add_argument(
        "--find-links",
        action="append",
        default=[],
        metavar="DIR|URL",
        help="where pip also looks for wheels (repeatable)",
    )
    build.add_argument("--no-index", action="store_true", help="pip uses --find-links only")
    build.add_argument(
        "--cache",
        metavar="DIR",
        help="the dependency layer cache (default: $XDG_CACHE_HOME/wonderland/layers)",
    )
    build.add_argument("-q", "--quiet", action="store_true", help="print only the image names")
    build.set_defaults(handler=_build)


def _build(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from wonderland.errors import ConfigError
    from wonderland.export.layers import PipOptions
    from wonderland.export.oci import (
        BuildResult,
        build_function,
        build_image,
        build_model_server,
        read_archive,
        write_archive,
    )
    from wonderland.export.sources import find_function
    from wonderland.export.targets import BuildPlan, is_selector, plan_builds
    from wonderland.runtime.images import ImageResolver, image_base_name

    if args.push and not args.registry:
        raise ConfigError("--push needs --registry REG (where to push the images)")
    from wonderland.export.pull import looks_like_image, pull_base

    from_registry = bool(args.base) and not Path(args.base).is_dir()
    from_registry = from_registry and looks_like_image(args.base)
    if args.creds and not (args.push or from_registry):
        raise ConfigError(
            "--creds is for --push and a --base from a registry: add --push, or leave --creds out"
        )
    functions: list[str] = []
    rest: list[str] = []
    tokens = iter(args.targets)
    for token in tokens:
        if token == "func":
            name = next(tokens, None)
            if name is None:
                raise ConfigError("func NAME: give the function's name (its func.yaml name)")
            functions.append(name)
        else:
            rest.append(token)
    selectors = [t for t in rest if is_selector(t)]
    plain = [t for t in rest if not is_selector(t)]
    if not (args.targets or args.all or args.model_server):
        raise ConfigError(
            "nothing to build: give app folders, image names, ksvc/NAME, isvc/NAME, func NAME, "
            "--all or --model-server"
        )
    started = time.monotonic()
    quiet = args.quiet

    def say(line: str) -> None:
        if not quiet:
            print(f"[{time.monotonic() - started:5.1f} s] {line}", file=sys.stderr, flush=True)

    plan = BuildPlan()
    if selectors or args.all:
        plan = plan_builds(
            _objects(args), selectors, _search_dirs(args.filename), everything=args.all
        )
        for image in plan.external:
            say(f"{image}: no local folder (wonderland.yaml) builds it; left as it is")
    resolver = ImageResolver(Path("."), [Path.cwd()])
    targets: list[tuple[Path, str]] = []
    for target in plain:
        folder = Path(target)
        if folder.is_dir():
            targets.append((folder, folder.resolve().name))
        else:
            targets.append((resolver.resolve(target), image_base_name(target).rsplit("/", 1)[-1]))
    targets += [t for t in plan.apps if t not in targets]
    extras = [e for e in args.extras.split(",") if e] or plan.extras
    model_server = args.model_server or plan.model_server
    pip = PipOptions(
        tuple(args.find_links), args.no_index, Path(args.cache) if args.cache else None
    )
    base = Path(args.base) if args.base else None
    if from_registry:
        os_, _, arch = args.platform.partition("/")
        base = pull_base(args.base, platform=(os_, arch), creds=args.creds, progress=say)
    archive = Path(args.output) if args.output.endswith(".tar") else None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "layout" if archive else Path(args.output)
        if archive and archive.is_file():
            read_archive(archive, out)
        results: list[BuildResult] = []
        pushed: dict[str, str] = {}  # blob -> the repository a push of this run put it in
        for folder, name in targets:
            results.append(
                build_image(folder, name, out, base, args.registry, args.platform, say, pip)
            )
            _report(results[-1], out, args.push, args.creds, pushed)
        named = [(find_function(n, _search_dirs(args.filename)), n) for n in functions]
        for folder, name in [*named, *(f for f in plan.functions if f not in named)]:
            results.append(
                build_function(
                    folder,
                    name,
                    out,
                    base,
                    args.registry,
                    args.platform,
                    say,
                    pip,
                    Path(args.wheel) if args.wheel else None,
                )
            )
            _report(results[-1], out, args.push, args.creds, pushed)
        if model_server:
            results.append(
                build_model_server(
                    out,
                    base,
                    args.registry,
                    args.platform,
                    say,
                    pip,
                    extras,
                    Path(args.wheel) if args.wheel else None,
                )
            )
            _report(results[-1], out, args.push, args.creds, pushed)
        if archive:
            write_archive(out, archive)
    if not results:
        say("nothing to build: no local folder, function or model server is named there")
    if len(results) > 1:
        built = sum(1 for r in results if not r.cached)
        say(f"{len(results)} image(s), {built} built, {len(results) - built} unchanged")
    return 0


def _report(
    result: object, out: object, push: bool, creds: str | None, pushed: dict[str, str]
) -> None:
    from pathlib import Path

    from wonderland.export.oci import BuildResult
    from wonderland.export.push import push_image

    assert isinstance(result, BuildResult) and isinstance(out, Path)
    state = "unchanged" if result.cached else "built"
    print(
        f"{result.ref} {result.manifest_digest} ({state}, {result.layers} layer(s), "
        f"{result.size / 1e6:.1f} MB)",
        flush=True,
    )
    if push:
        done = push_image(out, result.ref, creds=creds, pushed=pushed)
        print(
            f"pushed {done.ref} {done.digest} ({done.uploaded} blob(s) sent, "
            f"{done.skipped} there already"
            f"{f', {done.mounted} mounted from another repository' if done.mounted else ''})",
            flush=True,
        )


def _search_dirs(filenames: list[str]) -> list[Path]:
    from pathlib import Path

    if not filenames:
        return [Path.cwd()]
    return [Path(f) if Path(f).is_dir() else Path(f).parent for f in filenames if f != "-"]


def _objects(args: argparse.Namespace) -> list[SourceObject]:
    from wonderland.api.manifests import load_paths
    from wonderland.export import SourceObject

    if args.filename:
        return [SourceObject(m.obj, m.source) for m in load_paths(args.filename, args.recursive)]
    from wonderland.control.client import ControlClient
    from wonderland.export.platform import platform_objects
    from wonderland.settings import Settings

    client = ControlClient.for_state_dir(Settings.from_env().state_dir)
    try:
        return list(platform_objects(client))
    finally:
        client.close()
