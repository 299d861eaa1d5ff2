"""The console's HTTP server: server-rendered pages, the live stream and static files.

A plain ASGI app served by uvicorn inside the daemon, on a loopback port of its own
(``WONDERLAND_CONSOLE_PORT``, 0 picks one); the gateway routes ``console.<domain>`` to it.
Every request passes the :class:`~wonderland.console.security.HostGuard` first (403),
then pages need a session cookie (a redirect to the sign-in form), the stream and the
YAML view answer 401 without one. Answers carry a strict Content-Security-Policy (no
inline script or style), ``nosniff`` and ``no-referrer``.

The server's own routes are ``GET /live`` (server-sent events), ``GET|POST /signin``
(``GET /signin?ticket=`` redeems the one-time link ``wonderland console`` opens),
``POST /signout``, ``GET /static/<file>``, ``GET /healthz`` and the followed log
``GET /logs/<ns>/<pod>``. Every page comes from a
:class:`~wonderland.console.pages.PageSet` registered with :meth:`ConsoleServer.add_pages`:
:class:`~wonderland.console.core_pages.CorePages` (Overview, Apps, Models, YAML),
:class:`~wonderland.console.object_pages.ObjectPages` (any object, Apply, Events),
:class:`~wonderland.console.mlops_pages.MlopsPages` (Training, Experiments, Registry), and
the Service and InferenceService pages the plugin adds. ``?fragment=main`` answers a
page's ``<main>`` content only, which the page's script swaps in when the stream reports a change.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import mimetypes
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape

from wonderland.asgi import Receive, Scope, Send, SocketServer, listening_socket
from wonderland.console import views
from wonderland.console.core_pages import CorePages
from wonderland.console.experiment_form import ExperimentFormPages
from wonderland.console.field_docs import FieldDocPages, field_url
from wonderland.console.live import LiveFeed
from wonderland.console.mlops_pages import LogStream, MlopsPages
from wonderland.console.node import NodeSampler
from wonderland.console.object_pages import MAX_YAML, ObjectPages, human_age, human_bytes
from wonderland.console.pages import (
    Answer,
    PageSet,
    Redirect,
    Refused,
    Request,
    Response,
)
from wonderland.console.security import (
    SESSION_SECONDS,
    HostGuard,
    SessionSigner,
    cookie_header,
    read_cookie,
)
from wonderland.control.sources import ResourceMetricsSource
from wonderland.errors import NotFoundError
from wonderland.store import Store

__all__ = ["ConsoleServer", "ConsoleStatus", "Request", "Response", "StreamHandler"]

log = logging.getLogger("wonderland.console")

MAX_FORM = 16 * 1024
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
SECURITY_HEADERS = (
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),  # no-referrer makes Chrome send "Origin: null"
    ("x-frame-options", "DENY"),
)
NO_VALUE = "\N{EN DASH}"  # a metric with no value yet


@dataclass(frozen=True)
class ConsoleStatus:
    url: str  # what users open: through the gateway when there is one
    direct: str  # the console's own loopback port
    state: str  # running | failed | stopped
    reason: str = ""

    def as_info(self) -> dict[str, str]:
        out = {"url": self.url, "direct": self.direct, "state": self.state}
        if self.reason:
            out["reason"] = self.reason
        return out


StreamHandler = Callable[[Request, Receive, Send], Awaitable[None]]
# the request being answered, for what every page's header shows (the namespace selector)
_REQUEST: contextvars.ContextVar[Request | None] = contextvars.ContextVar(
    "console_request", default=None
)


def _seconds_ms(value: float | None) -> str:
    return NO_VALUE if value is None else f"{value * 1000:.1f} ms"


def _rate(value: float | None) -> str:
    return NO_VALUE if value is None else f"{value:.2f}/s"


class ConsoleServer:
    """The console's ASGI app and its uvicorn server (a PlatformService)."""

    def __init__(
        self,
        store: Store,
        token: Callable[[], str],
        metrics: views.MetricsSource,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        feed: LiveFeed | None = None,
        poll_seconds: float = 10.0,
        mlops: MlopsPages | None = None,
        resources: ResourceMetricsSource | None = None,
    ) -> None:
        self.store = store
        self._token = token
        self.metrics = metrics
        self.host = host  # loopback only, whatever WONDERLAND_BIND says
        self.port = port
        self.guard = HostGuard()
        self.feed = feed or LiveFeed(store)
        self.poll_seconds = poll_seconds  # how often pages with metrics refresh them
        self.mlops = mlops or MlopsPages(store)  # Training, Experiments, Registry, logs
        self.signer: SessionSigner | None = None
        self.gateway_url = ""
        self.status = ConsoleStatus("", "", "stopped")
        self._ns_cache: tuple[str, list[str]] = ("", [])  # (store version, namespaces)
        self.env = Environment(
            loader=PackageLoader("wonderland.console", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["ms"] = _seconds_ms
        self.env.filters["rate"] = _rate
        self.env.filters["summarize_traffic"] = views.summarize_traffic
        self.env.filters["bytes"] = human_bytes
        self.env.filters["age"] = human_age
        self.env.globals["field_url"] = field_url
        self._server: SocketServer | None = None
        self._pages: list[PageSet] = []
        self._streams: list[tuple[str, StreamHandler]] = []
        self.add_stream("/logs/", self._follow_log)
        # any object, Apply, Events and the node panel (object_pages.py)
        self.objects = ObjectPages(store, NodeSampler(store, resources))
        self.core = CorePages(store, metrics, self.objects.node, poll_seconds)
        pages_in_order: tuple[PageSet, ...] = (
            self.core,
            self.objects,
            FieldDocPages(),
            ExperimentFormPages(store),  # before MlopsPages' /experiments/<ns>/<name>
            self.mlops,
        )
        for pages in pages_in_order:
            self.add_pages(pages)

    @property
    def direct_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- ASGI --------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request = Request(
            scope["method"],
            scope["path"],
            parse_qs(scope.get("query_string", b"").decode("latin-1")),
            headers,
        )
        stream = self._stream_handler(request)
        if stream is not None:
            refusal = self.guard.refusal(request.method, headers)
            if refusal is not None:
                await self._send(send, self._refused(refusal))
            elif not self._signed_in(request):
                await self._send(send, self._text(401, "sign in first: open the console page"))
            else:
                await stream(request, receive, send)
            return
        body: bytes | None = b""
        if request.method in ("POST", "PUT", "PATCH", "DELETE"):
            yaml_form = request.path == "/apply" or request.path.startswith("/object/")
            body = await self._read_body(receive, MAX_YAML if yaml_form else MAX_FORM)
        if body is None:
            limit = MAX_YAML if request.path == "/apply" else MAX_FORM
            await self._send(send, self._text(413, f"the form is larger than {limit} bytes"))
            return
        try:
            response = await self.answer(request, body)
        except Exception:  # a bug must not leak a traceback to the page
            log.exception("console page %s failed", request.path)
            response = self._page(
                500, "error.html", {"message": "the page failed; see the daemon's log"}
            )
        await self._send(send, response)

    async def _read_body(self, receive: Receive, limit: int = MAX_FORM) -> bytes | None:
        """The request body, or None when it is larger than ``limit``."""
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            more = bool(message.get("more_body"))
        return b"".join(chunks)

    async def _send(self, send: Send, response: Response) -> None:
        headers = [
            (b"content-type", response.content_type.encode()),
            (b"content-length", str(len(response.body)).encode()),
            *((k.encode(), v.encode("latin-1")) for k, v in SECURITY_HEADERS),
            *((k.encode(), v.encode("latin-1")) for k, v in response.headers),
        ]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    def _stream_handler(self, request: Request) -> StreamHandler | None:
        if request.method != "GET":
            return None
        if request.path == "/live":
            return self._stream
        for prefix, handler in self._streams:
            if request.path.startswith(prefix):
                return handler
        return None

    async def _stream(self, request: Request, receive: Receive, send: Send) -> None:
        last = request.headers.get("last-event-id") or request.arg("since")
        await self.stream_events(receive, send, self.feed.stream(last))

    async def stream_events(
        self, receive: Receive, send: Send, chunks: AsyncIterator[bytes]
    ) -> None:
        """Answer with a ``text/event-stream`` of ``chunks`` until they end or the client
        goes away."""
        await self._stream_body(receive, send, chunks, b"text/event-stream; charset=utf-8")

    async def _stream_body(
        self, receive: Receive, send: Send, chunks: AsyncIterator[bytes], content_type: bytes
    ) -> None:
        """A 200 whose body is ``chunks`` as they come, until they end or the client goes."""
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", content_type),
                    (b"cache-control", b"no-store"),
                    (b"x-accel-buffering", b"no"),
                    *((k.encode(), v.encode("latin-1")) for k, v in SECURITY_HEADERS),
                ],
            }
        )

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        async def pump() -> None:
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

        gone = asyncio.create_task(disconnected())
        writer = asyncio.create_task(pump())
        try:
            await asyncio.wait({gone, writer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (gone, writer):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        with contextlib.suppress(Exception):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _follow_log(self, request: Request, receive: Receive, send: Send) -> None:
        """``GET /logs/<ns>/<pod>?container=C``: a Pod's followed log (Training, Apps)."""
        logs = self.mlops.log_stream(request.path.removeprefix("/logs/"), request.query)
        await self._stream_log(logs, receive, send)

    async def _stream_log(self, logs: LogStream, receive: Receive, send: Send) -> None:
        """A followed log as a plain-text body, until it ends or the client goes."""
        if logs.chunks is None:
            await self._send(send, self._text(logs.status, logs.message))
            return
        await self._stream_body(receive, send, logs.chunks, b"text/plain; charset=utf-8")

    async def answer(self, request: Request, body: bytes = b"") -> Response:
        """The response to one request (everything but the stream)."""
        refusal = self.guard.refusal(request.method, request.headers)
        if refusal is not None:
            return self._refused(refusal)
        path = request.path
        if path == "/healthz":
            return self._text(200, "ok")
        if path.startswith("/static/") and request.method == "GET":
            return self._static(path.removeprefix("/static/"))
        if path == "/signin":
            if request.method == "POST":
                return self._sign_in(request, body)
            if request.method == "GET" and request.arg("ticket"):
                return self._redeem(request)
            if request.method == "GET":
                return self._page(200, "signin.html", {"next": _safe_next(request.arg("next"))})
        if path == "/signout" and request.method == "POST":
            if self.signer is not None:
                self.signer.revoke(read_cookie(request.headers.get("cookie", "")))
            return Response(
                303, headers=[("location", "/signin"), ("set-cookie", cookie_header("", 0))]
            )
        if not self._signed_in(request):
            if request.method == "GET" and not path.startswith("/yaml/"):
                target = f"/signin?next={quote(path, safe='/')}"
                return Response(303, headers=[("location", target)])
            return self._text(401, "sign in first: open the console page")
        request = replace(request, body=body)
        _REQUEST.set(request)
        for pages in self._pages:
            found = await pages.answer(request)
            if found is not None:
                return self.render(request, found)
        return self._page(404, "error.html", {"message": f"no page {path}"})

    def render(self, request: Request, found: Answer) -> Response:
        """The HTTP answer for what a page set answered (see :mod:`~.pages`)."""
        if isinstance(found, Response):
            return found
        if isinstance(found, Redirect):
            return Response(303, headers=[("location", found.location)])
        if isinstance(found, Refused):
            return self._page(found.status, "error.html", {"message": found.message})
        if found.status == 200 and request.method == "GET":
            return self._view(request, found.template, found.context)
        return self._page(found.status, found.template, found.context)

    # -- pages -------------------------------------------------------------------------

    def add_pages(self, pages: PageSet) -> None:
        """Ask ``pages`` for every request, after the host, origin and session checks and
        after the page sets added before it."""
        self._pages.append(pages)

    def add_stream(self, prefix: str, handler: StreamHandler) -> None:
        """Serve GETs under ``prefix`` as a stream (the handler writes the ASGI messages,
        e.g. through :meth:`stream_events`), after the host, origin and session checks."""
        self._streams.append((prefix, handler))

    def _view(self, request: Request, template: str, context: dict[str, Any]) -> Response:
        if request.arg("fragment") == "main":
            tmpl = self.env.get_template(template)
            html = "".join(tmpl.blocks["main"](tmpl.new_context(self._header(context))))
            return Response(200, html.encode(), headers=[("cache-control", "no-store")])
        return self._page(200, template, context)

    def _page(self, status: int, template: str, context: dict[str, Any]) -> Response:
        html = self.env.get_template(template).render(**self._header(context))
        return Response(status, html.encode(), headers=[("cache-control", "no-store")])

    def _header(self, context: dict[str, Any]) -> dict[str, Any]:
        """``context`` with what the header needs: the namespace selector's choices and
        the chosen one (``?namespace=``), which the navigation links keep."""
        if "nav" not in context:
            return context
        request = _REQUEST.get()
        chosen = request.arg("namespace") if request is not None else ""
        names = {*self._namespaces(), "default"}  # "default" exists without an object
        if chosen:
            names.add(chosen)
        return {
            **context,
            "ns_chosen": chosen,
            "ns_choices": sorted(names),
            "ns_path": _list_path(request.path if request is not None else "/"),
            "ns_query": "?" + urlencode({"namespace": chosen}) if chosen else "",
        }

    def _namespaces(self) -> list[str]:
        """Every namespace an object lives in and every Namespace object's name; read again
        only when the store changed (a scan of the store's index, not of the objects)."""
        rv = self.store.resource_version
        if self._ns_cache[0] != rv:
            try:
                listed, _ = self.store.list("namespaces")
            except NotFoundError:
                listed = []
            names = {str((n.get("metadata") or {}).get("name") or "") for n in listed}
            names.update(self.store.namespaces())
            names.discard("")
            self._ns_cache = (rv, sorted(names))
        return self._ns_cache[1]

    def _refused(self, why: str) -> Response:
        return self._text(403, f"forbidden: {why}")

    @staticmethod
    def _text(status: int, text: str) -> Response:
        return Response(status, (text + "\n").encode(), "text/plain; charset=utf-8")

    def _static(self, name: str) -> Response:
        if not name or "/" in name.replace("vendor/", "", 1) or name.startswith("."):
            return self._text(404, "no such file")
        node = resources.files("wonderland.console").joinpath("static", *name.split("/"))
        if not node.is_file():
            return self._text(404, "no such file")
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind.endswith("javascript"):
            kind += "; charset=utf-8"
        return Response(200, node.read_bytes(), kind, [("cache-control", "max-age=300")])

    # -- sessions ----------------------------------------------------------------------

    def _signed_in(self, request: Request) -> bool:
        return self.session_ok(request.headers.get("cookie", ""))

    def session_ok(self, cookie_header: str) -> bool:
        """Whether a ``Cookie`` header carries a valid console session (what the gateway
        asks before it lets a request through to a notebook on the console's host)."""
        value = read_cookie(cookie_header)
        return bool(value) and self.signer is not None and self.signer.valid(value)

    def _sign_in(self, request: Request, body: bytes) -> Response:
        form = parse_qs(body.decode("utf-8", "replace"))
        given = (form.get("token") or [""])[0]
        target = _safe_next((form.get("next") or ["/"])[0])
        if self.signer is None:
            self.signer = SessionSigner(self._token())
        if not given or not self.signer.token_ok(given):
            log.info("console sign-in refused (wrong token)")
            return self._page(
                401,
                "signin.html",
                {"next": target, "error": "That is not the platform's token."},
            )
        cookie = self.signer.issue()
        return Response(
            303,
            headers=[("location", target), ("set-cookie", cookie_header(cookie, SESSION_SECONDS))],
        )

    def _redeem(self, request: Request) -> Response:
        """``GET /signin?ticket=...``: the one-time link ``wonderland console`` opens."""
        target = _safe_next(request.arg("next") or "/")
        if self.signer is None:
            self.signer = SessionSigner(self._token())
        if not self.signer.redeem(request.arg("ticket")):
            log.info("console sign-in link refused (used, expired or not this platform's)")
            return self._page(
                401,
                "signin.html",
                {
                    "next": target,
                    "error": "That sign-in link was used already or has expired: run "
                    "`wonderland console` again, or sign in with the platform's token.",
                },
            )
        cookie = self.signer.issue()
        return Response(
            303,
            headers=[("location", target), ("set-cookie", cookie_header(cookie, SESSION_SECONDS))],
        )

    # -- lifecycle ---------------------------------------------------------------------

    def allow_gateway(self, host: str, port: int) -> None:
        """Also answer ``host:port`` (the gateway's name for the console)."""
        self.guard.allow([host], port)
        self.gateway_url = f"http://{host}:{port}"

    async def start(self) -> None:
        self.signer = SessionSigner(self._token())
        try:
            sock = listening_socket(self.host, self.port)
        except OSError as exc:
            reason = (
                f"port {self.port} is taken ({exc.strerror}); set WONDERLAND_CONSOLE_PORT "
                "to a free port (0 picks one)"
            )
            log.warning("console not started: %s", reason)
            self.status = ConsoleStatus("", self.direct_url, "failed", reason)
            return
        self.port = int(sock.getsockname()[1])
        self.guard.allow(["127.0.0.1", "localhost"], self.port)
        await self.mlops.start()
        self._server = SocketServer(self, sock)
        await self._server.start()
        self.status = ConsoleStatus(self.gateway_url or self.direct_url, self.direct_url, "running")

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
        self._server = None
        await self.mlops.stop()
        self.status = ConsoleStatus("", "", "stopped")


# a page of one object -> the list its namespace selector goes to
_LIST_OF = {"object": "/objects", "yaml": "/objects", "trials": "/experiments"}


def _list_path(path: str) -> str:
    """Where the namespace selector of the page at ``path`` goes: the page itself for a
    list (``/apps``, ``/objects/<resource>``), the list for a page of one object."""
    parts = path.strip("/").split("/")
    if len(parts) <= 1 or parts[0] == "objects":
        return path
    return _LIST_OF.get(parts[0], "/" + parts[0])


def _safe_next(target: str) -> str:
    """A same-site path to go to after signing in ("/" for anything else)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target
