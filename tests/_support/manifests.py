"""Manifests several areas' end-to-end tests apply."""

from __future__ import annotations

__all__ = ["SHORT_AUTOSCALER"]

# Knative's idle window shortened (stable window 6 s, grace 1 s) so that a revision
# reaches zero replicas within seconds instead of after a minute.
SHORT_AUTOSCALER = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: config-autoscaler
  namespace: knative-serving
data:
  stable-window: "6s"
  scale-to-zero-grace-period: "1s"
"""
