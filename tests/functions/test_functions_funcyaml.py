from __future__ import annotations

from pathlib import Path

import pytest

from wonderland.errors import InvalidError, NotFoundError
from wonderland.functions.funcyaml import load_config, parse_config

GOOD = """\
specVersion: 0.36.0
name: hello
runtime: python
created: 2025-03-01T10:00:00.123456+00:00
invoke: cloudevent
run:
  envs:
  - name: GREETING
    value: hi
  - value: '{{ configMap:settings }}'
deploy:
  namespace: fns
  annotations:
    team: blue
  labels:
  - key: app.kubernetes.io/part-of
    value: shop
  options:
    scale:
      min: 0
      max: 3
      metric: rps
      target: 50
      utilization: 80.5
    resources:
      limits:
        concurrency: 10
        memory: 256Mi
  subscriptions:
  - source: pubsub
    filters:
      topic: orders
"""


def test_a_full_knative_func_yaml_is_accepted_and_kept_as_written() -> None:
    config = parse_config(GOOD)
    assert config.name == "hello"
    assert config.invoke == "cloudevent"
    assert config.namespace == "fns"
    # created stays the exact string Knative wrote, not a datetime
    assert config.data["created"] == "2025-03-01T10:00:00.123456+00:00"
    assert config.scale == {"min": 0, "max": 3, "metric": "rps", "target": 50, "utilization": 80.5}
    assert config.concurrency == 10
    assert config.annotations == {"team": "blue"}
    assert config.run_envs[1] == {"value": "{{ configMap:settings }}"}
    assert config.subscriptions == [{"source": "pubsub", "filters": {"topic": "orders"}}]


def test_unknown_field_names_file_line_and_path() -> None:
    text = GOOD.replace("      metric: rps\n", "      metric: rps\n      speed: 9\n")
    with pytest.raises(InvalidError) as info:
        parse_config(text, source="fn/func.yaml")
    message = str(info.value)
    line = text.splitlines().index("      speed: 9") + 1
    assert f"fn/func.yaml:{line}: deploy.options.scale.speed: unknown field" in message
    assert "known fields here: max, metric, min, target, utilization" in message


def test_wrong_runtime_is_rejected_with_the_fix() -> None:
    with pytest.raises(InvalidError, match=r"runtime: 'go' is not supported.*runtime: python"):
        parse_config(GOOD.replace("runtime: python", "runtime: go"))


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("      min: 0", "      min: -1", "deploy.options.scale.min: must be >= 0"),
        ("      min: 0", "      min: lots", "deploy.options.scale.min: must be an integer"),
        ("      metric: rps", "      metric: cpu", "must be one of concurrency, rps"),
        ("name: hello", "name: Hello_World", "name: 'Hello_World' is not valid"),
        ("invoke: cloudevent", "invoke: grpc", "invoke: must be one of http, cloudevent"),
        ("  annotations:\n    team: blue", "  annotations: [a]", "must be a mapping of strings"),
    ],
)
def test_bad_values_are_reported(old: str, new: str, expected: str) -> None:
    assert old in GOOD
    with pytest.raises(InvalidError) as info:
        parse_config(GOOD.replace(old, new))
    assert expected in str(info.value)


def test_required_fields_and_empty_files() -> None:
    with pytest.raises(InvalidError, match="created: is required"):
        parse_config("specVersion: 0.36.0\nname: x\nruntime: python\n")
    with pytest.raises(InvalidError, match="the file is empty"):
        parse_config("")
    with pytest.raises(InvalidError, match=r"func.yaml:2: not valid YAML"):
        parse_config("name: x\n  bad: [\n")


def test_all_errors_are_reported_at_once() -> None:
    text = GOOD.replace("invoke: cloudevent", "invoke: grpc\ncolour: red")
    with pytest.raises(InvalidError) as info:
        parse_config(text)
    assert "invoke: must be one of" in str(info.value)
    assert "colour: unknown field" in str(info.value)


def test_a_folder_without_func_yaml_is_not_a_function(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"no func.yaml here.*wonderland func create"):
        load_config(tmp_path)
