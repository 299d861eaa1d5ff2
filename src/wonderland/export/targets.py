"""What ``wonderland build`` builds for ``ksvc/NAME``, ``isvc/NAME`` and ``--all``: read
from the manifests as ``wonderland export`` reads them (``-f PATH`` or the running
platform). An ``image`` that ``wonderland.yaml`` maps to a folder is built from the folder;
an InferenceService the platform's model server serves (no ``runtime``) needs the model
server's image, with the extras its model format needs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from wonderland.errors import NotFoundError
from wonderland.export.model_server import extras_for
from wonderland.export.sources import function_images, local_images
from wonderland.export.tree import MODEL_SERVER_RUNTIME, SourceObject, image_fields

__all__ = ["BuildPlan", "is_selector", "plan_builds"]

_KINDS = {
    "ksvc": ("serving.knative.dev", "Service"),
    "isvc": ("serving.kserve.io", "InferenceService"),
}


@dataclass
class BuildPlan:
    """The app folders to build (folder, image repository name) and whether the model
    server is needed, with which extras."""

    apps: list[tuple[Path, str]] = field(default_factory=list)
    # the folders of the Services ``func deploy`` made (function name)
    functions: list[tuple[Path, str]] = field(default_factory=list)
    model_server: bool = False
    extras: list[str] = field(default_factory=list)
    # images that name no local folder (a registry's, built elsewhere)
    external: list[str] = field(default_factory=list)


def _model_format(obj: SourceObject) -> str | None:
    """The format of an InferenceService the platform's model server serves, else None."""
    spec = obj.obj.get("spec") or {}
    predictor = spec.get("predictor") if isinstance(spec, dict) else None
    model = predictor.get("model") if isinstance(predictor, dict) else None
    if not isinstance(model, dict):
        return None
    if model.get("runtime") not in (None, "", MODEL_SERVER_RUNTIME):
        return None
    fmt = model.get("modelFormat")
    name = fmt.get("name") if isinstance(fmt, dict) else None
    return str(name) if name else None


def _select(objects: Sequence[SourceObject], selector: str) -> SourceObject:
    short, _, name = selector.partition("/")
    group, kind = _KINDS[short]
    found = [
        o
        for o in objects
        if o.obj.get("kind") == kind
        and str(o.obj.get("apiVersion") or "").startswith(group + "/")
        and (o.obj.get("metadata") or {}).get("name") == name
    ]
    if not found:
        raise NotFoundError(
            f"{selector}: no {kind} named {name} in the manifests read (give -f PATH, or run "
            "the platform)"
        )
    if len(found) > 1:
        where = ", ".join(str((o.obj.get("metadata") or {}).get("namespace")) for o in found)
        raise NotFoundError(f"{selector}: {len(found)} {kind}s have that name (in {where})")
    return found[0]


def is_selector(target: str) -> bool:
    short, sep, name = target.partition("/")
    return bool(sep and name) and short in _KINDS


def plan_builds(
    objects: Sequence[SourceObject],
    selectors: Sequence[str],
    search_dirs: Sequence[Path],
    everything: bool = False,
) -> BuildPlan:
    """What to build for ``selectors`` (``ksvc/NAME``, ``isvc/NAME``), or for every object
    with ``everything``."""
    chosen = list(objects) if everything else [_select(objects, s) for s in selectors]
    images = [str(c["image"]) for o in chosen for _, c in image_fields(o.obj.get("spec"))]
    local = local_images(images, search_dirs)
    local.update(function_images(o.obj for o in chosen))
    plan = BuildPlan()
    for image in dict.fromkeys(images):
        found = local.get(image)
        if found is None:
            plan.external.append(image)
            continue
        folder = Path(found.context)
        if not folder.is_absolute():
            folder = Path.cwd() / folder
        into = plan.functions if found.function else plan.apps
        if found.digest is not None and (folder, found.name) not in into:
            into.append((folder, found.name))
    formats = [f for f in (_model_format(o) for o in chosen) if f]
    if formats:
        plan.model_server = True
        plan.extras = extras_for(formats)
    return plan
