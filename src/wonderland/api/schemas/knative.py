"""Knative Serving v1: Service, Configuration, Revision, Route."""

from __future__ import annotations

from typing import Any

from wonderland.api.schemas._base import AnyMap, Schema, StringMap
from wonderland.api.schemas.core import Container, Volume

__all__ = ["ConfigurationObject", "RevisionObject", "RouteObject", "ServiceObject"]


class RevisionSpec(Schema):
    containers: list[Container]
    volumes: list[Volume] | None = None
    containerConcurrency: int | None = None
    timeoutSeconds: int | None = None
    responseStartTimeoutSeconds: int | None = None
    idleTimeoutSeconds: int | None = None
    serviceAccountName: str | None = None
    automountServiceAccountToken: bool | None = None
    enableServiceLinks: bool | None = None


class TemplateMeta(Schema):
    name: str | None = None
    generateName: str | None = None
    labels: StringMap | None = None
    annotations: StringMap | None = None


class RevisionTemplate(Schema):
    metadata: TemplateMeta | None = None
    spec: RevisionSpec


class TrafficTarget(Schema):
    tag: str | None = None
    revisionName: str | None = None
    configurationName: str | None = None
    latestRevision: bool | None = None
    percent: int | None = None
    url: str | None = None


class ConfigurationSpec(Schema):
    template: RevisionTemplate


class ServiceSpec(Schema):
    template: RevisionTemplate
    traffic: list[TrafficTarget] | None = None


class RouteSpec(Schema):
    traffic: list[TrafficTarget] | None = None


class _TopLevel(Schema):
    apiVersion: str
    kind: str
    metadata: AnyMap
    status: Any = None


class ServiceObject(_TopLevel):
    spec: ServiceSpec


class ConfigurationObject(_TopLevel):
    spec: ConfigurationSpec


class RevisionObject(_TopLevel):
    spec: RevisionSpec


class RouteObject(_TopLevel):
    spec: RouteSpec | None = None
