"""Notebooks behind the gateway: ``/notebook/<namespace>/<name>/`` on the console's host.

Kubeflow serves a notebook through Istio at that path of the central dashboard's host,
behind the cluster's sign-in. Here the gateway sends the path to the notebook's server
when the request carries a console session (a browser that signed in to the console);
other requests are sent to the console's sign-in page (``GET``) or refused with 401. The
notebook's token is added on the way in, so the user never handles it, and WebSockets
(the kernels' channels) pass like any request.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from wonderland.console.security import ConsoleSessions
from wonderland.errors import NotFoundError
from wonderland.gateway.table import PathRoute, RevisionTarget, RoutingTable
from wonderland.notebooks.controller import (
    NOTEBOOKS,
    PODS,
    SECRETS,
    TOKEN_KEY,
    notebook_prefix,
    token_secret_name,
)
from wonderland.store import Store

if TYPE_CHECKING:
    from wonderland.platform import Platform

__all__ = ["NotebookRoutes"]

Obj = dict[str, Any]


def _refuse(cookie_header: str) -> bool:
    return False


class NotebookRoutes:
    """Keeps one path route per running notebook (a platform service; the notebook
    controller calls :meth:`update` after each reconcile)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.store: Store = platform.store
        self.table: RoutingTable | None = None
        self.host = ""
        self.sessions: ConsoleSessions | None = None
        self.routed: set[tuple[str, str]] = set()

    async def start(self) -> None:
        from wonderland.console import console_host

        self.table = self.platform.get(RoutingTable)
        self.sessions = self.platform.get(ConsoleSessions)  # type: ignore[type-abstract]
        self.host = console_host(self.platform.settings.domain)
        items, _ = self.store.list(NOTEBOOKS)
        for nb in items:
            meta = nb["metadata"]
            try:
                pod: Obj | None = self.store.get(PODS, meta["namespace"], f"{meta['name']}-0")
            except NotFoundError:
                pod = None
            self.update(nb, pod)

    async def stop(self) -> None:
        for namespace, name in list(self.routed):
            self._remove(namespace, name)

    def update(self, nb: Obj, pod: Obj | None) -> None:
        """Route the notebook to its pod's port, or withdraw the route."""
        if self.table is None:
            return
        meta = nb["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        port = 0
        if pod is not None and not pod["metadata"].get("deletionTimestamp"):
            ports = pod["spec"]["containers"][0].get("ports") or [{}]
            port = int(ports[0].get("containerPort") or 0)
        if not port:
            self._remove(namespace, name)
            return
        target = RevisionTarget(namespace, f"notebook-{name}")
        target.set_endpoints([("127.0.0.1", port, pod["metadata"]["name"] if pod else name)])
        headers: list[tuple[bytes, bytes]] = []
        token = self._token(namespace, name)
        if token:
            headers.append((b"Authorization", b"token " + token.encode()))
        allow = self.sessions.session_ok if self.sessions is not None else _refuse
        route = PathRoute(notebook_prefix(namespace, name) + "/", target, allow, headers)
        self.table.set_path_route(self.host, route)
        self.routed.add((namespace, name))

    def _remove(self, namespace: str, name: str) -> None:
        if self.table is not None:
            self.table.remove_path_route(self.host, notebook_prefix(namespace, name) + "/")
        self.routed.discard((namespace, name))

    def _token(self, namespace: str, name: str) -> str:
        try:
            secret = self.store.get(SECRETS, namespace, token_secret_name(name))
        except NotFoundError:
            return ""
        raw = (secret.get("data") or {}).get(TOKEN_KEY, "")
        return base64.b64decode(raw).decode() if raw else ""
