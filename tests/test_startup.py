"""What a newcomer meets first: start-up failures said in one line (exit 2, no traceback), and
``check-config --connect`` naming each problem of the database before the exporter starts."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.support import REPO, free_port, run_cli, write_config


def one_clean_line(result: subprocess.CompletedProcess, *fragments: str, code: int = 2) -> str:
    """The run failed with ``code`` and said so in a single line holding every fragment, without a traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("ent-exporter:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture
def busy_port():
    """A port something already listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_serve_on_a_port_in_use(source_dsn, tmp_path, busy_port):
    config = write_config(tmp_path / "c.yml", source_dsn, listen={"address": "127.0.0.1", "port": busy_port})
    line = one_clean_line(
        run_cli("serve", "--config", str(config), timeout=60),
        str(config),
        "listen",
        f"127.0.0.1:{busy_port}",
        "already in use",
    )
    assert "Errno" not in line


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_serve_with_a_state_directory_that_cannot_be_created(source_dsn, tmp_path, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    state_dir = blocker if where == "a file" else blocker / "state"
    config = write_config(
        tmp_path / "c.yml", source_dsn, state_dir=str(state_dir), listen={"address": "127.0.0.1", "port": free_port()}
    )
    one_clean_line(run_cli("serve", "--config", str(config), timeout=60), str(config), "state_dir", str(state_dir))
    # check-config finds it too, before any start.
    one_clean_line(run_cli("check-config", "--config", str(config)), "state_dir", str(state_dir))


def test_the_demo_on_a_port_in_use_stops_before_starting_a_database(tmp_path, busy_port):
    state_dir = tmp_path / "demo"
    result = run_cli("demo", "--state-dir", str(state_dir), "--port", str(busy_port), timeout=60)
    one_clean_line(result, "--port", f"127.0.0.1:{busy_port}", "already in use")
    assert not (state_dir / "pgdata").exists()


def test_the_demo_with_an_unusable_state_directory(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    one_clean_line(
        run_cli("demo", "--state-dir", str(blocker / "demo"), "--port", str(free_port()), timeout=60),
        "--state-dir",
        str(blocker / "demo"),
    )


def test_check_config_notes_a_port_in_use_without_failing(source_dsn, tmp_path, busy_port):
    """The exporter being checked may be the one listening: a note, exit 0."""
    config = write_config(tmp_path / "c.yml", source_dsn, listen={"address": "127.0.0.1", "port": busy_port})
    result = run_cli("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert f"note: listen: cannot listen on 127.0.0.1:{busy_port}" in result.stderr


def test_bad_command_line_values_are_one_line(tmp_path):
    one_clean_line(run_cli("demo", "--now", "yesterday", "--state-dir", str(tmp_path / "d")), "--now", "yesterday")
    config = write_config(tmp_path / "c.yml", "host=localhost")
    one_clean_line(run_cli("once", "--config", str(config), "--now", "soon"), "--now", "soon")


# -- check-config --connect ----------------------------------------------------------------------

PASSWORD_ROLE = "ent_check_password"


@pytest.fixture
def reader(source_dsn, pg_server):
    """A login role that may read the contract's relations (as init-source's role), and a DSN maker."""
    role = f"reader_{abs(hash(source_dsn)) % 10**8}"
    database = psycopg.conninfo.conninfo_to_dict(source_dsn)["dbname"]
    with psycopg.connect(source_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        admin.execute(sql.SQL("GRANT USAGE ON SCHEMA ent TO {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA ent TO {}").format(sql.Identifier(role)))
    yield role, (lambda user=role: psycopg.conninfo.make_conninfo(source_dsn, user=user, dbname=database))
    with psycopg.connect(source_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def check_connect(tmp_path: Path, dsn: str, **overrides) -> subprocess.CompletedProcess:
    config = write_config(tmp_path / "c.yml", dsn, listen={"address": "127.0.0.1", "port": free_port()}, **overrides)
    return run_cli("check-config", "--config", str(config), "--connect", timeout=60)


def problems(result: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr
    return [
        line.split(": ", 1)[1]
        for line in result.stderr.splitlines()
        if not line.startswith("ent-exporter:") and ": note: " not in line
    ]


def test_connect_passes_on_a_ready_source(reader, tmp_path):
    _role, dsn = reader
    result = check_connect(tmp_path, dsn())
    assert result.returncode == 0, result.stderr
    assert "source ent checked" in result.stdout
    assert problems(result) == []


def test_connect_says_wrong_password_at_once(source_dsn, pg_server, tmp_path):
    """A password-checked role (scram for it alone): a wrong password is named, not retried for 10 s."""
    with psycopg.connect(source_dsn, autocommit=True) as admin:
        hba = Path(admin.execute("SHOW hba_file").fetchone()[0])
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(PASSWORD_ROLE)))
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'right'").format(sql.Identifier(PASSWORD_ROLE)))
        original = hba.read_text()
        hba.write_text(
            f"local all {PASSWORD_ROLE} scram-sha-256\nhost all {PASSWORD_ROLE} all scram-sha-256\n" + original
        )
        admin.execute("SELECT pg_reload_conf()")
    try:
        wrong = psycopg.conninfo.make_conninfo(source_dsn, user=PASSWORD_ROLE, password="wrong")
        result = check_connect(tmp_path, wrong, source={"dsn": wrong, "connect_timeout_seconds": 10})
        assert result.returncode == 1
        (problem,) = problems(result)
        assert problem.startswith("source.dsn: wrong password"), problem
        assert f'password authentication failed for user "{PASSWORD_ROLE}"' in problem
    finally:
        hba.write_text(original)
        with psycopg.connect(source_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_reload_conf()")
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(PASSWORD_ROLE)))


def test_connect_says_unreachable(tmp_path):
    nobody = f"host=127.0.0.1 port={free_port()} dbname=ent user=ent_exporter"
    result = check_connect(tmp_path, nobody)
    assert result.returncode == 1
    (problem,) = problems(result)
    assert problem.startswith("source.dsn: unreachable: nothing listens at that address and port"), problem


def test_once_says_unreachable_at_once(tmp_path):
    """`once` does not retry for connect_timeout: the first refusal is the answer."""
    nobody = f"host=127.0.0.1 port={free_port()} dbname=ent user=ent_exporter"
    config = write_config(tmp_path / "c.yml", nobody, source={"dsn": nobody, "connect_timeout_seconds": 30})
    line = one_clean_line(run_cli("once", "--config", str(config), timeout=20), str(config), code=1)
    assert line.endswith("source.dsn: unreachable: nothing listens at that address and port (Connection refused)")


def test_connect_says_the_schema_is_missing(reader, tmp_path):
    _role, dsn = reader
    result = check_connect(tmp_path, dsn(), source={"dsn": dsn(), "schema": "ent_views"})
    assert result.returncode == 1
    assert problems(result) == [
        "source.schema: schema 'ent_views' does not exist in this database"
        " (run `ent-exporter init-source`, or set source.schema)"
    ]


def test_connect_names_a_missing_view_and_a_missing_column(reader, source_dsn, tmp_path):
    role, dsn = reader
    with psycopg.connect(source_dsn, autocommit=True) as admin:
        admin.execute("DROP TABLE ent.connector_events")
        admin.execute("ALTER TABLE ent.accounts RENAME COLUMN activated_at TO activation")
    result = check_connect(tmp_path, dsn())
    assert result.returncode == 1
    assert problems(result) == [
        "source.schema: ent.accounts: missing column(s) activated_at",
        "source.schema: ent.connector_events: missing (the contract needs this view)",
    ]


def test_connect_names_a_relation_the_role_may_not_read(reader, source_dsn, tmp_path):
    role, dsn = reader
    with psycopg.connect(source_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("REVOKE SELECT ON ent.login_events FROM {}").format(sql.Identifier(role)))
    result = check_connect(tmp_path, dsn())
    assert result.returncode == 1
    assert problems(result) == [f"source.schema: ent.login_events: the role '{role}' may not SELECT from it"]


def test_connect_notes_a_role_that_can_write(reader, source_dsn, tmp_path):
    role, dsn = reader
    with psycopg.connect(source_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("GRANT INSERT ON ent.structures TO {}").format(sql.Identifier(role)))
    result = check_connect(tmp_path, dsn())
    assert result.returncode == 0, result.stderr
    assert f"note: source.schema: ent.structures: the role '{role}' may also write to it" in result.stderr


# -- quiet logs ---------------------------------------------------------------------------------


def test_a_stop_in_the_middle_of_a_run_logs_nothing_to_act_on(source_dsn, tmp_path):
    """SIGTERM while the first count is under way: exit 0, the one start-up line, no failure logged."""
    import json
    import signal
    import time
    from datetime import datetime, timedelta
    from random import Random

    from tests.support import RawData, insert, make_accounts, make_events, wait_until

    rng = Random(5)
    start = datetime(2026, 11, 20, tzinfo=UTC)
    raw = RawData(accounts=make_accounts(rng, 200, structures=3, start=start))
    raw.logins = make_events(rng, 20_000, 200, start, timedelta(days=2)).logins
    insert(source_dsn, raw)
    port = free_port()
    # Tiny chunks: the first count is long, and the stop lands inside it.
    config = write_config(
        tmp_path / "c.yml",
        source_dsn,
        listen={"address": "127.0.0.1", "port": port},
        source={"dsn": source_dsn, "settle_seconds": 0, "chunk_size": 20},
    )
    state_file = tmp_path / "state" / "collectors" / "logins.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "ent_exporter.cli", "serve", "--config", str(config)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: state_file.exists(), timeout=60, interval=0.02, message="a first checkpoint")
        time.sleep(0.3)
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert not json.loads(state_file.read_text())["complete"], "the stop should land inside the first count"
    lines = err.splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [f"serving http://127.0.0.1:{port}/metrics"], err


def test_a_run_falling_due_while_the_previous_one_goes_is_not_a_warning(caplog):
    """The no-overlap rule at work (a long first count at start-up) is said at DEBUG only."""
    import logging
    import threading
    import time

    from apscheduler.triggers.cron import CronTrigger

    from ent_exporter.engine.collector import Cadence, Collector, Family, Kind, Result
    from ent_exporter.engine.runtime import Runtime
    from ent_exporter.engine.schedule import Schedule
    from ent_exporter.engine.scheduler import CollectorScheduler

    release = threading.Event()

    class Slow(Collector):
        abstract = True  # a test's own collector, kept out of the registry
        name = "slow"
        cadence = Cadence.INSTANT
        families = (Family("test_slow", Kind.GAUGE, "A run that takes its time."),)

        def collect(self, ctx):
            release.wait(10)
            return Result({"test_slow": {(): 1.0}})

    runtime = Runtime(
        [Slow()], source=None, schedules={Cadence.INSTANT: Schedule(Cadence.INSTANT, "* * * * *", 0, UTC)}
    )
    scheduler = CollectorScheduler(runtime)
    scheduler.scheduler.reschedule_job("slow", trigger=CronTrigger(second="*"))  # due every second
    caplog.set_level(logging.DEBUG)
    scheduler.start()
    try:
        time.sleep(3.5)
        release.set()
    finally:
        scheduler.shutdown()
    skipped = [r for r in caplog.records if "maximum number of running instances" in r.getMessage()]
    assert skipped, "the slow run should have had runs falling due while it went"
    assert {record.levelno for record in skipped} == {logging.DEBUG}


def test_a_state_directory_in_use_by_another_process_is_refused(source_dsn, tmp_path):
    """Two processes on one state directory would overwrite each other's state and journals: while a
    `serve` runs, a second `serve` and a `probe` on its state_dir each stop with one line naming the key;
    once it has ended (the kernel drops its lock, however it ends), the directory can be used again."""
    import signal

    import yaml

    from tests.support import scrape, wait_until

    state_dir = tmp_path / "state"
    first = write_config(tmp_path / "first.yml", source_dsn, listen={"address": "127.0.0.1", "port": free_port()})
    second = write_config(tmp_path / "second.yml", source_dsn, listen={"address": "127.0.0.1", "port": free_port()})
    probes = tmp_path / "probes.yml"
    probe_port = free_port()
    probes.write_text(
        yaml.safe_dump(
            {
                "listen": {"address": "127.0.0.1", "port": probe_port},
                "state_dir": str(state_dir),
                "probes": [{"connector": "gar", "kind": "tcp", "address": f"127.0.0.1:{free_port()}"}],
            }
        )
    )
    port = yaml.safe_load(first.read_text())["listen"]["port"]
    process = subprocess.Popen(
        [sys.executable, "-m", "ent_exporter.cli", "serve", "--config", str(first)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: process.poll() is not None or _answers(port), timeout=60, message="the first serve")
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        for config, command in ((second, "serve"), (probes, "probe")):
            one_clean_line(
                run_cli(command, "--config", str(config), timeout=60),
                str(config),
                "state_dir",
                str(state_dir),
                "in use by another ent-exporter process",
            )
        assert "ent_logins_total" in scrape(port)  # the first one serves on, untouched
    finally:
        process.kill()  # (no clean stop: the lock goes with the process)
        process.communicate(timeout=30)
    again = subprocess.Popen(
        [sys.executable, "-m", "ent_exporter.cli", "probe", "--config", str(probes)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: again.poll() is not None or _answers(probe_port), timeout=60, message="the probe exporter")
        assert again.poll() is None, again.stderr.read() if again.stderr else ""
    finally:
        again.send_signal(signal.SIGTERM)
        again.communicate(timeout=30)
    assert again.returncode == 0


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
