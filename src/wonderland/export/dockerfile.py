"""Dockerfiles (and Procfiles) as ``wonderland build`` reads them: the part of a
Dockerfile that needs no container runtime to build.

``FROM``, ``WORKDIR``, ``COPY`` of the folder or of single files, ``ENV``, ``LABEL``,
``EXPOSE``, ``CMD``, ``ENTRYPOINT`` and ``USER`` shape the image's config; ``RUN pip
install`` (requirements, ``-r FILE`` of a copied file) names what goes into a dependency
layer, which pip makes here for the image's platform. Anything else (another ``RUN``, a
second ``FROM``, globs) is refused with the line and what to do. A folder with no
Dockerfile starts by its ``Procfile``'s ``web:`` line (else ``main.py``, ``app.py`` or
``server.py``), with its ``requirements.txt`` in the dependency layer.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from wonderland.errors import WonderlandError
from wonderland.export.layers import PYTHON_PREFIX, requirement_lines

__all__ = ["DEFAULT_BASE", "ImageBuildError", "ImageRecipe", "parse_dockerfile", "recipe_for"]

DEFAULT_BASE = "python:3.12-slim"


class ImageBuildError(WonderlandError):
    """An image cannot be built: the file, the line or field, and what to do."""


@dataclass
class ImageRecipe:
    """What the Dockerfile (or the Procfile) asks of the image."""

    base: str = DEFAULT_BASE
    workdir: str = "/app"
    copy_to: str = "."  # relative to workdir unless absolute
    env: dict[str, str] = field(default_factory=dict)
    ports: list[str] = field(default_factory=list)
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    user: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    # what pip installs into a layer of its own: requirements.txt of a folder with no
    # Dockerfile, or what the Dockerfile's `RUN pip install` lines name
    requirements: list[str] = field(default_factory=list)
    # single files the Dockerfile copies: (path in the folder, path in the image, line)
    files: list[tuple[str, str, str]] = field(default_factory=list)
    # `RUN pip install -r FILE`: (FILE's path in the image, line); read by recipe_for
    requirement_files: list[tuple[str, str]] = field(default_factory=list)
    pip_run: bool = False  # a `RUN pip install` line was seen


def _command(text: str) -> list[str]:
    text = text.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return ["/bin/sh", "-c", text]


def _pairs(text: str) -> dict[str, str]:
    parts = shlex.split(text)
    if len(parts) >= 2 and "=" not in parts[0]:
        return {parts[0]: " ".join(parts[1:])}  # ENV KEY value (the old form)
    out: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(part)
        out[key] = value
    return out


def parse_dockerfile(text: str, where: str) -> ImageRecipe:
    """The recipe of a Dockerfile that needs no container to build; ImageBuildError names
    the line of anything else."""
    recipe = ImageRecipe(workdir="/")
    joined = re.sub(r"\\\n", " ", text)
    seen_from = False
    for number, raw in enumerate(joined.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word, rest = word.upper(), rest.strip()
        at = f"{where}:{number}: {word}"
        if word == "FROM":
            if seen_from:
                raise ImageBuildError(f"{at}: multi-stage builds need buildah or podman")
            seen_from = True
            recipe.base = rest.split()[0]
        elif word == "WORKDIR":
            recipe.workdir = str(PurePosixPath(recipe.workdir) / rest)
        elif word in ("COPY", "ADD"):
            args = [a for a in shlex.split(rest) if not a.startswith("--")]
            if len(args) == 2 and args[0] in (".", "./"):
                recipe.copy_to = args[1]
                continue
            if len(args) < 2 or any(a in (".", "./") or "*" in a for a in args[:-1]):
                raise ImageBuildError(
                    f"{at} {rest}: only `COPY . DEST` (the whole folder) and copies of single "
                    "files are built without a container runtime; copy the folder as a whole"
                )
            *sources, dest = args
            target = PurePosixPath(recipe.workdir) / dest
            into_dir = dest.endswith("/") or dest in (".", "..") or len(sources) > 1
            for src in sources:
                path = target / PurePosixPath(src).name if into_dir else target
                recipe.files.append((src, str(path), f"{at} {rest}"))
        elif word == "ENV":
            try:
                recipe.env.update(_pairs(rest))
            except ValueError as exc:
                raise ImageBuildError(f"{at}: {exc} is not KEY=VALUE") from None
        elif word == "LABEL":
            try:
                recipe.labels.update(_pairs(rest))
            except ValueError as exc:
                raise ImageBuildError(f"{at}: {exc} is not KEY=VALUE") from None
        elif word == "EXPOSE":
            recipe.ports += [p if "/" in p else f"{p}/tcp" for p in rest.split()]
        elif word == "CMD":
            recipe.cmd = _command(rest)
        elif word == "ENTRYPOINT":
            recipe.entrypoint = _command(rest)
        elif word == "USER":
            recipe.user = rest
        elif word == "RUN":
            _pip_install(rest, recipe, at)
        else:
            raise ImageBuildError(
                f"{at}: not supported without a container runtime (FROM, WORKDIR, COPY . DEST, "
                "ENV, LABEL, EXPOSE, CMD, ENTRYPOINT and USER are)"
            )
    if not seen_from:
        raise ImageBuildError(f"{where}: no FROM line")
    if recipe.pip_run:
        recipe.env.setdefault("PYTHONPATH", f"{PYTHON_PREFIX}/site-packages")
    return recipe


# pip's options that change nothing in what a layer holds
_PIP_FLAGS = {
    "--no-cache-dir",
    "-q",
    "--quiet",
    "-U",
    "--upgrade",
    "--user",
    "--disable-pip-version-check",
    "--no-warn-script-location",
    "--prefer-binary",
    "--no-compile",
    "--progress-bar=off",
}


def _pip_install(text: str, recipe: ImageRecipe, at: str) -> None:
    """``RUN pip install ...`` (``pip3``, ``python -m pip``; several joined by ``&&``): what
    it installs goes to the recipe's dependency layer; any other RUN is refused."""
    refused = ImageBuildError(
        f"{at} {text}: only `RUN pip install` (requirements, -r FILE) is built without a "
        "container runtime (buildah or podman); put what else it does in the base image"
    )
    if text.startswith("["):
        raise refused
    for part in text.split("&&"):
        try:
            words = shlex.split(part)
        except ValueError:
            raise refused from None
        if words[:3] in (["python", "-m", "pip"], ["python3", "-m", "pip"]):
            words = ["pip", *words[3:]]
        if len(words) < 2 or words[0] not in ("pip", "pip3") or words[1] != "install":
            raise refused
        recipe.pip_run = True
        args = iter(words[2:])
        for arg in args:
            if arg in ("-r", "--requirement"):
                name = next(args, "")
                if not name:
                    raise ImageBuildError(f"{at} {text}: -r names no file")
                path = PurePosixPath(recipe.workdir) / name
                recipe.requirement_files.append((str(path), f"{at} {text}"))
            elif arg.startswith("--requirement="):
                path = PurePosixPath(recipe.workdir) / arg.partition("=")[2]
                recipe.requirement_files.append((str(path), f"{at} {text}"))
            elif arg in _PIP_FLAGS or arg.startswith("--root-user-action"):
                continue
            elif arg.startswith("-"):
                raise ImageBuildError(
                    f"{at} {text}: pip's {arg} is not supported without a container runtime "
                    f"(these are: -r FILE, {', '.join(sorted(_PIP_FLAGS))}); drop it"
                )
            elif arg.startswith((".", "/")):
                raise ImageBuildError(
                    f"{at} {text}: {arg}: a local path is not built into a dependency layer; "
                    "build a wheel of it (`pip wheel PATH -w wheels/`) and pass --find-links "
                    "wheels/ with its name in requirements.txt"
                )
            elif arg != "pip":  # `pip install -U pip`: the image's pip is not used
                recipe.requirements.append(arg)


