"""The one typed settings object; every value can come from a ``WONDERLAND_*`` variable."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from wonderland.errors import ConfigError

__all__ = ["Settings"]

PREFIX = "WONDERLAND_"
# a Prometheus duration (--storage.tsdb.retention.time)
_DURATION = re.compile(r"([0-9]+(ms|s|m|h|d|w|y))+")


PAYLOAD_LIMITS = ("payload_records", "payload_max_bytes", "payload_max_total_bytes")
# whole numbers of at least 1 beside the payload limits
COUNTS = ("metrics_history_series", "gateway_max_body_bytes", "gateway_queue_max_bytes")
TRACE_LIMITS = ("traces_max", "traces_max_bytes")
TRACING_MODES = ("on", "propagate", "off")
PORTS = (
    "api_port",
    "gateway_port",
    "katib_db_manager_port",
    "mlflow_port",
    "metrics_port",
    "prometheus_port",
    "console_port",
)


@dataclass(frozen=True)
class Settings:
    """Platform settings.

    ``home`` (WONDERLAND_HOME): the state directory (store, token, kubeconfig, logs).
    ``api_port`` (WONDERLAND_API_PORT): the HTTPS control API; 0 picks a free port.
    ``gateway_port`` (WONDERLAND_GATEWAY_PORT): where the gateway listens for requests.
    ``gateway_max_body_bytes`` (WONDERLAND_GATEWAY_MAX_BODY_BYTES): the largest request
    body the gateway takes (64 MiB); a larger one is answered 413.
    ``gateway_header_timeout`` (WONDERLAND_GATEWAY_HEADER_TIMEOUT): seconds a client has to
    send a request head, and the longest pause inside a request body (30); past it, 408.
    ``gateway_idle_timeout`` (WONDERLAND_GATEWAY_IDLE_TIMEOUT): seconds a client connection
    may stay open with no request under way (3600, as Envoy's idle_timeout); then it is
    closed (HTTP/2: GOAWAY NO_ERROR first).
    ``gateway_queue_max_bytes`` (WONDERLAND_GATEWAY_QUEUE_MAX_BYTES): request bytes a
    revision's activator queue holds at most (256 MiB; and 10000 requests); past it, 503.
    ``bind`` (WONDERLAND_BIND): the address servers listen on.
    ``domain`` (WONDERLAND_DOMAIN): the domain of service URLs.
    ``log_level`` (WONDERLAND_LOG_LEVEL): debug, info, warning or error.
    ``gpus`` (WONDERLAND_GPUS): the number of ``nvidia.com/gpu`` the node offers, instead
    of what ``nvidia-smi -L`` lists (tests set it; empty: ask nvidia-smi).
    ``cgroups`` (WONDERLAND_CGROUPS): ``auto`` (cgroup v2, then v1, where writable) or
    ``off`` (memory limits by the kubelet's watchdog only).
    ``max_pods`` (WONDERLAND_MAX_PODS): how many pods the node runs at once (the kubelet's
    ``--max-pods``, 110 by default).
    ``backoff_seconds`` (WONDERLAND_BACKOFF_SECONDS): the first delay of a crash-looping
    container's restarts and of a Job's pod re-creations (doubled each time, at most 300 s
    and 600 s); 10, as on a cluster.
    ``katib_db_manager_port`` (WONDERLAND_KATIB_DB_MANAGER_PORT): where Katib's DB manager
    (the ``Push`` metrics collector's gRPC API) listens when tuning is installed; 0 picks a
    free port (trials reach it as ``katib-db-manager.kubeflow:6789`` whatever the port).
    ``mlflow`` (WONDERLAND_MLFLOW): ``auto`` runs MLflow's tracking server as a platform
    component when the ``mlflow`` extra is installed, ``off`` never does.
    ``mlflow_port`` (WONDERLAND_MLFLOW_PORT): where MLflow clients reach it (5000, MLflow's
    default, so they need no configuration); 0 picks a free port.
    ``mlflow_idle_seconds`` (WONDERLAND_MLFLOW_IDLE_SECONDS): how long the tracking server
    stays up with no request before it is stopped (it starts again on the next one).
    ``mlflow_backend_store_uri`` (WONDERLAND_MLFLOW_BACKEND_STORE_URI): its backend store;
    empty: SQLite in ``<home>/mlflow``; ``postgresql://...`` for PostgreSQL.
    ``mlflow_tracking_uri`` (WONDERLAND_MLFLOW_TRACKING_URI): an MLflow server the platform
    uses instead of running its own (runs, ``models:/`` URIs, aliases).
    ``mlflow_poll_seconds`` (WONDERLAND_MLFLOW_POLL_SECONDS): how often InferenceServices
    that follow an alias look it up while the tracking server runs.
    ``metrics_port`` (WONDERLAND_METRICS_PORT): the daemon's monitoring endpoint (its own
    ``/metrics``, ``/federate`` over every Pod's metrics, the metrics history); 9090, where
    Prometheus clients look first; 0 picks a free port.
    ``console_port`` (WONDERLAND_CONSOLE_PORT): the developer console's own loopback port
    (0, the default, picks a free one); the gateway also routes ``console.<domain>`` to it.
    ``metrics_scrape_seconds`` (WONDERLAND_METRICS_SCRAPE_SECONDS): how often the daemon
    scrapes itself and every Pod's metrics into its history (``wonderland top``); 10. The
    history keeps 8640 steps (24 h at 10 s).
    ``metrics_history_series`` (WONDERLAND_METRICS_HISTORY_SERIES): how many derived series
    the history keeps at most (35 KB each); past it the idlest makes room.
    ``payload_records`` (WONDERLAND_PAYLOAD_RECORDS): how many logged calls (request and
    response joined) the payload sink keeps per InferenceService; the oldest go first.
    ``payload_max_bytes`` (WONDERLAND_PAYLOAD_MAX_BYTES): the largest payload the sink
    stores; a larger one is kept as its size only.
    ``payload_max_total_bytes`` (WONDERLAND_PAYLOAD_MAX_TOTAL_BYTES): the payloads the sink
    keeps in all; past it the oldest calls go first.
    ``metrics_legacy`` (WONDERLAND_METRICS_LEGACY): ``on`` (the default) also exports
    Knative's legacy (<= 1.18, OpenCensus) serving metric names at the gateway's
    ``/metrics`` (``revision_request_count``, ``activator_*``, ``autoscaler_*``); ``off``
    exports only the OpenTelemetry names.
    ``prometheus`` (WONDERLAND_PROMETHEUS): ``on`` runs a real Prometheus (Debian's
    ``prometheus``) as a platform component that scrapes the daemon and every Pod
    (``wonderland up --prometheus``); ``off`` (the default) does not.
    ``prometheus_port`` (WONDERLAND_PROMETHEUS_PORT): where it listens (9091, beside the
    monitoring endpoint's 9090); 0 picks a free port.
    ``prometheus_scrape_interval`` (WONDERLAND_PROMETHEUS_SCRAPE_INTERVAL): seconds between
    its scrapes (10).
    ``prometheus_retention`` (WONDERLAND_PROMETHEUS_RETENTION): how long it keeps samples,
    as Prometheus writes durations (``15d``, ``12h``).
    ``tracing`` (WONDERLAND_TRACING): ``propagate`` (the default) continues or starts a
    W3C trace (``traceparent``) for every request at the gateway and the sidecars; ``on``
    also records their spans in the daemon; ``off`` leaves the headers alone.
    ``traces_max`` (WONDERLAND_TRACES_MAX): how many traces the daemon keeps (the newest).
    ``traces_max_bytes`` (WONDERLAND_TRACES_MAX_BYTES): the spans it keeps in all; past
    it the oldest traces go first.
    ``jobset_feature_gates`` (WONDERLAND_JOBSET_FEATURE_GATES): the JobSet controller's
    ``--feature-gates``, e.g. ``RestartJob=true`` (the one alpha gate that works here).
    ``enable_culling`` (WONDERLAND_ENABLE_CULLING), ``cull_idle_time``
    (WONDERLAND_CULL_IDLE_TIME, minutes, 1440) and ``idleness_check_period``
    (WONDERLAND_IDLENESS_CHECK_PERIOD, minutes, 1): the notebook controller's culling
    settings (its ``ENABLE_CULLING``, ``CULL_IDLE_TIME``, ``IDLENESS_CHECK_PERIOD``).
    """

    home: Path = dataclasses.field(default_factory=lambda: Path("~/.wonderland").expanduser())
    api_port: int = 7443
    gateway_port: int = 8080
    gateway_max_body_bytes: int = 64 * 1024 * 1024
    gateway_header_timeout: float = 30.0
    gateway_idle_timeout: float = 3600.0
    gateway_queue_max_bytes: int = 256 * 1024 * 1024
    bind: str = "127.0.0.1"
    domain: str = "127.0.0.1.sslip.io"
    log_level: str = "info"
    gpus: str = ""
    cgroups: str = "auto"
    backoff_seconds: float = 10.0
    max_pods: int = 110
    jobset_feature_gates: str = ""
    katib_db_manager_port: int = 0
    enable_culling: str = "false"
    cull_idle_time: float = 1440.0
    idleness_check_period: float = 1.0
    mlflow: str = "auto"
    mlflow_port: int = 5000
    mlflow_idle_seconds: float = 300.0
    mlflow_backend_store_uri: str = ""
    mlflow_tracking_uri: str = ""
    mlflow_poll_seconds: float = 2.0
    metrics_port: int = 9090
    console_port: int = 0
    metrics_scrape_seconds: float = 10.0
    metrics_history_series: int = 500
    metrics_legacy: str = "on"
    payload_records: int = 1000
    payload_max_bytes: int = 256 * 1024
    payload_max_total_bytes: int = 256 * 1024 * 1024
    prometheus: str = "off"
    prometheus_port: int = 9091
    prometheus_scrape_interval: float = 10.0
    prometheus_retention: str = "15d"
    tracing: str = "propagate"
    traces_max: int = 1000
    traces_max_bytes: int = 64 * 1024 * 1024

    @property
    def state_dir(self) -> Path:
        return self.home

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``WONDERLAND_*`` variables; an unknown variable is an error."""
        env = os.environ if environ is None else environ
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, object] = {}
        for var, raw in env.items():
            if not var.startswith(PREFIX):
                continue
            name = var[len(PREFIX) :].lower()
            if name not in fields:
                known = ", ".join(PREFIX + n.upper() for n in fields)
                raise ConfigError(
                    f"unknown setting {var}; known settings: {known}. Unset it or fix the name."
                )
            values[name] = cls._convert(var, name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "home" in values:
            values["home"] = Path(str(values["home"])).expanduser()
        settings = cls(**values)  # type: ignore[arg-type]
        settings._check()
        return settings

    @staticmethod
    def _convert(var: str, name: str, raw: str) -> object:
        if name == "max_pods":
            try:
                return int(raw)
            except ValueError:
                raise ConfigError(f'{var}="{raw}" is not a number of pods') from None
        if name in PAYLOAD_LIMITS or name in COUNTS or name in TRACE_LIMITS:
            try:
                return int(raw)
            except ValueError:
                raise ConfigError(f'{var}="{raw}" is not a whole number') from None
        if name in PORTS:
            try:
                return int(raw)
            except ValueError:
                raise ConfigError(
                    f'{var}="{raw}" is not a port number; use 1-65535 (or 0)'
                ) from None
        if name in ("cull_idle_time", "idleness_check_period"):
            try:
                return float(raw)
            except ValueError:
                raise ConfigError(f'{var}="{raw}" is not a number of minutes') from None
        if name in (
            "backoff_seconds",
            "mlflow_idle_seconds",
            "mlflow_poll_seconds",
            "prometheus_scrape_interval",
            "metrics_scrape_seconds",
            "gateway_header_timeout",
            "gateway_idle_timeout",
        ):
            try:
                return float(raw)
            except ValueError:
                raise ConfigError(f'{var}="{raw}" is not a number of seconds') from None
        return raw

    def _check(self) -> None:
        for name in PORTS:
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ConfigError(f"WONDERLAND_{name.upper()}={port} is not a port; use 1-65535")
        if self.cgroups not in ("auto", "off"):
            raise ConfigError(f'WONDERLAND_CGROUPS="{self.cgroups}" must be auto or off')
        if self.enable_culling not in ("true", "false"):
            raise ConfigError(
                f'WONDERLAND_ENABLE_CULLING="{self.enable_culling}" must be true or false'
            )
        if self.cull_idle_time <= 0 or self.idleness_check_period <= 0:
            raise ConfigError(
                "WONDERLAND_CULL_IDLE_TIME and WONDERLAND_IDLENESS_CHECK_PERIOD must be more "
                "than 0 minutes"
            )
        if self.max_pods < 1:
            raise ConfigError("WONDERLAND_MAX_PODS must be at least 1")
        if self.tracing not in TRACING_MODES:
            raise ConfigError(f'WONDERLAND_TRACING="{self.tracing}" must be on, propagate or off')
        for name in (*PAYLOAD_LIMITS, *COUNTS, *TRACE_LIMITS):
            if getattr(self, name) < 1:
                raise ConfigError(f"WONDERLAND_{name.upper()} must be at least 1")
        if not 0 < self.gateway_header_timeout <= 3600:
            raise ConfigError(
                "WONDERLAND_GATEWAY_HEADER_TIMEOUT must be more than 0 and at most 3600 seconds"
            )
        if not 0 < self.gateway_idle_timeout <= 86400:
            raise ConfigError(
                "WONDERLAND_GATEWAY_IDLE_TIMEOUT must be more than 0 and at most 86400 seconds"
            )
        if self.backoff_seconds < 0:
            raise ConfigError("WONDERLAND_BACKOFF_SECONDS must not be negative")
        if self.mlflow not in ("auto", "off"):
            raise ConfigError(f'WONDERLAND_MLFLOW="{self.mlflow}" must be auto or off')
        if self.mlflow_idle_seconds <= 0 or self.mlflow_poll_seconds <= 0:
            raise ConfigError(
                "WONDERLAND_MLFLOW_IDLE_SECONDS and WONDERLAND_MLFLOW_POLL_SECONDS must be "
                "more than 0 seconds"
            )
        if self.metrics_legacy not in ("off", "on"):
            raise ConfigError(
                f'WONDERLAND_METRICS_LEGACY="{self.metrics_legacy}" must be on or off'
            )
        if self.prometheus not in ("off", "on"):
            raise ConfigError(f'WONDERLAND_PROMETHEUS="{self.prometheus}" must be off or on')
        if not 0.1 <= self.prometheus_scrape_interval <= 3600:
            raise ConfigError(
                "WONDERLAND_PROMETHEUS_SCRAPE_INTERVAL must be between 0.1 and 3600 seconds"
            )
        if not 0.1 <= self.metrics_scrape_seconds <= 3600:
            raise ConfigError(
                "WONDERLAND_METRICS_SCRAPE_SECONDS must be between 0.1 and 3600 seconds"
            )
        if not _DURATION.fullmatch(self.prometheus_retention):
            raise ConfigError(
                f'WONDERLAND_PROMETHEUS_RETENTION="{self.prometheus_retention}" is not a '
                "Prometheus duration; e.g. 15d, 12h or 1w"
            )
        for name in ("mlflow_backend_store_uri", "mlflow_tracking_uri"):
            value = getattr(self, name)
            if value and "://" not in value:
                raise ConfigError(
                    f'WONDERLAND_{name.upper()}="{value}" is not a URI; e.g. '
                    + (
                        "postgresql://user@127.0.0.1:5432/mlflow"
                        if name == "mlflow_backend_store_uri"
                        else "http://mlflow.example.com:5000"
                    )
                )
        self.jobset_features()
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError(
                f'WONDERLAND_LOG_LEVEL="{self.log_level}" is not a level; '
                "use debug, info, warning or error"
            )

    def jobset_features(self) -> dict[str, bool]:
        """``jobset_feature_gates`` (``RestartJob=true,...``) as a map; ConfigError when
        it names a gate this platform cannot turn on or is not ``NAME=true|false``."""
        gates: dict[str, bool] = {}
        for item in (p.strip() for p in self.jobset_feature_gates.split(",")):
            if not item:
                continue
            name, _, value = item.partition("=")
            if name != "RestartJob" or value.lower() not in ("true", "false"):
                raise ConfigError(
                    f'WONDERLAND_JOBSET_FEATURE_GATES="{self.jobset_feature_gates}": "{item}" '
                    "is not RestartJob=true or RestartJob=false (InPlaceRestart and "
                    "ElasticJobSet cannot be turned on here)"
                )
            gates[name] = value.lower() == "true"
        return gates
