"""A cycle after N new events reads O(N) rows, not the table: measured with PostgreSQL's own counters."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import psycopg

from ent_exporter.app import make_runtime, make_source
from ent_exporter.config import parse_config

HISTORY = 200_000
NEW = 1_000
USERS = 20_000
START = datetime(2026, 1, 5, tzinfo=UTC)


def table_reads(dsn: str, table: str) -> dict[str, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT coalesce(seq_tup_read, 0), coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables"
            " WHERE schemaname = 'ent' AND relname = %s",
            (table,),
        ).fetchone()
    return {"seq_tup_read": row[0], "idx_tup_fetch": row[1]}


def wait_for_stats(dsn: str, table: str, before: dict[str, int]) -> dict[str, int]:
    """Backends flush their statistics when they exit; give the last one a moment."""
    for _ in range(50):
        after = table_reads(dsn, table)
        if after != before:
            return after
        time.sleep(0.1)
    return after


def one_cycle(dsn: str, now: datetime, state_dir) -> None:
    config = parse_config({"source": {"dsn": dsn, "settle_seconds": 0}, "state_dir": str(state_dir)}, "test")
    source = make_source(config)
    source.open()
    runtime = make_runtime(config, source, persistent=True)
    runtime.restore()
    try:
        assert runtime.run("logins", now)
    finally:
        source.close()  # the backend exits and flushes its table statistics


def test_a_cycle_reads_the_new_events_not_the_history(source_dsn, tmp_path):
    with psycopg.connect(source_dsn) as conn:
        conn.execute(
            "INSERT INTO ent.accounts SELECT 'u' || i, 'S' || (i %% 50), 'Student', %s, %s"
            " FROM generate_series(1, %s) i",
            (START, START, USERS),
        )
        conn.execute(
            "INSERT INTO ent.login_events (user_id, profile, occurred_at)"
            " SELECT 'u' || (i * 7919 %% %s), 'Student', %s + i * interval '1 second'"
            " FROM generate_series(1, %s) i",
            (USERS, START, HISTORY),
        )
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        conn.execute("ANALYZE ent.login_events")
        conn.execute("ANALYZE ent.accounts")

    now = START + timedelta(days=30)
    one_cycle(source_dsn, now, tmp_path)  # works through the history once

    with psycopg.connect(source_dsn) as conn:
        conn.execute(
            "INSERT INTO ent.login_events (user_id, profile, occurred_at)"
            " SELECT 'u' || (i * 31 %% %s), 'Teacher', %s FROM generate_series(1, %s) i",
            (USERS, now, NEW),
        )
    events_before = table_reads(source_dsn, "login_events")
    accounts_before = table_reads(source_dsn, "accounts")
    one_cycle(source_dsn, now + timedelta(minutes=1), tmp_path)
    events_after = wait_for_stats(source_dsn, "login_events", events_before)
    accounts_after = table_reads(source_dsn, "accounts")

    assert events_after["seq_tup_read"] == events_before["seq_tup_read"], "the events table was scanned"
    new_rows_read = events_after["idx_tup_fetch"] - events_before["idx_tup_fetch"]
    # The new events, plus the few rows the watermark look-ups touch.
    assert NEW <= new_rows_read <= NEW + 10, new_rows_read
    assert accounts_after["seq_tup_read"] == accounts_before["seq_tup_read"], "the accounts table was scanned"
    # One index look-up per distinct user of the new events (each has one attachment here).
    assert accounts_after["idx_tup_fetch"] - accounts_before["idx_tup_fetch"] <= NEW


def test_the_delta_query_plan_uses_the_event_id_index(source_dsn):
    """The plan, not only the counters: a range scan on event_id, whatever the table size."""
    from ent_exporter.aggregation.incremental import dimension_fragments
    from ent_exporter.indicators.logins import LoginsCollector

    with psycopg.connect(source_dsn) as conn:
        conn.execute(
            "INSERT INTO ent.login_events (user_id, profile, occurred_at)"
            " SELECT 'u' || i, 'Student', %s FROM generate_series(1, 50000) i",
            (START,),
        )
        conn.execute("ANALYZE ent.login_events")
        config = parse_config({"source": {"dsn": source_dsn}}, "test")
        source = make_source(config)
        statement = source.compose(LoginsCollector.delta_query, events="login_events", **dimension_fragments(()))
        plan = conn.execute(
            psycopg.sql.SQL("EXPLAIN (FORMAT JSON) {}").format(statement), {"after": 49_000, "upto": 50_000}
        ).fetchone()[0]
    nodes = []

    def walk(node):
        nodes.append(node)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    event_scans = [n for n in nodes if n.get("Relation Name") == "login_events"]
    assert event_scans and all(n["Node Type"] in ("Index Scan", "Bitmap Heap Scan") for n in event_scans), event_scans


def test_watched_gaps_cost_index_probes_not_rows(source_dsn, tmp_path):
    """With thousands of gaps watched (rolled-back inserts), a cycle still reads the new events
    and nothing else: each gap is an index probe that finds no row."""
    with psycopg.connect(source_dsn) as conn:
        conn.execute(
            "INSERT INTO ent.accounts SELECT 'u' || i, 'S' || (i %% 50), 'Student', %s, %s"
            " FROM generate_series(1, %s) i",
            (START, START, USERS),
        )
        # Every 10th id missing: 5,000 gaps among 50,000 ids.
        conn.execute(
            "INSERT INTO ent.login_events (event_id, user_id, profile, occurred_at) OVERRIDING SYSTEM VALUE"
            " SELECT i, 'u' || (i * 7919 %% %s), 'Student', %s FROM generate_series(1, 50000) i WHERE i %% 10 <> 0",
            (USERS, START),
        )
        conn.execute("SELECT setval(pg_get_serial_sequence('ent.login_events', 'event_id'), 50000)")
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        conn.execute("ANALYZE ent.login_events")
    now = START + timedelta(days=1)
    one_cycle(source_dsn, now, tmp_path)
    import json

    state = json.loads((tmp_path / "collectors" / "logins.json").read_text())["state"]
    assert len(state["gaps"]) == 4_999 + 1  # 10, 20, ... 49,990, and the range below the first id

    def cycle_reads(minute: int) -> int:
        with psycopg.connect(source_dsn) as conn:
            conn.execute(
                "INSERT INTO ent.login_events (user_id, profile, occurred_at)"
                " SELECT 'u' || i, 'Teacher', %s FROM generate_series(1, %s) i",
                (now, NEW),
            )
        before = table_reads(source_dsn, "login_events")
        one_cycle(source_dsn, now + timedelta(minutes=minute), tmp_path)
        after = wait_for_stats(source_dsn, "login_events", before)
        assert after["seq_tup_read"] == before["seq_tup_read"], "the events table was scanned"
        return after["idx_tup_fetch"] - before["idx_tup_fetch"]

    # The new range holds one gap (id 50,000, missing): its ids are read a second time to find it.
    assert NEW <= cycle_reads(1) <= 2 * NEW + 10
    # A range without gaps is read once; the 5,000 watched gaps are probes that read nothing.
    assert NEW <= cycle_reads(2) <= NEW + 10
