"""A quiet period is 0, not a missing series: a structure and a profile with accounts but nobody
logged in publish 0 in every family that counts people, at any hour; counters are born at 0."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from ent_exporter.app import make_runtime, make_source
from ent_exporter.config import parse_config
from tests.support import RawData, insert

pytestmark = pytest.mark.time_sensitive

PARIS = ZoneInfo("Europe/Paris")
# Early morning, the minutes after Monday 00:00 (new day, week and month), and a plain afternoon.
NOWS = {
    "early morning": datetime(2026, 11, 24, 6, 40, tzinfo=PARIS),
    "monday 00:05": datetime(2027, 3, 1, 0, 5, tzinfo=PARIS),
    "afternoon": datetime(2026, 11, 18, 15, 0, tzinfo=PARIS),
}
LONG_AGO = datetime(2025, 9, 1, tzinfo=UTC)


def rows_for(now: datetime) -> RawData:
    """S-busy has a student who logged in an hour ago; S-quiet has accounts (a student, a pending
    teacher) and nobody ever logged in; the platform has a Relative who never logged in either."""
    utc_now = now.astimezone(UTC)
    return RawData(
        accounts=[
            ("busy-1", "S-busy", "Student", LONG_AGO, LONG_AGO),
            ("quiet-1", "S-quiet", "Student", LONG_AGO, LONG_AGO),
            ("quiet-2", "S-quiet", "Teacher", LONG_AGO, None),
            ("parent-1", "S-busy", "Relative", LONG_AGO, None),
        ],
        logins=[("busy-1", "Student", utc_now - timedelta(hours=1))],
    )


def run_everything(dsn: str, now: datetime) -> dict:
    config = parse_config({"source": {"dsn": dsn, "settle_seconds": 0}}, "test")
    with make_source(config) as source:
        runtime = make_runtime(config, source, persistent=False)
        assert runtime.run_all(now.astimezone(UTC))
        merged: dict = {}
        for samples in map(runtime.samples, runtime.collectors):
            for name, series in samples.items():
                merged.setdefault(name, {}).update(series)
        return merged


@pytest.mark.parametrize("moment", list(NOWS))
def test_every_known_structure_and_profile_is_published_at_zero(source_dsn, moment):
    now = NOWS[moment]
    insert(source_dsn, rows_for(now))
    samples = run_everything(source_dsn, now)
    pairs = {
        ("S-busy", "Student"),
        ("S-quiet", "Student"),
        ("S-quiet", "Teacher"),
        ("S-busy", "Relative"),
        ("all", "Student"),
        ("all", "Teacher"),
        ("all", "Relative"),
    }
    # People counts also have profile="all" (each person once over every profile) for each structure.
    people = pairs | {("S-busy", "all"), ("S-quiet", "all"), ("all", "all")}
    periods = ("day", "week", "month")  # the hourly collector; previous_month is the monthly one's
    visitors = samples["ent_unique_visitors"]
    # month_a_year_earlier (its own hourly collector): nobody logged in a year before, 0 all the same.
    every = (*periods, "previous_month", "month_a_year_earlier")
    expected = {(*pair, period): 0.0 for pair in people for period in every}
    login = now.astimezone(UTC) - timedelta(hours=1)
    month = _period_start(now, "month")
    previous = _period_start(month - timedelta(days=1), "month")
    seen_in = [p for p in periods if login >= _period_start(now, p)] + (
        ["previous_month"] if previous <= login < month else []
    )
    assert seen_in, "the login an hour before now lands in some period"
    expected.update({(s, p_, p): 1.0 for s in ("S-busy", "all") for p_ in ("Student", "all") for p in seen_in})
    assert visitors == expected
    assert samples["ent_visits_per_visitor"] == {key: 1.0 if value else 0.0 for key, value in expected.items()}
    # Inactivity and login frequency: activated accounts only, 0 (an empty distribution) elsewhere.
    inactive = samples["ent_inactive_accounts"]
    assert inactive == {
        **{(*pair, days): 0.0 for pair in people for days in ("30", "90")},
        **{(s, p, days): 1.0 for s in ("S-quiet", "all") for p in ("Student", "all") for days in ("30", "90")},
    }
    histograms = samples["ent_user_logins_30d"]
    assert set(histograms) == people
    assert vars(histograms[("all", "all")]) == {
        "buckets": [1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0],
        "count": 2.0,
        "sum": 1.0,
    }  # quiet-1: 0, busy-1: 1 login
    assert vars(histograms[("S-quiet", "Teacher")]) == {"buckets": [0.0] * 7, "count": 0.0, "sum": 0.0}
    # The heatmap: 168 cells for each known structure and "all", zeros included.
    cells = samples["ent_logins_by_hour"]
    assert {key[0] for key in cells} == {"S-busy", "S-quiet", "all"} and len(cells) == 3 * 168
    assert sum(value for key, value in cells.items() if key[0] == "S-quiet") == 0.0
    # Counters are born at 0 for every known pair.
    logins = samples["ent_logins_total"]
    assert logins == {**{pair: 0.0 for pair in pairs}, ("S-busy", "Student"): 1.0, ("all", "Student"): 1.0}
    activations = samples["ent_account_activations_total"]
    assert activations == {
        **{pair: 0.0 for pair in pairs},
        ("S-busy", "Student"): 1.0,
        ("S-quiet", "Student"): 1.0,
        ("all", "Student"): 2.0,
    }


def _period_start(now: datetime, period: str) -> datetime:
    local = now.astimezone(PARIS)
    day = datetime(local.year, local.month, local.day, tzinfo=PARIS)
    start = {
        "day": day,
        "week": day - timedelta(days=local.weekday()),
        "month": datetime(local.year, local.month, 1, tzinfo=PARIS),
    }[period]
    # Re-attached to the zone: the offset of that day, not of now.
    return datetime(start.year, start.month, start.day, tzinfo=PARIS).astimezone(UTC)


def test_counters_read_the_known_pairs_once_an_hour(source_dsn, tmp_path):
    """The instant counters run every minute; a new structure's zero appears at the next hourly read."""
    now = NOWS["afternoon"].astimezone(UTC)
    insert(source_dsn, rows_for(now))
    config = parse_config({"source": {"dsn": source_dsn, "settle_seconds": 0}, "state_dir": str(tmp_path)}, "test")
    with make_source(config) as source:
        runtime = make_runtime(config, source, persistent=True)
        assert runtime.run("logins", now)
        with psycopg.connect(source_dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO ent.accounts VALUES ('new-1', 'S-new', 'Student', %s, NULL)", (LONG_AGO,))
        assert runtime.run("logins", now + timedelta(minutes=59))
        assert ("S-new", "Student") not in runtime.samples("logins")["ent_logins_total"]
        assert runtime.run("logins", now + timedelta(minutes=60))
        assert runtime.samples("logins")["ent_logins_total"][("S-new", "Student")] == 0.0
        # The counted totals and the watermark are untouched by the zeros.
        assert runtime.state("logins")["watermark"] >= 1
