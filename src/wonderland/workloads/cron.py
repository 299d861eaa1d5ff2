"""CronJob schedules as Kubernetes reads them (robfig/cron's standard parser).

Five fields (minute, hour, day of month, month, day of week) with ranges, lists, steps and
names (``JAN``, ``MON``); ``?`` as ``*``; the descriptors ``@yearly``/``@annually``,
``@monthly``, ``@weekly``, ``@daily``/``@midnight``, ``@hourly`` and ``@every <duration>``.
Times are computed in the CronJob's ``timeZone`` (the daemon's local zone when unset, as
kube-controller-manager uses its own), daylight-saving changes included (``cronsim``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from cronsim import CronSim, CronSimError

__all__ = ["Schedule"]

_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(text: str) -> float:
    pos = 0
    total = 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            raise ValueError(f"failed to parse duration {text}")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"failed to parse duration {text}")
    return total


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule; :meth:`after` gives the next times."""

    expression: str
    every: float | None = None

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """Raise ValueError with robfig/cron's words when ``text`` is not a schedule."""
        spec = text.strip()
        if not spec:
            raise ValueError("empty spec string")
        if spec.startswith("@every"):
            seconds = _duration(spec[len("@every") :].strip())
            if seconds < 1:
                seconds = 1.0
            return cls(spec, every=seconds)
        if spec.startswith("@"):
            if spec not in _DESCRIPTORS:
                raise ValueError(f"unrecognized descriptor: {spec}")
            spec = _DESCRIPTORS[spec]
        fields = spec.split()
        if len(fields) != 5:
            raise ValueError(f"expected exactly 5 fields, found {len(fields)}: {text.strip()}")
        if any(ch in spec for ch in "LW#"):
            raise ValueError(
                f"unsupported characters in {text.strip()!r} (L, W and # are not cron)"
            )
        fields = ["*" if f == "?" else f for f in fields]
        expression = " ".join(fields)
        try:
            CronSim(expression, datetime(2000, 1, 1))
        except CronSimError as exc:
            raise ValueError(str(exc)) from None
        return cls(expression)

    def after(self, start: datetime, zone: tzinfo) -> Iterator[datetime]:
        """Schedule times strictly after ``start``, in ``zone``."""
        local = start.astimezone(zone)
        if self.every is not None:
            step = timedelta(seconds=self.every)
            current = local.replace(microsecond=0)
            while True:
                current = current + step
                yield current
        yield from CronSim(self.expression, local.replace(microsecond=0))