def _procfile_recipe(folder: Path) -> ImageRecipe:
    procfile = folder / "Procfile"
    recipe = ImageRecipe(env={"PORT": "8080"}, ports=["8080/tcp"])
    if procfile.is_file():
        for line in procfile.read_text().splitlines():
            if line.startswith("web:"):
                recipe.cmd = ["/bin/sh", "-c", line[4:].strip()]
                return recipe
        raise ImageBuildError(f"{procfile}: no 'web:' line; add one, e.g. 'web: python app.py'")
    for module in ("main.py", "app.py", "server.py"):
        if (folder / module).is_file():
            recipe.cmd = ["python", module]
            return recipe
    raise ImageBuildError(
        f"{folder}: no Dockerfile, Procfile or main.py/app.py/server.py: nothing says how the "
        "image starts; add a Procfile with a 'web:' line"
    )


def recipe_for(folder: Path) -> ImageRecipe:
    """The folder's Dockerfile recipe, else its Procfile's."""
    dockerfile = folder / "Dockerfile"
    if dockerfile.is_file():
        recipe = parse_dockerfile(dockerfile.read_text(), str(dockerfile))
        _dockerfile_files(folder, recipe)
        return recipe
    recipe = _procfile_recipe(folder)
    requirements = folder / "requirements.txt"
    if requirements.is_file():
        recipe.requirements = _requirements_of(requirements, str(requirements))
    if recipe.requirements:
        recipe.env.setdefault("PYTHONPATH", f"{PYTHON_PREFIX}/site-packages")
    return recipe


def _requirements_of(path: Path, where: str) -> list[str]:
    lines = requirement_lines(path.read_text())
    local = [r for r in lines if r.startswith(("-e", "."))]
    if local:
        raise ImageBuildError(
            f"{where}: {local[0]}: a local path is not built into a dependency "
            "layer; build a wheel of it (`pip wheel PATH -w wheels/`) and pass "
            "--find-links wheels/"
        )
    return lines


def _dockerfile_files(folder: Path, recipe: ImageRecipe) -> None:
    """Check the single files the Dockerfile copies, and read the requirements files its
    ``RUN pip install -r`` lines name (a file copied there, or in the folder's copy)."""
    root = folder.resolve()
    copied: dict[str, Path] = {}
    for src, dest, at in recipe.files:
        path = (folder / src).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise ImageBuildError(
                f"{at}: {src} is not a file of {folder}; copy files of the folder only"
            )
        copied[dest] = path
    copy_to = PurePosixPath(recipe.workdir) / recipe.copy_to
    for name, at in recipe.requirement_files:
        found = copied.get(name)
        inside = PurePosixPath(name)
        if found is None and inside.is_relative_to(copy_to):
            candidate = folder / inside.relative_to(copy_to)
            found = candidate if candidate.is_file() else None
        if found is None:
            raise ImageBuildError(
                f"{at}: {name} is not a file the Dockerfile copies from {folder}; COPY it "
                "first (`COPY requirements.txt .`)"
            )
        recipe.requirements += _requirements_of(found, f"{at}: {name}")
