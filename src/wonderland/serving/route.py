"""Route -> gateway hosts, traffic split, tags and gradual rollout."""

from __future__ import annotations

import math

from wonderland.autoscaler.config import parse_duration
from wonderland.controllers import Result
from wonderland.gateway import HostRoute
from wonderland.serving._common import (
    VISIBILITY,
    Obj,
    _get,
    _ready_of,
    _write_status,
)
from wonderland.serving.conditions import is_true, set_condition
from wonderland.serving.system import (
    CONFIGURATIONS,
    REVISIONS,
    ROUTES,
    Rollout,
    ServingSystem,
)
from wonderland.serving.validation import ROLLOUT_ALIAS, ROLLOUT_DURATION

__all__ = ["RouteReconciler"]


class RouteReconciler:
    """Resolves traffic targets to Ready revisions, programs the gateway's hosts and
    split (with gradual rollout), and reports URLs and per-tag URLs."""

    resource: str = ROUTES
    owns: tuple[str, ...] = ()
    watches: tuple[str, ...] = (REVISIONS, CONFIGURATIONS)

    def __init__(self, system: ServingSystem) -> None:
        self.system = system

    async def reconcile(self, namespace: str, name: str) -> Result | None:
        system = self.system
        route_key = f"{namespace}/{name}"
        route = _get(system, ROUTES, namespace, name)
        if route is None:
            system.table.remove_route(route_key)
            system.reachable.pop(route_key, None)
            for k in [k for k in system.rollouts if k[0] == route_key]:
                del system.rollouts[k]
            return None
        meta = route["metadata"]
        labels = meta.get("labels") or {}
        traffic = (route.get("spec") or {}).get("traffic") or [
            {"configurationName": name, "latestRevision": True, "percent": 100}
        ]
        status = dict(route.get("status") or {})
        conditions = status.get("conditions")
        config = system.config
        # Public URLs name the gateway's port unless it is HTTP's own, so that a URL from
        # `wonderland get ksvc` answers when pasted into curl or a browser. Cluster-local
        # URLs keep port 80, as on a cluster: replicas reach them through the gateway as
        # their HTTP proxy, and host routing ignores the port.
        port = system.gateway.port
        port_suffix = "" if port == 80 else f":{port}"
        domain = config.domain_for(labels)
        cluster_local = labels.get(VISIBILITY) == "cluster-local" or domain == "svc.cluster.local"
        requeue: float | None = None
        resolved: list[tuple[Obj, str]] = []  # (target, revision name)
        missing: tuple[str, str] | None = None
        for t in traffic:
            rev_name = t.get("revisionName")
            if rev_name:
                rev = _get(system, REVISIONS, namespace, rev_name)
                if rev is None:
                    missing = (
                        "RevisionMissing",
                        f'Revision "{rev_name}" referenced in traffic not found.',
                    )
                    break
                if not is_true(rev):
                    rstatus, _, rmsg = _ready_of(rev)
                    reason = "RevisionFailed" if rstatus == "False" else "RevisionMissing"
                    missing = (reason, f'Revision "{rev_name}" is not ready. {rmsg}'.strip())
                    break
                resolved.append((t, rev_name))
                continue
            cfg_name = t.get("configurationName") or name
            cfg = _get(system, CONFIGURATIONS, namespace, cfg_name)
            latest_ready = ((cfg or {}).get("status") or {}).get("latestReadyRevisionName")
            if cfg is None:
                missing = (
                    "ConfigurationMissing",
                    f'Configuration "{cfg_name}" referenced in traffic not found.',
                )
                break
            if not latest_ready:
                cstatus, _, _cmsg = _ready_of(cfg)
                reason = "RevisionFailed" if cstatus == "False" else "RevisionMissing"
                missing = (reason, f'Configuration "{cfg_name}" does not have any ready Revision.')
                break
            resolved.append((t, latest_ready))

        if missing is not None:
            ready_status = "Unknown" if missing[0] == "RevisionMissing" else "False"
            conditions = set_condition(conditions, "AllTrafficAssigned", ready_status, *missing)
            conditions = set_condition(conditions, "Ready", ready_status, *missing)
            _write_status(
                system,
                route,
                {
                    **status,
                    "observedGeneration": meta.get("generation", 1),
                    "conditions": conditions,
                },
            )
            return None

        # Expand configuration targets into (revision, percent) pairs, rolling out gradually
        # when serving.knative.dev/rollout-duration is set.
        annotations = meta.get("annotations") or {}
        raw_duration = annotations.get(ROLLOUT_DURATION, annotations.get(ROLLOUT_ALIAS))
        duration = parse_duration(str(raw_duration), ROLLOUT_DURATION) if raw_duration else 0.0
        prev_latest: dict[str, str] = {}
        for e in status.get("traffic") or []:
            if e.get("latestRevision") and e.get("percent"):
                prev_latest.setdefault(e.get("tag") or "", e["revisionName"])
        entries: list[Obj] = []
        now = system.clock()
        for t, rev_name in resolved:
            percent = int(t.get("percent") or 0)
            tag = t.get("tag") or ""
            latest = bool(t.get("latestRevision", not t.get("revisionName")))
            rk = (route_key, f"{t.get('configurationName') or ''}/{tag}")
            old = prev_latest.get(tag) if latest else None
            rollout = system.rollouts.get(rk)
            if latest and duration > 0 and percent > 0:
                if rollout is not None and rollout.new != rev_name:
                    rollout = None
                if (
                    rollout is None
                    and old
                    and old != rev_name
                    and _get(system, REVISIONS, namespace, old)
                ):
                    rollout = Rollout(old, rev_name, now, duration)
                    system.rollouts[rk] = rollout
            else:
                rollout = None
            if rollout is not None and _get(system, REVISIONS, namespace, rollout.old) is None:
                system.rollouts.pop(rk, None)  # the old revision is gone: finish at once
                rollout = None
            if rollout is not None:
                frac = (now - rollout.started) / rollout.duration
                if frac >= 1:
                    del system.rollouts[rk]
                else:
                    new_pct = max(1, math.floor(percent * frac)) if frac > 0 else 1
                    new_pct = min(new_pct, percent - 1)
                    entries.append(
                        self._entry(
                            rollout.old,
                            percent - new_pct,
                            tag,
                            True,
                            name,
                            namespace,
                            domain,
                            cluster_local,
                            with_tag=False,
                            port_suffix=port_suffix,
                        )
                    )
                    entries.append(
                        self._entry(
                            rev_name,
                            new_pct,
                            tag,
                            True,
                            name,
                            namespace,
                            domain,
                            cluster_local,
                            port_suffix=port_suffix,
                        )
                    )
                    step = max(0.2, rollout.duration / max(percent, 1))
                    requeue = min(requeue or step, step)
                    continue
            entries.append(
                self._entry(
                    rev_name,
                    percent,
                    tag,
                    latest,
                    name,
                    namespace,
                    domain,
                    cluster_local,
                    port_suffix=port_suffix,
                )
            )

        # Program the gateway.
        split: dict[str, int] = {}
        tags: dict[str, str] = {}
        for e in entries:
            split[e["revisionName"]] = split.get(e["revisionName"], 0) + e["percent"]
            if e.get("tag"):
                tags[e["tag"]] = e["revisionName"]
        table = system.table
        targets = [(table.revision(namespace, r), p) for r, p in split.items()]
        tag_targets = {tg: table.revision(namespace, r) for tg, r in tags.items()}
        main = HostRoute(route_key, targets, tag_targets)
        hosts: dict[str, HostRoute] = {}
        local_names = [
            f"{name}.{namespace}.svc.cluster.local",
            f"{name}.{namespace}.svc",
            f"{name}.{namespace}",
        ]
        for h in local_names:
            hosts[h] = main
        if not cluster_local:
            hosts[f"{name}.{namespace}.{domain}"] = main
        for tg, target in tag_targets.items():
            tag_route = HostRoute(route_key, [(target, 100)])
            hosts[f"{tg}-{name}.{namespace}.svc.cluster.local"] = tag_route
            if not cluster_local:
                hosts[f"{tg}-{name}.{namespace}.{domain}"] = tag_route
        table.set_route(route_key, hosts)
        system.reachable[route_key] = {f"{namespace}/{r}" for r in [*split, *tags.values()]}

        host = (
            f"{name}.{namespace}.svc.cluster.local"
            if cluster_local
            else f"{name}.{namespace}.{domain}"
        )
        conditions = set_condition(conditions, "AllTrafficAssigned", "True")
        conditions = set_condition(conditions, "IngressReady", "True")
        conditions = set_condition(
            conditions, "CertificateProvisioned", "True", "TLSNotEnabled", "autoTLS is not enabled"
        )
        conditions = set_condition(conditions, "Ready", "True")
        new_status = {
            "observedGeneration": meta.get("generation", 1),
            "conditions": conditions,
            "url": f"http://{host}" if cluster_local else f"http://{host}{port_suffix}",
            "address": {"url": f"http://{name}.{namespace}.svc.cluster.local"},
            "traffic": entries,
        }
        _write_status(system, route, new_status)
        return Result(requeue_after=requeue) if requeue else None

    @staticmethod
    def _entry(
        rev: str,
        percent: int,
        tag: str,
        latest: bool,
        name: str,
        namespace: str,
        domain: str,
        cluster_local: bool,
        with_tag: bool = True,
        port_suffix: str = "",
    ) -> Obj:
        entry: Obj = {"revisionName": rev, "latestRevision": latest, "percent": percent}
        if tag and with_tag:
            entry["tag"] = tag
            if cluster_local:
                entry["url"] = f"http://{tag}-{name}.{namespace}.svc.cluster.local"
            else:
                entry["url"] = f"http://{tag}-{name}.{namespace}.{domain}{port_suffix}"
        return entry
