"""The one place that reads the wall clock.

Everything that compares a time of the data with "now" (idle series, staleness, readiness, settle,
late commits, window boundaries, report months) asks a :class:`Clock` it was handed. In production
that is :data:`SYSTEM`, the machine's time; tests hand a :class:`FixedClock` (pinned, movable), the
demo an :class:`OffsetClock` (``demo --now``: real time, started at a pinned instant).

Durations and deadlines (how long a run took, when a statement's timeout fires) are measured with
``time.monotonic()``: they never meet a time of the data, and a pinned clock must not stop them.

Code outside this module never calls ``time.time()``, ``datetime.now()`` and the like; a test scans
the package's syntax trees for such calls (``tests/test_clock.py``).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta, tzinfo


class Clock:
    """ "Now" as an aware UTC datetime (``now()``) and as Unix seconds (``time()``)."""

    def now(self) -> datetime:
        raise NotImplementedError

    def time(self) -> float:
        return self.now().timestamp()

    def local(self, zone: tzinfo) -> datetime:
        """Now in ``zone``."""
        return self.now().astimezone(zone)

    def __call__(self) -> datetime:  # a clock can stand where a "now" function is expected
        return self.now()


class SystemClock(Clock):
    """The machine's time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def time(self) -> float:
        return time.time()

    def __repr__(self) -> str:
        return "SystemClock()"


class FixedClock(Clock):
    """A pinned instant, moved only by ``set`` and ``advance`` (tests)."""

    def __init__(self, instant: datetime) -> None:
        self._lock = threading.Lock()
        self._instant = _aware(instant)

    def now(self) -> datetime:
        with self._lock:
            return self._instant

    def set(self, instant: datetime) -> None:
        with self._lock:
            self._instant = _aware(instant)

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._instant += delta
            return self._instant

    def __repr__(self) -> str:
        return f"FixedClock({self._instant.isoformat()})"


class OffsetClock(Clock):
    """The machine's time shifted by a constant offset: ``OffsetClock.starting_at(t)`` reads ``t`` now
    and runs on from there (the demo's ``--now``); ``OffsetClock(timedelta(days=400))`` reads 400 days
    ahead (tests of a suite that must pass in any year)."""

    def __init__(self, offset: timedelta = timedelta(0), base: Clock | None = None) -> None:
        self.offset = offset
        self.base = base or SYSTEM

    @classmethod
    def starting_at(cls, start: datetime, base: Clock | None = None) -> OffsetClock:
        base = base or SYSTEM
        return cls(_aware(start) - base.now(), base)

    def now(self) -> datetime:
        return self.base.now() + self.offset

    def time(self) -> float:
        return self.base.time() + self.offset.total_seconds()

    def __repr__(self) -> str:
        return f"OffsetClock({self.offset!r})"


def _aware(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError(f"a clock's instant must be timezone-aware: {instant!r}")
    return instant.astimezone(UTC)


SYSTEM: Clock = SystemClock()
_default: Clock = SYSTEM


def default() -> Clock:
    """The clock of the components built without one (``make_runtime``, ``Exporter``, the reports):
    :data:`SYSTEM`, unless :func:`use` put another in its place."""
    return _default


def use(clock: Clock) -> Clock:
    """Makes ``clock`` the default clock of the process; returns the one it replaces.

    The documented hook for tests (a suite run with the machine's date moved: ``tests/conftest.py``'s
    ``--clock-shift``). The exporter itself never calls it."""
    global _default
    previous, _default = _default, clock
    return previous
