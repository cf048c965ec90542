"""The previous month's visitors (monthly collector) in the steady state: combined from the per-day
aggregates the hourly visitors kept as the month went, without reading the month again; read whole
when those days do not cover it (a first start, a lost state, a month not yet closed for them).
Either way the figures equal those computed in Python from the raw rows, across a month start at
00:05 on the 1st, for March and October (Europe/Paris DST months), with late commits, people in
several structures, logins without a user or a profile, and a restart between every run."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random
from zoneinfo import ZoneInfo

import psycopg
import pytest

from ent_exporter.app import make_runtime, make_source
from ent_exporter.config import parse_config
from ent_exporter.indicators.visitors import PREVIOUS_MONTH
from tests.support import RawData, attachments, insert, make_accounts
from tests.test_incremental_cost import table_reads, wait_for_stats
from tests.test_window_collectors import expected_visitors, previous_month_period

pytestmark = pytest.mark.time_sensitive

PARIS = ZoneInfo("Europe/Paris")
USERS = 60
LOGGER = "ent_exporter.indicators.visitors"


def paris(*args, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=PARIS, fold=fold).astimezone(UTC)


# The closed month, the DST change inside it and the 1st of the month after.
MONTHS = {
    "March (spring DST)": (paris(2026, 3, 1), [paris(2026, 3, 29, 1, 59, 59), paris(2026, 3, 29, 3, 0)], (2026, 4, 1)),
    "October (autumn DST)": (
        paris(2026, 10, 1),
        [paris(2026, 10, 25, 2, 30), paris(2026, 10, 25, 2, 30, fold=1)],
        (2026, 11, 1),
    ),
}


def config(dsn: str, state_dir: Path):
    return parse_config(
        {"source": {"dsn": dsn, "settle_seconds": 0}, "state_dir": str(state_dir), "timezone": "Europe/Paris"}, "test"
    )


def run(dsn: str, state_dir: Path | None, name: str, now: datetime) -> dict:
    """One run as of ``now`` in a runtime restored from ``state_dir`` (a restart before every run), or
    from nothing (None)."""
    cfg = config(dsn, state_dir or Path("/nonexistent-unused"))
    with make_source(cfg) as source:
        runtime = make_runtime(cfg, source, persistent=state_dir is not None)
        if state_dir is not None:
            runtime.restore()
        assert runtime.run(name, now)
        return runtime.samples(name)


def rows_read(dsn: str, action) -> int:
    """Rows of login_events an action read (pg_stat_user_tables), asserting it scanned none sequentially."""
    before = table_reads(dsn, "login_events")
    action()
    after = wait_for_stats(dsn, "login_events", before)
    assert after["seq_tup_read"] == before["seq_tup_read"], "login_events was scanned"
    return after["idx_tup_fetch"] - before["idx_tup_fetch"]


def fill(dsn: str, month_start: datetime, edges: list[datetime], next_month: datetime) -> RawData:
    """Logins every ~25 minutes from 5 days before the month to 00:04 on the 1st after it (users with two
    structures, users without an account, logins without a user or a profile), and logins on the
    month's edges and its DST change."""
    rng = Random(month_start.month)
    raw = RawData(accounts=make_accounts(rng, USERS, structures=4, start=month_start))
    moment = month_start - timedelta(days=5)
    while moment < next_month + timedelta(minutes=4):
        user = None if rng.random() < 0.03 else f"user-{rng.randrange(int(USERS * 1.2))}"
        raw.logins.append((user, rng.choice(["Student", "Teacher", "Relative", "", None]), moment))
        moment += timedelta(minutes=rng.randint(5, 45))
    for edge in [*edges, month_start, next_month - timedelta(microseconds=1), next_month]:
        raw.logins += [("user-1", "Teacher", edge), ("user-7", "Student", edge), (None, "Student", edge)]
    insert(dsn, raw)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE ent.login_events")
    return raw


def expected(raw: RawData, now: datetime) -> dict:
    # A login without a user is nobody's visit: neither a visitor nor a visit.
    people = RawData(accounts=raw.accounts, logins=[login for login in raw.logins if login[0] is not None])
    visitors, visits = expected_visitors(people, previous_month_period(now))
    return {"ent_unique_visitors": visitors, "ent_visits_per_visitor": visits}


