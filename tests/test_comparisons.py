"""The month to date's calendar days a year earlier (ent_unique_visitors / ent_visits_per_visitor,
period="month_a_year_earlier"), on the embedded PostgreSQL, equal the values recounted in plain
Python from the raw rows: around a 29 February (which the year before lacks: the whole February
before it) and a month start, in one run and run after run every hour on the collector's own state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from random import Random

import pytest

from ent_exporter.engine.collector import Cadence, Context
from ent_exporter.indicators import discover
from ent_exporter.indicators.visitors import CurrentPeriodVisitorsCollector, YearEarlierMonthVisitorsCollector
from tests.ent_rows import PARIS, EntRows, expected_visitors, opened_source, paris

MICROSECOND = timedelta(microseconds=1)


def year_earlier_window(now: datetime) -> tuple[datetime, datetime]:
    """[start, end] inclusive, by hand: the 1st of the month a year before, to the same wall time a year
    before; on a 29 February, to the last instant of the February before."""
    local = now.astimezone(PARIS)
    start = paris(local.year - 1, local.month, 1)
    if (local.month, local.day) == (2, 29):
        return start, paris(local.year - 1, 3, 1) - MICROSECOND
    return start, paris(local.year - 1, local.month, local.day, local.hour, local.minute, local.second)


EDGES = {
    "first": paris(2027, 2, 1),
    "last": paris(2027, 3, 1) - MICROSECOND,
    "march": paris(2027, 3, 1),
    "leap": paris(2028, 2, 29, 9, 0),
}


def rows() -> EntRows:
    rng = Random(25)
    rows = EntRows(structures=[("S1", "Collège Jean Moulin", "college"), ("S2", "Lycée Victor Hugo", "lycee")])
    users = [f"u{n}" for n in range(40)]
    for n, user in enumerate(users):
        rows.accounts.append(
            (user, "S1" if n % 3 else "S2", "Teacher" if n % 4 == 0 else "Student", paris(2026, 9, 1), None)
        )
    rows.accounts.append(("u0", "S2", "Teacher", paris(2026, 9, 1), None))  # two structures
    # Logins every few hours from mid-January to mid-March, in 2027, 2028 and 2029.
    for year in (2027, 2028, 2029):
        moment = paris(year, 1, 15)
        while moment < paris(year, 3, 15):
            user = rng.choice(users)
            rows.logins.append((user, rng.choice(["Teacher", "Student", "Teacher"]), moment))
            moment += timedelta(minutes=rng.randrange(20, 300))
    # On the edges, the only guests' logins: the 1st at midnight (in), the last instant of February 2027
    # (in the whole February of 29 February 2028, not in 28 February 2028's window), 1 March at midnight
    # (in March's window only), 29 February 2028 (never in a 2029 window); and a login without a user.
    for user, moment in EDGES.items():
        rows.accounts.append((user, "S1", "Guest", paris(2026, 9, 1), None))
        rows.logins.append((user, "Guest", moment))
    rows.logins.append((None, "Student", paris(2028, 2, 1)))
    return rows


ROWS = rows()
NOWS = {
    "29 February": paris(2028, 2, 29, 10, 0),
    "28 February of a leap year": paris(2028, 2, 28, 23, 0),
    "1 March after a 29 February": paris(2028, 3, 1, 0, 30),
    "1 March a year after a 29 February": paris(2029, 3, 1, 9, 15),
    "28 February a year after a 29 February": paris(2029, 2, 28, 23, 59, 59),
}


@pytest.fixture
def source(source_dsn):
    with opened_source(source_dsn, ROWS) as source:
        yield source


def run(source, now: datetime, state: dict | None = None):
    return YearEarlierMonthVisitorsCollector().collect(
        Context(source=source, now=now.astimezone(PARIS), timezone=PARIS, state=state or {})
    )


def test_registered_hourly_with_the_visitors_families():
    assert discover()["visitors_month_a_year_earlier"].cadence == Cadence.HOURLY
    assert YearEarlierMonthVisitorsCollector.families == CurrentPeriodVisitorsCollector.families


def test_the_windows_by_hand():
    assert year_earlier_window(NOWS["29 February"]) == (paris(2027, 2, 1), paris(2027, 3, 1) - MICROSECOND)
    assert year_earlier_window(NOWS["1 March after a 29 February"]) == (paris(2027, 3, 1), paris(2027, 3, 1, 0, 30))


@pytest.mark.parametrize("moment", list(NOWS))
def test_the_month_to_date_a_year_earlier_is_recounted_from_the_rows(source, moment):
    now = NOWS[moment]
    visitors, visits = expected_visitors(ROWS, {"month_a_year_earlier": year_earlier_window(now)})
    assert visitors[("all", "all", "month_a_year_earlier")] > 0
    assert run(source, now).samples == {"ent_unique_visitors": visitors, "ent_visits_per_visitor": visits}


def test_edges_of_the_window(source):
    """The guests log in only on the edges: 29 February 2028 counts the whole February 2027 (its 1st at
    midnight and its last instant, not 1 March at midnight); 28 February 2028 stops at the same instant a
    year before; 1 March 2028 starts at 1 March 2027's midnight; 29 February 2028 is in no 2029 window."""
    guests = {
        moment: run(source, now).samples["ent_unique_visitors"][("S1", "Guest", "month_a_year_earlier")]
        for moment, now in NOWS.items()
    }
    assert guests == {
        "29 February": 2.0,
        "28 February of a leap year": 1.0,
        "1 March after a 29 February": 1.0,
        "1 March a year after a 29 February": 0.0,
        "28 February a year after a 29 February": 0.0,
    }


def test_run_after_run_every_hour_on_its_own_state(source):
    """From 28 February 2028 20:00 to 1 March 02:00, hourly, each run carrying the last one's state: the
    figures recounted from the rows at every run (the day log brought up to a year earlier, not re-read)."""
    state: dict = {}
    now = paris(2028, 2, 28, 20, 5)
    while now <= paris(2028, 3, 1, 2, 5):
        result = run(source, now, state)
        visitors, visits = expected_visitors(ROWS, {"month_a_year_earlier": year_earlier_window(now)})
        assert result.samples == {"ent_unique_visitors": visitors, "ent_visits_per_visitor": visits}, now
        state = result.state
        now += timedelta(hours=1)
    assert now.astimezone(UTC) > paris(2028, 3, 1)
