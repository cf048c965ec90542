"""A schedule's period comes from its cron: an overridden cron moves staleness, readiness, the retry cap
and ent_exporter_collector_cadence_seconds with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ent_exporter.config import parse_config
from ent_exporter.engine import clock as clocks
from ent_exporter.engine.collector import Cadence, Collector, Family, Kind, Result
from ent_exporter.engine.runtime import Runtime
from ent_exporter.engine.schedule import Schedule, longest_gap
from ent_exporter.engine.scheduler import retry_delay
from tests.support import parse

PARIS = ZoneInfo("Europe/Paris")
MINUTE, HOUR, DAY = 60, 3600, 86400


@pytest.mark.parametrize(
    ("cron", "seconds"),
    [
        ("* * * * *", MINUTE),
        ("*/5 * * * *", 5 * MINUTE),
        ("5 * * * *", HOUR),
        ("0 */6 * * *", 6 * HOUR),
        ("30 7,19 * * *", 12 * HOUR),  # 07:30 and 19:30: the night is the longest gap
        ("15 2 * * *", DAY),
        ("15 3 * * mon", 7 * DAY),
        ("15 4 1 * *", 31 * DAY),  # the 1st of each month: 31 days after a long month's 1st
        ("* 8-18 * * mon-fri", 2 * DAY + 13 * HOUR + MINUTE),  # Friday 18:59 to Monday 08:00
        ("0 0 29 2 *", 1461 * DAY),  # leap days
        ("0 0 1 1 *", 366 * DAY),  # once a year: a leap year is the longest
    ],
)
def test_the_period_is_thelongest_gap_on_the_calendar_between_two_runs(cron, seconds):
    assert longest_gap(cron, PARIS) == timedelta(seconds=seconds)
    assert Schedule(Cadence.HOURLY, cron, 0, PARIS).period == timedelta(seconds=seconds)


def test_the_default_crons_periods_are_those_the_calendar_gives():
    """The default crons' periods are known without walking the calendar: the same as walking it gives."""
    from ent_exporter.engine.schedule import DEFAULT_PERIODS, longest_gap_on_the_calendar

    assert set(DEFAULT_PERIODS) == {cadence.default_schedule for cadence in Cadence}
    for zone in (PARIS, UTC):
        assert {cron: longest_gap_on_the_calendar(cron, zone) for cron in DEFAULT_PERIODS} == DEFAULT_PERIODS


def test_the_default_schedules_keep_their_periods():
    periods = {cadence: Schedule.default(cadence, PARIS).period for cadence in Cadence}
    assert periods == {
        Cadence.INSTANT: timedelta(minutes=1),
        Cadence.HOURLY: timedelta(hours=1),
        Cadence.DAILY: timedelta(days=1),
        Cadence.WEEKLY: timedelta(weeks=1),
        Cadence.MONTHLY: timedelta(days=31),
    }


class Hourly(Collector):
    abstract = True  # a test's own collector, kept out of the registry
    name = "every_six_hours"
    cadence = Cadence.HOURLY
    families = (Family("test_value", Kind.GAUGE, "A value."),)

    def collect(self, ctx):
        return Result({"test_value": {(): 1.0}})


def test_an_overridden_cron_moves_staleness_readiness_retries_and_the_cadence_metric():
    config = parse_config({"source": {"dsn": "postgresql:///x"}, "schedules": {"hourly": {"cron": "0 */6 * * *"}}}, "t")
    schedule = config.schedule(Cadence.HOURLY)
    assert (schedule.cron, schedule.jitter_seconds, schedule.period) == ("0 */6 * * *", 60, timedelta(hours=6))
    clock = clocks.FixedClock(datetime(2026, 12, 6, 9, 0, tzinfo=UTC))
    runtime = Runtime([Hourly()], source=None, clock=clock, schedules={Cadence.HOURLY: schedule})
    assert runtime.is_stale("every_six_hours") and runtime.is_overdue("every_six_hours")
    assert runtime.run("every_six_hours")
    clock.advance(timedelta(hours=5))  # stale after 1 h with the default cron; not with this one
    assert not runtime.is_stale("every_six_hours") and not runtime.is_overdue("every_six_hours")
    clock.advance(timedelta(hours=1))
    assert runtime.is_stale("every_six_hours") and not runtime.is_overdue("every_six_hours")
    clock.advance(timedelta(minutes=36))  # the period and its margin (a tenth of it): not yet
    assert not runtime.is_overdue("every_six_hours")
    clock.advance(timedelta(seconds=1))
    assert runtime.is_overdue("every_six_hours")
    samples = parse(runtime.exposition.body().decode())
    assert samples["ent_exporter_collector_cadence_seconds"] == {
        (("cadence", "hourly"), ("collector", "every_six_hours")): 6 * HOUR
    }
    # Retries back off up to the configured maximum, never beyond the schedule's period.
    assert retry_delay(20, 5, 10 * HOUR, schedule.period) == 6 * HOUR
    assert retry_delay(20, 5, 10 * HOUR, Schedule.default(Cadence.HOURLY, PARIS).period) == HOUR


def test_window_runs_that_fall_due_together_run_one_at_a_time_and_the_instant_cycle_goes_on():
    """Every hourly collector falls due at :05: their runs go one after the other (the process holds one
    window run's memory at a time), none is skipped however long it waits, and the instant collectors
    keep running meanwhile."""
    import threading

    from ent_exporter.engine.scheduler import CollectorScheduler

    release = threading.Event()
    lock = threading.Lock()
    running: list[str] = []
    most = [0]
    ran: list[str] = []
    instant_ran = threading.Event()

    class Window(Collector):
        abstract = True  # a test's own collector, kept out of the registry
        cadence = Cadence.HOURLY

        def collect(self, ctx):
            with lock:
                running.append(self.name)
                most[0] = max(most[0], len(running))
            release.wait(30)
            with lock:
                running.remove(self.name)
                ran.append(self.name)
            return Result({self.families[0].name: {(): 1.0}})

    windows = []
    for number in range(3):
        family = Family(f"test_window_{number}", Kind.GAUGE, "A window's value.")
        attributes = {"name": f"window_{number}", "families": (family,), "abstract": True}  # (not registered)
        windows.append(type(f"Window{number}", (Window,), attributes)())

    class Instant(Collector):
        abstract = True
        name = "instant"
        cadence = Cadence.INSTANT
        families = (Family("test_instant", Kind.GAUGE, "A minute's value."),)

        def collect(self, ctx):
            instant_ran.set()
            return Result({"test_instant": {(): 1.0}})

    once = {cadence: Schedule(cadence, "0 0 1 1 *", 0, UTC) for cadence in Cadence}  # no regular run in the test
    runtime = Runtime([*windows, Instant()], source=None, schedules=once)
    scheduler = CollectorScheduler(runtime)  # every collector stale: all fall due at once
    scheduler.start()
    try:
        assert instant_ran.wait(30), "the instant collector waits for no window run"
        release.set()
        for _ in range(300):
            with lock:
                if len(ran) == 3:
                    break
            threading.Event().wait(0.1)
    finally:
        release.set()
        scheduler.shutdown()
    assert sorted(ran) == ["window_0", "window_1", "window_2"] and most[0] == 1
