"""Objects the console benchmarks seed: Knative Services with two revisions each."""

from __future__ import annotations

from wonderland.store import Store


def seed_services(store: Store, count: int = 100) -> list[str]:
    """``count`` Ready Services ``svc-NNN`` (90/10 between two revisions) and their
    Revisions, in the caller's transaction; returns the revision names."""
    revisions: list[str] = []
    for i in range(count):
        name = f"svc-{i:03d}"
        svc = store.create(
            {
                "apiVersion": "serving.knative.dev/v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"template": {"spec": {"containers": [{"image": "x"}]}}},
            }
        )
        svc["status"] = {
            "conditions": [{"type": "Ready", "status": "True"}],
            "url": f"http://{name}.default.127.0.0.1.sslip.io",
            "traffic": [
                {"revisionName": f"{name}-00002", "percent": 90, "latestRevision": True},
                {"revisionName": f"{name}-00001", "percent": 10},
            ],
        }
        store.update_status(svc)
        for n in (1, 2):
            revisions.append(f"{name}-0000{n}")
            store.create(
                {
                    "apiVersion": "serving.knative.dev/v1",
                    "kind": "Revision",
                    "metadata": {
                        "name": f"{name}-0000{n}",
                        "namespace": "default",
                        "labels": {"serving.knative.dev/service": name},
                    },
                    "spec": {"containers": [{"image": "x"}]},
                }
            )
    return revisions
