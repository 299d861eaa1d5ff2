"""Cluster-wide serving settings from the ``knative-serving`` ConfigMaps.

``config-autoscaler``, ``config-defaults``, ``config-domain`` and ``config-features``
in namespace ``knative-serving`` are read the Knative way. The default domain is
``127.0.0.1.sslip.io`` (the platform's ``domain`` setting), as the talk's demo
configures; ``tag-header-based-routing`` is enabled unless ``config-features`` says
``Disabled`` (the demo enables it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from wonderland.autoscaler import AutoscalerConfig
from wonderland.errors import InvalidError

__all__ = ["SYSTEM_NAMESPACE", "ServingConfig"]

SYSTEM_NAMESPACE = "knative-serving"
CONFIG_MAPS = ("config-autoscaler", "config-defaults", "config-domain", "config-features")


def _int(data: Mapping[str, str], key: str, default: int, where: str) -> int:
    raw = data.get(key)
    if raw is None:
        return default
    try:
        return int(str(raw))
    except ValueError:
        raise InvalidError(f"{where}: data.{key}", f"{raw!r} is not a whole number") from None


@dataclass(frozen=True)
class ServingConfig:
    """The cluster-wide serving configuration read from the ``config-*`` ConfigMaps."""

    domain: str = "127.0.0.1.sslip.io"
    domain_selectors: tuple[tuple[str, dict[str, str]], ...] = ()
    autoscaler: AutoscalerConfig = field(default_factory=AutoscalerConfig)
    revision_timeout_seconds: int = 300
    max_revision_timeout_seconds: int = 600
    container_concurrency: int = 0
    container_concurrency_max_limit: int = 1000
    tag_header_routing: bool = True
    features: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_configmaps(
        cls, maps: Mapping[str, Mapping[str, str] | None], default_domain: str
    ) -> ServingConfig:
        """``maps`` is ConfigMap name -> data for the four ``config-*`` maps."""
        domain = default_domain
        selectors: list[tuple[str, dict[str, str]]] = []
        dom = {k: v for k, v in (maps.get("config-domain") or {}).items() if not k.startswith("_")}
        plain = [k for k, v in dom.items() if not str(v).strip()]
        if plain:
            domain = plain[0]
        for key, value in dom.items():
            text = str(value).strip()
            if text.startswith("selector:"):
                labels: dict[str, str] = {}
                for line in text.splitlines()[1:]:
                    if ":" in line:
                        k, _, v = line.strip().partition(":")
                        labels[k.strip()] = v.strip().strip("\"'")
                selectors.append((key, labels))
        if not plain and dom and not selectors:
            domain = next(iter(dom))
        defaults = maps.get("config-defaults") or {}
        where = f"ConfigMap {SYSTEM_NAMESPACE}/config-defaults"
        features = {k: str(v) for k, v in (maps.get("config-features") or {}).items()}
        tag = features.get("tag-header-based-routing", "Enabled").strip().lower()
        cfg = cls(
            domain=domain,
            domain_selectors=tuple(selectors),
            autoscaler=AutoscalerConfig.from_configmap(maps.get("config-autoscaler")),
            revision_timeout_seconds=_int(defaults, "revision-timeout-seconds", 300, where),
            max_revision_timeout_seconds=_int(defaults, "max-revision-timeout-seconds", 600, where),
            container_concurrency=_int(defaults, "container-concurrency", 0, where),
            container_concurrency_max_limit=_int(
                defaults, "container-concurrency-max-limit", 1000, where
            ),
            tag_header_routing=tag != "disabled",
            features=features,
        )
        if cfg.revision_timeout_seconds > cfg.max_revision_timeout_seconds:
            raise InvalidError(
                f"{where}: revision-timeout-seconds ({cfg.revision_timeout_seconds}) is greater "
                f"than max-revision-timeout-seconds ({cfg.max_revision_timeout_seconds})"
            )
        return cfg

    def domain_for(self, labels: Mapping[str, str] | None) -> str:
        labels = labels or {}
        best = ""
        best_len = -1
        for domain, selector in self.domain_selectors:
            if all(labels.get(k) == v for k, v in selector.items()) and len(selector) > best_len:
                best, best_len = domain, len(selector)
        return best or self.domain
