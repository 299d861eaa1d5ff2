"""The "invoke" box of a function's Service page: ``POST /apps/<namespace>/<name>/invoke``.

The page posts a JSON form (:class:`InvokeForm`: plain HTTP or a CloudEvent, the path,
the content type, the body and the event's type and source); the console sends it
through the gateway to the function's URL as ``wonderland func invoke`` does (a
CloudEvent in binary mode: ``ce-specversion``, ``ce-id`` a fresh UUID, ``ce-type``,
``ce-source``) and answers the function's status, latency, body and CloudEvent
attributes, the ``curl`` command that sends the same request and the
``wonderland func invoke`` command. A form with a mistake is refused (400/422, nothing
is sent) with what to fix, field by field.
"""

from __future__ import annotations

import re
import shlex
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from wonderland.console.sources import GatewayClient, ModelAnswer

__all__ = [
    "DEFAULT_DATA",
    "FORMATS",
    "InvokeForm",
    "InvokeRefused",
    "func_invoke_command",
    "invoke_function",
    "parse_invoke",
]

FORMATS = ("http", "cloudevent")
DEFAULT_DATA = '{"message": "Hello World"}'  # as `wonderland func invoke`
DEFAULT_TYPE = "boson.fn"
DEFAULT_SOURCE = "/boson/fn"
MAX_PATH = 2048
MAX_HEADER = 256
_PATH = re.compile(r"/[\x21-\x7e]*")  # printable, no spaces
_MEDIA = re.compile(r"[\w.+-]+/[\w.+-]+(\s*;\s*[\w.+-]+=[\w.+\"-]+)*", re.ASCII)
_PRINTABLE = re.compile(r"[\x20-\x7e]+")


@dataclass(frozen=True)
class InvokeForm:
    """What the invoke box sends."""

    format: str = "http"  # http | cloudevent
    path: str = "/"
    content_type: str = "application/json"
    data: str = DEFAULT_DATA
    event_type: str = DEFAULT_TYPE
    event_source: str = DEFAULT_SOURCE


class InvokeRefused(Exception):
    """A form the console does not send: the HTTP status and what to fix."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _text(doc: Mapping[str, Any], key: str, default: str) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str):
        raise InvokeRefused(422, f"{key} must be a string, not {type(value).__name__}")
    return value


def parse_invoke(body: bytes, max_bytes: int) -> InvokeForm:
    """The form in a request body; :class:`InvokeRefused` says what is wrong with it."""
    if not body.strip():
        raise InvokeRefused(
            400,
            f"the form is empty (or over {max_bytes // 1024} KiB): send the invoke box's "
            "JSON (format, path, contentType, data, type, source)",
        )
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvokeRefused(422, f"the form is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvokeRefused(422, "the form is a JSON object (format, path, contentType, data)")
    form = InvokeForm(
        format=_text(doc, "format", "http"),
        path=_text(doc, "path", "/"),
        content_type=_text(doc, "contentType", "application/json").strip(),
        data=_text(doc, "data", ""),
        event_type=_text(doc, "type", DEFAULT_TYPE).strip(),
        event_source=_text(doc, "source", DEFAULT_SOURCE).strip(),
    )
    if form.format not in FORMATS:
        raise InvokeRefused(422, f"format {form.format!r} is not http or cloudevent; pick one")
    if len(form.path) > MAX_PATH or not _PATH.fullmatch(form.path):
        raise InvokeRefused(
            422,
            f"path {form.path[:80]!r} is not a request path: start it with / and use no "
            f"spaces (at most {MAX_PATH} characters), e.g. /orders?id=1",
        )
    if len(form.content_type) > MAX_HEADER or not _MEDIA.fullmatch(form.content_type):
        raise InvokeRefused(
            422,
            f"content type {form.content_type[:80]!r} is not a media type such as "
            "application/json or text/plain; charset=utf-8",
        )
    if form.format == "cloudevent":
        for key, value in (("type", form.event_type), ("source", form.event_source)):
            if not value or len(value) > MAX_HEADER or not _PRINTABLE.fullmatch(value):
                raise InvokeRefused(
                    422,
                    f"the CloudEvent's {key} must be 1 to {MAX_HEADER} printable characters "
                    f"(e.g. {DEFAULT_TYPE if key == 'type' else DEFAULT_SOURCE})",
                )
    if "json" in form.content_type.lower() and form.data.strip():
        try:
            orjson.loads(form.data)
        except orjson.JSONDecodeError as exc:
            raise InvokeRefused(
                422,
                f"the body is not JSON ({exc}) but the content type is {form.content_type}: "
                "fix the body or change the content type",
            ) from exc
    return form


def headers_of(form: InvokeForm, event_id: str) -> dict[str, str]:
    """The request's headers: the content type, and a CloudEvent's binary-mode ``ce-*``."""
    headers = {"Content-Type": form.content_type}
    if form.format == "cloudevent":
        headers.update(
            {
                "ce-specversion": "1.0",
                "ce-id": event_id,
                "ce-type": form.event_type,
                "ce-source": form.event_source,
            }
        )
    return headers


def func_invoke_command(form: InvokeForm, namespace: str, folder: str) -> str:
    """The ``wonderland func invoke`` command that sends the same request."""
    parts = ["wonderland", "func", "invoke"]
    if folder:
        parts += ["-p", folder]
    parts += ["-n", namespace, "--format", form.format]
    if form.data != DEFAULT_DATA:
        parts += ["--data", form.data]
    if form.content_type != "application/json":
        parts += ["--content-type", form.content_type]
    if form.path != "/":
        parts += ["--request-path", form.path]
    if form.format == "cloudevent":
        if form.event_type != DEFAULT_TYPE:
            parts += ["--type", form.event_type]
        if form.event_source != DEFAULT_SOURCE:
            parts += ["--source", form.event_source]
    return shlex.join(parts)


async def invoke_function(
    client: GatewayClient, url: str, form: InvokeForm
) -> tuple[ModelAnswer, str]:
    """Send the form to the function at ``url`` through the gateway; the answer and the
    CloudEvent id sent (empty for plain HTTP)."""
    event_id = str(uuid.uuid4()) if form.format == "cloudevent" else ""
    headers = headers_of(form, event_id)
    answer = await client.send(url, form.path, form.data.encode(), headers)
    return answer, event_id
