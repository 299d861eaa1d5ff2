"""Katib's ``Push`` metrics collector: the DB manager's gRPC API over the observation log.

What the clients do (read from their sources):

- ``kubeflow.katib.report_metrics(metrics, db_manager_address=..., timeout=120)`` in
  ``kubeflow-katib`` 0.19 reads ``KATIB_TRIAL_NAME`` (``ValueError`` when unset), opens
  ``/var/run/secrets/kubernetes.io/serviceaccount/namespace`` (no fallback: without the file
  it raises ``FileNotFoundError`` before dialling), checks ``float(value)`` for each value,
  then sends one ``api.v1.beta1.DBManager/ReportObservationLog`` over
  ``grpc.insecure_channel(db_manager_address)``: one ``MetricLog`` per metric, ``value =
  str(value)``, ``time_stamp`` in UTC as ``%Y-%m-%dT%H:%M:%SZ``. The address is an argument
  with the default ``katib-db-manager.kubeflow:6789``; no environment variable overrides it.
  Any failure of the call becomes ``RuntimeError("Unable to push metrics to Katib DB for
  Trial <ns>/<name>. Exception: ...")``.
- Katib's own collectors call ``ReportObservationLog`` and its Trial controller
  ``GetObservationLog``; ``DeleteObservationLog`` goes with a deleted Trial.
- The ``kubeflow`` 0.5 SDK has no ``report_metrics``; its ``OptimizerClient`` sets no
  collector (StdOut applies) and never dials the DB manager. Trainer's ``OptimizationJob``
  reads ``status.trainerStatus.metrics`` instead (``kubeflow.trainer.update_trainjob_status``).

How an unchanged ``report_metrics`` reaches this server: gRPC clients (grpcio) tunnel
through the HTTP proxy in ``grpc_proxy`` with ``CONNECT host:port`` and never resolve the
name themselves. :meth:`DBManagerServer.trial_injection` gives a trial's primary container
``grpc_proxy`` pointing at this server, which answers ``CONNECT
katib-db-manager.kubeflow:6789`` (and the ``.svc`` / ``.svc.cluster.local`` forms) by serving
gRPC inside the tunnel; a ``CONNECT`` to any other host is passed on, bytes unchanged, to the
proxy the node gives every pod (the gateway), so cluster-local gRPC services stay reachable.
The same port also serves gRPC directly (h2c), for clients that pass
``db_manager_address``. It needs no root, no ``/etc/hosts`` change and no DNS. The
injection also adds ``KATIB_TRIAL_NAME`` and the namespace file the SDK opens (a
``downwardAPI`` volume at ``/var/run/secrets/kubernetes.io/serviceaccount``), as Katib's pod
webhook and a cluster's service account admission do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable
from urllib.parse import urlsplit

from wonderland.api.schemas.core import (
    DownwardAPIVolumeFile,
    DownwardAPIVolumeSource,
    EnvVar,
    FieldSelector,
    Volume,
    VolumeMount,
)
from wonderland.errors import InvalidError, WonderlandError
from wonderland.h2grpc import RpcAbort, ServicerContext, StatusCode, service_methods
from wonderland.h2grpc.connection import GrpcConnection
from wonderland.runtime.kubelet import Kubelet
from wonderland.timefmt import parse_time
from wonderland.tuning._katib_api import DB_MANAGER, api_pb2
from wonderland.tuning.observations import MetricLog, ObservationLogStore, UnknownTrialError

if TYPE_CHECKING:
    from wonderland.platform import Platform

__all__ = [
    "DB_MANAGER_ADDRESS",
    "DB_MANAGER_HOSTS",
    "DB_MANAGER_PORT",
    "INFO_KEY",
    "NAMESPACE_DIR",
    "TRIAL_NAME_ENV",
    "DBManagerNotStartedError",
    "DBManagerServer",
    "DBManagerServicer",
    "ObservationLogDeleter",
    "PushCollectorAccess",
    "PushLimits",
    "TrialInjection",
    "install_push_collector",
]

# platform.info key of the DB manager's host:port (the banner, daemon.json)
INFO_KEY = "katib-db-manager"

log = logging.getLogger("wonderland.tuning.push")

DB_MANAGER_PORT = 6789
DB_MANAGER_ADDRESS = f"katib-db-manager.kubeflow:{DB_MANAGER_PORT}"
DB_MANAGER_HOSTS = frozenset(
    {
        "katib-db-manager.kubeflow",
        "katib-db-manager.kubeflow.svc",
        "katib-db-manager.kubeflow.svc.cluster.local",
    }
)
TRIAL_NAME_ENV = "KATIB_TRIAL_NAME"
NAMESPACE_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
NAMESPACE_VOLUME = "katib-push-namespace"
PATCH_MANAGER = "katib.kubeflow.org/push-collector"  # its runtimePatches entry on TrainJobs
# What Katib's collectors report when a metric never appeared (UnavailableMetricValue).
UNAVAILABLE = "unavailable"
# What strconv.ParseFloat (the Trial controller's reader) and Python's float() both accept.
_NUMBER = re.compile(
    r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)", re.IGNORECASE
)
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_CONNECT = b"CONNECT "
_MAX_HEAD = 8192  # bytes of a CONNECT request head
_HEAD_TIMEOUT = 10.0  # seconds a new connection may take to say what it speaks


@dataclass(frozen=True)
class PushLimits:
    """What one call may carry. Katib's DB manager takes messages up to 2 GiB; a trial's
    metrics for one step fit in a few hundred bytes, so these bounds only stop runaways."""

    max_message_bytes: int = 1024 * 1024
    max_logs_per_report: int = 1000
    max_trial_name: int = 253  # a Kubernetes object name
    max_metric_name: int = 255  # Katib's observation_logs.metric_name column
    max_value: int = 64  # Trainer's metric values; a float's repr needs at most 24


class DBManagerNotStartedError(WonderlandError):
    """A trial injection was asked for before the DB manager listens (the platform starts
    its controllers before its services): ask again once it has started."""


@runtime_checkable
class ObservationLogDeleter(Protocol):
    """An :class:`ObservationLogStore` that can also forget a trial's log
    (``DeleteObservationLog``); without it the RPC answers UNIMPLEMENTED."""

    def delete(self, trial_name: str) -> None:
        """Remove every log of ``trial_name``; UnknownTrialError if no such trial."""
        ...


def _abort(code: StatusCode, message: str) -> RpcAbort:
    return RpcAbort(code, message)


def _go_time(when: datetime) -> str:
    """``when`` as Go's ``time.RFC3339Nano`` writes it in UTC (what Katib's DB manager returns)."""
    when = when.astimezone(UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if when.microsecond:
        text += "." + f"{when.microsecond:06d}".rstrip("0")
    return text + "Z"


class DBManagerServicer:
    """``api.v1.beta1.DBManager`` as a thin adapter: it checks and translates requests, calls
    the :class:`ObservationLogStore` and maps its errors to gRPC status codes."""

    def __init__(self, store: ObservationLogStore, limits: PushLimits | None = None) -> None:
        self.store = store
        self.limits = limits or PushLimits()

    async def ReportObservationLog(self, request: Any, context: ServicerContext) -> Any:
        trial = self._trial(request.trial_name)
        entries = request.observation_log.metric_logs
        if len(entries) > self.limits.max_logs_per_report:
            raise _abort(
                StatusCode.RESOURCE_EXHAUSTED,
                f"observation_log.metric_logs has {len(entries)} entries; at most "
                f"{self.limits.max_logs_per_report} are taken per call: report in batches",
            )
        logs = [self._metric_log(i, entry) for i, entry in enumerate(entries)]
        try:
            self.store.report(trial, logs)
        except UnknownTrialError as exc:
            raise self._not_found(trial, exc) from None
        return api_pb2.ReportObservationLogReply()

    async def GetObservationLog(self, request: Any, context: ServicerContext) -> Any:
        trial = self._trial(request.trial_name)
        start = self._time("start_time", request.start_time)
        end = self._time("end_time", request.end_time)
        try:
            logs = self.store.get(trial, request.metric_name or None, start, end)
        except UnknownTrialError as exc:
            raise self._not_found(trial, exc) from None
        return api_pb2.GetObservationLogReply(
            observation_log=api_pb2.ObservationLog(
                metric_logs=[
                    api_pb2.MetricLog(
                        time_stamp=_go_time(entry.timestamp),
                        metric=api_pb2.Metric(name=entry.name, value=entry.value),
                    )
                    for entry in logs
                ]
            )
        )

    async def DeleteObservationLog(self, request: Any, context: ServicerContext) -> Any:
        trial = self._trial(request.trial_name)
        if not isinstance(self.store, ObservationLogDeleter):
            raise _abort(
                StatusCode.UNIMPLEMENTED,
                "DeleteObservationLog: this platform drops a trial's observation log with "
                "the Trial; delete the Trial instead",
            )
        try:
            self.store.delete(trial)
        except UnknownTrialError as exc:
            raise self._not_found(trial, exc) from None
        return api_pb2.DeleteObservationLogReply()

    # -- checks ------------------------------------------------------------------------

    def _trial(self, name: str) -> str:
        if not name:
            raise _abort(
                StatusCode.INVALID_ARGUMENT,
                f"trial_name is empty: report_metrics sends ${TRIAL_NAME_ENV}, which the "
                "Trial controller sets in the trial's primary container; run the code as a "
                "Trial (or set it to the Trial's name)",
            )
        if len(name) > self.limits.max_trial_name:
            raise _abort(
                StatusCode.INVALID_ARGUMENT,
                f"trial_name is {len(name)} characters long; a Trial's name has at most "
                f"{self.limits.max_trial_name}",
            )
        return name

    def _metric_log(self, i: int, entry: Any) -> MetricLog:
        where = f"observation_log.metric_logs[{i}]"
        name, value = entry.metric.name, entry.metric.value
        if not name:
            raise _abort(StatusCode.INVALID_ARGUMENT, f"{where}.metric.name is empty")
        if len(name) > self.limits.max_metric_name:
            raise _abort(
                StatusCode.INVALID_ARGUMENT,
                f"{where}.metric.name is {len(name)} characters long; at most "
                f"{self.limits.max_metric_name} are kept",
            )
        if len(value) > self.limits.max_value or not (
            value == UNAVAILABLE or _NUMBER.fullmatch(value)
        ):
            shown = value if len(value) <= 80 else value[:80] + "..."
            raise _abort(
                StatusCode.INVALID_ARGUMENT,
                f'{where}.metric.value "{shown}" of metric "{name}" is not a number: report '
                f'a float such as 0.25 (or "{UNAVAILABLE}"), at most {self.limits.max_value} '
                "characters",
            )
        when = parse_time(entry.time_stamp)
        if when is None:
            raise _abort(
                StatusCode.INVALID_ARGUMENT,
                f'{where}.time_stamp "{entry.time_stamp[:80]}" is not an RFC 3339 time; send '
                "e.g. 2025-10-30T12:00:00Z",
            )
        return MetricLog(timestamp=when, name=name, value=value)

    def _time(self, field: str, text: str) -> datetime | None:
        if not text:
            return None
        when = parse_time(text)
        if when is None:
            raise _abort(
                StatusCode.INVALID_ARGUMENT,
                f'{field} "{text[:80]}" is not an RFC 3339 time; send e.g. 2025-10-30T12:00:00Z '
                "or leave it empty",
            )
        return when

    @staticmethod
    def _not_found(trial: str, exc: UnknownTrialError) -> RpcAbort:
        detail = f" ({exc})" if str(exc) else ""
        return _abort(
            StatusCode.NOT_FOUND,
            f'trial "{trial}" does not exist{detail}: ${TRIAL_NAME_ENV} must name a Trial '
            "that exists; list them with 'wonderland get trials -A'",
        )


# -- what a trial's primary container needs ---------------------------------------------


@dataclass(frozen=True)
class TrialInjection:
    """The environment, volume and mount that make ``kubeflow.katib.report_metrics`` of a
    trial's primary container reach the DB manager unchanged."""

    env: tuple[EnvVar, ...]
    volume: Volume
    volume_mount: VolumeMount

    def apply_to_pod_spec(self, pod_spec: dict[str, Any], container_name: str) -> None:
        """Add everything to ``pod_spec`` (a raw PodSpec, e.g. a Job's
        ``spec.template.spec``) for its container ``container_name``; variables of the same
        name are replaced. A volume the pod already mounts at the namespace directory stays."""
        containers = pod_spec.get("containers") or []
        container = next((c for c in containers if c.get("name") == container_name), None)
        if container is None:
            names = ", ".join(str(c.get("name")) for c in containers) or "(none)"
            raise InvalidError(
                "spec.trialTemplate.primaryContainerName",
                f'"{container_name}" is not a container of the trial\'s pod (containers: '
                f"{names}); name the container that runs the training code",
            )
        ours = {e.name for e in self.env}
        env = [e for e in container.get("env") or [] if e.get("name") not in ours]
        container["env"] = env + [e.model_dump(exclude_none=True) for e in self.env]
        mounts = container.get("volumeMounts") or []
        if any(str(m.get("mountPath", "")).rstrip("/") == NAMESPACE_DIR for m in mounts):
            return
        container["volumeMounts"] = [*mounts, self.volume_mount.model_dump(exclude_none=True)]
        volumes = [v for v in pod_spec.get("volumes") or [] if v.get("name") != self.volume.name]
        pod_spec["volumes"] = [*volumes, self.volume.model_dump(exclude_none=True)]

    def apply_to_trainjob(self, trainjob: dict[str, Any], job: str = "node") -> None:
        """Add everything to a raw TrainJob (a TrainJob trial): the variables to
        ``spec.trainer.env`` (Trainer refuses env in runtimePatches for ``node``), the
        volume and mount as a ``runtimePatches`` entry for the trainer's ``node`` container."""
        spec = trainjob.setdefault("spec", {})
        trainer = spec.get("trainer")
        if not isinstance(trainer, dict):
            trainer = spec["trainer"] = {}
        ours = {e.name for e in self.env}
        env = [e for e in trainer.get("env") or [] if e.get("name") not in ours]
        trainer["env"] = env + [e.model_dump(exclude_none=True) for e in self.env]
        pod = {
            "volumes": [self.volume.model_dump(exclude_none=True)],
            "containers": [
                {"name": "node", "volumeMounts": [self.volume_mount.model_dump(exclude_none=True)]}
            ],
        }
        patch = {
            "manager": PATCH_MANAGER,
            "trainingRuntimeSpec": {
                "template": {
                    "spec": {
                        "replicatedJobs": [
                            {"name": job, "template": {"spec": {"template": {"spec": pod}}}}
                        ]
                    }
                }
            },
        }
        patches = [p for p in spec.get("runtimePatches") or [] if p.get("manager") != PATCH_MANAGER]
        spec["runtimePatches"] = [*patches, patch]


