"""The tracing settings: the mode, the Pods' environment and the sidecar's Configuration."""

from __future__ import annotations

import pytest

from wonderland.dapr.tracing import from_configuration
from wonderland.errors import ConfigError
from wonderland.settings import Settings
from wonderland.tracing.runtime import TracesPodEnv, mode_from_env


def test_the_mode_is_checked_where_it_is_read() -> None:
    assert Settings.from_env({}).tracing == "propagate"
    assert Settings.from_env({"WONDERLAND_TRACING": "propagate"}).tracing == "propagate"
    with pytest.raises(ConfigError, match="on, propagate or off"):
        Settings.from_env({"WONDERLAND_TRACING": "maybe"})
    with pytest.raises(ConfigError, match="WONDERLAND_TRACES_MAX"):
        Settings.from_env({"WONDERLAND_TRACES_MAX": "0"})
    assert mode_from_env({"WONDERLAND_TRACING": "OFF"}) == "off"


class _Collector:
    def __init__(self, mode: str, endpoint: str) -> None:
        self.mode = mode
        self.otlp_endpoint = endpoint


def test_pods_get_the_daemons_endpoint_unless_they_opt_out() -> None:
    env = TracesPodEnv(_Collector("on", "http://127.0.0.1:9090"))
    assert env({}) == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9090",
        "WONDERLAND_TRACING": "on",
    }
    assert env({"monitoring.wonderland.dev/traces": "off"}) == {}
    assert TracesPodEnv(_Collector("propagate", "x"))({})["OTEL_EXPORTER_OTLP_ENDPOINT"] == "x"
    assert TracesPodEnv(_Collector("off", "x"))({}) == {"WONDERLAND_TRACING": "off"}
    assert TracesPodEnv(_Collector("on", ""))({}) == {"WONDERLAND_TRACING": "on"}


def test_the_sidecar_reads_sampling_and_the_exporter_from_its_configuration() -> None:
    env = {"WONDERLAND_TRACING": "on"}
    never = from_configuration("a", {"tracing": {"samplingRate": "0"}}, env)
    assert never.sink is None and never.sampling_rate == 0
    assert not never.start(None).sampled  # new traces are not sampled, headers still flow
    spec = {
        "tracing": {
            "samplingRate": "1",
            "zipkin": {"endpointAddress": "http://127.0.0.1:1/api/v2/spans"},
        }
    }
    exporting = from_configuration("a", spec, env)
    assert exporting.sink is not None and exporting.start(None).sampled
    assert from_configuration("a", None, {"WONDERLAND_TRACING": "on"}).sink is None
    with pytest.raises(ValueError, match="samplingRate"):
        from_configuration("a", {"tracing": {"samplingRate": "lots"}}, env)
    with pytest.raises(ValueError, match="between 0 and 1"):
        from_configuration("a", {"tracing": {"samplingRate": "2"}}, env)


def test_a_missing_otel_extra_is_named_and_leaves_propagation_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import sys

    from wonderland.tracing.runtime import process_sink

    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}
    with caplog.at_level("WARNING", logger="wonderland.tracing"):
        assert process_sink("svc", "on", env) is None
    assert "pip install 'wonderland[otel]'" in caplog.text
    assert process_sink("svc", "propagate", env) is None  # no export asked: no warning either
