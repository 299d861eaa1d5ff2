"""The admission seam: checks every object passes before the store keeps it.

The core registers schema and type validation for every kind; other areas register
semantic checks for their kinds (for example the traffic percentages of a Knative
Service must sum to 100)::

    from wonderland.api import admission

    def check_traffic(new: Obj, old: Obj | None) -> None:
        if ...:
            raise InvalidError("spec.traffic", "traffic percentages must sum to 100")

    admission.register("services.serving.knative.dev", check_traffic)

Mutating steps (a cluster's mutating admission webhooks, such as Kubeflow's PodDefault
webhook) register with :func:`register_mutation`: they run on create only, after the
namespace is set and before the object is validated again and stored, and may read other
objects; they raise :class:`wonderland.errors.AdmissionDeniedError` to refuse it.

A check gets the new object and the stored one (``None`` on create) and raises
:class:`wonderland.errors.InvalidError` (field path, message) to refuse it. Checks must
not change the object and must be fast: they run on every write, in the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

__all__ = [
    "AdmissionCheck",
    "Defaulter",
    "LookupCheck",
    "Mutation",
    "Obj",
    "ObjectLister",
    "ObjectReader",
    "admit",
    "apply_defaults",
    "checks_for",
    "has_mutations",
    "mutate",
    "register",
    "register_default",
    "register_lookup",
    "register_mutation",
]

Obj = dict[str, Any]
AdmissionCheck = Callable[[Obj, "Obj | None"], None]
# Fills the fields the API server defaults (a Job's backoffLimit and selector, a pod's
# restartPolicy); runs on create (after uid and timestamps are set) and on update.
Defaulter = Callable[[Obj], None]


class ObjectReader(Protocol):
    """What a check may read: one stored object (NotFoundError when absent)."""

    def get(self, resource: str, namespace: str | None, name: str) -> Obj: ...


LookupCheck = Callable[[Obj, "Obj | None", ObjectReader], None]


class ObjectLister(ObjectReader, Protocol):
    """What a mutating step may read: one object, or the objects of a namespace."""

    def list(self, resource: str | None, namespace: str | None = None) -> tuple[list[Obj], str]: ...


Mutation = Callable[[Obj, ObjectLister], None]

_CHECKS: dict[str, list[AdmissionCheck]] = {}
_LOOKUP_CHECKS: dict[str, list[LookupCheck]] = {}
_DEFAULTS: dict[str, list[Defaulter]] = {}
_MUTATIONS: dict[str, list[Mutation]] = {}


def register_mutation(resource: str, fn: Mutation) -> None:
    """Run ``fn(obj, lister)`` on every create of ``resource``; it changes ``obj`` in place."""
    mutations = _MUTATIONS.setdefault(resource, [])
    if fn not in mutations:
        mutations.append(fn)


def has_mutations(resource: str) -> bool:
    return bool(_MUTATIONS.get(resource))


def mutate(resource: str, obj: Obj, lister: ObjectLister) -> None:
    """Apply every mutating step of ``resource`` to ``obj`` (a create's object)."""
    for fn in _MUTATIONS.get(resource, ()):
        fn(obj, lister)


def register_default(resource: str, fn: Defaulter) -> None:
    """Run ``fn(obj)`` to fill defaults on every create and update of ``resource``."""
    defaults = _DEFAULTS.setdefault(resource, [])
    if fn not in defaults:
        defaults.append(fn)


def apply_defaults(resource: str, obj: Obj) -> None:
    for fn in _DEFAULTS.get(resource, ()):
        fn(obj)


def register(resource: str, fn: AdmissionCheck) -> None:
    """Run ``fn(new, old)`` on every create and update of ``resource`` (e.g. ``configmaps``)."""
    checks = _CHECKS.setdefault(resource, [])
    if fn not in checks:
        checks.append(fn)


def checks_for(resource: str) -> tuple[AdmissionCheck, ...]:
    return tuple(_CHECKS.get(resource, ()))


def register_lookup(resource: str, fn: LookupCheck) -> None:
    """Run ``fn(new, old, reader)`` on every create and update of ``resource``: a check that
    reads other objects (a webhook that looks up the runtime a TrainJob names)."""
    checks = _LOOKUP_CHECKS.setdefault(resource, [])
    if fn not in checks:
        checks.append(fn)


def admit(new: Obj, old: Obj | None = None, reader: ObjectReader | None = None) -> None:
    """Validate ``new`` (schema, then every registered check); raise InvalidError if refused.
    Checks that read other objects run when the store passes itself as ``reader``."""
    from wonderland.api import core_checks, validation

    del core_checks  # imported for the checks it registers
    kind = validation.validate_object(new)
    for check in _CHECKS.get(kind.resource, ()):
        check(new, old)
    if reader is not None:
        for lookup_check in _LOOKUP_CHECKS.get(kind.resource, ()):
            lookup_check(new, old, reader)
