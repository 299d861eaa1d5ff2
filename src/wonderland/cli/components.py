"""``wonderland get componentstatuses`` (``cs``) and ``wonderland describe componentstatus
NAME``, as kubectl names the control plane's component statuses: the platform's
own components (gateway, Katib's DB manager, MLflow's tracking server, the monitoring
endpoint, Prometheus, the console), their URLs and
states, as the running daemon publishes them in ``<home>/daemon.json``.

They are not API objects (no kind in the control API): the daemon rewrites daemon.json when
a component's state changes (MLflow started, stopped when idle), and these commands read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wonderland.errors import ConfigError, NotFoundError

__all__ = ["COMPONENT_KINDS", "Component", "components", "describe_component", "render_table"]

# kubectl's names for the control plane's component statuses; "components" are Dapr's
COMPONENT_KINDS = frozenset({"componentstatuses", "componentstatus", "cs"})

# fields of a component's entry, as `describe` titles them
_DETAILS = (
    ("gateway_url", "Gateway URL"),
    ("direct", "Direct URL"),
    ("cluster_url", "In-cluster URL"),
    ("backend", "Backend store"),
    ("reason", "Reason"),
    ("config", "Config"),
    ("log", "Log"),
)


@dataclass(frozen=True)
class Component:
    name: str
    url: str
    state: str
    details: tuple[tuple[str, str], ...] = ()


def _entry(name: str, value: Any) -> Component | None:
    if isinstance(value, str) and value:
        url = value if "://" in value else f"grpc://{value}"
        return Component(name, url, "running")
    if isinstance(value, Mapping) and isinstance(value.get("state"), str):
        details = tuple(
            (title, str(value[key])) for key, title in _DETAILS if isinstance(value.get(key), str)
        )
        return Component(name, str(value.get("url") or ""), value["state"], details)
    return None


def components(state_dir: Path) -> list[Component]:
    """The components of the daemon on ``state_dir``; ConfigError when none runs."""
    from wonderland.daemon import daemon_info

    info = daemon_info(state_dir)
    if info is None:
        raise ConfigError(
            f"no wonderland daemon is running on {state_dir}; start it with `wonderland up`"
        )
    names = ("gateway", "katib-db-manager", "mlflow", "monitoring", "prometheus", "console")
    found = (_entry(name, info.get(name)) for name in names)
    return [c for c in found if c is not None]


def render_table(items: list[Component]) -> str:
    rows = [("NAME", "URL", "STATE")] + [(c.name, c.url or "<none>", c.state) for c in items]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(f"{r[0]:<{widths[0]}}   {r[1]:<{widths[1]}}   {r[2]}" for r in rows)


def describe_component(items: list[Component], name: str) -> str:
    for c in items:
        if c.name == name:
            lines = [f"Name:   {c.name}", f"URL:    {c.url or '<none>'}", f"State:  {c.state}"]
            lines += [f"{title}:  {value}" for title, value in c.details]
            return "\n".join(lines)
    names = ", ".join(c.name for c in items) or "(none)"
    raise NotFoundError(f'component "{name}" not found; the components here: {names}')
