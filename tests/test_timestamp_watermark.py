"""Relations without event ids are counted by occurred_at: late events are caught by the
recount of their closed day, exactly once, across restarts and crashes."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from random import Random
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import sql

from ent_exporter.app import make_runtime, make_source
from ent_exporter.config import parse_config
from ent_exporter.sources.postgres import SourceUnavailable
from tests.support import (
    FULL_BREAKDOWNS,
    RawData,
    as_samples,
    expected_connector_samples,
    expected_event_counts,
    insert,
    make_accounts,
    make_events,
    parse,
)

pytestmark = pytest.mark.time_sensitive

PARIS = ZoneInfo("Europe/Paris")
# The last Sunday of October 2026 lasts 25 hours in Paris. Instants in UTC, so that adding
# hours adds elapsed time (on datetimes of one zone, Python adds wall-clock time).
DAY = datetime(2026, 10, 25, tzinfo=PARIS).astimezone(UTC)
USERS = 40
EVENT_TABLES = ("login_events", "app_access_events", "connector_events")
COUNTERS = ("logins", "app_accesses", "connectors")


@pytest.fixture
def uuid_source(source_dsn):
    """The canonical tables, but events carry no event_id (as with Edifice's UUIDs)."""
    with psycopg.connect(source_dsn) as conn:
        for table in EVENT_TABLES:
            conn.execute(
                sql.SQL(
                    "ALTER TABLE {} ALTER COLUMN event_id DROP IDENTITY, ALTER COLUMN event_id DROP NOT NULL"
                ).format(sql.Identifier("ent", table))
            )
    return source_dsn


class Cycles:
    """Runs the instant counters like the daemon does, restarting (new runtime, state restored) every time."""

    def __init__(self, dsn: str, state_dir, settle_seconds: float = 0) -> None:
        self.config = parse_config(
            {
                "source": {"dsn": dsn, "settle_seconds": settle_seconds},
                "timezone": "Europe/Paris",
                "state_dir": str(state_dir),
                "breakdowns": FULL_BREAKDOWNS,
            },
            "test",
        )
        self.statements: list = []

    def run(self, now: datetime, fail_after: int | None = None) -> dict:
        source = make_source(self.config)
        source.open()
        original = source.fetch

        def fetch(query, params=None, **placeholders):
            if fail_after is not None and len(self.statements) >= fail_after:
                raise SourceUnavailable("simulated outage")
            self.statements.append(query)
            return original(query, params, **placeholders)

        source.fetch = fetch
        opened = source.snapshot

        @contextlib.contextmanager
        def snapshot():  # statements in a snapshot count (and fail) the same
            with opened() as inside:
                original_inside = inside.fetch

                def fetch_inside(query, params=None, **placeholders):
                    if fail_after is not None and len(self.statements) >= fail_after:
                        raise SourceUnavailable("simulated outage")
                    self.statements.append(query)
                    return original_inside(query, params, **placeholders)

                inside.fetch = fetch_inside
                yield inside

        source.snapshot = snapshot
        try:
            runtime = make_runtime(self.config, source, persistent=True)
            runtime.restore()
            self.runtime = runtime
            for name in COUNTERS:
                runtime.run(name, now)
            return parse(runtime.exposition.body().decode())
        finally:
            source.close()


def truth(raw: RawData, upto: datetime) -> dict:
    logins = [e for e in raw.logins if e[2] < upto]
    accesses = [e for e in raw.app_accesses if e[3] < upto]
    calls = [e for e in raw.connector_calls if e[2] < upto]
    expected = {
        "ent_logins_total": as_samples(
            "ent_logins_total", ("structure", "profile"), expected_event_counts(raw.accounts, logins, False)
        ),
        "ent_app_accesses_total": as_samples(
            "ent_app_accesses_total",
            ("structure", "profile", "app"),
            expected_event_counts(raw.accounts, accesses, True),
        ),
    }
    expected.update(expected_connector_samples(calls))
    return expected


def assert_exact(samples: dict, raw: RawData, upto: datetime) -> None:
    for name, values in truth(raw, upto).items():
        if name.endswith("_sum"):
            assert samples.get(name, {}) == pytest.approx(values), name
        else:
            assert samples.get(name, {}) == values, name


def add(raw: RawData, events: RawData) -> RawData:
    insert_only = RawData(
        logins=events.logins, app_accesses=events.app_accesses, connector_calls=events.connector_calls
    )
    for table in ("logins", "app_accesses", "connector_calls"):
        getattr(raw, table).extend(getattr(events, table))
    return insert_only


def test_late_events_are_exact_once_their_day_is_closed_and_never_counted_twice(uuid_source, tmp_path):
    rng = Random(5)
    raw = RawData(accounts=make_accounts(rng, USERS, structures=3, start=DAY))
    insert(uuid_source, raw)
    cycles = Cycles(uuid_source, tmp_path)

    # The day before, and the morning, arrive in time.
    insert(uuid_source, add(raw, make_events(rng, 200, USERS, DAY - timedelta(hours=20), timedelta(hours=30))))
    noon = DAY + timedelta(hours=12)
    assert_exact(cycles.run(noon), raw, noon)
    assert cycles.runtime.state("logins")["mode"] == "occurred_at"

    # Late events of the morning (behind the watermark) and new ones of the afternoon.
    in_time = RawData(
        accounts=raw.accounts,
        logins=list(raw.logins),
        app_accesses=list(raw.app_accesses),
        connector_calls=list(raw.connector_calls),
    )
    insert(uuid_source, add(raw, make_events(rng, 60, USERS, DAY + timedelta(hours=1), timedelta(hours=10))))
    on_time = make_events(rng, 80, USERS, noon, timedelta(hours=6))
    add(in_time, on_time)
    insert(uuid_source, add(raw, on_time))
    evening = DAY + timedelta(hours=19)
    # The day is open: the late events wait for its recount, nothing is counted twice.
    assert_exact(cycles.run(evening), in_time, evening)

    # Around midnight (25 h after the day began: the clocks went back), more late events,
    # some just before the end of the day, some of the next day.
    end = DAY + timedelta(hours=25)
    assert end.astimezone(PARIS).hour == 0
    insert(uuid_source, add(raw, make_events(rng, 30, USERS, end - timedelta(minutes=30), timedelta(minutes=50))))
    assert cycles.run(end + timedelta(minutes=30))  # not closed yet (reconcile delay: 1 h)
    insert(uuid_source, add(raw, make_events(rng, 10, USERS, DAY + timedelta(hours=2), timedelta(hours=1))))

    closed = end + timedelta(hours=1, minutes=5)
    assert_exact(cycles.run(closed), raw, closed)
    # Later cycles (restarts every time) add nothing twice.
    again = closed + timedelta(minutes=1)
    assert_exact(cycles.run(again), raw, again)

    # An event landing after its day was recounted is not counted (the documented limit).
    too_late = add(RawData(), make_events(rng, 1, USERS, DAY + timedelta(hours=3), timedelta(minutes=1)))
    insert(uuid_source, too_late)
    raw_then = cycles.run(closed + timedelta(hours=2))
    assert raw_then["ent_logins_total"] == cycles.run(closed + timedelta(hours=3))["ent_logins_total"]
    assert_exact(raw_then, raw, closed + timedelta(hours=2))


def test_a_crash_in_the_middle_of_a_run_resumes_exactly(uuid_source, tmp_path):
    rng = Random(9)
    raw = RawData(accounts=make_accounts(rng, USERS, structures=4, start=DAY))
    insert(uuid_source, raw)
    insert(uuid_source, add(raw, make_events(rng, 600, USERS, DAY - timedelta(days=12), timedelta(days=12, hours=9))))
    now = DAY + timedelta(hours=10)
    for fail_after in (3, 9, 20):
        cycles = Cycles(uuid_source, tmp_path / f"state-{fail_after}")
        cycles.run(now, fail_after=fail_after)  # dies part way through the history
        assert_exact(cycles.run(now), raw, now)
        assert_exact(cycles.run(now + timedelta(hours=20)), raw, now + timedelta(hours=20))


def test_one_statement_per_day_then_one_per_cycle(uuid_source, tmp_path):
    rng = Random(2)
    raw = RawData(accounts=make_accounts(rng, USERS, structures=2, start=DAY))
    insert(uuid_source, raw)
    insert(uuid_source, add(raw, make_events(rng, 300, USERS, DAY - timedelta(days=30), timedelta(days=30))))
    cycles = Cycles(uuid_source, tmp_path)
    now = DAY + timedelta(hours=8)
    cycles.run(now)
    per_counter = len(cycles.statements) / len(COUNTERS)
    # The mode probe, the first event, then one aggregate statement per day of the history.
    assert 31 <= per_counter <= 34, per_counter
    cycles.statements.clear()
    insert(uuid_source, add(raw, make_events(rng, 20, USERS, now, timedelta(minutes=1))))
    later = now + timedelta(minutes=2)
    assert_exact(cycles.run(later), raw, later)
    assert len(cycles.statements) == len(COUNTERS)


def test_the_settle_delay_holds_back_young_events(uuid_source, tmp_path):
    raw = RawData(accounts=[("u", "S1", "Teacher", DAY, DAY)])
    insert(uuid_source, raw)
    insert(
        uuid_source,
        add(
            raw,
            RawData(
                logins=[
                    ("u", "Teacher", DAY + timedelta(hours=9)),
                    ("u", "Teacher", DAY + timedelta(hours=9, minutes=4)),
                ]
            ),
        ),
    )
    cycles = Cycles(uuid_source, tmp_path, settle_seconds=300)
    first = cycles.run(DAY + timedelta(hours=9, minutes=6))
    assert first["ent_logins_total"][(("profile", "Teacher"), ("structure", "all"))] == 1
    second = cycles.run(DAY + timedelta(hours=9, minutes=10))
    assert second["ent_logins_total"][(("profile", "Teacher"), ("structure", "all"))] == 2


def test_event_ids_keep_the_event_id_watermark(source_dsn, tmp_path):
    raw = RawData(accounts=[("u", "S1", "Teacher", DAY, DAY)], logins=[("u", "Teacher", DAY)])
    insert(source_dsn, raw)
    cycles = Cycles(source_dsn, tmp_path)
    cycles.run(DAY + timedelta(hours=1))
    assert cycles.runtime.state("logins")["mode"] == "event_id"


def test_the_time_slice_is_an_index_range_scan(uuid_source):
    from ent_exporter.indicators.logins import LoginsCollector

    with psycopg.connect(uuid_source) as conn:
        conn.execute(
            "INSERT INTO ent.login_events (user_id, profile, occurred_at)"
            " SELECT 'u' || i, 'Student', %s + i * interval '1 minute' FROM generate_series(1, 50000) i",
            (DAY,),
        )
        conn.execute("ANALYZE ent.login_events")
        config = parse_config({"source": {"dsn": uuid_source}}, "test")
        source = make_source(config)
        recorded = {}

        class Recorder:
            schema, relations = source.schema, source.relations

            @contextlib.contextmanager
            def snapshot(self):
                yield self

            def fetch(self, query, params=None, **placeholders):
                recorded["statement"] = source.compose(query, **placeholders)
                recorded["params"] = params
                return []

        from ent_exporter.engine.collector import Context

        LoginsCollector()._count(Context(Recorder(), DAY, PARIS, {}), DAY, DAY + timedelta(hours=1))
        plan = conn.execute(
            sql.SQL("EXPLAIN (FORMAT JSON) {}").format(recorded["statement"]), recorded["params"]
        ).fetchone()[0]
    nodes = []

    def walk(node):
        nodes.append(node)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    scans = [n for n in nodes if n.get("Relation Name") == "login_events"]
    assert scans and all(n["Node Type"] in ("Index Scan", "Bitmap Heap Scan", "Index Only Scan") for n in scans), scans