class PushCollectorAccess(Protocol):
    """The seam the Trial controller calls for each trial whose ``metricsCollectorSpec``
    is ``Push``: what to add to the trial's primary container so that
    ``kubeflow.katib.report_metrics`` there reaches this platform's DB manager."""

    def trial_injection(self, trial_name: str) -> TrialInjection:
        """The injection for the Trial ``trial_name`` (its ``KATIB_TRIAL_NAME``);
        :class:`DBManagerNotStartedError` while the server is not listening yet."""
        ...


# -- the server --------------------------------------------------------------------------


class DBManagerServer:
    """The DB manager on ``host:port``: gRPC (h2c) directly, and inside ``CONNECT`` tunnels
    to ``katib-db-manager.kubeflow:6789``; other ``CONNECT`` targets go to ``upstream_proxy()``
    (the gateway's URL, or "" for none). A platform service: ``start()``/``stop()``."""

    def __init__(
        self,
        store: ObservationLogStore,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: PushLimits | None = None,
        upstream_proxy: Callable[[], str] | None = None,
        on_listening: Callable[[str], None] | None = None,
    ) -> None:
        self.limits = limits or PushLimits()
        self.on_listening = on_listening
        self.methods = service_methods(DB_MANAGER, DBManagerServicer(store, self.limits))
        self.host = host
        self.port = port
        self.upstream_proxy = upstream_proxy or (lambda: "")
        self.grpc_connections: set[GrpcConnection] = set()
        self.open: set[asyncio.BaseTransport] = set()  # sniffing or relaying
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        """``host:port`` for clients on this machine (a wildcard bind answers on loopback)."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    @property
    def proxy_url(self) -> str:
        return f"http://{self.address}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Front(self), self.host, self.port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("Katib DB manager (Push collector) on %s", self.address)
        if self.on_listening is not None:
            self.on_listening(self.address)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.grpc_connections):
            conn.shutdown()
        for conn in list(self.grpc_connections):
            conn.abort()
        for transport in list(self.open):
            transport.close()
        self.open.clear()
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout=1.0)
            self._server = None

    def trial_injection(self, trial_name: str) -> TrialInjection:
        """See :class:`PushCollectorAccess`; valid once the server has started."""
        if not self.port:
            raise DBManagerNotStartedError(
                "Katib's DB manager has no port yet: start() it first (the platform starts "
                "it with its services)"
            )
        loopback = "127.0.0.1,localhost,::1"
        env = (
            EnvVar(name=TRIAL_NAME_ENV, value=trial_name),
            # grpcio reads grpc_proxy before https_proxy/http_proxy, and no_grpc_proxy
            # before no_proxy
            EnvVar(name="grpc_proxy", value=self.proxy_url),
            EnvVar(name="no_grpc_proxy", value=loopback),
        )
        volume = Volume(
            name=NAMESPACE_VOLUME,
            downwardAPI=DownwardAPIVolumeSource(
                items=[
                    DownwardAPIVolumeFile(
                        path="namespace", fieldRef=FieldSelector(fieldPath="metadata.namespace")
                    )
                ]
            ),
        )
        mount = VolumeMount(name=NAMESPACE_VOLUME, mountPath=NAMESPACE_DIR, readOnly=True)
        return TrialInjection(env=env, volume=volume, volume_mount=mount)

    # -- connections -------------------------------------------------------------------

    def serve_grpc(self, transport: asyncio.Transport, rest: bytes) -> None:
        conn = GrpcConnection(
            self.methods, self.limits.max_message_bytes, None, self.grpc_connections.discard
        )
        self.grpc_connections.add(conn)
        transport.set_protocol(conn)
        conn.connection_made(transport)
        if rest:
            conn.data_received(rest)


def _refuse(transport: asyncio.Transport, status: int, reason: str, message: str) -> None:
    body = message.encode() + b"\n"
    transport.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    transport.close()


class _Front(asyncio.Protocol):
    """A new connection until its first bytes say what it is: the HTTP/2 preface (gRPC),
    or a ``CONNECT`` request head."""

    def __init__(self, server: DBManagerServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.timer: asyncio.TimerHandle | None = None
        self.done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport; uvloop's (the daemon's loop) do not subclass asyncio.Transport.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        self.server.open.add(transport)
        self.timer = asyncio.get_running_loop().call_later(_HEAD_TIMEOUT, transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()

    def _finish(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None:
            self.server.open.discard(self.transport)
        self.done = True

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or self.done:
            return
        self.buf += data
        buf = self.buf
        if buf.startswith(_PREFACE[:14]):
            self._finish()
            self.server.serve_grpc(transport, buf)
        elif buf.startswith(_CONNECT):
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if sep:
                self._finish()
                self._connect(transport, head, rest)
            elif len(buf) > _MAX_HEAD:
                self._finish()
                _refuse(transport, 431, "Request Header Fields Too Large", "CONNECT head too large")
        elif not (_PREFACE.startswith(buf[:14]) or _CONNECT.startswith(buf[:8])):
            self._finish()
            _refuse(
                transport,
                400,
                "Bad Request",
                "this is Katib's DB manager: it speaks gRPC (HTTP/2 cleartext) and HTTP CONNECT "
                f"to {DB_MANAGER_ADDRESS}",
            )

    def _connect(self, transport: asyncio.Transport, head: bytes, rest: bytes) -> None:
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        target = parts[1] if len(parts) == 3 else ""
        host, sep, port = target.rpartition(":")
        host = host.lower().rstrip(".")
        if not sep or not host or not port.isdigit():
            _refuse(
                transport,
                400,
                "Bad Request",
                f"malformed CONNECT target {target!r}: give host:port, e.g. {DB_MANAGER_ADDRESS}",
            )
            return
        if host in DB_MANAGER_HOSTS and int(port) == DB_MANAGER_PORT:
            transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.server.serve_grpc(transport, rest)
            return
        upstream = self.server.upstream_proxy()
        if not upstream:
            _refuse(
                transport,
                403,
                "Forbidden",
                f"CONNECT to {target!r} refused: this proxy only reaches Katib's DB manager "
                f"({DB_MANAGER_ADDRESS}) and the platform has no gateway to pass other hosts to",
            )
            return
        _Relay.open(self.server, transport, upstream, head + b"\r\n\r\n" + rest)


class _Pipe(asyncio.Protocol):
    """One direction of a relay: what arrives is written to ``peer``."""

    def __init__(self, server: DBManagerServer, peer: asyncio.Transport | None = None) -> None:
        self.server = server
        self.peer = peer
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport; uvloop's (the daemon's loop) do not subclass asyncio.Transport.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        self.server.open.add(transport)

    def data_received(self, data: bytes) -> None:
        if self.peer is not None:
            self.peer.write(data)

    def eof_received(self) -> bool | None:
        if self.peer is not None and self.peer.can_write_eof():
            self.peer.write_eof()
            return True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.server.open.discard(self.transport)
        if self.peer is not None:
            self.peer.close()

    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.resume_reading()


class _Relay:
    """Passes a ``CONNECT`` for another host, bytes unchanged, to the upstream proxy."""

    @staticmethod
    def open(
        server: DBManagerServer, client: asyncio.Transport, upstream: str, first: bytes
    ) -> None:
        url = urlsplit(upstream)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        client.pause_reading()
        inbound = _Pipe(server)
        client.set_protocol(inbound)
        inbound.connection_made(client)

        async def dial() -> None:
            try:
                transport, _ = await asyncio.get_running_loop().create_connection(
                    lambda: _Pipe(server, client), host, port
                )
            except OSError as exc:
                inbound.peer = None
                _refuse(client, 502, "Bad Gateway", f"the gateway at {upstream} is down: {exc}")
                return
            inbound.peer = transport
            transport.write(first)
            if not client.is_closing():
                client.resume_reading()

        task = asyncio.get_running_loop().create_task(dial())
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)


def install_push_collector(platform: Platform, store: ObservationLogStore) -> DBManagerServer:
    """Serve Katib's DB manager over ``store`` while the platform runs (bound to the
    platform's ``bind`` address, port ``katib_db_manager_port``, 0 for a free one) and
    provide it as :class:`PushCollectorAccess` for the Trial controller."""
    kubelet = platform.get(Kubelet)
    settings = platform.settings

    def upstream() -> str:
        return kubelet.env.get("grpc_proxy", "") if kubelet is not None else ""

    def publish(address: str) -> None:
        # for the banner and daemon.json: clients outside trials (get_trial_metrics) need it
        platform.info[INFO_KEY] = address

    server = DBManagerServer(
        store,
        host=settings.bind,
        port=settings.katib_db_manager_port,
        upstream_proxy=upstream,
        on_listening=publish,
    )
    platform.add_service(server)
    platform.provide(PushCollectorAccess, server)  # type: ignore[type-abstract]
    return server
