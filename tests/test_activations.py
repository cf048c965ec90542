"""The activation counter reads the last minute's activations and one index-only fingerprint of its open
days, and stays exact when activations arrive late, move, or go (ent_exporter/indicators/activations.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from random import Random

import psycopg
import pytest

from ent_exporter.app import make_runtime, make_source
from ent_exporter.config import parse_config
from ent_exporter.indicators import activations
from ent_exporter.sources import postgres
from tests.support import RawData, as_samples, expected_activations, insert, make_accounts, parse

pytestmark = pytest.mark.time_sensitive

START = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
NAME = "ent_account_activations_total"


@pytest.fixture
def counting(source_dsn, tmp_path, monkeypatch):
    """run(now) -> the published activations, by a runtime restored from the state directory each time
    (a restart before every cycle); ``statements`` lists what each cycle asked, in order."""
    config = parse_config({"source": {"dsn": source_dsn, "settle_seconds": 0}, "state_dir": str(tmp_path)}, "test")
    statements: list[list] = []
    original = postgres.Snapshot.fetch

    def recorded(self, query, *args, **kwargs):
        statements[-1].append(query)
        return original(self, query, *args, **kwargs)

    monkeypatch.setattr(postgres.Snapshot, "fetch", recorded)

    def run(now: datetime) -> dict:
        statements.append([])
        with make_source(config) as source:
            runtime = make_runtime(config, source, persistent=True)
            runtime.restore()
            assert runtime.run("account_activations", now)
            return parse(runtime.exposition.body().decode())[NAME]

    run.statements = statements  # type: ignore[attr-defined]
    return run


def expected(accounts: list[tuple], now: datetime) -> dict:
    return as_samples(NAME, ("structure", "profile"), expected_activations(accounts, now))


def execute(dsn: str, statement: str, *params) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(statement, params)


def test_activations_are_exact_minute_by_minute_with_late_moved_and_deleted_accounts(source_dsn, counting):
    rng = Random(5)
    accounts = make_accounts(rng, 80, structures=4, start=START)
    # Activations in the minutes to come, two of them the same user's two structures a few minutes apart.
    accounts += [
        (f"soon-{i}", f"S{i % 4}", "Student", START, START + timedelta(minutes=i, seconds=20)) for i in range(6)
    ]
    accounts += [
        ("twice", "S1", "Teacher", START, START + timedelta(minutes=1, seconds=10)),
        ("twice", "S2", "Teacher", START, START + timedelta(minutes=4, seconds=10)),
    ]
    insert(source_dsn, RawData(accounts=accounts))
    now = START
    for _minute in range(7):  # the last one finds nothing new
        now += timedelta(minutes=1)
        assert counting(now) == expected(accounts, now)
    # In a minute with nothing new: the fingerprints only (no row of accounts read).
    assert counting.statements[-1] == [activations.DAY_PRINTS]

    # Set late, inside the window: a pending account activated an hour ago (today), a new account activated
    # two days ago. Today's fingerprint is read every minute: the first counts at once.
    pending = next(a for a in accounts if a[4] is None)
    execute(
        source_dsn, "UPDATE ent.accounts SET activated_at = %s WHERE user_id = %s", now - timedelta(hours=1), pending[0]
    )
    late = ("late", "S3", "Teacher", START - timedelta(days=3), now - timedelta(days=2))
    insert(source_dsn, RawData(accounts=[late]))
    accounts = [a if a[0] != pending[0] else (*a[:4], now - timedelta(hours=1)) for a in accounts]
    now += timedelta(minutes=1)
    assert counting(now) == expected(accounts, now)
    assert counting.statements[-1] == [activations.DAY_PRINTS, activations.ACTIVATIONS_BY_DAY]  # today, whole
    # The earlier open days' fingerprints are read every RECHECK (10 minutes since the first run): the
    # second counts then, its day alone read whole again.
    accounts.append(late)
    now = START + timedelta(minutes=1) + activations.RECHECK
    assert counting(now) == expected(accounts, now)
    assert counting.statements[-1] == [activations.DAY_PRINTS, activations.ACTIVATIONS_BY_DAY]

    # Moved within its day, or deleted: nothing counted twice, and counters do not go down.
    before = expected(accounts, now)
    execute(
        source_dsn, "UPDATE ent.accounts SET activated_at = activated_at - interval '1 minute' WHERE user_id = 'late'"
    )
    execute(source_dsn, "DELETE FROM ent.accounts WHERE user_id = 'soon-2'")
    for _minute in range(11):  # today's day read again at once, the late one's at the next check
        now += timedelta(minutes=1)
        assert counting(now) == before
    assert [activations.ACTIVATIONS_BY_DAY in asked for asked in counting.statements[-11:]].count(True) == 2

    # Days later the open days are frozen into the total (soon-2's activation with them: counted, not taken
    # back); a new activation still counts once.
    fresh = ("fresh", "S0", "Student", now, now + timedelta(days=9))
    insert(source_dsn, RawData(accounts=[fresh]))
    now += timedelta(days=9, minutes=1)
    assert counting(now) == expected([*accounts, fresh], now)


def test_an_activation_older_than_the_window_is_not_counted(source_dsn, counting):
    accounts = [("a", "S1", "Student", START, START - timedelta(hours=1))]
    insert(source_dsn, RawData(accounts=accounts))
    assert counting(START) == expected(accounts, START)
    too_late = ("b", "S1", "Student", START, START - timedelta(days=activations.RECOUNT_DAYS + 1))
    insert(source_dsn, RawData(accounts=[too_late]))
    assert counting(START + timedelta(minutes=1)) == expected(accounts, START)


def test_a_day_of_many_activations_keeps_its_fingerprint(source_dsn, counting):
    """Twenty thousand activations in a day (a school year's import): their times' sum passes 64 bits."""
    day = START.replace(hour=0)
    execute(
        source_dsn,
        "INSERT INTO ent.accounts SELECT 'u' || i, 'S' || (i %% 3), 'Student', %s, %s + i * interval '1 second'"
        " FROM generate_series(1, 20000) AS i",
        day,
        day,
    )
    with psycopg.connect(source_dsn) as conn:
        accounts = conn.execute(
            "SELECT user_id, structure_id, profile, created_at, activated_at FROM ent.accounts"
        ).fetchall()
    now = day + timedelta(hours=6)
    assert counting(now) == expected(accounts, now)
    assert counting(now + timedelta(minutes=1)) == expected(accounts, now)
    assert counting.statements[-1] == [activations.DAY_PRINTS]  # the fingerprint read back from the state file
