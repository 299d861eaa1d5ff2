"""The trainer status endpoint: training code reports progress and metrics to its TrainJob.

``POST /apis/trainer.kubeflow.org/v1alpha1/namespaces/{ns}/trainjobs/{name}/status`` with
``{"trainerStatus": {progressPercentage, estimatedRemainingSeconds, metrics, lastUpdatedTime}}``
and the pod's projected token as ``Authorization: Bearer``, as upstream's status server
(``pkg/statusserver``) takes it: the token must be for the audience
``trainer.kubeflow.org/v1alpha1/namespaces/{ns}/trainjobs/{name}/status`` and the job's
namespace (403 otherwise), the body at most 64 kB, the fields within the CRD's bounds (422
with the API server's message), the job must exist (404). The answer echoes the request.
``status.trainerStatus`` is replaced as a whole, as server-side apply by its field owner
does. Upstream serves it on its own HTTPS port; here the control API routes it (a real API
server has no POST on ``status``, so nothing clashes).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import ValidationError

from wonderland.api.schemas.trainer import TrainerStatus
from wonderland.errors import ConflictError, NotFoundError
from wonderland.store import Store
from wonderland.timefmt import parse_time
from wonderland.tokens import TokenError, TokenIssuer
from wonderland.workloads.views import format_time

__all__ = ["MAX_STATUS_BODY", "TrainerStatusEndpoint", "status_path", "token_audience"]

log = logging.getLogger("wonderland.training.status")

TRAINJOBS = "trainjobs.trainer.kubeflow.org"
MAX_STATUS_BODY = 1 << 16


def token_audience(namespace: str, name: str) -> str:
    return f"trainer.kubeflow.org/v1alpha1/namespaces/{namespace}/trainjobs/{name}/status"


def status_path(namespace: str, name: str) -> str:
    return f"/apis/{token_audience(namespace, name)}"


def _status(code: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
    return code, {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class TrainerStatusEndpoint:
    """An :class:`~wonderland.control.sources.ObjectAction` for ``trainjobs/status``."""

    max_body = MAX_STATUS_BODY

    def __init__(self, store: Store, tokens: TokenIssuer) -> None:
        self.store = store
        self.tokens = tokens

    async def __call__(
        self, namespace: str, name: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        if not self._authorized(headers.get("authorization", ""), namespace, name):
            return _status(403, "Forbidden", "Forbidden")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _status(422, "Invalid", "Invalid payload")
        if not isinstance(payload, dict):
            return _status(422, "Invalid", "Invalid payload")
        raw = payload.get("trainerStatus")
        if raw is None:
            return 200, payload
        if not isinstance(raw, dict):
            return _status(422, "Invalid", "Invalid payload")
        problem = _validate(raw)
        if problem:
            return _status(
                422, "Invalid", f'TrainJob.trainer.kubeflow.org "{name}" is invalid: {problem}'
            )
        # Fields the API does not know are dropped, as Go's decoder drops them.
        known = {k: raw[k] for k in TrainerStatus.model_fields if k in raw}
        if known.get("metrics") is not None:
            known["metrics"] = [{"name": m["name"], "value": m["value"]} for m in known["metrics"]]
        written = TrainerStatus.model_validate(known, strict=False).model_dump(exclude_none=True)
        stamp = parse_time(str(known["lastUpdatedTime"]))
        assert stamp is not None  # _validate checked it
        written["lastUpdatedTime"] = format_time(stamp)
        for _ in range(5):
            try:
                current = self.store.get(TRAINJOBS, namespace, name)
            except NotFoundError:
                return _status(404, "NotFound", "Train job not found")
            current = dict(current)
            current["status"] = {**(current.get("status") or {}), "trainerStatus": written}
            try:
                self.store.update_status(current)
            except ConflictError:
                continue
            except NotFoundError:
                return _status(404, "NotFound", "Train job not found")
            return 200, payload
        return _status(409, "Conflict", "the TrainJob kept changing; retry")

    def _authorized(self, header: str, namespace: str, name: str) -> bool:
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != "bearer":
            return False
        try:
            claims = self.tokens.verify(parts[1], token_audience(namespace, name))
        except TokenError as exc:
            log.debug("status for %s/%s refused: %s", namespace, name, exc)
            return False
        return claims.namespace == namespace


def _validate(raw: dict[str, Any]) -> str:
    """The CRD's checks of ``status.trainerStatus``, in the API server's words ("" if fine)."""
    at = "status.trainerStatus"
    if raw.get("lastUpdatedTime") in (None, ""):
        return f'{at}: Invalid value: "object": lastUpdatedTime is required when trainerStatus is present'
    if parse_time(str(raw["lastUpdatedTime"])) is None:
        value = raw["lastUpdatedTime"]
        return f'{at}.lastUpdatedTime: Invalid value: "{value}": {at}.lastUpdatedTime in body must be of type date-time'
    for key, bounds in (("progressPercentage", (0, 100)), ("estimatedRemainingSeconds", (0, None))):
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            return f'{at}.{key}: Invalid value: "{type(value).__name__}": {at}.{key} in body must be of type integer'
        low, high = bounds
        if value < low:
            return f"{at}.{key}: Invalid value: {value}: {at}.{key} in body should be greater than or equal to {low}"
        if high is not None and value > high:
            return f"{at}.{key}: Invalid value: {value}: {at}.{key} in body should be less than or equal to {high}"
    metrics = raw.get("metrics")
    if metrics is not None:
        if not isinstance(metrics, list):
            return f'{at}.metrics: Invalid value: "{type(metrics).__name__}": {at}.metrics in body must be of type array'
        if len(metrics) > 256:
            return f"{at}.metrics: Too many: {len(metrics)}: must have at most 256 items"
        for i, metric in enumerate(metrics):
            where = f"{at}.metrics[{i}]"
            if not isinstance(metric, dict):
                return f"{where}: Invalid value: {metric!r}: {where} in body must be of type object"
            for field in ("name", "value"):
                value = metric.get(field)
                if not isinstance(value, str) or not value:
                    return f'{where}.{field}: Invalid value: "": {where}.{field} in body should be at least 1 chars long'
                if len(value.encode()) > 64:
                    return f"{where}.{field}: Too long: may not be more than 64 bytes"
    known = {k: raw[k] for k in TrainerStatus.model_fields if k in raw}
    known.pop("metrics", None)
    try:
        TrainerStatus.model_validate(known, strict=False)
    except ValidationError as exc:
        return f"{at}: {exc.errors()[0]['msg']}"
    return ""
