"""The window collectors (hourly visitors, daily activity, weekly heatmap) keep per-day aggregates in
their state: a run reads the new events (and, for windows that start mid-day, that one partial
day), never the window again; the aggregates survive kill -9 and a restart, and late events are
counted when their day is recounted; every figure equals a full recount from an empty state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from ent_exporter.app import make_runtime, make_source
from ent_exporter.config import parse_config
from tests.test_incremental_cost import table_reads, wait_for_stats

pytestmark = pytest.mark.time_sensitive

REPO = Path(__file__).resolve().parent.parent
WINDOWED = ("visitors", "activity", "login_heatmap")
USERS = 3_000
HISTORY = 120_000
START = datetime(2026, 8, 20, tzinfo=UTC)
NOW = datetime(2026, 11, 18, 14, 7, 30, tzinfo=UTC)  # a Wednesday afternoon in Paris


def config(dsn: str, state_dir: Path):
    return parse_config(
        {"source": {"dsn": dsn, "settle_seconds": 0}, "state_dir": str(state_dir), "timezone": "Europe/Paris"}, "test"
    )


def fill(dsn: str) -> None:
    """Three months of logins (one every ~65 s), 3,000 users in 40 structures, some with two."""
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO ent.accounts SELECT 'u' || i, 'S' || (i %% 40), (ARRAY['Student','Teacher','Relative'])[1 + i %% 3],"
            " %s, CASE WHEN i %% 7 = 0 THEN NULL ELSE %s END FROM generate_series(1, %s) i",
            (START, START, USERS),
        )
        conn.execute(
            "INSERT INTO ent.accounts SELECT 'u' || i, 'S' || ((i + 1) %% 40), 'Teacher', %s, %s"
            " FROM generate_series(1, %s, 50) i",
            (START, START, USERS),
        )
        conn.execute(
            "INSERT INTO ent.login_events (user_id, profile, occurred_at)"
            " SELECT CASE WHEN i %% 997 = 0 THEN NULL ELSE 'u' || (i * 7919 %% %s) END,"
            "        (ARRAY['Student','Teacher','Relative', ''])[1 + i %% 4],"
            "        %s + (i * (%s::float8 / %s)) * interval '1 second' FROM generate_series(1, %s) i",
            (USERS + 200, START, (NOW - START).total_seconds(), HISTORY, HISTORY),
        )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE ent.login_events")
        conn.execute("ANALYZE ent.accounts")


def add_logins(dsn: str, count: int, at: datetime, profile: str = "Teacher") -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO ent.login_events (user_id, profile, occurred_at)"
            " SELECT 'u' || (i * 31 %% %s), %s, %s FROM generate_series(1, %s) i",
            (USERS, profile, at, count),
        )


def run(dsn: str, state_dir: Path | None, name: str, now: datetime) -> dict:
    """One run of a collector as of ``now``: from the state in ``state_dir``, or (None) from nothing."""
    persistent = state_dir is not None
    cfg = config(dsn, state_dir or Path("/nonexistent-unused"))
    source = make_source(cfg)
    source.open()
    try:
        runtime = make_runtime(cfg, source, persistent=persistent)
        if persistent:
            runtime.restore()
        assert runtime.run(name, now)
        return runtime.samples(name)
    finally:
        source.close()


def comparable(samples: dict) -> dict:
    return {
        family: {key: (vars(value) if hasattr(value, "buckets") else value) for key, value in series.items()}
        for family, series in samples.items()
    }


def full_recount(dsn: str, name: str, now: datetime) -> dict:
    return comparable(run(dsn, None, name, now))


@pytest.fixture
def month(source_dsn):
    fill(source_dsn)
    return source_dsn


def test_incremental_runs_equal_a_full_recount_through_days_closing_and_late_events(month, tmp_path):
    """Hour after hour across midnights and closed days: every run equals a run from an empty state.
    Events committed late (occurred_at behind the watermark, in a day still open) are counted when
    their day is recounted, the late-commit limit after its end, as the instant counters do."""
    dsn = month
    limit = timedelta(hours=1)  # the default late-commit limit
    moments = [
        NOW - timedelta(days=2, hours=5),
        NOW - timedelta(days=1, hours=13),
        NOW - timedelta(hours=11),
        NOW - timedelta(hours=9, minutes=30),
        NOW,
        NOW + timedelta(days=1),
    ]
    for step, moment in enumerate(moments):
        add_logins(dsn, 50, moment - timedelta(minutes=5), profile="Student")
        if step == 3:
            # Late, within the limit: stamped 30 minutes before the previous run, committed after it.
            add_logins(dsn, 7, moments[2] - timedelta(minutes=30))
        if step == 4:
            # Late beyond the limit: stamped 2 hours before the previous run; counted once today closes.
            add_logins(dsn, 5, moments[3] - 2 * limit, profile="Relative")
        for name in WINDOWED:
            incremental = comparable(run(dsn, tmp_path, name, moment))
            if step == 4:  # today's events beyond the limit wait for the day's recount
                assert incremental != full_recount(dsn, name, moment), name
            else:
                assert incremental == full_recount(dsn, name, moment), (name, moment)


RUNNER = """
import sys, time
from datetime import datetime, timedelta
from pathlib import Path
from ent_exporter.app import make_runtime, make_source
from tests.test_window_aggregates import config
dsn, state_dir, now = sys.argv[1], Path(sys.argv[2]), datetime.fromisoformat(sys.argv[3])
cfg = config(dsn, state_dir)
source = make_source(cfg)
source.open()
runtime = make_runtime(cfg, source, persistent=True)
runtime.restore()
step = 0
while True:
    for name in ("visitors", "activity", "login_heatmap"):
        assert runtime.run(name, now + timedelta(minutes=step))
    print(step, flush=True)
    step += 1
