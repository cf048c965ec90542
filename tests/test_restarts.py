"""A restart serves every family at once, and a run that moves nothing after it keeps serving them, at
any distance between the data's date and the clock: the restore filters idle series as of the
instant of the run it restores, never as of the machine's time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from random import Random
from zoneinfo import ZoneInfo

import psycopg
import pytest

from ent_exporter.app import make_runtime, make_source
from ent_exporter.config import parse_config
from ent_exporter.engine import clock as clocks
from ent_exporter.engine.state import StateStore
from tests.support import FULL_BREAKDOWNS, RawData, insert, make_accounts, make_events, parse

pytestmark = pytest.mark.time_sensitive

NOW = datetime(2026, 11, 18, 15, 0, tzinfo=ZoneInfo("Europe/Paris")).astimezone(UTC)  # a Wednesday
EARLIER = NOW - timedelta(days=120)  # an earlier run: what has not moved since is idle at NOW (90 days)
DISTANCES = {
    "same day": timedelta(0),
    "+100 d": timedelta(days=100),
    "+400 d": timedelta(days=400),
    "+5 y": timedelta(days=5 * 365 + 1),
}
# Changes every run: its duration. Everything else the runs publish is the same after a restart.
VARYING = {"ent_exporter_collector_duration_seconds"}
RETIRED = (("connector", "retired-sso"),)


def history(dsn: str) -> RawData:
    """Accounts and 60 days of events before the earlier run; what comes after it (returned) is
    inserted before the later run: the counters count rows as they are committed."""
    rng = Random(21)
    raw = RawData(accounts=make_accounts(rng, 60, structures=3, start=EARLIER - timedelta(days=30)))
    before = make_events(rng, 600, 60, EARLIER - timedelta(days=60), timedelta(days=60))
    raw.logins, raw.app_accesses, raw.connector_calls = before.logins, before.app_accesses, before.connector_calls
    # A connector retired before the earlier run: its series stop moving, and are idle at NOW.
    raw.connector_calls += [
        ("retired-sso", "S0", EARLIER - timedelta(days=2), True, 80.0),
        ("ldap", "S1", EARLIER - timedelta(days=3), True, -4.0),
    ]  # an invalid measurement
    insert(dsn, raw)
    with psycopg.connect(dsn) as conn:
        conn.cursor().executemany(
            "INSERT INTO ent.structures VALUES (%s, %s, %s)",
            [
                ("S0", "Collège Jean Moulin", "college"),
                ("S1", "Lycée Victor Hugo", "lycee"),
                ("S2", "École du Centre", "ecole"),
            ],
        )
    return make_events(rng, 900, 60, EARLIER, NOW - EARLIER)


def served_families(runtime) -> set[str]:
    """Every family of the enabled collectors and of the exporter itself, but those of the optional
    relations this source does not have (account feeds, courses)."""
    from ent_exporter.engine.runtime import SELF_FAMILIES

    return {
        family.name
        for collector in runtime.collectors.values()
        for family in collector.families
        if not family.name.startswith(("ent_account_feed_", "ent_course_"))
    } | {family.name for family in SELF_FAMILIES}


def families(samples: dict) -> dict[str, dict]:
    return {name: series for name, series in samples.items() if name not in VARYING}


def family_names(samples: dict) -> set[str]:
    return {name.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum") for name in samples}


class Restarting:
    """One exporter process after another on the same state directory and the same clock."""

    def __init__(self, dsn: str, state_dir, clock: clocks.Clock) -> None:
        self.clock = clock
        self.config = parse_config(
            {
                "source": {"dsn": dsn, "settle_seconds": 0},
                "timezone": "Europe/Paris",
                "state_dir": str(state_dir),
                "breakdowns": FULL_BREAKDOWNS,
            },
            "test",
        )

    def __enter__(self):
        self.source = make_source(self.config)
        self.source.open()
        self.runtime = make_runtime(self.config, self.source, persistent=True, clock=self.clock)
        self.runtime.restore()
        return self

    def __exit__(self, *_):
        self.source.close()

    def served(self) -> dict:
        return parse(self.runtime.exposition.body().decode())


@pytest.mark.parametrize("distance", DISTANCES.values(), ids=DISTANCES.keys())
def test_every_family_is_served_after_a_restart_and_after_a_run_that_moves_nothing(source_dsn, tmp_path, distance):
    dsn = source_dsn
    later = history(dsn)
    clock = clocks.FixedClock(NOW + distance)  # the machine's date, this far from the data's
    with Restarting(dsn, tmp_path, clock) as process:
        assert process.runtime.run_all(EARLIER)
        earlier = process.served()
    insert(dsn, later)
    retired = [key for key in earlier["ent_connector_requests_total"] if RETIRED[0] in key]
    assert len(retired) == 2  # success and failure, served while they are recent
    with Restarting(dsn, tmp_path, clock) as process:
        assert process.runtime.run_all(NOW)
        ran = process.served()
    # Idle for 120 days at NOW: no longer served; everything else is.
    assert not [key for key in ran["ent_connector_requests_total"] if RETIRED[0] in key]
    assert ran["ent_connector_requests_total"].keys() == earlier["ent_connector_requests_total"].keys() - set(retired)
    assert family_names(ran) == served_families(process.runtime)

    with Restarting(dsn, tmp_path, clock) as process:
        restored = process.served()
        # Every family, every series, every value at once; the source is not reached yet.
        assert "ent_exporter_source_up" not in restored
        assert families(restored) == {
            name: series for name, series in families(ran).items() if name != "ent_exporter_source_up"
        }
        assert process.runtime.run_all(NOW)  # a run that moves nothing
        again = process.served()
    assert families(again) == families(ran)
    assert family_names(again) == family_names(ran)
    # The exporter's own figures say when it last succeeded: by the clock it was handed.
    last = again["ent_exporter_collector_last_success_timestamp_seconds"]
    assert set(last.values()) == {clock.time()}


def test_a_restore_without_the_instant_of_its_run_filters_as_of_the_clock(source_dsn, tmp_path):
    """State files written before the run's instant was kept: the clock decides what is idle."""
    dsn = source_dsn
    later = history(dsn)
    clock = clocks.FixedClock(NOW)
    with Restarting(dsn, tmp_path, clock) as process:
        assert process.runtime.run("connectors", EARLIER)
        insert(dsn, later)
        assert process.runtime.run("connectors", NOW)
        ran = process.served()["ent_connector_requests_total"]
    store = StateStore(tmp_path)
    stored = store.load("connectors")
    assert stored.ran_at == NOW.timestamp()
    stored.ran_at = None  # as a state file of an earlier version holds it
    store.save("connectors", stored)
    assert 'ran_at":null' in (tmp_path / "collectors" / "connectors.json").read_text()
    clock.set(EARLIER + timedelta(days=1))  # as of the clock, the retired connector is not idle yet
    with Restarting(dsn, tmp_path, clock) as process:
        restored = process.served()["ent_connector_requests_total"]
    assert restored.keys() - ran.keys() == {key for key in restored if RETIRED[0] in key}
    assert len(restored) == len(ran) + 2
