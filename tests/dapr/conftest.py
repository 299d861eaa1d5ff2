from __future__ import annotations

from dapr_testing import (  # noqa: F401  (fixtures)
    app_factory,
    basic_resources,
    resources,
    shared_sidecar,
    sidecar_factory,
)