"""


def test_aggregates_survive_kill_9_and_a_restart(month, tmp_path):
    dsn = month
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-c", RUNNER, dsn, str(tmp_path), (NOW - timedelta(hours=3)).isoformat()],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        # Killed in the middle of its runs: after the first pass, while later ones write their state.
        assert process.stdout.readline().strip() == "0"
        add_logins(dsn, 300, NOW - timedelta(hours=2, minutes=50))
        assert process.stdout.readline().strip() == "1"
        time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    saved = json.loads((tmp_path / "collectors" / "visitors.json").read_text())["state"]
    assert saved["days"] and saved["watermark"], "the per-day aggregates are in the persisted state"
    add_logins(dsn, 200, NOW - timedelta(minutes=30))
    for name in WINDOWED:
        assert comparable(run(dsn, tmp_path, name, NOW)) == full_recount(dsn, name, NOW), name


def test_a_lost_state_is_a_full_recount(month, tmp_path):
    dsn = month
    for name in WINDOWED:
        run(dsn, tmp_path, name, NOW - timedelta(hours=1))
    (tmp_path / "collectors" / "visitors.json").write_text("{not json")
    (tmp_path / "collectors" / "activity.json").unlink()
    for name in WINDOWED:
        assert comparable(run(dsn, tmp_path, name, NOW)) == full_recount(dsn, name, NOW), name


def logins_between(dsn: str, since: datetime, until: datetime) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT count(*) FROM ent.login_events WHERE occurred_at > %s AND occurred_at < %s", (since, until)
        ).fetchone()[0]


def local_midnight_after(moment: datetime) -> datetime:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Europe/Paris")
    day = moment.astimezone(zone).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


@pytest.mark.parametrize("name", WINDOWED)
def test_a_run_reads_the_new_events_not_the_window(month, tmp_path, name):
    """Rows of login_events read by a run (pg_stat_user_tables): the new events, plus for windows that
    start mid-day the events of that partial first day; never a sequential scan."""
    dsn = month
    run(dsn, tmp_path, name, NOW)  # the first run counts the window once
    new = 1_000
    later = NOW + timedelta(minutes=20)
    add_logins(dsn, new, later - timedelta(minutes=1))
    edges = {
        "visitors": 0,  # day, week and month start at a local midnight: nothing but the new events
        "activity": sum(
            logins_between(dsn, later - timedelta(days=days), local_midnight_after(later - timedelta(days=days)))
            for days in (30, 90)
        ),
        "login_heatmap": logins_between(
            dsn, later - timedelta(days=28), local_midnight_after(later - timedelta(days=28))
        ),
    }[name]
    before = table_reads(dsn, "login_events")
    run(dsn, tmp_path, name, later)
    after = wait_for_stats(dsn, "login_events", before)
    assert after["seq_tup_read"] == before["seq_tup_read"], "login_events was scanned"
    read = after["idx_tup_fetch"] - before["idx_tup_fetch"]
    window = {"visitors": HISTORY * 18 // 90, "activity": HISTORY, "login_heatmap": HISTORY * 28 // 90}[name]
    # ...and the events of the last late-commit limit before the previous run, read again.
    again = logins_between(dsn, NOW - timedelta(hours=1) - timedelta(microseconds=1), NOW)
    assert new <= read <= new + again + edges + 10, (read, new, again, edges)
    assert read < window / 5  # far from re-reading the window


@pytest.mark.parametrize("name", WINDOWED)
def test_every_statement_on_login_events_is_an_occurred_at_range(month, tmp_path, name):
    """The plans: each statement a run sends that reads login_events is an index range on occurred_at."""
    from zoneinfo import ZoneInfo

    from psycopg import sql

    from ent_exporter.engine.collector import Context
    from ent_exporter.indicators import discover
    from ent_exporter.sources.postgres import PostgresSource
    from tests.test_collectors_plans import RecordingSource, index_conditions, scans_of

    dsn = month
    collector = discover()[name]()
    with PostgresSource(dsn) as source:
        recording = RecordingSource(source)
        first = collector.collect(Context(source=recording, now=NOW, timezone=ZoneInfo("Europe/Paris"), state={}))
        recording.statements.clear()
        collector.collect(
            Context(
                source=recording, now=NOW + timedelta(minutes=20), timezone=ZoneInfo("Europe/Paris"), state=first.state
            )
        )
    reading = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement, params in recording.statements:
            plan = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + statement, params).fetchone()[0][0]["Plan"]
            for scan in scans_of(plan, "login_events"):
                reading += 1
                assert scan["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan"), scan
                assert "occurred_at >=" in index_conditions(scan) and "occurred_at <" in index_conditions(scan), scan
    # visitors: what settled and the tail of today; activity: those and the two partial edge days;
    # heatmap: those and one edge.
    assert reading == {"visitors": 2, "activity": 4, "login_heatmap": 3}[name]


def test_window_states_are_on_disk_between_runs_and_read_back(month, tmp_path):
    """The per-day aggregates take memory only while their collector runs: after the restore and after
    each run the runtime holds no state of a window collector (the counters keep theirs), and the next
    run, from the state read back, equals a full recount."""
    dsn = month
    cfg = config(dsn, tmp_path)
    for name in WINDOWED:
        run(dsn, tmp_path, name, NOW - timedelta(hours=2))
    add_logins(dsn, 120, NOW - timedelta(minutes=20))
    with make_source(cfg) as source:
        runtime = make_runtime(cfg, source, persistent=True)
        runtime.restore()
        assert not any(runtime.holds_in_memory(name) for name in WINDOWED)
        for name in WINDOWED:
            assert runtime.run(name, NOW)
            assert not runtime.holds_in_memory(name)
            assert comparable(runtime.samples(name)) == full_recount(dsn, name, NOW), name
        assert runtime.run("logins", NOW)
        assert runtime.holds_in_memory("logins"), "counters keep their state in memory"
        assert runtime.state("logins")["watermark"] >= HISTORY


def test_window_states_are_read_in_pieces_and_a_run_reads_its_state_alone(month, tmp_path, monkeypatch):
    """No state file is held whole: a load reads it a piece at a time (ent_exporter.engine.pieces), so the
    most it holds at once is about a chunk or the largest single value (a day's encoded arrays), less than
    the file; the restore of a window collector stops before its state, and its run reads its state back
    alone (not the samples it replaces), then equals a full recount."""
    from ent_exporter.engine import pieces
    from ent_exporter.engine.state import StateStore

    dsn = month
    cfg = config(dsn, tmp_path)
    for name in WINDOWED:
        run(dsn, tmp_path, name, NOW - timedelta(hours=2))
    add_logins(dsn, 120, NOW - timedelta(minutes=20))
    chunk = 4096
    monkeypatch.setattr(pieces, "CHUNK", chunk)
    loads: list[tuple[str, bool, bool, int]] = []
    load = StateStore.load

    def recorded(self, collector, **options):
        self.largest_read = 0
        result = load(self, collector, **options)
        loads.append((collector, options.get("with_state", True), options.get("with_samples", True), self.largest_read))
        return result

    monkeypatch.setattr(StateStore, "load", recorded)
    sizes, largest_values = {}, {}
    for name in WINDOWED:
        text = (tmp_path / "collectors" / f"{name}.json").read_text()
        sizes[name] = len(text)
        largest_values[name] = max(map(len, _pieces(json.loads(text))))
    with make_source(cfg) as source:
        runtime = make_runtime(cfg, source, persistent=True)
        runtime.restore()
        for name in WINDOWED:
            assert runtime.run(name, NOW)
            assert comparable(runtime.samples(name)) == full_recount(dsn, name, NOW), name
    for name in WINDOWED:
        mine = [
            (with_state, with_samples, held) for collector, with_state, with_samples, held in loads if collector == name
        ]
        # The restore (without the state), the run (its state alone), the samples read back above.
        assert [(with_state, with_samples) for with_state, with_samples, _ in mine] == [
            (False, True),
            (True, False),
            (True, True),
        ], name
        for _, _, held in mine:
            assert held <= 2 * (chunk + largest_values[name]) < sizes[name], (name, held, sizes[name])


def _pieces(value):
    """The JSON of the values a load reads whole: strings, and lists of anything but lists and objects."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _pieces(item)
    elif isinstance(value, list) and any(isinstance(item, list | dict) for item in value):
        for item in value:
            yield from _pieces(item)
    else:
        yield json.dumps(value)


def as_format_1(log: dict, rng) -> dict:
    """A DayLog state (format 2) written as format 1 wrote it: users as a JSON list of ids (None for
    logins without a user), columns under "columns", each day's rows in any order, users as numbers."""
    import numpy as np

    from ent_exporter.aggregation.days import _decode, _encode

    users = log["users"]
    ids = _decode(users["ids"], f"S{users['width']}")
    days = {}
    for day, entry in log["days"].items():
        entry = dict(entry)
        for part in (entry, entry.get("tail")):
            if part and not entry.get("folded") and part.pop("delta", False):
                order = np.array(
                    rng.sample(range(len(_decode(part["count"], "<i4"))), len(_decode(part["count"], "<i4"))),
                    dtype=np.int64,
                )
                part["user"] = _encode(np.cumsum(_decode(part["user"], "<i4"))[order].astype("<i4"))
                part["count"] = _encode(_decode(part["count"], "<i4")[order])
                part["columns"] = {
                    name: _encode(_decode(values, "<i2")[order]) for name, values in part["columns"].items()
                }
        days[day] = entry
    return {
        "columns": log["by"],
        "watermark": log["watermark"],
        "tail_since": log["tail_since"],
        "users": [None if number == users["null"] else ids[number].decode() for number in range(len(ids))],
        "profiles": log["profiles"],
        "days": days,
    }


@pytest.mark.parametrize("name", WINDOWED)
def test_a_format_1_state_is_read_without_a_recount(month, tmp_path, name):
    """An exporter upgraded over a state written before format 2 (users as a JSON list) carries on
    from it: the same numbers as a full recount, and only the new events read."""
    import random

    dsn = month
    run(dsn, tmp_path, name, NOW)
    path = tmp_path / "collectors" / f"{name}.json"
    stored = json.loads(path.read_text())
    state = stored["state"]
    assert state.get("format", state.get("log", {}).get("format")) == 2
    rng = random.Random(5)
    if name == "activity":
        state["log"] = as_format_1(state["log"], rng)
    else:
        stored["state"] = as_format_1(state, rng)
    assert None in (stored["state"].get("users") or stored["state"]["log"]["users"])  # logins without a user
    path.write_text(json.dumps(stored))
    later = NOW + timedelta(minutes=20)
    add_logins(dsn, 500, later - timedelta(minutes=1))
    before = table_reads(dsn, "login_events")
    carried_on = comparable(run(dsn, tmp_path, name, later))
    after = wait_for_stats(dsn, "login_events", before)
    assert carried_on == full_recount(dsn, name, later)
    window = {"visitors": HISTORY * 18 // 90, "activity": HISTORY, "login_heatmap": HISTORY * 28 // 90}[name]
    assert after["idx_tup_fetch"] - before["idx_tup_fetch"] < window / 5  # no recount of the window


def test_user_numbers_are_stable_through_new_users_the_null_user_and_the_state():
    """ent_exporter.aggregation.days.Users: each id (the empty one included) and the NULL user keep one number,
    whatever the order they come in, through the state and from a format 1 list."""
    import random

    import numpy as np

    from ent_exporter.aggregation.days import Users, split_ids

    rng = random.Random(3)
    for _trial in range(200):
        users, seen = Users(), {}
        for _step in range(6):
            batch = list(
                {
                    rng.choice(["", "a", "ab", "b", "zz", "é", "x" * rng.randrange(1, 9), None, str(rng.randrange(50))])
                    for _ in range(rng.randrange(0, 12))
                }
            )
            ids = [user for user in batch if user is not None]
            numbers = users.numbers(split_ids(b"\0".join(user.encode() for user in ids))) if ids else np.zeros(0)
            if None in batch:
                ids, numbers = ids + [None], list(numbers) + [users.null_number()]
            for user, number in zip(ids, numbers):
                assert seen.setdefault(user, int(number)) == number, (user, number, seen)
            assert sorted(seen.values()) == list(range(len(users)))
            # Looked up (in chunks, repeats and strangers included), never numbered.
            asked = [rng.choice(["", "a", "zz", "é", "never", "x" * 12, str(rng.randrange(60))]) for _ in range(9)]
            found = users.lookup(split_ids(b"\0".join(user.encode() for user in asked)), chunk=4)
            assert list(found) == [seen.get(user, -1) for user in asked]
            assert len(users) == len(seen)
            if rng.random() < 0.4:
                users = Users.load({"users": users.state()})
            elif rng.random() < 0.2:
                listed = [None] * len(users)
                for user, number in seen.items():
                    listed[number] = user
                users = Users.load({"users": listed})


@pytest.mark.parametrize("name", WINDOWED)
def test_accounts_read_in_parts_give_the_figures_of_one_read(month, monkeypatch, name):
    """The window collectors read accounts in PARTS parts of the users (ent_exporter.aggregation.days.user_parts):
    the figures are those of one part holding every user, users with two structures and activated
    users who never logged in included."""
    import ent_exporter.aggregation.days as daily

    with psycopg.connect(month) as conn:  # activated users who never logged in, spread over the parts
        conn.execute(
            "INSERT INTO ent.accounts SELECT 'never-' || i, 'S1', 'Student', %s, %s FROM generate_series(1, 40) i",
            (START, START),
        )
    parted = full_recount(month, name, NOW)
    if name == "activity":  # each of them counted: 40 more inactive Students in S1 than before
        assert parted["ent_inactive_accounts"][("S1", "Student", "90")] >= 40
    monkeypatch.setattr(daily, "PARTS", 1)
    assert full_recount(month, name, NOW) == parted


def test_ids_joined_with_their_lengths_split_as_nul_separated_ones():
    """ent_exporter.aggregation.days.ids_array (ids as one text and their UTF-8 lengths) gives the array split_ids gives
    from the NUL-separated bytes: empty ids, non-ASCII ones and different widths included."""
    import numpy as np

    from ent_exporter.aggregation.days import ids_array, split_ids

    for ids in (["a"], [""], ["", "é", "abc", "x" * 40, "ü1", ""], [f"user-{i}" for i in range(70_000)]):
        lengths = np.array([len(user.encode()) for user in ids], ">i4").tobytes()
        expected = split_ids(b"\0".join(user.encode() for user in ids))
        found = ids_array("".join(ids), lengths)
        assert found.dtype == expected.dtype and found.tolist() == expected.tolist()
    assert len(ids_array(None, None)) == 0
