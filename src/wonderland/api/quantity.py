"""Kubernetes resource quantities: ``500m``, ``2``, ``1.5``, ``128Mi``, ``1G``, ``1e3``.

:func:`parse` turns a quantity into a :class:`~decimal.Decimal` of base units (cores,
bytes, devices) and :func:`format_cpu` / :func:`format_bytes` write them back the way
``kubectl`` prints them. Grammar and suffixes as in apimachinery ``resource/quantity.go``.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from wonderland.errors import InvalidError

__all__ = ["format_bytes", "format_cpu", "millis", "parse"]

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(
    r"^(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$"
)


def parse(value: str | int | float, where: str = "quantity") -> Decimal:
    """The quantity in base units; raises :class:`InvalidError` naming ``where``."""
    if isinstance(value, bool):
        raise InvalidError(where, f"{value!r} is not a quantity")
    if isinstance(value, int | float):
        return Decimal(str(value))
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if match is None:
        raise InvalidError(
            where,
            f'quantities must match the regular expression "^([+-]?[0-9.]+)([eEinumkKMGTP]*'
            f'[-+]?[0-9]*)$" (got "{value}"); write for example 500m, 2, 512Mi or 1Gi',
        )
    try:
        number = Decimal(match.group("num"))
    except InvalidOperation:
        raise InvalidError(where, f'"{value}" is not a quantity') from None
    suffix = match.group("suffix") or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number * (Decimal(10) ** int(suffix[1:]))


def millis(value: str | int | float, where: str = "quantity") -> int:
    """The quantity in thousandths (millicores for cpu), rounded up as Kubernetes does."""
    scaled = parse(value, where) * 1000
    whole = int(scaled)
    return whole + (1 if scaled > whole else 0)


def format_cpu(millicores: int) -> str:
    """``1500`` -> ``1500m``; whole cores without a suffix (``2000`` -> ``2``)."""
    if millicores % 1000 == 0:
        return str(millicores // 1000)
    return f"{millicores}m"


def format_bytes(amount: int) -> str:
    """Bytes in the largest binary suffix that divides them (``134217728`` -> ``128Mi``)."""
    for suffix, factor in reversed(_BINARY.items()):
        if amount and amount % factor == 0:
            return f"{amount // factor}{suffix}"
    return str(amount)
