"""Container images on one machine: an image name resolves to a local build context.

A project file ``wonderland.yaml`` (found in the daemon's working directory or a parent,
or in extra directories given to :class:`ImageResolver`) maps image names to folders, as
skaffold does::

    build:
      artifacts:
        - image: salaboy/frontend
          context: ./frontend

An image matches an artifact when the names are equal once the tag or digest is dropped
(``salaboy/frontend:v2`` and ``docker.io/salaboy/frontend`` both match). The folder is
built once into a cached virtualenv under ``<state_dir>/builds`` (dependencies from
``requirements.txt`` or ``pyproject.toml``), keyed by the dependency files' content, and
run through its ``Procfile`` ``web:`` line or as an ASGI app (``app`` in ``main.py``,
``app.py`` or ``server.py``) under uvicorn. Building happens when a revision is deployed,
never when a request arrives.

An artifact may name an existing Python environment instead of a folder to build::

    build:
      artifacts:
        - image: my-team/katib-trial
          environment: ./.venv-katib

Nothing is built: a container of that image runs with the environment's ``bin`` first on
``PATH`` (its ``python``, its packages), in a fresh folder of the pod's. It needs a
``command``, as the image's entry point is unknown here. This is how code whose
dependencies cannot sit next to the platform's (the Katib SDK pins ``protobuf<5``) runs
in a pod.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import sys
import sysconfig
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from wonderland.errors import NotFoundError, WonderlandError

__all__ = [
    "BuildError",
    "BuiltImage",
    "ImageProvider",
    "ImageResolver",
    "image_base_name",
    "link_platform_packages",
]

log = logging.getLogger("wonderland.runtime.images")

PROJECT_FILE = "wonderland.yaml"
Progress = Callable[[str], None]


class BuildError(WonderlandError):
    """Building an image's folder failed; the message says which step and why."""