@pytest.mark.parametrize("month", list(MONTHS))
def test_the_closed_month_is_combined_from_the_hourly_days(source_dsn, tmp_path, caplog, month):
    dsn = source_dsn
    start, edges, (year, number, day) = MONTHS[month]
    first_of_next = paris(year, number, day)
    raw = fill(dsn, start, edges, first_of_next)
    # People in several structures visit: structure="all" counts each of them once.
    structures = attachments(raw.accounts)
    assert any(len(structures.get(user, ())) == 2 for user, _p, at in raw.logins if start <= at < first_of_next)
    # The hourly collector through the month (its first run counts the month to date), then 00:05 on the 1st:
    # the month's last day is still open (the late-commit limit), its days are kept.
    for moment in (
        start + timedelta(minutes=30),
        start + timedelta(days=14, hours=12),
        first_of_next - timedelta(minutes=55),
    ):
        run(dsn, tmp_path, "visitors", moment)
    # A late commit: a transaction stamps a login at 23:50 on the last day and commits only after the 00:05
    # run, its event_id below one committed before that run (below the instant counters' high-water mark).
    late = ("user-3", "Relative", first_of_next - timedelta(minutes=10))
    with psycopg.connect(dsn) as pending:
        late_id = pending.execute(
            "INSERT INTO ent.login_events (user_id, profile, occurred_at) VALUES (%s, %s, %s) RETURNING event_id", late
        ).fetchone()[0]
        with psycopg.connect(dsn) as other:
            other_id = other.execute(
                "INSERT INTO ent.login_events (user_id, profile, occurred_at) VALUES (%s, %s, %s) RETURNING event_id",
                ("user-4", "Teacher", first_of_next - timedelta(minutes=8)),
            ).fetchone()[0]
        raw.logins.append(("user-4", "Teacher", first_of_next - timedelta(minutes=8)))
        assert late_id < other_id
        run(dsn, tmp_path, "visitors", first_of_next + timedelta(minutes=5))
    raw.logins.append(late)  # committed now
    hourly = tmp_path / "collectors" / "visitors.json"
    assert (
        PREVIOUS_MONTH not in _state(hourly)
        or _state(hourly)[PREVIOUS_MONTH]["month"] != start.astimezone(PARIS).date().isoformat()
    )
    # 01:05: the last day closed (recounted whole), the month combined once.
    run(dsn, tmp_path, "visitors", first_of_next + timedelta(hours=1, minutes=5))
    combined = _state(hourly)[PREVIOUS_MONTH]
    assert combined["month"] == start.astimezone(PARIS).date().isoformat() and combined["zone"] == "Europe/Paris"
    # ... and the closed month's days are gone from the hourly state at its next run.
    run(dsn, tmp_path, "visitors", first_of_next + timedelta(hours=2, minutes=5))
    assert start.astimezone(PARIS).date().isoformat() not in _state(hourly)["days"]
    # The monthly collector at its schedule (04:15 on the 1st), in a process restarted from the state
    # directory: no row of login_events read, the figures of the raw rows, the late login included.
    monthly_at = first_of_next + timedelta(hours=4, minutes=15)
    samples: dict = {}
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    read = rows_read(dsn, lambda: samples.update(run(dsn, tmp_path, "visitors_previous_month", monthly_at)))
    assert read == 0
    assert "combined from the hourly visitors' days" in caplog.text
    truth = expected(raw, monthly_at)
    assert samples == truth, _diff(samples, truth)
    assert truth["ent_unique_visitors"][("S0", "all", "previous_month")] > 0
    # A full read of the month (no state at all) gives the very same figures, reading the month's rows.
    caplog.clear()
    full: dict = {}
    read = rows_read(dsn, lambda: full.update(run(dsn, None, "visitors_previous_month", monthly_at)))
    month_logins = sum(1 for _u, _p, at in raw.logins if start <= at < first_of_next)
    assert read >= month_logins
    assert "reading the month whole" in caplog.text
    assert full == truth


def test_without_the_hourly_days_the_month_is_read_whole(source_dsn, tmp_path, caplog):
    """A first start mid-month, a run before the month's last day is closed, a lost state: the monthly
    collector reads the month whole, and says so."""
    dsn = source_dsn
    start, edges, (year, number, day) = MONTHS["October (autumn DST)"]
    first_of_next = paris(year, number, day)
    raw = fill(dsn, start, edges, first_of_next)
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    # The hourly collector first started on the 1st: it never kept October's days.
    state = tmp_path / "first-start"
    run(dsn, state, "visitors", first_of_next + timedelta(hours=1, minutes=5))
    assert PREVIOUS_MONTH not in _state(state / "collectors" / "visitors.json")
    monthly_at = first_of_next + timedelta(hours=4, minutes=15)
    assert run(dsn, state, "visitors_previous_month", monthly_at) == expected(raw, monthly_at)
    assert "reading the month whole" in caplog.text
    # Kept through October, but the monthly collector runs at 00:05, before the last day closes.
    kept = tmp_path / "kept"
    run(dsn, kept, "visitors", first_of_next - timedelta(hours=2))
    run(dsn, kept, "visitors", first_of_next + timedelta(minutes=5))
    caplog.clear()
    early = first_of_next + timedelta(minutes=5)
    assert run(dsn, kept, "visitors_previous_month", early) == expected(raw, early)
    assert "reading the month whole" in caplog.text
    # The hourly state lost after the month was combined: read whole again.
    run(dsn, kept, "visitors", first_of_next + timedelta(hours=1, minutes=5))
    assert PREVIOUS_MONTH in _state(kept / "collectors" / "visitors.json")
    lost = tmp_path / "lost"
    shutil.copytree(kept, lost)
    (lost / "collectors" / "visitors.json").write_text("{not json")
    caplog.clear()
    assert run(dsn, lost, "visitors_previous_month", monthly_at) == expected(raw, monthly_at)
    assert "reading the month whole" in caplog.text


def _state(path: Path) -> dict:
    import json

    return json.loads(path.read_text())["state"]


def _diff(a, b):
    return {f: {k: (a[f].get(k), b[f].get(k)) for k in set(a[f]) | set(b[f]) if a[f].get(k) != b[f].get(k)} for f in a}
