from __future__ import annotations

from pathlib import Path

import pytest

from wonderland.api import printing, registry
from wonderland.control.patch import apply_patch, json_patch, merge_patch
from wonderland.errors import ConfigError, InvalidError
from wonderland.settings import Settings


def test_settings_from_env() -> None:
    settings = Settings.from_env(
        {"WONDERLAND_HOME": "/tmp/x", "WONDERLAND_API_PORT": "0", "PATH": "/bin"}
    )
    assert settings.state_dir == Path("/tmp/x")
    assert settings.api_port == 0
    assert settings.gateway_port == 8080


def test_unknown_or_bad_settings_fail_loudly() -> None:
    with pytest.raises(ConfigError, match="unknown setting WONDERLAND_GATEWAY_PROT"):
        Settings.from_env({"WONDERLAND_GATEWAY_PROT": "1"})
    with pytest.raises(ConfigError, match='WONDERLAND_API_PORT="abc" is not a port'):
        Settings.from_env({"WONDERLAND_API_PORT": "abc"})
    with pytest.raises(ConfigError, match="WONDERLAND_LOG_LEVEL"):
        Settings.from_env({"WONDERLAND_LOG_LEVEL": "loud"})


def test_jsonpath_filters_as_crd_columns_use() -> None:
    obj = {
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "RoutesReady", "status": "False"},
            ],
            "components": {
                "predictor": {
                    "traffic": [
                        {"tag": "prev", "percent": 10, "revisionName": "a"},
                        {"latestRevision": True, "percent": 90, "revisionName": "b"},
                    ]
                }
            },
        },
        "metadata": {"labels": {"serving.knative.dev/configuration": "hello"}},
    }
    assert printing.evaluate(obj, ".status.conditions[?(@.type=='Ready')].status") == ["True"]
    path = ".status.components.predictor.traffic[?(@.latestRevision==true)].percent"
    assert printing.evaluate(obj, path) == [90]
    label = ".metadata.labels['serving\\.knative\\.dev/configuration']"
    assert printing.evaluate(obj, label) == ["hello"]
    assert printing.evaluate(obj, ".status.conditions[*].type") == ["Ready", "RoutesReady"]
    assert printing.evaluate(obj, ".status.missing.field") == []


def test_table_render_matches_kubectl_layout() -> None:
    kind = registry.lookup("isvc")
    item = {
        "metadata": {"name": "iris", "creationTimestamp": "2000-01-01T00:00:00Z"},
        "status": {"url": "http://iris", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    table = printing.table(kind, [item])
    narrow = printing.render(table)
    assert narrow[0].split() == ["NAME", "URL", "READY", "PREV", "LATEST", "AGE"]
    assert narrow[1].split()[:3] == ["iris", "http://iris", "True"]
    assert narrow[1].split()[-1].endswith("y")
    wide = printing.render(table, wide=True)
    assert "LATESTREADYREVISION" in wide[0]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (119, "119s"),
        (310, "5m10s"),
        (45 * 60, "45m"),
        (3 * 3600 + 1200, "3h20m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 5 * 3600, "3d5h"),
        (20 * 86400, "20d"),
    ],
)
def test_ages_read_like_kubectl(seconds: int, text: str) -> None:
    assert printing.human_duration(seconds) == text


def test_patches() -> None:
    current = {"data": {"a": "1", "b": "2"}, "metadata": {"name": "x"}}
    assert merge_patch(current, {"data": {"a": None, "c": "3"}})["data"] == {"b": "2", "c": "3"}
    strategic = {"data": {"c": "3"}, "$setElementOrder/data": [], "metadata": {"$patch": "merge"}}
    assert apply_patch("application/strategic-merge-patch+json", current, strategic) == {
        "data": {"a": "1", "b": "2", "c": "3"},
        "metadata": {"name": "x"},
    }
    ops = [
        {"op": "replace", "path": "/data/a", "value": "9"},
        {"op": "add", "path": "/list", "value": [1]},
        {"op": "add", "path": "/list/-", "value": 2},
        {"op": "remove", "path": "/data/b"},
        {"op": "test", "path": "/metadata/name", "value": "x"},
    ]
    assert json_patch(current, ops) == {
        "data": {"a": "9"},
        "metadata": {"name": "x"},
        "list": [1, 2],
    }
    with pytest.raises(InvalidError, match="does not exist"):
        json_patch(current, [{"op": "remove", "path": "/nope"}])