def image_base_name(image: str) -> str:
    """``docker.io/library/foo:1.0@sha256:..`` -> ``foo``-style comparable name."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/", "library/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    for local in ("kind.local/", "ko.local/", "dev.local/"):
        if name.startswith(local):
            name = name[len(local) :]
    return name


@dataclass(frozen=True)
class BuiltImage:
    """A folder ready to run: the command line, its working directory and extra env."""

    image: str
    context: Path
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    venv: Path
    # Run in a fresh folder of the pod's (an image's WORKDIR) rather than in ``context``.
    pod_workdir: bool = False


class ImageProvider(Protocol):
    """Images the platform itself provides, without a build: a well-known image name (a
    framework's runtime image) mapped to a Python environment on this machine.

    ``provide(image)`` returns None for an image it does not know, the environment for one
    it does, and raises :class:`BuildError` when it knows the image but this machine lacks
    what it needs (the message says what to install).
    """

    def provide(self, image: str) -> BuiltImage | None: ...


class ImageResolver:
    """Finds image names in project files and builds their folders once; images no project
    file names may come from a registered :class:`ImageProvider`."""

    def __init__(self, builds_dir: Path, search_dirs: Iterable[Path] = ()) -> None:
        self.builds_dir = builds_dir
        self.search_dirs = [Path(d) for d in search_dirs]
        self.providers: list[ImageProvider] = []
        self._locks: dict[str, asyncio.Lock] = {}
        # project file -> ((mtime, size), its build.artifacts): parsed again only when changed
        self._parsed: dict[Path, tuple[tuple[int, int], list[Any]]] = {}

    def _project_files(self) -> list[Path]:
        seen: list[Path] = []
        start = [*self.search_dirs, Path.cwd()]
        for base in start:
            for folder in [base.resolve(), *base.resolve().parents]:
                candidate = folder / PROJECT_FILE
                if candidate.is_file() and candidate not in seen:
                    seen.append(candidate)
                    break
        return seen

    def resolve(self, image: str) -> Path:
        """The build context folder for ``image`` (for an ``environment`` artifact, the
        environment's folder); NotFoundError says where it looked."""
        return self._resolve(image)[0]

    def _resolve(self, image: str) -> tuple[Path, bool]:
        """The folder for ``image`` and whether it is an existing environment."""
        wanted = image_base_name(image)
        files = self._project_files()
        for path in files:
            artifacts = self._artifacts(path)
            for i, artifact in enumerate(artifacts):
                name = str(artifact.get("image") or "")
                if not name or image_base_name(name) != wanted:
                    continue
                if artifact.get("environment"):
                    where = f"{path}: build.artifacts[{i}].environment"
                    env = (path.parent / str(artifact["environment"])).resolve()
                    if not (env / "bin" / "python").exists():
                        raise BuildError(
                            f"{where} {env} is not a Python environment (no bin/python); "
                            f"create it with 'python -m venv {env}' or fix the path"
                        )
                    return env, True
                context = (path.parent / str(artifact.get("context") or ".")).resolve()
                if not context.is_dir():
                    raise BuildError(
                        f"{path}: build.artifacts[{i}].context {context} is not a folder"
                    )
                return context, False
        where = ", ".join(str(p) for p in files) or f"no {PROJECT_FILE} found"
        raise NotFoundError(
            f"Unable to fetch image {image!r}: no build.artifacts entry names it ({where}); "
            f"add '- image: {wanted}' with 'context: ./folder' to {PROJECT_FILE}, or give "
            "the container a command"
        )

    def add_provider(self, provider: ImageProvider) -> None:
        self.providers.append(provider)

    def provided(self, image: str) -> BuiltImage | None:
        """The environment a provider maps ``image`` to, or None; BuildError when the
        provider knows the image but cannot run it here."""
        for provider in self.providers:
            found = provider.provide(image)
            if found is not None:
                return found
        return None

    def _artifacts(self, path: Path) -> list[Any]:
        try:
            info = path.stat()
        except OSError:
            return []
        stamp = (info.st_mtime_ns, info.st_size)
        cached = self._parsed.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise BuildError(f"{path}: not valid YAML: {exc}") from None
        artifacts = list(((doc.get("build") or {}).get("artifacts")) or [])
        self._parsed[path] = (stamp, artifacts)
        return artifacts

    async def build(self, image: str, progress: Progress | None = None) -> BuiltImage:
        """Resolve and build (cached); progress lines go to ``progress``."""
        context, existing = self._resolve(image)
        say = progress or (lambda line: log.info("%s", line))
        if existing:
            say(f"image {image} runs in the Python environment {context}")
            return BuiltImage(
                image, context, (), (("VIRTUAL_ENV", str(context)),), context, pod_workdir=True
            )
        deps, dep_text = _dependencies(context)
        digest = hashlib.sha256(
            (str(context) + "\0" + dep_text + "\0" + sys.executable).encode()
        ).hexdigest()[:16]
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", image_base_name(image)).strip("-")
        target = self.builds_dir / f"{slug}-{digest}"
        lock = self._locks.setdefault(str(target), asyncio.Lock())
        async with lock:
            marker = target / ".built"
            venv = target / "venv"
            if not marker.exists():
                say(f"building image {image} from {context}")
                target.mkdir(parents=True, exist_ok=True)
                await _step(
                    [sys.executable, "-m", "venv", "--without-pip", str(venv)],
                    target,
                    "create the virtualenv",
                    say,
                )
                link_platform_packages(venv)
                if deps:
                    what = "requirements.txt" if deps[0] == "-r" else f"{len(deps)} dependencies"
                    say(f"installing {what} for {image}")
                    await _step(
                        [
                            str(venv / "bin" / "python"),
                            "-m",
                            "pip",
                            "install",
                            "--disable-pip-version-check",
                            "-q",
                            *deps,
                        ],
                        target,
                        "install the dependencies",
                        say,
                        cwd=context,
                    )
                marker.write_text(dep_text)
                say(f"built image {image}")
            else:
                say(f"image {image} is built already (cached)")
        argv = _entry_point(context, venv)
        env = (("PYTHONPATH", str(context)), ("VIRTUAL_ENV", str(venv)))
        return BuiltImage(image, context, argv, env, venv)


def _dependencies(context: Path) -> tuple[list[str], str]:
    req = context / "requirements.txt"
    pyproject = context / "pyproject.toml"
    if req.is_file():
        text = req.read_text()
        lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
        deps = [ln for ln in lines if ln]
        return (["-r", str(req)] if deps else []), text
    if pyproject.is_file():
        text = pyproject.read_text()
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise BuildError(f"{pyproject}: not valid TOML: {exc}") from None
        deps = [str(d) for d in (data.get("project") or {}).get("dependencies") or []]
        return deps, text
    return [], ""


def link_platform_packages(venv: Path) -> None:
    """Let a built environment fall back to the platform's own packages (uvicorn for ASGI
    apps, wonderland itself); the environment's own dependencies come first on sys.path.

    ``site.addsitedir`` rather than a plain path line, so that the platform's own ``.pth``
    files (an editable install's among them) are processed too.
    """
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site_dir = venv / "lib" / version / "site-packages"
    site_dir.mkdir(parents=True, exist_ok=True)
    paths = sysconfig.get_paths()
    dirs = dict.fromkeys([paths["purelib"], paths["platlib"]])
    lines = [f"import site; site.addsitedir({d!r})" for d in dirs]
    (site_dir / "zz-wonderland-platform.pth").write_text("\n".join(lines) + "\n")


async def _step(
    argv: list[str], target: Path, what: str, say: Progress, cwd: Path | None = None
) -> None:
    log_path = target / "build.log"
    with log_path.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            cwd=str(cwd) if cwd else None,
            start_new_session=True,
        )
        code = await proc.wait()
    if code != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
        raise BuildError(f"could not {what} (exit {code}); see {log_path}: " + " | ".join(tail))
    say(f"{what}: done")


def _entry_point(context: Path, venv: Path) -> tuple[str, ...]:
    procfile = context / "Procfile"
    if procfile.is_file():
        for line in procfile.read_text().splitlines():
            if line.startswith("web:"):
                return ("/bin/sh", "-c", line[4:].strip())
        raise BuildError(f"{procfile} has no 'web:' line; add one, e.g. 'web: python app.py'")
    for module in ("main", "app", "server"):
        path = context / f"{module}.py"
        if path.is_file() and re.search(
            r"^(?:app\s*[:=]|(?:async\s+)?def\s+app\b)", path.read_text(), re.MULTILINE
        ):
            return (
                str(venv / "bin" / "python"),
                "-m",
                "uvicorn",
                f"{module}:app",
                "--host",
                "127.0.0.1",
                "--port",
                "$(PORT)",
                "--no-access-log",
            )
    raise BuildError(
        f"{context} has no entry point: add a Procfile with a 'web:' line, or an ASGI "
        "'app' in main.py, app.py or server.py"
    )
