"""The admission seam: checks every object passes before the store keeps it.

Each store owns an :class:`Admission`: the schema and type validation of every kind and
the core kinds' checks (:func:`wonderland.api.core_checks.core_admission`) come with every
store; a platform's plugins register the semantic checks of their kinds into the
platform's own (``platform.admission``), so a second platform or a plain store in the same
process never runs them (for example the traffic percentages of a Knative Service must
sum to 100)::

    def check_traffic(new: Obj, old: Obj | None) -> None:
        if ...:
            raise InvalidError("spec.traffic", "traffic percentages must sum to 100")

    platform.admission.register("services.serving.knative.dev", check_traffic)

Mutating steps (a cluster's mutating admission webhooks, such as Kubeflow's PodDefault
webhook) register with :meth:`Admission.register_mutation`: they run on create only, after
the namespace is set and before the object is validated again and stored, and may read
other objects; they raise :class:`wonderland.errors.AdmissionDeniedError` to refuse it.

A check gets the new object and the stored one (``None`` on create) and raises
:class:`wonderland.errors.InvalidError` (field path, message) to refuse it. Checks must
not change the object and must be fast: they run on every write, in the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from wonderland.api import validation

__all__ = [
    "Admission",
    "AdmissionCheck",
    "Admitter",
    "Defaulter",
    "LookupCheck",
    "Mutation",
    "Obj",
    "ObjectLister",
    "ObjectReader",
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


class Admitter(Protocol):
    """What offline validation needs of an admission: the checks, without the store."""

    def admit(self, new: Obj, old: Obj | None = None, reader: ObjectReader | None = None) -> None:
        """Validate ``new`` (schema, then every check); raise InvalidError if refused."""
        ...


class Admission:
    """The checks, defaults and mutating steps one store applies to every write.

    The store owns one; a platform's plugins register into it at install (the areas'
    ``install_admission``), and registering the same function twice keeps one copy.
    """

    def __init__(self) -> None:
        self._checks: dict[str, list[AdmissionCheck]] = {}
        self._lookup_checks: dict[str, list[LookupCheck]] = {}
        self._defaults: dict[str, list[Defaulter]] = {}
        self._mutations: dict[str, list[Mutation]] = {}

    def register(self, resource: str, fn: AdmissionCheck) -> None:
        """Run ``fn(new, old)`` on every create and update of ``resource`` (``configmaps``)."""
        _add(self._checks, resource, fn)

    def register_lookup(self, resource: str, fn: LookupCheck) -> None:
        """Run ``fn(new, old, reader)`` on every create and update of ``resource``: a check
        that reads other objects (a webhook that looks up the runtime a TrainJob names)."""
        _add(self._lookup_checks, resource, fn)

    def register_default(self, resource: str, fn: Defaulter) -> None:
        """Run ``fn(obj)`` to fill defaults on every create and update of ``resource``."""
        _add(self._defaults, resource, fn)

    def register_mutation(self, resource: str, fn: Mutation) -> None:
        """Run ``fn(obj, lister)`` on every create of ``resource``; it changes ``obj``."""
        _add(self._mutations, resource, fn)

    def checks_for(self, resource: str) -> tuple[AdmissionCheck, ...]:
        """The checks (not the lookup checks) of ``resource``, in registration order."""
        return tuple(self._checks.get(resource, ()))

    def has_mutations(self, resource: str) -> bool:
        return bool(self._mutations.get(resource))

    def mutate(self, resource: str, obj: Obj, lister: ObjectLister) -> None:
        """Apply every mutating step of ``resource`` to ``obj`` (a create's object)."""
        for fn in self._mutations.get(resource, ()):
            fn(obj, lister)

    def apply_defaults(self, resource: str, obj: Obj) -> None:
        for fn in self._defaults.get(resource, ()):
            fn(obj)

    def admit(self, new: Obj, old: Obj | None = None, reader: ObjectReader | None = None) -> None:
        """Validate ``new`` (schema, then every registered check); raise InvalidError if
        refused. Checks that read other objects run when the store passes itself as
        ``reader``."""
        kind = validation.validate_object(new)
        for check in self._checks.get(kind.resource, ()):
            check(new, old)
        if reader is not None:
            for lookup_check in self._lookup_checks.get(kind.resource, ()):
                lookup_check(new, old, reader)


def _add(table: dict[str, list[Any]], resource: str, fn: Any) -> None:
    registered = table.setdefault(resource, [])
    if fn not in registered:
        registered.append(fn)
