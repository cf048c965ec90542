"""The demo's synthetic ENT: reproducible, shaped like a school's week, reused when seeded, and alive."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from ent_exporter.demo.data import APPS, CONNECTORS, FLAKY_CONNECTOR, PROFILES, ensure_seeded, read_marker, seed
from ent_exporter.demo.live import LiveGenerator, Population
from tests.support import canonical_database

END = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # a Monday morning
SMALL = {"scale": 0.1, "days": 14, "end": END, "progress": False}

_extra_databases = itertools.count()


@pytest.fixture
def second_source_dsn(pg_server):
    """Another database with the canonical tables, for comparing two seeds."""
    name = f"demo_copy_{next(_extra_databases)}"
    yield canonical_database(pg_server, name)
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def small_ent(source_dsn):
    with psycopg.connect(source_dsn) as conn:
        seed(conn, **SMALL)
    return source_dsn


def rows(dsn: str, query: str, params=()) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def value(dsn: str, query: str, params=()):
    return rows(dsn, query, params)[0][0]


CHECKSUMS = """
    SELECT 'structures', count(*), md5(string_agg(t::text, '|' ORDER BY structure_id)) FROM ent.structures t
    UNION ALL SELECT 'accounts', count(*), md5(string_agg(t::text, '|' ORDER BY user_id, structure_id))
        FROM ent.accounts t
    UNION ALL SELECT 'login_events', count(*), md5(string_agg(t::text, '|' ORDER BY event_id)) FROM ent.login_events t
    UNION ALL SELECT 'app_access_events', count(*), md5(string_agg(t::text, '|' ORDER BY event_id))
        FROM ent.app_access_events t
    UNION ALL SELECT 'connector_events', count(*), md5(string_agg(t::text, '|' ORDER BY event_id))
        FROM ent.connector_events t
