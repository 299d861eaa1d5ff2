"""The seam between the console's server and its pages.

Every group of pages (Overview/Apps/Models, a Service's page, an InferenceService's page,
any object, Training/Experiments/Registry) is a :class:`PageSet`: given a
:class:`Request` it returns an :data:`Answer`, or None for a path it does not serve. The
server registers each with :meth:`ConsoleServer.add_pages
<wonderland.console.server.ConsoleServer.add_pages>`, asks them in order after its host,
origin and session checks, and turns the answer into HTTP: a :class:`Rendered` template
(a page, or its ``main`` block for ``?fragment=main``), a :class:`Redirect` (303), a
:class:`Refused` (the error page with its status) or a ready :class:`Response` (JSON,
text). Page sets never import the server, so there is no cycle and no web framework.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs

import orjson

__all__ = [
    "Answer",
    "PageSet",
    "Redirect",
    "Refused",
    "Rendered",
    "Request",
    "Response",
    "json_response",
]


@dataclass(frozen=True)
class Request:
    """One request as the pages see it; ``body`` is empty for a GET."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes = b""

    def arg(self, name: str, default: str = "") -> str:
        """The first value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else default

    def form(self) -> dict[str, list[str]]:
        """The body as an HTML form (``application/x-www-form-urlencoded``), blank fields
        kept."""
        return parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)


@dataclass
class Response:
    """A ready HTTP answer."""

    status: int
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Rendered:
    """A template and its context: a 200 to a GET is the page, or its ``main`` block when
    the page's script asks for the live fragment; any other status is the whole page."""

    template: str
    context: dict[str, Any]
    status: int = 200


@dataclass(frozen=True)
class Redirect:
    """303 to ``location`` (after a saved form)."""

    location: str


@dataclass(frozen=True)
class Refused:
    """The error page with ``status`` and what was wrong (and what to do)."""

    status: int
    message: str


Answer = Rendered | Redirect | Refused | Response


class PageSet(Protocol):
    """A group of console pages (see the module docstring)."""

    async def answer(self, request: Request) -> Answer | None:
        """The answer to ``request``, or None when its path is none of these pages."""
        ...


def json_response(status: int, doc: Any) -> Response:
    """A JSON answer (the pages' scripts read these), never cached."""
    return Response(status, orjson.dumps(doc), "application/json", [("cache-control", "no-store")])
