"""A Component whose client library is an extra that is not installed is refused with the
command that installs it (the libraries are extras: ``wonderland[redis]``, ...)."""

from __future__ import annotations

import sys

import pytest

from wonderland.dapr.components import EXTRAS, component_class, create_component
from wonderland.dapr.components.base import ComponentContext
from wonderland.dapr.errors import ComponentConfigError

CASES = [
    ("state.redis", "redis", "redis"),
    ("pubsub.redis", "redis", "redis"),
    ("configuration.redis", "hiredis", "redis"),
    ("state.postgresql", "asyncpg", "postgres"),
    ("configuration.postgresql", "asyncpg", "postgres"),
    ("pubsub.rabbitmq", "aio_pika", "rabbitmq"),
    ("pubsub.jetstream", "nats", "nats"),
    ("pubsub.mqtt3", "aiomqtt", "mqtt"),
]


def _hide(monkeypatch: pytest.MonkeyPatch, library: str) -> None:
    """Make ``library`` (and the components that import it) look not installed."""
    for name in list(sys.modules):
        if (
            name == library
            or name.startswith(library + ".")
            or (
                name.startswith("wonderland.dapr.components.")
                and name.rpartition(".")[2]
                not in {
                    "base",
                    "__init__",
                }
            )
        ):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, library, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(("component_type", "library", "extra"), CASES)
def test_a_missing_client_library_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, component_type: str, library: str, extra: str
) -> None:
    _hide(monkeypatch, library)
    with pytest.raises(ComponentConfigError) as err:
        create_component("store", component_type, "v1", {}, ComponentContext("app"))
    message = str(err.value)
    assert f"component type {component_type!r} needs the {library!r} client library" in message
    assert f"pip install 'wonderland[{extra}]'" in message


def test_every_type_with_a_client_library_names_its_extra() -> None:
    assert {t for t, _, _ in CASES} == set(EXTRAS)


def test_embedded_components_need_no_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for library in ("redis", "asyncpg", "aio_pika", "nats", "aiomqtt"):
        _hide(monkeypatch, library)
    for component_type in ("state.sqlite", "state.in-memory", "pubsub.in-memory"):
        assert component_class(component_type).__name__
