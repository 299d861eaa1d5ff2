"""Katib's Push metrics collector: the DB manager's gRPC API over an observation log.

The real ``kubeflow.katib.report_metrics`` (from ``.venv-katib``) runs in a trial-like pod
with the Trial controller's injection and reaches the server as
``katib-db-manager.kubeflow:6789``; gRPC-level tests cover the status codes and limits.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from _support.daemon import wait_until
from _support.katib_sdk import katib_python

from wonderland.platform import Platform
from wonderland.runtime.kubelet import Kubelet
from wonderland.runtime.logs import LogOptions
from wonderland.settings import Settings
from wonderland.tuning._katib_api import api_pb2
from wonderland.tuning._katib_api._generated import api_pb2_grpc
from wonderland.tuning.observations import MetricLog, UnknownTrialError
from wonderland.tuning.push import (
    DB_MANAGER_ADDRESS,
    DBManagerServer,
    PushCollectorAccess,
    PushLimits,
    install_push_collector,
)


class MemoryObservationLog:
    """An in-memory ObservationLogStore over a fixed set of trials."""

    def __init__(self, *trials: str) -> None:
        self.logs: dict[str, list[MetricLog]] = {t: [] for t in trials}

    def report(self, trial_name: str, logs: Sequence[MetricLog]) -> None:
        if trial_name not in self.logs:
            raise UnknownTrialError(f"no Trial named {trial_name}")
        self.logs[trial_name].extend(logs)

    def get(
        self,
        trial_name: str,
        metric_name: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[MetricLog]:
        if trial_name not in self.logs:
            raise UnknownTrialError(f"no Trial named {trial_name}")
        return sorted(
            (
                m
                for m in self.logs[trial_name]
                if (metric_name is None or m.name == metric_name)
                and (start is None or m.timestamp >= start)
                and (end is None or m.timestamp <= end)
            ),
            key=lambda m: m.timestamp,
        )


class DeletingObservationLog(MemoryObservationLog):
    def delete(self, trial_name: str) -> None:
        if trial_name not in self.logs:
            raise UnknownTrialError(f"no Trial named {trial_name}")
        self.logs[trial_name] = []


@pytest.fixture
async def log_store() -> MemoryObservationLog:
    return MemoryObservationLog("trial-a", "trial-b")


@pytest.fixture
async def server(log_store: MemoryObservationLog) -> AsyncIterator[DBManagerServer]:
    srv = DBManagerServer(log_store, limits=PushLimits(max_logs_per_report=5))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def stub(server: DBManagerServer) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield api_pb2_grpc.DBManagerStub(channel)


def report(trial: str, *metrics: tuple[str, str, str]) -> Any:
    return api_pb2.ReportObservationLogRequest(
        trial_name=trial,
        observation_log=api_pb2.ObservationLog(
            metric_logs=[
                api_pb2.MetricLog(time_stamp=ts, metric=api_pb2.Metric(name=n, value=v))
                for ts, n, v in metrics
            ]
        ),
    )


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


# -- the real SDK in a pod ----------------------------------------------------------------


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[Platform, MemoryObservationLog]]:
    """Pods run by the kubelet, with the DB manager installed as tuning installs it."""
    settings = Settings(home=tmp_path / "home", gateway_port=0, api_port=0, backoff_seconds=0.2)
    platform = Platform.open(settings)
    platform.install_plugins(("wonderland.workloads",))
    log_store = MemoryObservationLog("mnist-random-abc123")
    install_push_collector(platform, log_store)
    await platform.start()
    try:
        yield platform, log_store
    finally:
        await platform.stop()
        platform.store.close()


SDK_SCRIPT = """
from kubeflow.katib import report_metrics
report_metrics({"loss": 0.25, "accuracy": 0.875})
print("reported")
"""


def trial_pod(platform: Platform, pod: str, trial: str, python: Path) -> dict[str, Any]:
    access = platform.require(PushCollectorAccess)  # type: ignore[type-abstract]
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [{"name": "training", "image": "python", "command": [str(python)]}],
    }
    spec["containers"][0]["args"] = ["-c", SDK_SCRIPT]
    access.trial_injection(trial).apply_to_pod_spec(spec, "training")
    return platform.store.create(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod}, "spec": spec}
    )


async def finished(platform: Platform, pod: str) -> tuple[str, str]:
    def phase() -> str:
        status = platform.store.get("pods", "default", pod).get("status") or {}
        return (
            str(status.get("phase", "")) if status.get("phase") in ("Succeeded", "Failed") else ""
        )

    result = await wait_until(phase, 60, f"pod {pod} to finish")
    kubelet = platform.require(Kubelet)
    text = kubelet.read_log("default", pod, "training", False, LogOptions()).decode()
    return result, text


async def test_report_metrics_of_the_katib_sdk_reaches_the_platform_from_a_trial_pod(
    node: tuple[Platform, MemoryObservationLog],
) -> None:
    python = katib_python()
    platform, log_store = node
    before = datetime.now(UTC).replace(microsecond=0)
    trial_pod(platform, "trial-pod", "mnist-random-abc123", python)
    phase, output = await finished(platform, "trial-pod")
    assert phase == "Succeeded", output
    assert "reported" in output
    logs = log_store.logs["mnist-random-abc123"]
    assert {(m.name, m.value) for m in logs} == {("loss", "0.25"), ("accuracy", "0.875")}
    assert all(before <= m.timestamp <= datetime.now(UTC) for m in logs)


async def test_report_metrics_for_a_trial_that_does_not_exist_fails_with_the_reason(
    node: tuple[Platform, MemoryObservationLog],
) -> None:
    python = katib_python()
    platform, log_store = node
    trial_pod(platform, "stray-pod", "no-such-trial", python)
    phase, output = await finished(platform, "stray-pod")
    assert phase == "Failed"
    assert "Unable to push metrics to Katib DB for Trial default/no-such-trial" in output
    assert 'trial "no-such-trial" does not exist' in output
    assert log_store.logs["mnist-random-abc123"] == []


async def test_the_server_runs_with_the_platform_on_the_configured_port(tmp_path: Path) -> None:
    probe = DBManagerServer(MemoryObservationLog())
    await probe.start()
    port = probe.port
    await probe.stop()
    settings = Settings.from_env(
        {"WONDERLAND_KATIB_DB_MANAGER_PORT": str(port)}, home=tmp_path / "home"
    )
    platform = Platform.open(settings)
    server = install_push_collector(platform, MemoryObservationLog("t"))
    await platform.start()
    try:
        assert server.address == f"127.0.0.1:{port}"
        # published for the banner and daemon.json (clients outside trials need it)
        assert platform.info["katib-db-manager"] == f"127.0.0.1:{port}"
        async with grpc.aio.insecure_channel(server.address) as channel:
            got = await api_pb2_grpc.DBManagerStub(channel).GetObservationLog(
                api_pb2.GetObservationLogRequest(trial_name="t")
            )
        assert list(got.observation_log.metric_logs) == []
    finally:
        await platform.stop()
        platform.store.close()
    with pytest.raises(OSError):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()


# -- gRPC: the API, status codes and limits ------------------------------------------------


async def test_reported_logs_come_back_in_time_order_filtered_as_katib_returns_them(
    stub: Any, log_store: MemoryObservationLog
) -> None:
    await stub.ReportObservationLog(
        report(
            "trial-a",
            ("2025-10-30T12:00:02Z", "loss", "0.5"),
            ("2025-10-30T12:00:01.250Z", "loss", "0.75"),
            ("2025-10-30T12:00:03+01:00", "accuracy", "0.9"),
            ("2025-10-30T12:00:04Z", "loss", "unavailable"),
        )
    )
    assert [m.value for m in log_store.logs["trial-a"]] == ["0.5", "0.75", "0.9", "unavailable"]
    got = await stub.GetObservationLog(
        api_pb2.GetObservationLogRequest(
            trial_name="trial-a",
            metric_name="loss",
            start_time="2025-10-30T12:00:01Z",
            end_time="2025-10-30T12:00:02Z",
        )
    )
    assert [
        (m.time_stamp, m.metric.name, m.metric.value) for m in got.observation_log.metric_logs
    ] == [
        ("2025-10-30T12:00:01.25Z", "loss", "0.75"),
        ("2025-10-30T12:00:02Z", "loss", "0.5"),
    ]
    every = await stub.GetObservationLog(api_pb2.GetObservationLogRequest(trial_name="trial-a"))
    assert [m.time_stamp for m in every.observation_log.metric_logs] == [
        "2025-10-30T11:00:03Z",
        "2025-10-30T12:00:01.25Z",
        "2025-10-30T12:00:02Z",
        "2025-10-30T12:00:04Z",
    ]


async def test_an_unknown_trial_is_not_found(stub: Any) -> None:
    for call in (
        stub.ReportObservationLog(report("ghost", ("2025-10-30T12:00:00Z", "loss", "1"))),
        stub.GetObservationLog(api_pb2.GetObservationLogRequest(trial_name="ghost")),
    ):
        err = await refused(call)
        assert err.code() == grpc.StatusCode.NOT_FOUND
        assert 'trial "ghost" does not exist' in (err.details() or "")
        assert "wonderland get trials -A" in (err.details() or "")


@pytest.mark.parametrize(
    ("trial", "entry", "says"),
    [
        ("", ("2025-10-30T12:00:00Z", "loss", "1"), "trial_name is empty"),
        ("trial-a", ("2025-10-30T12:00:00Z", "loss", "high"), 'metric_logs[0].metric.value "high"'),
        ("trial-a", ("2025-10-30T12:00:00Z", "loss", "True"), 'of metric "loss" is not a number'),
        ("trial-a", ("2025-10-30T12:00:00Z", "", "1"), "metric_logs[0].metric.name is empty"),
        ("trial-a", ("yesterday", "loss", "1"), 'time_stamp "yesterday" is not an RFC 3339'),
        ("trial-a", ("", "loss", "1"), 'time_stamp "" is not an RFC 3339'),
        ("trial-a", ("2025-10-30T12:00:00Z", "loss", "1" * 65), "at most 64 characters"),
    ],
)
async def test_bad_reports_are_invalid_arguments_and_store_nothing(
    stub: Any, log_store: MemoryObservationLog, trial: str, entry: tuple[str, str, str], says: str
) -> None:
    good = ("2025-10-30T12:00:00Z", "loss", "0.1")
    err = await refused(stub.ReportObservationLog(report(trial, good, entry)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert says.replace("[0]", "[1]") in (err.details() or "")
    assert log_store.logs["trial-a"] == []


async def test_a_bad_time_window_is_an_invalid_argument(stub: Any) -> None:
    err = await refused(
        stub.GetObservationLog(
            api_pb2.GetObservationLogRequest(trial_name="trial-a", start_time="noon")
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert 'start_time "noon" is not an RFC 3339 time' in (err.details() or "")


async def test_limits_on_logs_per_call_and_message_size(
    stub: Any, log_store: MemoryObservationLog
) -> None:
    six = [("2025-10-30T12:00:00Z", "loss", str(i)) for i in range(6)]
    err = await refused(stub.ReportObservationLog(report("trial-a", *six)))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "has 6 entries; at most 5 are taken per call" in (err.details() or "")
    huge = report("trial-a", ("2025-10-30T12:00:00Z", "x" * (2 * 1024 * 1024), "1"))
    err = await refused(stub.ReportObservationLog(huge))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert log_store.logs["trial-a"] == []


async def test_delete_and_the_other_services_are_unimplemented_without_a_deleter(
    server: DBManagerServer,
) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = api_pb2_grpc.DBManagerStub(channel)
        err = await refused(
            stub.DeleteObservationLog(api_pb2.DeleteObservationLogRequest(trial_name="trial-a"))
        )
        assert err.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "delete the Trial instead" in (err.details() or "")
        suggestion = api_pb2_grpc.SuggestionStub(channel)
        err = await refused(suggestion.GetSuggestions(api_pb2.GetSuggestionsRequest()))
        assert err.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_delete_clears_the_log_when_the_store_can() -> None:
    log_store = DeletingObservationLog("trial-a")
    log_store.logs["trial-a"].append(MetricLog(datetime.now(UTC), "loss", "1"))
    srv = DBManagerServer(log_store)
    await srv.start()
    try:
        async with grpc.aio.insecure_channel(srv.address) as channel:
            stub = api_pb2_grpc.DBManagerStub(channel)
            await stub.DeleteObservationLog(
                api_pb2.DeleteObservationLogRequest(trial_name="trial-a")
            )
            assert log_store.logs["trial-a"] == []
            err = await refused(
                stub.DeleteObservationLog(api_pb2.DeleteObservationLogRequest(trial_name="x"))
            )
            assert err.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await srv.stop()


# -- the CONNECT tunnel a trial's grpc_proxy opens ------------------------------------------


async def test_the_katib_address_is_served_through_the_proxy(
    server: DBManagerServer, log_store: MemoryObservationLog
) -> None:
    options = [("grpc.http_proxy", server.proxy_url)]
    async with grpc.aio.insecure_channel(DB_MANAGER_ADDRESS, options=options) as channel:
        await api_pb2_grpc.DBManagerStub(channel).ReportObservationLog(
            report("trial-b", ("2025-10-30T12:00:00Z", "loss", "0.3"))
        )
    assert [m.value for m in log_store.logs["trial-b"]] == ["0.3"]


async def connect(server: DBManagerServer, target: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.read(4096), 5)
    writer.close()
    return data


async def test_other_hosts_are_refused_without_a_gateway(server: DBManagerServer) -> None:
    answer = await connect(server, "my-svc.default.svc.cluster.local:80")
    assert answer.startswith(b"HTTP/1.1 403")
    assert b"this proxy only reaches Katib's DB manager" in answer
    assert (await connect(server, "nonsense")).startswith(b"HTTP/1.1 400")


async def test_other_hosts_go_through_the_gateway_unchanged(
    log_store: MemoryObservationLog,
) -> None:
    upstream_seen: list[bytes] = []

    async def gateway(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        upstream_seen.append(head)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        writer.write((await reader.readexactly(4)).upper())
        await writer.drain()
        writer.close()

    fake = await asyncio.start_server(gateway, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{fake.sockets[0].getsockname()[1]}"
    srv = DBManagerServer(log_store, upstream_proxy=lambda: url)
    await srv.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(b"CONNECT my-svc.default.svc:81 HTTP/1.1\r\nHost: x\r\n\r\nping")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    finally:
        await srv.stop()
        fake.close()
    assert upstream_seen == [b"CONNECT my-svc.default.svc:81 HTTP/1.1\r\nHost: x\r\n\r\n"]
    assert answer == b"HTTP/1.1 200 Connection established\r\n\r\nPING"


def test_the_injection_is_what_report_metrics_needs(server: DBManagerServer) -> None:
    spec: dict[str, Any] = {
        "containers": [
            {"name": "sidecar"},
            {"name": "training", "env": [{"name": "KATIB_TRIAL_NAME", "value": "stale"}]},
        ]
    }
    server.trial_injection("t-1").apply_to_pod_spec(spec, "training")
    container = spec["containers"][1]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {
        "KATIB_TRIAL_NAME": "t-1",
        "grpc_proxy": server.proxy_url,
        "no_grpc_proxy": "127.0.0.1,localhost,::1",
    }
    assert container["volumeMounts"] == [
        {
            "name": "katib-push-namespace",
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            "readOnly": True,
        }
    ]
    assert json.dumps(spec["volumes"]).count("metadata.namespace") == 1
    assert "env" not in spec["containers"][0]


async def test_report_metrics_reaches_the_platform_from_a_trainjob_trial(tmp_path: Path) -> None:
    python = katib_python()
    settings = Settings(home=tmp_path / "home", gateway_port=0, api_port=0, backoff_seconds=0.2)
    platform = Platform.open(settings)
    platform.install_plugins(("wonderland.workloads", "wonderland.training"))
    log_store = MemoryObservationLog("tune-iris-x7k2")
    server = install_push_collector(platform, log_store)
    await platform.start()
    try:
        trainjob: dict[str, Any] = {
            "apiVersion": "trainer.kubeflow.org/v1alpha1",
            "kind": "TrainJob",
            "metadata": {"name": "tune-iris-x7k2"},
            "spec": {
                "runtimeRef": {"name": "torch-distributed"},
                "trainer": {"command": [str(python), "-c", SDK_SCRIPT]},
            },
        }
        server.trial_injection("tune-iris-x7k2").apply_to_trainjob(trainjob)
        platform.store.create(trainjob)

        def complete() -> str:
            job = platform.store.get("trainjobs.trainer.kubeflow.org", "default", "tune-iris-x7k2")
            for c in (job.get("status") or {}).get("conditions") or []:
                if c["type"] in ("Complete", "Failed") and c["status"] == "True":
                    return str(c["type"])
            return ""

        assert await wait_until(complete, 90, "the TrainJob to finish") == "Complete"
        assert {(m.name, m.value) for m in log_store.logs["tune-iris-x7k2"]} == {
            ("loss", "0.25"),
            ("accuracy", "0.875"),
        }
    finally:
        await platform.stop()
        platform.store.close()
