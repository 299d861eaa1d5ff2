"""MLflow's model URIs, parsed: ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``,
``models:/NAME/latest``, ``models:/m-<id>`` (an MLflow 3 logged model), ``runs:/RUN/PATH``
and ``mlflow-artifacts:/PATH``, as ``mlflow/store/artifact/utils/models.py`` reads them.

Stages (``models:/NAME/Production``) were deprecated in MLflow 2.9 in favour of aliases
and are refused with a message that says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from wonderland.errors import InvalidError

__all__ = [
    "ArtifactsUri",
    "ModelUri",
    "RunUri",
    "TrackingUri",
    "is_tracking_uri",
    "parse",
]

SCHEMES = ("models", "runs", "mlflow-artifacts")
_LOGGED_MODEL = re.compile(r"^m-[0-9a-f]{32}$")
_ALIAS = re.compile(r"^[A-Za-z0-9_\-]{1,255}$")
_STAGES = ("none", "staging", "production", "archived")


@dataclass(frozen=True)
class ModelUri:
    """A registered model's version: exactly one of ``version``, ``alias``, ``latest``,
    or ``model_id`` alone for an MLflow 3 logged model (``models:/m-...``)."""

    name: str = ""
    version: str = ""
    alias: str = ""
    latest: bool = False
    model_id: str = ""
    path: str = ""  # a file or folder inside the model's artifacts

    @property
    def follows_alias(self) -> bool:
        return bool(self.alias)

    def pinned(self, version: str) -> ModelUri:
        """The same model at ``version`` (what an alias or ``latest`` resolved to)."""
        return ModelUri(name=self.name, version=version, path=self.path)

    def __str__(self) -> str:
        if self.model_id:
            head = f"models:/{self.model_id}"
        elif self.alias:
            head = f"models:/{self.name}@{self.alias}"
        else:
            head = f"models:/{self.name}/{'latest' if self.latest else self.version}"
        return f"{head}/{self.path}" if self.path else head


@dataclass(frozen=True)
class RunUri:
    """``runs:/RUN_ID/PATH``: a file or folder among a run's artifacts (or the logged model
    named PATH that the run made)."""

    run_id: str
    path: str = ""

    def __str__(self) -> str:
        return f"runs:/{self.run_id}/{self.path}" if self.path else f"runs:/{self.run_id}"


@dataclass(frozen=True)
class ArtifactsUri:
    """``mlflow-artifacts:/PATH`` (or ``mlflow-artifacts://HOST:PORT/PATH``): a path on
    the tracking server's artifact proxy."""

    path: str
    netloc: str = ""

    def __str__(self) -> str:
        if self.netloc:
            return f"mlflow-artifacts://{self.netloc}/{self.path}"
        return f"mlflow-artifacts:/{self.path}"


TrackingUri = ModelUri | RunUri | ArtifactsUri


def is_tracking_uri(uri: str) -> bool:
    """Whether ``uri`` is one the tracking server resolves."""
    head, sep, _ = uri.strip().partition(":")
    return bool(sep) and head.lower() in SCHEMES


def parse(uri: str, where: str = "storageUri") -> TrackingUri:
    """``uri`` parsed; :class:`InvalidError` naming ``where`` and the accepted forms."""
    raw = uri.strip()
    head, _, rest = raw.partition(":")
    scheme = head.lower()
    if scheme == "models":
        return _model(raw, rest, where)
    if scheme == "runs":
        return _run(raw, rest, where)
    if scheme == "mlflow-artifacts":
        parts = urlsplit(raw)
        path = unquote(parts.path).strip("/")
        if not path:
            raise InvalidError(
                where, f"{raw}: name a path, e.g. mlflow-artifacts:/1/<run>/artifacts"
            )
        return ArtifactsUri(path=path, netloc=parts.netloc)
    raise InvalidError(where, f"{raw}: not an MLflow URI (models:/, runs:/, mlflow-artifacts:/)")


_MODEL_FORMS = "models:/NAME/VERSION, models:/NAME@ALIAS or models:/NAME/latest"


def _model(raw: str, rest: str, where: str) -> ModelUri:
    if not rest.startswith("/") or rest.startswith("//"):
        raise InvalidError(where, f"{raw}: write {_MODEL_FORMS} (one slash after models:)")
    body = unquote(rest[1:]).rstrip("/")
    first, _, more = body.partition("/")
    if not first:
        raise InvalidError(where, f"{raw}: the model name is missing; write {_MODEL_FORMS}")
    if "@" in first:
        name, _, alias = first.partition("@")
        if not name or not _ALIAS.match(alias):
            raise InvalidError(
                where, f"{raw}: an alias is letters, digits, '_' and '-'; write models:/NAME@ALIAS"
            )
        return ModelUri(name=name, alias=alias, path=more)
    if _LOGGED_MODEL.match(first) and not more:
        return ModelUri(model_id=first)
    selector, _, path = more.partition("/")
    if not selector:
        raise InvalidError(
            where, f"{raw}: name a version, an alias or latest; write {_MODEL_FORMS}"
        )
    if selector.isdigit() and int(selector) > 0:
        return ModelUri(name=first, version=str(int(selector)), path=path)
    if selector.lower() == "latest":
        return ModelUri(name=first, latest=True, path=path)
    if selector.lower() in _STAGES:
        raise InvalidError(
            where,
            f"{raw}: model stages were deprecated in MLflow 2.9; give the version an alias "
            f"(wonderland models promote {first} VERSION --alias champion) and use "
            f"models:/{first}@champion",
        )
    raise InvalidError(
        where, f"{raw}: {selector!r} is not a version (1, 2, ...) or latest; write {_MODEL_FORMS}"
    )


def _run(raw: str, rest: str, where: str) -> RunUri:
    if not rest.startswith("/") or rest.startswith("//"):
        raise InvalidError(where, f"{raw}: write runs:/RUN_ID/PATH (one slash after runs:)")
    run_id, _, path = unquote(rest[1:]).strip("/").partition("/")
    if not re.fullmatch(r"[0-9a-zA-Z_\-]{1,64}", run_id):
        raise InvalidError(
            where, f"{raw}: the run id is missing or malformed; write runs:/RUN_ID/PATH"
        )
    return RunUri(run_id=run_id, path=path.strip("/"))