"""


def checksums(dsn: str) -> dict[str, tuple[int, str]]:
    return {table: (count, digest) for table, count, digest in rows(dsn, CHECKSUMS)}


# -- determinism and speed ----------------------------------------------------------------


def test_same_arguments_give_identical_rows_and_another_seed_does_not(source_dsn, second_source_dsn):
    with psycopg.connect(source_dsn) as conn:
        first = seed(conn, **SMALL)
    with psycopg.connect(second_source_dsn) as conn:
        second = seed(conn, **SMALL)
    assert first.counts == second.counts
    assert checksums(source_dsn) == checksums(second_source_dsn)
    assert all(count > 0 for count, _ in checksums(source_dsn).values())

    with psycopg.connect(second_source_dsn) as conn:
        seed(conn, **SMALL, random_seed=7)
    other = checksums(second_source_dsn)
    assert all(other[table] != digest for table, digest in checksums(source_dsn).items())


def test_default_scale_seeds_a_regional_sized_history(source_dsn):
    with psycopg.connect(source_dsn) as conn:
        summary = seed(conn, end=END, progress=False)
    counts = {table: value(source_dsn, f"SELECT count(*) FROM ent.{table}") for table in summary.counts}
    assert counts == summary.counts
    assert counts["structures"] == 20
    assert 19_000 <= counts["accounts"] <= 22_000
    assert 800_000 <= summary.events <= 1_500_000
    assert summary.events_per_second > 0 and summary.seeded
    assert "events" in summary.describe()


def test_event_ids_follow_time_and_sequences_continue_them(small_ent):
    for table in ("login_events", "app_access_events", "connector_events"):
        count, first, last, ordered = rows(
            small_ent,
            f"""
            SELECT count(*), min(event_id), max(event_id),
                   bool_and(occurred_at >= previous) FILTER (WHERE previous IS NOT NULL)
            FROM (SELECT event_id, occurred_at, lag(occurred_at) OVER (ORDER BY event_id) AS previous
                  FROM ent.{table}) t""",
        )[0]
        assert (first, last) == (1, count) and ordered, table
    for table in ("login_events", "app_access_events", "connector_events"):
        first, last = rows(small_ent, f"SELECT min(occurred_at), max(occurred_at) FROM ent.{table}")[0]
        assert END - timedelta(days=14) <= first and last <= END, table
    with psycopg.connect(small_ent) as conn:
        new_id = conn.execute(
            "INSERT INTO ent.login_events (user_id, profile, occurred_at)"
            " VALUES ('x', 'Student', now()) RETURNING event_id"
        ).fetchone()[0]
    assert new_id == value(small_ent, "SELECT count(*) FROM ent.login_events")


# -- shape --------------------------------------------------------------------------------


def test_structures_and_accounts_look_like_french_schools(small_ent):
    structures = rows(small_ent, "SELECT structure_id, name, kind FROM ent.structures")
    assert structures and all(len(uai) == 8 and uai[:7].isdigit() and uai[7].isalpha() for uai, _, _ in structures)
    assert {kind for _, _, kind in structures} <= {"college", "lycee", "ecole"}
    assert all(name.split()[0] in ("Collège", "Lycée", "École") for _, name, _ in structures)

    shares = dict(
        rows(
            small_ent,
            """
        SELECT profile, count(DISTINCT user_id)::float / sum(count(DISTINCT user_id)) OVER ()
        FROM ent.accounts GROUP BY profile""",
        )
    )
    assert set(shares) == set(PROFILES)
    assert 0.50 <= shares["Student"] <= 0.60 and 0.25 <= shares["Relative"] <= 0.35
    assert 0.06 <= shares["Teacher"] <= 0.12 and shares["Personnel"] < shares["Teacher"]
    assert 0 < shares["Guest"] < shares["Personnel"]

    pending = dict(
        rows(small_ent, "SELECT profile, avg((activated_at IS NULL)::int)::float FROM ent.accounts GROUP BY profile")
    )
    assert 0 < pending["Student"] < pending["Relative"]
    assert value(small_ent, "SELECT count(*) FROM ent.accounts WHERE activated_at < created_at") == 0
    before, during = rows(
        small_ent,
        "SELECT count(*) FILTER (WHERE activated_at < %(start)s),"
        " count(*) FILTER (WHERE activated_at >= %(start)s) FROM ent.accounts",
        {"start": END - timedelta(days=14)},
    )[0]
    assert before > 0 and during > 0
    assert (
        value(
            small_ent,
            "SELECT count(*) FROM (SELECT user_id FROM ent.accounts GROUP BY user_id"
            " HAVING count(DISTINCT structure_id) > 1) twice",
        )
        > 0
    )


LOCAL = "(occurred_at AT TIME ZONE 'Europe/Paris')"


def logins_per_day(dsn: str, where: str) -> float:
    """Average logins per local day among the full days matching ``where``."""
    return value(
        dsn,
        f"""
        SELECT count(*)::float / count(DISTINCT {LOCAL}::date) FROM ent.login_events
        WHERE {where} AND {LOCAL}::date > (%(start)s AT TIME ZONE 'Europe/Paris')::date
                      AND {LOCAL}::date < (%(end)s AT TIME ZONE 'Europe/Paris')::date""",
        {"start": END - timedelta(days=14), "end": END},
    )


def test_logins_follow_the_school_week_in_paris_time(small_ent):
    by_hour = dict(
        rows(small_ent, f"SELECT extract(hour FROM {LOCAL})::int, count(*) FROM ent.login_events GROUP BY 1")
    )
    assert by_hour.get(3, 0) * 10 < by_hour[10]
    assert by_hour[8] > by_hour[10] and by_hour[18] > by_hour[15]  # the morning and evening peaks
    relatives = dict(
        rows(
            small_ent,
            f"SELECT extract(hour FROM {LOCAL})::int, count(*) FROM ent.login_events"
            " WHERE profile = 'Relative' GROUP BY 1",
        )
    )
    assert relatives[19] > 2 * relatives[10]

    afternoon = f"extract(hour FROM {LOCAL}) BETWEEN 13 AND 17"
    wednesday = logins_per_day(small_ent, f"extract(isodow FROM {LOCAL}) = 3 AND {afternoon}")
    tuesday = logins_per_day(small_ent, f"extract(isodow FROM {LOCAL}) = 2 AND {afternoon}")
    assert wednesday < 0.7 * tuesday
    weekend = logins_per_day(small_ent, f"extract(isodow FROM {LOCAL}) >= 6")
    weekdays = logins_per_day(small_ent, f"extract(isodow FROM {LOCAL}) <= 5")
    assert weekend < 0.5 * weekdays


def test_users_differ_in_activity(small_ent):
    per_user = [
        n
        for (n,) in rows(
            small_ent,
            """
        SELECT count(l.user_id) FROM (SELECT DISTINCT user_id FROM ent.accounts WHERE activated_at IS NOT NULL) a
        LEFT JOIN ent.login_events l USING (user_id) GROUP BY a.user_id""",
        )
    ]
    assert min(per_user) == 0  # some never log in
    assert max(per_user) > 10 * (sum(per_user) / len(per_user))  # a few very active
    lapsed = value(
        small_ent,
        """
        SELECT count(*) FROM (SELECT user_id FROM ent.login_events GROUP BY user_id
                              HAVING max(occurred_at) < %s) quiet""",
        (END - timedelta(days=7),),
    )
    assert lapsed > 0


def test_applications_have_a_long_tail_led_by_pronote(small_ent):
    popularity = rows(small_ent, "SELECT app, count(*) FROM ent.app_access_events GROUP BY 1 ORDER BY 2 DESC")
    assert {app for app, _ in popularity} == set(APPS)
    assert popularity[0][0] == "pronote"
    assert popularity[0][1] > 5 * popularity[-1][1]


def test_connectors_have_realistic_latencies_and_pronote_fails_in_bursts(small_ent):
    stats = {
        name: (count, failures, median, p99)
        for name, count, failures, median, p99 in rows(
            small_ent,
            """
        SELECT connector, count(*), avg((NOT success)::int)::float,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms),
               percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms)
        FROM ent.connector_events GROUP BY 1""",
        )
    }
    assert set(stats) == set(CONNECTORS)
    assert 10 < stats["ldap"][2] < 40 and 250 < stats["pronote"][2] < 600
    assert stats["pronote"][3] > 2500
    assert all(failures < 0.2 for _, failures, _, _ in stats.values())
    assert value(small_ent, "SELECT avg((structure_id IS NULL)::int)::float FROM ent.connector_events") < 0.2

    worst = dict(
        rows(
            small_ent,
            """
        SELECT connector, max(failures::float / calls) FILTER (WHERE calls >= 8)
        FROM (SELECT connector,
                     count(*) OVER w AS calls, count(*) FILTER (WHERE NOT success) OVER w AS failures
              FROM ent.connector_events
              WINDOW w AS (PARTITION BY connector ORDER BY occurred_at
                           RANGE BETWEEN CURRENT ROW AND '30 minutes' FOLLOWING)) windows
        GROUP BY 1""",
        )
    )
    assert worst[FLAKY_CONNECTOR] > 0.5
    assert all(ratio is None or ratio < 0.5 for name, ratio in worst.items() if name != FLAKY_CONNECTOR)


def test_some_events_are_attributed_to_unknown(small_ent):
    without_account, null_profile, empty_profile = rows(
        small_ent,
        """
        SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM ent.accounts a WHERE a.user_id = l.user_id)),
               count(*) FILTER (WHERE profile IS NULL), count(*) FILTER (WHERE profile = '')
        FROM ent.login_events l""",
    )[0]
    logins = value(small_ent, "SELECT count(*) FROM ent.login_events")
    assert 0 < without_account < 0.02 * logins
    assert null_profile > 0 and empty_profile > 0
    assert (
        value(
            small_ent,
            """SELECT count(*) FROM ent.app_access_events e
        WHERE NOT EXISTS (SELECT 1 FROM ent.accounts a WHERE a.user_id = e.user_id)""",
        )
        > 0
    )


# -- reuse --------------------------------------------------------------------------------


def add_sentinel(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO ent.login_events (user_id, profile, occurred_at) VALUES ('sentinel', NULL, now())")


def sentinels(dsn: str) -> int:
    return value(dsn, "SELECT count(*) FROM ent.login_events WHERE user_id = 'sentinel'")


def test_ensure_seeded_reuses_matching_data_and_reseeds_otherwise(source_dsn):
    with psycopg.connect(source_dsn) as conn:
        first = ensure_seeded(conn, **SMALL)
    assert first.seeded
    with psycopg.connect(source_dsn) as conn:
        assert read_marker(conn)["days"] == "14"
    add_sentinel(source_dsn)

    with psycopg.connect(source_dsn) as conn:
        again = ensure_seeded(conn, **SMALL)
        without_end = ensure_seeded(conn, **{**SMALL, "end": None})  # a restarted demo keeps its history
    assert not again.seeded and not without_end.seeded
    assert again.counts == first.counts and again.end == END
    assert sentinels(source_dsn) == 1  # nothing was truncated or inserted

    with psycopg.connect(source_dsn) as conn:
        other = ensure_seeded(conn, **{**SMALL, "days": 7})
    assert other.seeded and sentinels(source_dsn) == 0
    assert other.counts["login_events"] < first.counts["login_events"]


# -- live events --------------------------------------------------------------------------


def max_ids(dsn: str) -> tuple[int, int, int]:
    return rows(
        dsn,
        """SELECT (SELECT coalesce(max(event_id), 0) FROM ent.login_events),
                               (SELECT coalesce(max(event_id), 0) FROM ent.app_access_events),
                               (SELECT coalesce(max(event_id), 0) FROM ent.connector_events)""",
    )[0]


def wait_for(condition, timeout: float = 3.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(step)
    return condition()


def calls_after(dsn: str, connector: str, event_id: int) -> list[bool]:
    return [
        ok
        for (ok,) in rows(
            dsn,
            "SELECT success FROM ent.connector_events WHERE connector = %s AND event_id > %s",
            (connector, event_id),
        )
    ]


def test_live_generator_inserts_fails_on_demand_and_stops_promptly(small_ent, tmp_path):
    live = LiveGenerator(small_ent, interval=0.2, random_seed=1, control_dir=tmp_path)
    before = max_ids(small_ent)
    live.start()
    try:
        assert wait_for(lambda: all(now > then for now, then in zip(max_ids(small_ent), before)))

        live.set_outage(FLAKY_CONNECTOR, True)
        time.sleep(0.5)  # the tick under way may still have planned working calls
        mark = max_ids(small_ent)[2]
        failing = wait_for(
            lambda: len(calls_after(small_ent, "pronote", mark)) >= 3 and calls_after(small_ent, "pronote", mark)
        )
        assert failing and not any(failing)
        assert any(calls_after(small_ent, "ldap", mark))  # the others still work

        live.set_outage(FLAKY_CONNECTOR, False)
        (tmp_path / "outage-gar").touch()  # the switch another process uses
        time.sleep(0.5)
        mark = max_ids(small_ent)[2]
        assert wait_for(lambda: len(calls_after(small_ent, "gar", mark)) >= 3)
        assert not any(calls_after(small_ent, "gar", mark))
        assert any(calls_after(small_ent, "pronote", mark))
    finally:
        began = time.monotonic()
        live.stop()
        stopped_in = time.monotonic() - began
    assert stopped_in < 2
    settled = max_ids(small_ent)
    time.sleep(0.5)
    assert max_ids(small_ent) == settled


def test_live_generator_survives_a_lost_connection(small_ent, pg_server):
    live = LiveGenerator(small_ent, interval=0.1, random_seed=2)
    live.start()
    try:
        assert wait_for(lambda: live.inserted["logins"] > 0)
        with psycopg.connect(pg_server.get_uri(), autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'ent-exporter-demo-live'"
            ).fetchone()[0]
        assert killed == 1
        mark = max_ids(small_ent)[0]
        assert wait_for(lambda: max_ids(small_ent)[0] > mark)
    finally:
        live.stop()


def test_live_generator_activates_pending_accounts(small_ent):
    pending = value(small_ent, "SELECT count(DISTINCT user_id) FROM ent.accounts WHERE activated_at IS NULL")
    live = LiveGenerator(small_ent, interval=20.0, random_seed=3)  # one activation per 20 s tick
    for _ in range(3):
        live.tick()
    assert live.inserted["activations"] == 3
    assert (
        value(small_ent, "SELECT count(DISTINCT user_id) FROM ent.accounts WHERE activated_at IS NULL") == pending - 3
    )
    assert (
        value(
            small_ent,
            "SELECT count(DISTINCT user_id) FROM ent.accounts WHERE activated_at > now() - interval '1 minute'",
        )
        == 3
    )


def test_live_volume_follows_the_time_of_day_but_never_stops():
    population = Population(active={p: [(f"{p}-{n}", "0750001A") for n in range(500)] for p in PROFILES})
    # 5 s ticks: a volume large enough at 10h to compare with the floor of one login per tick at night
    live = LiveGenerator("postgresql:///unused", interval=5.0, random_seed=4)
    night = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # 3h in Paris, a Tuesday
    morning = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # 10h
    night_ticks = [live.plan(population, night, set()) for _ in range(200)]
    morning_ticks = [live.plan(population, morning, set()) for _ in range(200)]
    assert all(tick.logins and tick.apps for tick in night_ticks)
    assert all({call[0] for call in tick.calls} == set(CONNECTORS) for tick in night_ticks)
    assert sum(len(t.logins) for t in night_ticks) * 5 < sum(len(t.logins) for t in morning_ticks)
