"""Katib's manager gRPC API (``api.v1.beta1``, ``pkg/apis/manager/v1beta1/api.proto`` of
kubeflow/katib, as in release v0.19.0): the proto, and in ``_generated`` the stubs
``_regenerate.sh`` makes from it (never edited by hand, kept out of lint)."""

from __future__ import annotations

from wonderland.tuning._katib_api._generated import api_pb2

__all__ = ["DB_MANAGER", "api_pb2"]

# The service a Push collector (``kubeflow.katib.report_metrics``) and Katib's collectors call.
DB_MANAGER = api_pb2.DESCRIPTOR.services_by_name["DBManager"]
