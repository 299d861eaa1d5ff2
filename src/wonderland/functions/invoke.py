"""``func invoke``: call the deployed function (through the platform's gateway) or any
running one (``--target``), as plain HTTP or as a CloudEvent.

Defaults follow Knative's ``func invoke``: the body is ``{"message": "Hello World"}``;
a CloudEvent has type ``boson.fn``, source ``/boson/fn`` and a fresh UUID id and is
sent in binary mode.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from wonderland.errors import ConfigError, NotFoundError
from wonderland.functions.funcyaml import load_config

__all__ = ["InvokeRequest", "InvokeResponse", "gateway_address", "invoke_function"]

DEFAULT_DATA = json.dumps({"message": "Hello World"})


@dataclass(frozen=True)
class InvokeRequest:
    """What to send."""

    data: str | None = None
    content_type: str = "application/json"
    format: str | None = None  # "http" or "cloudevent"; None: func.yaml's invoke
    event_type: str = "boson.fn"
    event_source: str = "/boson/fn"
    event_id: str | None = None
    path: str = "/"
    target: str | None = None
    namespace: str | None = None
    timeout: float = 60.0


@dataclass
class InvokeResponse:
    """What came back."""

    status: int
    headers: dict[str, str]
    body: bytes
    event_attributes: dict[str, str] = field(default_factory=dict)

    @property
    def body_text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def gateway_address(environ: dict[str, str] | None = None) -> str:
    """``http://host:port`` of the platform's gateway: what the daemon recorded in
    ``daemon.json`` (key ``gateway``), else WONDERLAND_BIND / WONDERLAND_GATEWAY_PORT."""
    env = dict(os.environ) if environ is None else environ
    home = Path(env.get("WONDERLAND_HOME") or Path("~/.wonderland").expanduser())
    try:
        info = json.loads((home / "daemon.json").read_text())
    except (OSError, ValueError):
        info = {}
    if isinstance(info, dict):
        for key in ("gateway", "gateway_url", "gatewayURL"):
            value = info.get(key)
            if isinstance(value, str) and value:
                return value.rstrip("/") if "://" in value else f"http://{value}"
    host = env.get("WONDERLAND_BIND", "127.0.0.1")
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    port = env.get("WONDERLAND_GATEWAY_PORT", "8080")
    return f"http://{host}:{port}"


def _event_attributes(response: httpx.Response) -> dict[str, str]:
    ctype = response.headers.get("content-type", "")
    if ctype.startswith("application/cloudevents+json"):
        try:
            doc = json.loads(response.content)
        except ValueError:
            return {}
        return {k: str(v) for k, v in doc.items() if k not in ("data", "data_base64")}
    return {k[3:]: v for k, v in response.headers.items() if k.lower().startswith("ce-")}


def _event_body(response: httpx.Response) -> bytes:
    if response.headers.get("content-type", "").startswith("application/cloudevents+json"):
        try:
            doc = json.loads(response.content)
        except ValueError:
            return response.content
        data = doc.get("data")
        return (data if isinstance(data, str) else json.dumps(data)).encode()
    return response.content


def invoke_function(path: Path, request: InvokeRequest) -> InvokeResponse:
    """Send the request to the function and return its answer."""
    config = load_config(path.resolve())
    fmt = request.format or ("cloudevent" if config.invoke == "cloudevent" else "http")
    body = (request.data if request.data is not None else DEFAULT_DATA).encode()
    headers = {"content-type": request.content_type}
    if fmt == "cloudevent":
        headers.update(
            {
                "ce-specversion": "1.0",
                "ce-id": request.event_id or str(uuid.uuid4()),
                "ce-type": request.event_type,
                "ce-source": request.event_source,
            }
        )
    if request.target:
        url = request.target.rstrip("/") + request.path
    else:
        url = _deployed_url(config.name, request.namespace or config.namespace) + request.path
    parsed = urllib.parse.urlsplit(url)
    send_to = url
    if not request.target:
        # The route's host name may not resolve on this machine: connect to the gateway and
        # name the route in the Host header.
        headers["host"] = parsed.netloc
        send_to = gateway_address() + parsed.path + (f"?{parsed.query}" if parsed.query else "")
    try:
        with httpx.Client(timeout=request.timeout, trust_env=False) as client:
            response = client.post(send_to, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise ConfigError(
            f"cannot reach the function at {url} ({exc}); is it deployed (wonderland func "
            "deploy) or running (wonderland func run)?"
        ) from exc
    attributes = _event_attributes(response)
    return InvokeResponse(
        status=response.status_code,
        headers=dict(response.headers),
        body=_event_body(response) if attributes else response.content,
        event_attributes=attributes,
    )


def _deployed_url(name: str, namespace: str) -> str:
    from wonderland.functions.deploy import platform_client

    client = platform_client()
    if client is None:
        raise ConfigError(
            "no running platform found to look the function up; start it with `wonderland up`, "
            "or pass --target http://host:port for a function started with `wonderland func run`"
        )
    service = client.get("Service", namespace, name)
    if service is None:
        raise NotFoundError(
            f"function {name} is not deployed in namespace {namespace}; run "
            "`wonderland func deploy` first"
        )
    url = str((service.get("status") or {}).get("url") or "")
    if not url:
        raise ConfigError(f"Service {namespace}/{name} has no URL yet; wait until it is Ready")
    return url
