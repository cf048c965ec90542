"""Events whose transaction commits late (after other sessions committed higher ids or later
times) are counted once, exactly, with real concurrent transactions; beyond the late-commit
limit they are reported, not silently lost. Counters restart from their persisted state every
cycle, as after a crash."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from ent_exporter.aggregation.incremental import LOWEST_ID
from ent_exporter.app import make_runtime, make_source
from ent_exporter.config import parse_config
from tests.support import as_samples, expected_event_counts, parse

pytestmark = pytest.mark.time_sensitive

START = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
ACCOUNTS = [
    ("u1", "S1", "Teacher", START, START),
    ("u2", "S2", "Student", START, START),
    ("u3", "S1", "Student", START, START),
    ("u3", "S2", "Student", START, START),
]
LIMIT = 600


class Exporter:
    """One cycle = a new runtime restored from the state directory (a restart every time)."""

    def __init__(self, dsn: str, state_dir, timezone_name: str = "UTC") -> None:
        self.config = parse_config(
            {
                "source": {"dsn": dsn, "settle_seconds": 0, "late_commit_limit_seconds": LIMIT},
                "timezone": timezone_name,
                "state_dir": str(state_dir),
            },
            "test",
        )

    def cycle(self, now: datetime, name: str = "logins") -> dict:
        source = make_source(self.config)
        source.open()
        try:
            runtime = make_runtime(self.config, source, persistent=True)
            runtime.restore()
            assert runtime.run(name, now)
            self.state = runtime.state(name)
            return parse(runtime.exposition.body().decode())
        finally:
            source.close()


def insert_logins(conn: psycopg.Connection, logins: list[tuple]) -> None:
    for user, profile, moment in logins:
        conn.execute(
            "INSERT INTO ent.login_events (user_id, profile, occurred_at) VALUES (%s, %s, %s)", (user, profile, moment)
        )


def committed_logins(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT user_id, profile, occurred_at FROM ent.login_events").fetchall()


def truth(dsn: str) -> dict:
    return as_samples(
        "ent_logins_total", ("structure", "profile"), expected_event_counts(ACCOUNTS, committed_logins(dsn), False)
    )


def late(samples: dict, outcome: str) -> float:
    return samples["ent_exporter_late_events_total"][(("collector", "logins"), ("outcome", outcome))]


def logins(moment: datetime, count: int, user: str = "u1") -> list[tuple]:
    return [(user, "Teacher" if user == "u1" else "Student", moment + timedelta(seconds=i)) for i in range(count)]


def setup_accounts(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.cursor().executemany("INSERT INTO ent.accounts VALUES (%s, %s, %s, %s, %s)", ACCOUNTS)


def test_late_commits_below_the_id_watermark_are_counted_once(source_dsn, tmp_path):
    setup_accounts(source_dsn)
    exporter = Exporter(source_dsn, tmp_path)
    with (
        psycopg.connect(source_dsn) as slow,
        psycopg.connect(source_dsn) as slower,
        psycopg.connect(source_dsn, autocommit=True) as fast,
    ):
        insert_logins(slow, logins(START, 5, "u2"))  # ids 1-5, open
        insert_logins(fast, logins(START, 20))  # ids 6-25, committed
        insert_logins(slower, logins(START, 3, "u3"))  # ids 26-28, open
        insert_logins(fast, logins(START, 4))  # ids 29-32
        now = START + timedelta(minutes=1)
        samples = exporter.cycle(now)
        assert samples["ent_logins_total"] == truth(source_dsn)  # 24 committed, none of the open ones
        assert exporter.state["watermark"] == 32
        # Below the first id seen (6), and the ids of the open transaction in between.
        assert [gap[:2] for gap in exporter.state["gaps"]] == [[LOWEST_ID, 5], [26, 28]]
        slow.commit()
        insert_logins(fast, logins(START, 2, "u2"))
        samples = exporter.cycle(now + timedelta(minutes=1))
        assert samples["ent_logins_total"] == truth(source_dsn)
        assert late(samples, "counted") == 5
        assert [gap[:2] for gap in exporter.state["gaps"]] == [[LOWEST_ID, 0], [26, 28]]
        # Part of a gap fills (a transaction that inserted several rows commits; another rolls back).
        slower.rollback()
        insert_logins(slower, logins(START, 1, "u3"))  # id 35
        slower.commit()
        samples = exporter.cycle(now + timedelta(minutes=2))
        assert samples["ent_logins_total"] == truth(source_dsn)
        # Cycles that find nothing new count nothing twice.
        for minute in (3, 4):
            assert exporter.cycle(now + timedelta(minutes=minute))["ent_logins_total"] == truth(source_dsn)
    assert late(samples, "counted") == 5 and late(samples, "missed") == 0
    # Every transaction that could fill a gap has ended (one rolled back): the gaps are dropped
    # without waiting for the limit.
    assert exporter.state["gaps"] == [] and exporter.state["watch"] == []


def test_a_transaction_open_beyond_the_limit_is_reported_not_counted(source_dsn, tmp_path):
    setup_accounts(source_dsn)
    exporter = Exporter(source_dsn, tmp_path)
    with psycopg.connect(source_dsn) as stuck, psycopg.connect(source_dsn, autocommit=True) as fast:
        insert_logins(fast, logins(START, 1))  # id 1
        insert_logins(stuck, logins(START, 2, "u2"))  # ids 2-3
        insert_logins(fast, logins(START, 3))
        now = START + timedelta(minutes=1)
        expected = truth(source_dsn)
        exporter.cycle(now)
        # The limit passes: the gap moves to the second list (watched, not counted).
        exporter.cycle(now + timedelta(seconds=LIMIT + 1))
        assert exporter.state["gaps"] == [] and [g[:2] for g in exporter.state["watch"]] == [[LOWEST_ID, 0], [2, 3]]
        stuck.commit()
        samples = exporter.cycle(now + timedelta(seconds=LIMIT + 60))
    assert samples["ent_logins_total"] == expected  # the counters hold what was counted in time
    assert late(samples, "missed") == 2 and late(samples, "counted") == 0
    assert exporter.state["watch"] == []  # nothing running any more: nothing left to watch
    # After twice the limit, nothing is watched any more: bookkeeping stays bounded.
    with psycopg.connect(source_dsn) as stuck, psycopg.connect(source_dsn, autocommit=True) as fast:
        insert_logins(stuck, logins(START, 1, "u2"))
        insert_logins(fast, logins(START, 1))
        later = now + timedelta(hours=1)
        exporter.cycle(later)
        exporter.cycle(later + timedelta(seconds=LIMIT))
        exporter.cycle(later + timedelta(seconds=2 * LIMIT))
        assert exporter.state["gaps"] == [] and exporter.state["watch"] == []
        stuck.rollback()


def test_gap_bookkeeping_reads_one_probe_per_gap_and_stays_bounded(source_dsn, tmp_path, monkeypatch):
    """Every other id missing (rolled back): the ids are read twice only where a range has gaps,
    each gap is probed once per cycle, and no more than MAX_GAPS ranges are ever kept."""
    import ent_exporter.aggregation.incremental as incremental

    monkeypatch.setattr(incremental, "MAX_GAPS", 50)
    setup_accounts(source_dsn)
    with psycopg.connect(source_dsn) as conn:
        conn.execute(
            "INSERT INTO ent.login_events (event_id, user_id, profile, occurred_at)"
            " OVERRIDING SYSTEM VALUE SELECT 2 * i, 'u1', 'Teacher', %s FROM generate_series(1, 200) i",
            (START,),
        )
    exporter = Exporter(source_dsn, tmp_path)
    samples = exporter.cycle(START + timedelta(minutes=1))
    assert samples["ent_logins_total"] == truth(source_dsn)
    assert len(exporter.state["gaps"]) == 50 and len(exporter.state["watch"]) == 50
    assert samples["ent_exporter_late_commit_gaps"][(("collector", "logins"),)] == 50
    # The most recent gaps are the ones tracked (the oldest ids went to the watch list).
    assert exporter.state["gaps"][-1][:2] == [399, 399]
    with psycopg.connect(source_dsn) as conn:
        conn.execute(
            "INSERT INTO ent.login_events (event_id, user_id, profile, occurred_at)"
            " OVERRIDING SYSTEM VALUE VALUES (397, 'u2', 'Student', %s), (251, 'u2', 'Student', %s)",
            (START, START),
        )
    samples = exporter.cycle(START + timedelta(minutes=2))
    assert late(samples, "counted") == 1 and late(samples, "missed") == 1
    expected = truth(source_dsn)
    expected[(("profile", "Student"), ("structure", "S2"))] -= 1  # id 251: on the watch list, not counted
    expected[(("profile", "Student"), ("structure", "all"))] -= 1
    assert samples["ent_logins_total"] == expected  # the zeros of known pairs included


# -- the occurred_at watermark (events without ids) ----------------------------------------


@pytest.fixture
def uuid_source(source_dsn):
    with psycopg.connect(source_dsn) as conn:
        conn.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN event_id DROP IDENTITY, ALTER COLUMN event_id DROP NOT NULL").format(
                sql.Identifier("ent", "login_events")
            )
        )
    return source_dsn


def test_late_commits_behind_the_time_watermark_are_counted_once(uuid_source, tmp_path):
    setup_accounts(uuid_source)
    exporter = Exporter(uuid_source, tmp_path, "Europe/Paris")
    day = datetime(2026, 9, 1, tzinfo=UTC) - timedelta(hours=2)  # Paris midnight, in UTC
    with psycopg.connect(uuid_source) as slow, psycopg.connect(uuid_source, autocommit=True) as fast:
        insert_logins(fast, logins(day + timedelta(hours=9), 3))
        insert_logins(slow, logins(day + timedelta(hours=10), 4, "u2"))  # open
        insert_logins(fast, logins(day + timedelta(hours=10, minutes=30), 5))
        noon = day + timedelta(hours=12)
        assert exporter.cycle(noon)["ent_logins_total"] == truth(uuid_source)
        slow.commit()  # behind the watermark now: waits for the day's recount
        insert_logins(fast, logins(day + timedelta(hours=23, minutes=59), 1, "u3"))
        exporter.cycle(noon + timedelta(hours=3))
        # Closed: the day ended (24 h) and the limit passed; every event is counted once.
        closed = day + timedelta(hours=24, seconds=LIMIT + 60)
        samples = exporter.cycle(closed)
        assert samples["ent_logins_total"] == truth(uuid_source)
        assert exporter.cycle(closed + timedelta(minutes=1))["ent_logins_total"] == truth(uuid_source)
        # Beyond the limit: counted nowhere, but reported when the next day is recounted.
        expected = truth(uuid_source)
        insert_logins(fast, logins(day + timedelta(hours=11), 2, "u2"))
        insert_logins(fast, logins(day + timedelta(hours=30), 1))
        expected_next = truth(uuid_source)
        samples = exporter.cycle(closed + timedelta(days=1))
    assert late(samples, "missed") == 2
    logins_all = samples["ent_logins_total"]
    assert (
        logins_all[(("profile", "Student"), ("structure", "all"))]
        == expected[(("profile", "Student"), ("structure", "all"))]
    )
    assert (
        logins_all[(("profile", "Teacher"), ("structure", "all"))]
        == expected_next[(("profile", "Teacher"), ("structure", "all"))]
    )
