"""Find and import the function in a folder, and wrap it as an ASGI application.

Two layouts are recognised, as Knative's Python runtimes do:

* current templates: a ``function`` package whose ``new()`` returns an instance with
  ``async handle(scope, receive, send)`` (or which exports a bare ``handle``);
* legacy (parliament) templates: ``func.py`` with ``main(context)``, optionally
  decorated with ``@event``.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wonderland.errors import InvalidError, NotFoundError
from wonderland.functions.asgi import FunctionApp, StaticFunction

if TYPE_CHECKING:  # a replica started with --invoke never imports the YAML machinery
    from wonderland.functions.funcyaml import FunctionConfig

__all__ = ["LoadedFunction", "detect_layout", "load_function"]


@dataclass
class LoadedFunction:
    """The hosted application and how it was found."""

    app: FunctionApp
    layout: str  # "instanced", "static" or "legacy"
    root: Path


def detect_layout(root: Path) -> str:
    """``"current"`` for a ``function/`` package, ``"legacy"`` for a root ``func.py``."""
    if (root / "function" / "__init__.py").is_file():
        return "current"
    if (root / "func.py").is_file():
        return "legacy"
    raise NotFoundError(
        f"{root}: no function found; expected function/__init__.py exporting new() "
        "(the current template) or func.py with main(context) (the legacy template). "
        "Run `wonderland func create -l python <dir>` to start one"
    )


def _forget(module: str) -> None:
    for name in [n for n in sys.modules if n == module or n.startswith(module + ".")]:
        del sys.modules[name]


def _import(root: Path, module: str) -> Any:
    _forget(module)
    path = str(root)
    if path in sys.path:
        sys.path.remove(path)
    sys.path.insert(0, path)
    try:
        return importlib.import_module(module)
    except Exception as exc:
        tb = traceback.extract_tb(exc.__traceback__)
        user = [f for f in tb if f.filename.startswith(path)]
        where = f"{user[-1].filename}:{user[-1].lineno}" if user else str(root / module)
        raise InvalidError(
            f"{where}: importing the function failed with {type(exc).__name__}: {exc}; "
            "fix the code (or add the missing dependency to pyproject.toml)"
        ) from exc


def load_function(
    root: Path, config: FunctionConfig | None = None, *, invoke: str | None = None
) -> LoadedFunction:
    """Import the function in ``root`` and wrap it; raise a WonderlandError when it is not
    a usable function. ``invoke`` (``http``/``cloudevent``) overrides ``config.invoke``."""
    root = root.resolve()
    layout = detect_layout(root)
    mode = invoke or (config.invoke if config is not None else "http")
    cloudevents = mode == "cloudevent"
    if layout == "current":
        module = _import(root, "function")
        new = getattr(module, "new", None)
        handle = getattr(module, "handle", None)
        if callable(new):
            try:
                instance = new()
            except Exception as exc:
                raise InvalidError(
                    f"{root / 'function'}: new() raised {type(exc).__name__}: {exc}"
                ) from exc
            if not callable(getattr(instance, "handle", None)):
                raise InvalidError(
                    f"{root / 'function'}: new() returned {type(instance).__name__}, which has "
                    "no handle(scope, receive, send) method; add `async def handle(self, scope, "
                    "receive, send)`"
                )
            return LoadedFunction(FunctionApp(instance, cloudevents=cloudevents), "instanced", root)
        if callable(handle):
            app = FunctionApp(StaticFunction(handle), cloudevents=cloudevents)
            return LoadedFunction(app, "static", root)
        raise InvalidError(
            f"{root / 'function' / '__init__.py'}: exports neither new() nor handle(); "
            "add `from .func import new`"
        )
    from wonderland.functions.legacy import LegacyFunction, install_shims

    install_shims()
    module = _import(root, "func")
    main = getattr(module, "main", None)
    if not callable(main):
        raise InvalidError(
            f"{root / 'func.py'}: defines no main(context); the legacy template needs "
            "`def main(context: Context)`"
        )
    return LoadedFunction(FunctionApp(LegacyFunction(main)), "legacy", root)
