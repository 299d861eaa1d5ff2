"""A small client of the control API for the CLI (the kubernetes client works too)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import httpx
import orjson

from wonderland.api.kinds import ResourceKind
from wonderland.errors import (
    AlreadyExistsError,
    ConfigError,
    ConflictError,
    InvalidError,
    NotFoundError,
    WonderlandError,
)
from wonderland.kubeconfig import ClientConfig, kubeconfig_path, read_kubeconfig

__all__ = ["APIError", "ControlClient", "object_path"]

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


class APIError(WonderlandError):
    """An error answer of the control API, with its Status body."""

    def __init__(self, message: str, status: dict[str, Any]) -> None:
        super().__init__(message)
        self.status = status


def object_path(kind: ResourceKind, namespace: str | None, name: str | None = None) -> str:
    """The URL path of a collection (name None) or of one object."""
    base = "/api/v1" if not kind.group else f"/apis/{kind.group}/{kind.version}"
    if kind.namespaced and namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{kind.plural}"
    return f"{base}/{name}" if name else base


class ControlClient:
    """Talks to the daemon of a state directory over HTTPS with its bearer token."""

    def __init__(self, config: ClientConfig, timeout: float = 30.0) -> None:
        self.config = config
        context = ssl.create_default_context(cadata=config.ca_pem.decode())
        self._http = httpx.Client(
            base_url=config.server,
            verify=context,
            headers={"Authorization": f"Bearer {config.token}"},
            timeout=timeout,
        )

    @classmethod
    def for_state_dir(cls, state_dir: Path) -> ControlClient:
        return cls(read_kubeconfig(kubeconfig_path(state_dir)))

    def close(self) -> None:
        self._http.close()

    def stream(
        self, path: str, params: dict[str, str], accept: str = "application/json"
    ) -> Iterator[dict[str, Any]]:
        """The events of a ``?watch=true`` stream, one JSON object per line."""
        try:
            with self._http.stream(
                "GET",
                path,
                params={**params, "watch": "true"},
                headers={"Accept": accept},
                timeout=httpx.Timeout(30.0, read=None),
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise APIError(f"watch failed: HTTP {response.status_code}", {})
                for line in response.iter_lines():
                    if line.strip():
                        yield orjson.loads(line)
        except httpx.ConnectError:
            raise ConfigError(
                f"the wonderland daemon at {self.config.server} does not answer"
            ) from None
        except httpx.RemoteProtocolError:
            return  # the daemon went away: the watch ends

    def stream_bytes(self, path: str, params: dict[str, str]) -> Iterator[bytes]:
        """A streamed GET (``pods/NAME/log?follow=true``): the body as it arrives."""
        try:
            with self._http.stream(
                "GET", path, params=params, timeout=httpx.Timeout(30.0, read=None)
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    self._raise(response)
                yield from response.iter_bytes()
        except httpx.ConnectError:
            raise ConfigError(
                f"the wonderland daemon at {self.config.server} does not answer"
            ) from None
        except httpx.RemoteProtocolError:
            return

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        accept: str = "application/json",
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        headers = {"Accept": accept}
        content = None
        if body is not None:
            content = orjson.dumps(body)
            headers["Content-Type"] = content_type
        try:
            response = self._http.request(
                method, path, content=content, headers=headers, params=params
            )
        except httpx.ConnectError:
            raise ConfigError(
                f"the wonderland daemon at {self.config.server} does not answer; "
                "start it with `wonderland up`"
            ) from None
        except httpx.HTTPError as exc:
            raise ConfigError(f"talking to {self.config.server} failed: {exc}") from None
        if response.status_code < 400:
            try:
                return response.json() if response.content else None
            except ValueError:
                return response.content.decode("utf-8", "replace")
        self._raise(response)

    @staticmethod
    def _raise(response: httpx.Response) -> NoReturn:
        try:
            payload = response.json() if response.content else None
        except ValueError:
            payload = None
        status = payload if isinstance(payload, dict) else {}
        message = str(status.get("message") or f"HTTP {response.status_code}")
        reason = status.get("reason")
        if reason == "NotFound":
            raise NotFoundError(message)
        if reason == "AlreadyExists":
            raise AlreadyExistsError(message)
        if reason == "Conflict":
            raise ConflictError(message)
        if reason == "Invalid":
            causes = (status.get("details") or {}).get("causes") or [{}]
            field = causes[0].get("field")
            if field:
                raise InvalidError(field, str(causes[0].get("message") or message))
            raise InvalidError(message)
        raise APIError(message, status)
