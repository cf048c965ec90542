"""The instant counters equal counts made in Python from the raw rows, however the rows arrive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from random import Random

import pytest

from ent_exporter.app import make_runtime, make_source
from ent_exporter.config import parse_config
from tests.support import (
    FULL_BREAKDOWNS,
    RawData,
    as_samples,
    expected_activations,
    expected_connector_samples,
    expected_event_counts,
    insert,
    make_accounts,
    make_events,
    parse,
    run_cli,
    write_config,
)

pytestmark = pytest.mark.time_sensitive

START = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
USERS = 60


def runtime_for(dsn: str, chunk_size: int = 500_000, tmp_path=None):
    config = parse_config(
        {
            "source": {"dsn": dsn, "settle_seconds": 0, "chunk_size": chunk_size},
            "state_dir": str(tmp_path or "/nonexistent"),
            "breakdowns": FULL_BREAKDOWNS,
        },
        "test",
    )
    source = make_source(config)
    source.open()
    return source, make_runtime(config, source, persistent=tmp_path is not None)


def assert_counters_match(text: str, raw: RawData, now: datetime) -> None:
    samples = parse(text)
    assert samples["ent_logins_total"] == as_samples(
        "ent_logins_total", ("structure", "profile"), expected_event_counts(raw.accounts, raw.logins, False)
    )
    assert samples["ent_app_accesses_total"] == as_samples(
        "ent_app_accesses_total",
        ("structure", "profile", "app"),
        expected_event_counts(raw.accounts, raw.app_accesses, True),
    )
    assert samples["ent_account_activations_total"] == as_samples(
        "ent_account_activations_total", ("structure", "profile"), expected_activations(raw.accounts, now)
    )
    expected = expected_connector_samples(raw.connector_calls)
    for name, values in expected.items():
        if name.endswith("_sum"):
            assert samples[name] == pytest.approx(values)
        else:
            assert samples[name] == values, name


def test_counters_are_exact_across_cycles_chunks_and_unknowns(source_dsn):
    rng = Random(7)
    raw = RawData(accounts=make_accounts(rng, USERS, structures=4, start=START))
    insert(source_dsn, raw)
    source, runtime = runtime_for(source_dsn, chunk_size=37)  # many chunks per cycle
    try:
        now = START
        for _batch in range(4):  # rows arrive between cycles
            events = make_events(rng, 300, USERS, now, timedelta(hours=2))
            insert(source_dsn, events)
            for table in ("logins", "app_accesses", "connector_calls"):
                getattr(raw, table).extend(getattr(events, table))
            now += timedelta(hours=3)
            assert runtime.run_all(now)
        assert_counters_match(runtime.exposition.body().decode(), raw, now)
        # The attribution rules are exercised, not only allowed for.
        logins = parse(runtime.exposition.body().decode())["ent_logins_total"]
        assert any(dict(k)["structure"] == "unknown" for k in logins)
        assert any(dict(k)["profile"] == "unknown" for k in logins)
    finally:
        source.close()


def test_events_younger_than_the_settle_delay_wait_for_the_next_cycle(source_dsn):
    rng = Random(3)
    raw = RawData(accounts=make_accounts(rng, 10, structures=2, start=START))
    raw.logins = [("user-1", "Teacher", START), ("user-2", "Student", START + timedelta(minutes=10))]
    insert(source_dsn, raw)
    config = parse_config({"source": {"dsn": source_dsn, "settle_seconds": 300}}, "test")
    with make_source(config) as source:
        runtime = make_runtime(config, source, persistent=False)
        runtime.run("logins", START + timedelta(minutes=12))  # the second login is 2 min old: not yet
        first = parse(runtime.exposition.body().decode())["ent_logins_total"]
        assert sum(v for k, v in first.items() if dict(k)["structure"] == "all") == 1
        runtime.run("logins", START + timedelta(minutes=16))
        second = parse(runtime.exposition.body().decode())["ent_logins_total"]
        assert sum(v for k, v in second.items() if dict(k)["structure"] == "all") == 2


def test_large_gaps_in_event_ids_are_crossed_without_empty_chunks(source_dsn):
    import psycopg

    raw = RawData(accounts=[("u", "S1", "Teacher", START, START)])
    insert(source_dsn, raw)
    with psycopg.connect(source_dsn) as conn:
        for event_id in (5, 6, 10_000_000, 10_000_001, 9_000_000_000):
            conn.execute(
                "INSERT INTO ent.login_events (event_id, user_id, profile, occurred_at)"
                " VALUES (%s, 'u', 'Teacher', %s)",
                (event_id, START),
            )
    source, runtime = runtime_for(source_dsn, chunk_size=10)
    statements = []
    original = source.fetch
    source.fetch = lambda *a, **k: statements.append(a[0]) or original(*a, **k)
    try:
        runtime.run("logins", START + timedelta(hours=1))
    finally:
        source.close()
    logins = parse(runtime.exposition.body().decode())["ent_logins_total"]
    assert logins[(("profile", "Teacher"), ("structure", "all"))] == 5
    assert logins[(("profile", "Teacher"), ("structure", "S1"))] == 5
    assert len(statements) < 20  # not 900 million ids / 10


def test_once_prints_the_same_counters(source_dsn, tmp_path):
    rng = Random(11)
    raw = RawData(accounts=make_accounts(rng, USERS, structures=3, start=START))
    events = make_events(rng, 500, USERS, START, timedelta(hours=5))
    raw.logins, raw.app_accesses, raw.connector_calls = events.logins, events.app_accesses, events.connector_calls
    insert(source_dsn, raw)
    config = write_config(tmp_path / "config.yml", source_dsn, breakdowns=FULL_BREAKDOWNS)
    now = START + timedelta(days=1)
    result = run_cli("once", "--config", str(config), "--now", now.isoformat())
    assert result.returncode == 0, result.stderr
    assert_counters_match(result.stdout, raw, now)


def test_a_structure_that_goes_quiet_stops_being_exported_after_the_retention(source_dsn):
    accounts = [("closing", "S-CLOSED", "Teacher", START, START), ("staying", "S-OPEN", "Teacher", START, START)]
    insert(
        source_dsn, RawData(accounts=accounts, logins=[("closing", "Teacher", START), ("staying", "Teacher", START)])
    )
    config = parse_config(
        {"source": {"dsn": source_dsn, "settle_seconds": 0}, "limits": {"idle_series_days": 30}}, "test"
    )
    with make_source(config) as source:
        runtime = make_runtime(config, source, persistent=False)

        def structures_at(moment):
            assert runtime.run("logins", moment)
            return {
                dict(k)["structure"]: v
                for k, v in parse(runtime.exposition.body().decode())["ent_logins_total"].items()
            }

        assert structures_at(START + timedelta(hours=1)) == {"S-CLOSED": 1, "S-OPEN": 1, "all": 2}
        insert(source_dsn, RawData(logins=[("staying", "Teacher", START + timedelta(days=20))]))
        assert structures_at(START + timedelta(days=20, hours=1)) == {"S-CLOSED": 1, "S-OPEN": 2, "all": 3}
        insert(source_dsn, RawData(logins=[("staying", "Teacher", START + timedelta(days=40))]))
        # S-CLOSED has not moved for 40 days > 30: no longer exported; the platform total keeps its logins.
        assert structures_at(START + timedelta(days=40, hours=1)) == {"S-OPEN": 3, "all": 4}
        insert(source_dsn, RawData(logins=[("closing", "Teacher", START + timedelta(days=41))]))
        # It moves again: back, with its whole count (nothing was lost while it was hidden).
        assert structures_at(START + timedelta(days=41, hours=1)) == {"S-CLOSED": 2, "S-OPEN": 3, "all": 5}
