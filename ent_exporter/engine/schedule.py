"""When a collector runs: its cron schedule, its jitter, and the period that follows from them.

A collector declares a :class:`~ent_exporter.engine.collector.Cadence` (instant, hourly, daily, weekly,
monthly), whose default cron the configuration may override (``schedules:``). The :class:`Schedule` is
what is actually in force: staleness, readiness, the retry cap and ``ent_exporter_collector_cadence_seconds``
all use its ``period``, the longest time between two runs of its cron, so an overridden cron moves them
with it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

from apscheduler.triggers.cron import CronTrigger

from ent_exporter.engine.collector import Cadence

# The period is found on a fixed stretch of the calendar, never "now": the same cron gives the same
# period whenever the exporter starts. Two years (a leap year among them), then eight if the cron fires less
# than twice (29 February).
_REFERENCE = (2003, 1, 1)  # the two years after it hold a 29 February
_HORIZONS = (timedelta(days=2 * 366), timedelta(days=8 * 366))


@dataclass(frozen=True)
class Schedule:
    """A cadence as configured: its cron expression and jitter, in the platform's timezone."""

    cadence: Cadence
    cron: str
    jitter_seconds: int
    zone: tzinfo = field(compare=False)

    @classmethod
    def default(cls, cadence: Cadence, zone: tzinfo) -> Schedule:
        return cls(cadence, cadence.default_schedule, cadence.default_jitter_seconds, zone)

    def trigger(self) -> CronTrigger:
        trigger = CronTrigger.from_crontab(self.cron, timezone=self.zone)
        trigger.jitter = self.jitter_seconds or None
        return trigger

    @property
    def period(self) -> timedelta:
        """The longest time between two runs of the cron (a result older than this is stale)."""
        return longest_gap(self.cron, self.zone)


def default_schedules(zone: tzinfo) -> dict[Cadence, Schedule]:
    return {cadence: Schedule.default(cadence, zone) for cadence in Cadence}


# The default crons' periods, as longest_gap finds them (tests/test_schedule.py checks it): known without
# walking the calendar, which costs a tenth of a second for a cron that fires every minute, at every start.
DEFAULT_PERIODS = {
    "* * * * *": timedelta(minutes=1),
    "5 * * * *": timedelta(hours=1),
    "15 2 * * *": timedelta(days=1),
    "15 3 * * mon": timedelta(weeks=1),
    "15 4 1 * *": timedelta(days=31),
}


def longest_gap(cron: str, zone: tzinfo) -> timedelta:
    """The longest time between two consecutive fire times of ``cron`` in ``zone``: a default cron's known
    period, or longest_gap_on_the_calendar's."""
    known = DEFAULT_PERIODS.get(cron)
    return known if known is not None else longest_gap_on_the_calendar(cron, zone)


@functools.lru_cache(maxsize=64)
def longest_gap_on_the_calendar(cron: str, zone: tzinfo) -> timedelta:
    """The longest time between two consecutive fire times of ``cron`` in ``zone``.

    Cron's hours and minutes do not depend on the day, so every day it fires, it fires at the same
    times of day (a DST change shifts them by an hour at most, which is ignored): the longest gap is
    the longest one within such a day, or from the last time of one firing day to the first of the
    next. That takes one trigger look-up per time of day and one per firing day."""
    trigger = CronTrigger.from_crontab(cron, timezone=zone)
    start = datetime(*_REFERENCE, tzinfo=zone)
    for horizon in _HORIZONS:
        days = _firing_days(trigger, start, start + horizon)
        if len(days) >= 2:
            break
    if not days:
        raise ValueError(f"the cron expression {cron!r} never fires")
    times = _times_of_day(trigger, days[0])
    within = max((b - a for a, b in zip(times, times[1:])), default=0)
    if len(days) < 2:  # fires on one day in eight years: the longest gap is at least the horizon
        return timedelta(seconds=max(within, _HORIZONS[-1].total_seconds()))
    between = max((b - a).days * 86400 + times[0] - times[-1] for a, b in zip(days, days[1:]))
    return timedelta(seconds=max(within, between))


def _firing_days(trigger: CronTrigger, start: datetime, end: datetime) -> list[datetime]:
    """The local midnights of the days on which the trigger fires, from ``start`` to ``end``."""
    days: list[datetime] = []
    moment = start
    while True:
        fire = trigger.get_next_fire_time(None, moment)
        if fire is None or fire >= end:
            return days
        midnight = fire.replace(hour=0, minute=0, second=0, microsecond=0)
        days.append(midnight.replace(tzinfo=None))
        moment = (midnight.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=start.tzinfo)


def _times_of_day(trigger: CronTrigger, day: datetime) -> list[int]:
    """The seconds after midnight at which the trigger fires on ``day`` (a naive local midnight)."""
    zone = trigger.timezone
    times: list[int] = []
    fire = trigger.get_next_fire_time(None, day.replace(tzinfo=zone))
    while fire is not None and fire.replace(tzinfo=None).date() == day.date():
        local = fire.replace(tzinfo=None)
        times.append(local.hour * 3600 + local.minute * 60 + local.second)
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return times
