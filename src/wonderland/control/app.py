"""The control API: a Kubernetes-shaped REST API over the store, as an ASGI app.

kubectl, the ``kubernetes`` Python client and the wonderland CLI speak to it. It
serves legacy discovery, the standard URL layout, JSON bodies, ``Status`` errors,
Table output, the four patch formats and ``?watch=true`` streams. Facts followed:
``shared/reference/kube-api.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import orjson
import yaml

from wonderland.api import printing, registry
from wonderland.api.kinds import ResourceKind
from wonderland.api.selectors import matches, parse_label_selector
from wonderland.asgi import Receive, Scope, Send, accept_lifespan
from wonderland.control import discovery, protobuf
from wonderland.control import patch as patches
from wonderland.control.sources import (
    ActionRegistry,
    LogQuery,
    ObjectAction,
    PodLogSource,
    ResourceMetricsSource,
)
from wonderland.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidError,
    NotFoundError,
    WonderlandError,
)
from wonderland.store import ExpiredError, Obj, Store
from wonderland.timefmt import parse_time

__all__ = ["ControlAPI", "status_body"]

log = logging.getLogger("wonderland.control")


TABLE_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"
# kube-apiserver's default --max-request-body-bytes: a larger body is refused (413).
MAX_REQUEST_BODY = 3 * 1024 * 1024


class HTTPError(WonderlandError):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure" if code >= 400 else "Success",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        content_type = self.headers.get("content-type", "")
        if "vnd.kubernetes.protobuf" in content_type:
            try:
                return protobuf.decode(self.body)
            except InvalidError as exc:
                raise HTTPError(415, "UnsupportedMediaType", str(exc)) from None
        if "protobuf" in content_type or "cbor" in content_type:
            raise HTTPError(
                415,
                "UnsupportedMediaType",
                f'the body type "{content_type}" is not supported; send JSON',
            )
        try:
            if "yaml" in content_type:
                doc = yaml.safe_load(self.body or b"{}")
                try:
                    # YAML can hold what JSON cannot (a lone surrogate from a "\ud800" escape,
                    # bytes, sets); the store keeps JSON, so refuse it here, not with a 500.
                    orjson.dumps(doc)
                except TypeError as exc:
                    raise HTTPError(
                        400, "BadRequest", f"the request body has a value JSON cannot hold: {exc}"
                    ) from None
                return doc
            return orjson.loads(self.body or b"{}")
        except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
            raise HTTPError(
                400, "BadRequest", f"the request body is not valid JSON: {exc}"
            ) from None

    @property
    def wants_table(self) -> bool:
        return "as=Table" in self.headers.get("accept", "")

    @property
    def dry_run(self) -> bool:
        return self.query.get("dryRun", "") == "All"


@dataclass
class _Target:
    kind: ResourceKind
    api_version: str
    namespace: str | None
    name: str | None
    sub: str | None


_EVENT_FIELDS = ("involvedObject.", "reason", "type", "source")
# The field selectors the API server supports per kind, beyond metadata.name/namespace.
_FIELD_SELECTORS: dict[str, tuple[str, ...]] = {
    "pods": (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "nodes": ("spec.unschedulable",),
    "secrets": ("type",),
}
_BOOLEAN_FIELDS = frozenset({"spec.unschedulable", "spec.hostNetwork"})


def _field(obj: Obj, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, dict):
        value = value.get("component")
    if path in _BOOLEAN_FIELDS:
        return "true" if value else "false"
    return "" if value is None else str(value)


def _details(kind: ResourceKind, name: str | None) -> dict[str, Any]:
    details: dict[str, Any] = {"group": kind.group, "kind": kind.plural}
    if name:
        details["name"] = name
    return details


class ControlAPI:
    """The ASGI application; every request needs ``Authorization: Bearer <token>``.

    ``extensions`` maps paths under ``/wonderland/v1/`` to handlers for the CLI's own
    calls (batch apply, shutdown).
    """

    def __init__(
        self,
        store: Store,
        token: str,
        server_address: str = "127.0.0.1:0",
        on_shutdown: Callable[[], None] | None = None,
        logs: PodLogSource | None = None,
        metrics: ResourceMetricsSource | None = None,
        actions: ActionRegistry | None = None,
    ) -> None:
        self.store = store
        self.actions = actions
        self.token = token
        self.server_address = server_address
        self.on_shutdown = on_shutdown
        self.logs = logs
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await accept_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = {
            k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()
        }
        action = self._action(scope["method"], scope["path"])
        limit = action.max_body if action is not None else MAX_REQUEST_BODY
        body = bytearray()
        if scope["method"] in ("POST", "PUT", "PATCH", "DELETE"):
            while True:
                message = await receive()
                body += message.get("body", b"")
                if len(body) > limit:
                    text = f"the request body is larger than {limit} bytes"
                    await _send_json(send, 413, status_body(413, "RequestEntityTooLarge", text))
                    return
                if not message.get("more_body"):
                    break
        request = _Request(scope["method"], scope["path"], query, headers, bytes(body))
        try:
            if request.path in ("/healthz", "/livez", "/readyz"):
                await _send(send, 200, b"ok", "text/plain")
                return
            if action is not None:
                target = self._target([p for p in request.path.split("/") if p])
                assert target is not None and target.name is not None
                answer_code, answer = await action(
                    target.namespace or "", target.name, request.headers, request.body
                )
                await _send_json(send, answer_code, answer)
                return
            self._authorize(request)
            result = await self._dispatch(request, receive, send)
            if result is not None:
                code, payload, content_type = result
                await _send(send, code, payload, content_type)
        except _Wrapped as exc:
            await _send_json(send, exc.code, exc.payload)
        except HTTPError as exc:
            await _send_json(send, exc.code, status_body(exc.code, exc.reason, str(exc)))
        except WonderlandError as exc:
            code, error = self._error(exc)
            await _send_json(send, code, error)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            await _send_json(
                send, 500, status_body(500, "InternalError", "internal error; see the daemon log")
            )

    def _action(self, method: str, path: str) -> ObjectAction | None:
        if method != "POST" or self.actions is None or not self.actions.actions:
            return None
        target = self._target([p for p in path.split("/") if p])
        if target is None or target.name is None or target.sub is None:
            return None
        return self.actions.get(target.kind.resource, target.sub)

    def _authorize(self, request: _Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), self.token):
            raise HTTPError(
                401,
                "Unauthorized",
                "Unauthorized: send the bearer token from the wonderland kubeconfig "
                "(<state dir>/kubeconfig)",
            )

    @staticmethod
    def _error(exc: WonderlandError) -> tuple[int, dict[str, Any]]:
        message = str(exc)
        if isinstance(exc, NotFoundError):
            return 404, status_body(404, "NotFound", message)
        if isinstance(exc, AlreadyExistsError):
            return 409, status_body(409, "AlreadyExists", message)
        if isinstance(exc, ConflictError):
            return 409, status_body(409, "Conflict", message)
        if isinstance(exc, ExpiredError):
            return 410, status_body(410, "Expired", message)
        if isinstance(exc, InvalidError):
            cause = {
                "reason": "FieldValueInvalid",
                "message": exc.reason_text,
                "field": exc.field or "",
            }
            return 422, status_body(422, "Invalid", message, {"causes": [cause]})
        return 400, status_body(400, "BadRequest", message)

    # -- routing ---------------------------------------------------------------

    async def _dispatch(
        self, request: _Request, receive: Receive, send: Send
    ) -> tuple[int, bytes, str] | None:
        parts = [p for p in request.path.split("/") if p]
        if request.method == "GET":
            meta = self._metadata_endpoint(parts)
            if meta is not None:
                return meta
        if parts[:2] == ["wonderland", "v1"]:
            return await self._extension(request, parts[2:])
        target = self._target(parts)
        if target is None:
            raise HTTPError(
                404,
                "NotFound",
                f"the server could not find the requested resource ({request.path})",
            )
        if target.kind.group == "metrics.k8s.io":
            return await self._metrics(request, target)
        if target.sub in target.kind.read_subresources:
            if request.method != "GET":
                raise HTTPError(
                    405, "MethodNotAllowed", f"{request.method} is not allowed on {target.sub}"
                )
            return await self._log(request, target, send)
        if target.name is None:
            if request.method == "GET":
                if request.query.get("watch") in ("true", "1"):
                    await self._watch(request, target, receive, send)
                    return None
                return self._list(request, target)
            if request.method == "POST":
                return self._create(request, target)
            if request.method == "DELETE":
                return self._delete_collection(request, target)
            raise HTTPError(
                405, "MethodNotAllowed", f"{request.method} is not allowed on a collection"
            )
        if request.method == "GET":
            obj = self.store.get(target.kind.resource, target.namespace, target.name)
            if request.wants_table:
                include = request.query.get("includeObject", "Metadata")
                table = printing.table(
                    target.kind, [obj], obj["metadata"]["resourceVersion"], include
                )
                return 200, orjson.dumps(table), TABLE_TYPE
            return _json(200, obj)
        if request.method == "PUT":
            return self._replace(request, target)
        if request.method == "PATCH":
            return self._patch(request, target)
        if request.method == "DELETE":
            return self._delete(request, target)
        raise HTTPError(405, "MethodNotAllowed", f"{request.method} is not allowed on an object")

    def _metadata_endpoint(self, parts: list[str]) -> tuple[int, bytes, str] | None:
        kinds = registry.all_kinds()
        if parts == ["version"]:
            return _json(200, discovery.KUBE_VERSION)
        if parts == ["api"]:
            return _json(
                200,
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": self.server_address}
                    ],
                },
            )
        if parts == ["apis"]:
            return _json(
                200,
                {
                    "kind": "APIGroupList",
                    "apiVersion": "v1",
                    "groups": [g for g in discovery.groups(kinds)],
                },
            )
        if len(parts) == 2 and parts[0] == "apis":
            for group in discovery.groups(kinds):
                if group["name"] == parts[1]:
                    return _json(200, {"kind": "APIGroup", "apiVersion": "v1", **group})
            raise HTTPError(404, "NotFound", f'the server has no API group "{parts[1]}"')
        if parts == ["api", "v1"]:
            return _json(200, discovery.resource_list("", "v1", kinds))
        if len(parts) == 3 and parts[0] == "apis":
            listing = discovery.resource_list(parts[1], parts[2], kinds)
            if not listing["resources"]:
                raise HTTPError(404, "NotFound", f"the server has no API {parts[1]}/{parts[2]}")
            return _json(200, listing)
        if parts == ["openapi", "v2"]:
            # An empty protobuf document: kubectl then skips client-side validation.
            return 200, b"", "application/octet-stream"
        if parts[:2] == ["openapi", "v3"]:
            raise HTTPError(404, "NotFound", "OpenAPI v3 is not served")
        return None

    def _target(self, parts: list[str]) -> _Target | None:
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            return None
        plural = rest[0]
        for kind in registry.all_kinds():
            if kind.group == group and kind.plural == plural and version in kind.versions:
                if namespace is not None and not kind.namespaced:
                    return None
                name = rest[1] if len(rest) > 1 else None
                sub = rest[2] if len(rest) > 2 else None
                if (
                    sub is not None
                    and sub not in kind.subresources
                    and sub not in kind.read_subresources
                ):
                    return None
                if name is not None and kind.namespaced and namespace is None:
                    return None
                api_version = f"{group}/{version}" if group else version
                return _Target(kind, api_version, namespace, name, sub)
        return None

    # -- verbs -----------------------------------------------------------------

    def _filter(self, request: _Request, items: list[Obj], resource: str = "") -> list[Obj]:
        fields = request.query.get("fieldSelector", "")
        extra = _FIELD_SELECTORS.get(resource, ())
        for term in (t.strip() for t in fields.split(",") if t.strip()):
            negate = "!=" in term
            key, _, value = term.replace("!=", "=").replace("==", "=").partition("=")
            allowed = (
                key in ("metadata.name", "metadata.namespace")
                or key in extra
                or (resource == "events" and key.startswith(_EVENT_FIELDS))
            )
            if not allowed:
                more = ", ".join(extra) if extra else ""
                if resource == "events":
                    more = "involvedObject.*, reason, type, source"
                raise HTTPError(
                    400,
                    "BadRequest",
                    f'field label not supported: "{key}"; use metadata.name, '
                    f"metadata.namespace{', ' + more if more else ''}",
                )
            items = [o for o in items if (_field(o, key) == value) != negate]
        return items

    def _list(self, request: _Request, target: _Target) -> tuple[int, bytes, str]:
        items, rv = self.store.list(
            target.kind.resource, target.namespace, request.query.get("labelSelector") or None
        )
        items = self._filter(request, items, target.kind.resource)
        if request.wants_table:
            table = printing.table(
                target.kind, items, rv, request.query.get("includeObject", "Metadata")
            )
            return 200, orjson.dumps(table), TABLE_TYPE
        return _json(
            200,
            {
                "kind": target.kind.list_kind(),
                "apiVersion": target.api_version,
                "metadata": {"resourceVersion": rv, "continue": ""},
                "items": items,
            },
        )

    def _prepare(self, request: _Request, target: _Target, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise HTTPError(400, "BadRequest", "the request body must be a JSON object")
        body.setdefault("apiVersion", target.api_version)
        body.setdefault("kind", target.kind.kind)
        if body["kind"] != target.kind.kind:
            raise HTTPError(
                400,
                "BadRequest",
                f"the body is a {body['kind']}, but the URL is for {target.kind.kind}",
            )
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise InvalidError("metadata", "expected an object (mapping)")
        if target.namespace is not None:
            if meta.get("namespace") not in (None, "", target.namespace):
                raise HTTPError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            meta["namespace"] = target.namespace
        if target.name is not None and meta.get("name") not in (None, target.name):
            raise HTTPError(
                400, "BadRequest", "the name of the object does not match the name on the URL"
            )
        if target.name is not None:
            meta["name"] = target.name
        if "status" in target.kind.subresources and target.sub is None:
            body.pop("status", None)
        return body

    def _create(self, request: _Request, target: _Target) -> tuple[int, bytes, str]:
        obj = self._prepare(request, target, request.json())
        if request.dry_run:
            self.store.admission.admit(obj, None, self.store)
            return _json(201, obj)
        return _json(201, self.store.create(obj))

    def _replace(self, request: _Request, target: _Target) -> tuple[int, bytes, str]:
        obj = self._prepare(request, target, request.json())
        if target.sub == "status":
            return _json(200, self.store.update_status(obj))
        if request.dry_run:
            current = self.store.get(target.kind.resource, target.namespace, target.name or "")
            self.store.admission.admit(obj, current, self.store)
            return _json(200, obj)
        return _json(200, self.store.update(obj))

    def _patch(self, request: _Request, target: _Target) -> tuple[int, bytes, str]:
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type not in (
            patches.MERGE,
            patches.STRATEGIC,
            patches.JSON_PATCH,
            patches.APPLY,
        ):
            raise HTTPError(
                415,
                "UnsupportedMediaType",
                f'the patch content type "{content_type}" is not supported',
            )
        body = request.json()
        name = target.name or ""
        for _ in range(5):
            try:
                current = self.store.get(target.kind.resource, target.namespace, name)
            except NotFoundError:
                if content_type != patches.APPLY:
                    raise
                obj = self._prepare(request, target, body)
                return _json(201, obj if request.dry_run else self.store.create(obj))
            patched = patches.apply_patch(content_type, current, body)
            if not isinstance(patched, dict):
                raise InvalidError("patch", "the patched object is not an object")
            patched = self._prepare(request, target, patched)
            patched["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            if target.sub == "status":
                return _json(200, self.store.update_status(patched))
            if request.dry_run:
                self.store.admission.admit(patched, current, self.store)
                return _json(200, patched)
            try:
                return _json(200, self.store.update(patched))
            except ConflictError:
                continue  # someone wrote in between: patch the newer object
        raise ConflictError(f'{target.kind.resource} "{name}" keeps changing; try again')

    def _delete(self, request: _Request, target: _Target) -> tuple[int, bytes, str]:
        return _json(200, self._delete_one(request, target, target.namespace, target.name or ""))

    def _delete_one(
        self, request: _Request, target: _Target, namespace: str | None, name: str
    ) -> Obj:
        options = request.json() if request.body.strip() else {}
        if not isinstance(options, dict):
            options = {}
        policy = options.get("propagationPolicy")
        grace_raw = request.query.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
        grace: int | None = None
        if grace_raw is not None:
            try:
                grace = int(grace_raw)
            except (TypeError, ValueError):
                raise HTTPError(
                    400, "BadRequest", f'gracePeriodSeconds "{grace_raw}" is not a number'
                ) from None
        policy = request.query.get("propagationPolicy") or policy or "Background"
        if policy not in ("Background", "Foreground", "Orphan"):
            raise HTTPError(
                400,
                "BadRequest",
                f'propagationPolicy "{policy}" is not Background, Foreground or Orphan',
            )
        if request.dry_run:
            return self.store.get(target.kind.resource, namespace, name)
        return self.store.delete(
            target.kind.resource,
            namespace,
            name,
            orphan=policy == "Orphan",
            grace_period=grace,
        )

    def _delete_collection(self, request: _Request, target: _Target) -> tuple[int, bytes, str]:
        """``deletecollection``: every object the selectors match, each as DELETE would."""
        items, _ = self.store.list(
            target.kind.resource, target.namespace, request.query.get("labelSelector") or None
        )
        items = self._filter(request, items, target.kind.resource)
        deleted = []
        for item in items:
            meta = item["metadata"]
            try:
                deleted.append(
                    self._delete_one(request, target, meta.get("namespace"), meta["name"])
                )
            except NotFoundError:
                continue
        return _json(
            200,
            {
                "kind": target.kind.list_kind(),
                "apiVersion": target.api_version,
                "metadata": {"resourceVersion": self.store.resource_version},
                "items": deleted,
            },
        )

    async def _watch(
        self, request: _Request, target: _Target, receive: Receive, send: Send
    ) -> None:
        if request.query.get("sendInitialEvents") in ("true", "1"):
            raise HTTPError(
                400, "BadRequest", "sendInitialEvents is not supported; list, then watch"
            )
        requirements = parse_label_selector(request.query.get("labelSelector") or None)
        since = request.query.get("resourceVersion") or ""
        if since and not since.isdigit():
            raise HTTPError(400, "BadRequest", f'resourceVersion "{since}" is not a number')
        try:
            timeout = float(request.query.get("timeoutSeconds") or 0) or None
        except ValueError:
            raise HTTPError(400, "BadRequest", "timeoutSeconds must be a number") from None
        feed = self.store.watch(
            target.kind.resource, request.query.get("resourceVersion") or None, target.namespace
        )
        as_table = request.wants_table
        started = False

        async def stream() -> None:
            nonlocal started
            try:
                async for event in feed:
                    if (
                        target.kind.namespaced
                        and target.namespace
                        and event.namespace != target.namespace
                    ):
                        continue
                    if not matches(requirements, event.object["metadata"].get("labels")):
                        continue
                    if not self._filter(request, [event.object], target.kind.resource):
                        continue
                    obj: Any = event.object
                    if as_table:
                        obj = printing.table(target.kind, [obj], str(event.rv))
                    if not started:
                        await _start_stream(send, TABLE_TYPE if as_table else "application/json")
                        started = True
                    line = orjson.dumps({"type": event.type, "object": obj}) + b"\n"
                    await send({"type": "http.response.body", "body": line, "more_body": True})
            except ExpiredError as exc:
                if not started:
                    await _start_stream(send, "application/json")
                    started = True
                error = {"type": "ERROR", "object": status_body(410, "Expired", str(exc))}
                await send(
                    {
                        "type": "http.response.body",
                        "body": orjson.dumps(error) + b"\n",
                        "more_body": True,
                    }
                )

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        streaming = asyncio.ensure_future(stream())
        waiting = asyncio.ensure_future(disconnected())
        first = asyncio.ensure_future(asyncio.sleep(0.05))
        try:
            # Send the headers soon even when no event comes, so clients see the stream.
            await asyncio.wait({streaming, first}, return_when=asyncio.FIRST_COMPLETED)
            if not started and not streaming.done():
                await _start_stream(send, TABLE_TYPE if as_table else "application/json")
                started = True
            await asyncio.wait(
                {streaming, waiting}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (streaming, waiting, first):
                task.cancel()
            for task in (streaming, waiting, first):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(Exception):
                await feed.aclose()
        if not started:
            await _start_stream(send, "application/json")
        with contextlib.suppress(Exception):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    # -- served from the kubelet: pods/log, metrics.k8s.io ---------------------------

    async def _log(
        self, request: _Request, target: _Target, send: Send
    ) -> tuple[int, bytes, str] | None:
        if self.logs is None:
            raise HTTPError(404, "NotFound", "no kubelet runs in this daemon: no logs to read")
        query = _log_query(request.query)
        namespace = target.namespace or "default"
        name = target.name or ""
        if not query.follow:
            return 200, self.logs.read(namespace, name, query), "text/plain"
        stream = self.logs.follow(namespace, name, query)
        started = False
        try:
            async for chunk in stream:
                if not started:
                    await _start_stream(send, "text/plain")
                    started = True
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
        if not started:
            await _start_stream(send, "text/plain")
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return None

    async def _metrics(self, request: _Request, target: _Target) -> tuple[int, bytes, str]:
        if request.method != "GET":
            raise HTTPError(
                405, "MethodNotAllowed", f"{request.method} is not allowed on {target.kind.plural}"
            )
        if request.query.get("watch") in ("true", "1"):
            raise HTTPError(405, "MethodNotAllowed", "metrics cannot be watched; poll them")
        if self.metrics is None:
            raise HTTPError(404, "NotFound", "no kubelet runs in this daemon: no metrics")
        if target.kind.kind == "NodeMetrics":
            items = await self.metrics.node_metrics()
        else:
            items = await self.metrics.pod_metrics(target.namespace)
        selector = parse_label_selector(request.query.get("labelSelector") or None)
        items = [i for i in items if matches(selector, i["metadata"].get("labels"))]
        items = self._filter(request, items)
        if target.name is not None:
            for item in items:
                if item["metadata"]["name"] == target.name:
                    return _json(200, item)
            what = "nodemetrics" if target.kind.kind == "NodeMetrics" else "podmetrics"
            raise NotFoundError(f'{what}.metrics.k8s.io "{target.name}" not found')
        return _json(
            200,
            {
                "kind": target.kind.list_kind(),
                "apiVersion": target.api_version,
                "metadata": {},
                "items": items,
            },
        )

    # -- wonderland's own calls -------------------------------------------------

    async def _extension(self, request: _Request, parts: list[str]) -> tuple[int, bytes, str]:
        if parts == ["apply"] and request.method == "POST":
            return self._apply_batch(request)
        if parts == ["shutdown"] and request.method == "POST":
            if self.on_shutdown is None:
                raise HTTPError(405, "MethodNotAllowed", "this server cannot be shut down remotely")
            self.on_shutdown()
            return _json(200, status_body(200, "", "shutting down"))
        raise HTTPError(404, "NotFound", f"no such wonderland call: {request.path}")

    def _apply_batch(self, request: _Request) -> tuple[int, bytes, str]:
        body = request.json()
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise HTTPError(400, "BadRequest", 'the body must be {"items": [objects]}')
        results = []
        index = 0
        try:
            with self.store.transaction():
                for index, item in enumerate(items):  # noqa: B007
                    if not isinstance(item, dict):
                        raise InvalidError("expected a Kubernetes object (a mapping)")
                    try:
                        kind = registry.for_object(
                            str(item.get("apiVersion")), str(item.get("kind"))
                        )
                    except NotFoundError as exc:
                        raise InvalidError("kind", str(exc)) from None
                    if "status" in kind.subresources:
                        item.pop("status", None)
                    obj, action = self.store.apply(item)
                    results.append({"action": action, "object": obj})
                if body.get("dryRun"):
                    raise _DryRun()
        except _DryRun:
            pass
        except InvalidError as exc:
            raise InvalidError(
                f"items[{index}]" + (f".{exc.field}" if exc.field else ""), exc.reason_text
            ) from None
        except WonderlandError as exc:
            code, payload = self._error(exc)
            payload["details"] = {"causes": [{"field": f"items[{index}]", "message": str(exc)}]}
            raise _Wrapped(code, payload) from None
        return _json(200, {"results": results})


class _DryRun(Exception):
    pass


def _log_query(query: dict[str, str]) -> LogQuery:
    def number(key: str) -> int | None:
        raw = query.get(key)
        if raw is None or raw == "":
            return None
        try:
            return int(raw)
        except ValueError:
            raise HTTPError(400, "BadRequest", f'{key} "{raw}" is not a number') from None

    def flag(key: str) -> bool:
        return query.get(key, "").lower() in ("true", "1")

    since: datetime | None = None
    if query.get("sinceTime"):
        since = parse_time(query["sinceTime"])
        if since is None:
            raise HTTPError(400, "BadRequest", f'sinceTime "{query["sinceTime"]}" is not RFC 3339')
    seconds = number("sinceSeconds")
    if seconds is not None:
        since = datetime.now(UTC) - timedelta(seconds=seconds)
    tail = number("tailLines")
    return LogQuery(
        container=query.get("container") or None,
        follow=flag("follow"),
        previous=flag("previous"),
        tail_lines=tail if tail is None or tail >= 0 else None,
        timestamps=flag("timestamps"),
        since=since,
        limit_bytes=number("limitBytes"),
    )


class _Wrapped(HTTPError):
    def __init__(self, code: int, payload: dict[str, Any]) -> None:
        super().__init__(code, payload["reason"], payload["message"])
        self.payload = payload


def _json(code: int, payload: Any) -> tuple[int, bytes, str]:
    return code, orjson.dumps(payload), "application/json"


async def _send(send: Send, code: int, body: bytes, content_type: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": code,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-cache, private"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_json(send: Send, code: int, payload: Any) -> None:
    await _send(send, code, orjson.dumps(payload), "application/json")


async def _start_stream(send: Send, content_type: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"cache-control", b"no-cache, private"),
            ],
        }
    )
