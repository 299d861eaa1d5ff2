"""The knative-serving ConfigMaps -> the serving configuration."""

from __future__ import annotations

from wonderland.controllers import Result
from wonderland.errors import WonderlandError
from wonderland.serving._common import (
    _get,
    log,
)
from wonderland.serving.config import CONFIG_MAPS, SYSTEM_NAMESPACE, ServingConfig
from wonderland.serving.system import (
    REVISIONS,
    ROUTES,
    SERVICES,
    ServingSystem,
)

__all__ = ["ConfigMapReconciler"]


class ConfigMapReconciler:
    """Reloads ``config-*`` in ``knative-serving`` and re-reconciles what depends on them."""

    resource: str = "configmaps"
    owns: tuple[str, ...] = ()
    watches: tuple[str, ...] = ()

    def __init__(self, system: ServingSystem) -> None:
        self.system = system

    async def reconcile(self, namespace: str, name: str) -> Result | None:
        if namespace != SYSTEM_NAMESPACE or name not in CONFIG_MAPS:
            return None
        system = self.system
        maps: dict[str, dict[str, str] | None] = {}
        for cm in CONFIG_MAPS:
            obj = _get(system, "configmaps", SYSTEM_NAMESPACE, cm)
            maps[cm] = (obj or {}).get("data")
        try:
            config = ServingConfig.from_configmaps(maps, system.platform.settings.domain)
        except WonderlandError as exc:
            log.error("ignoring the serving ConfigMaps: %s", exc)
            return None
        if config == system.config:
            return None
        system.config = config
        system.table.tag_header_routing = config.tag_header_routing
        for resource in (REVISIONS, ROUTES, SERVICES):
            items, _ = system.store.list(resource)
            for obj in items:
                system.controllers.enqueue(
                    resource, obj["metadata"]["namespace"], obj["metadata"]["name"]
                )
        return None
