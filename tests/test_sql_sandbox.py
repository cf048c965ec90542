"""A statement cannot leave its sandbox. Against a real PostgreSQL, connected as a role that HAS
write rights (the test server's superuser), so that only the exporter's session measures stand in
the way: a statement that turns the read-only default off or lifts the timeout (injected through
the source's fetch, as the load-time check would refuse it) cannot make any later statement, on
any pooled connection, write or run past its timeout; a statement past its client-side deadline
is cancelled on the server; and the load-time check refuses each family of dangerous calls with
a message naming the file, the key and the function."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from ent_exporter.config import ConfigError, parse_config
from ent_exporter.engine.collector import SourceUnavailable, UntrustedSQL
from ent_exporter.sources.postgres import PostgresSource, Snapshot
from tests.support import wait_until

STATEMENT_TIMEOUT_SECONDS = 1.0
CONNECTIONS = 3

# What a custom: statement could run (the load-time check would refuse them: they are handed to the
# source directly, as the UntrustedSQL custom indicators' statements are).
READ_ONLY_OFF = UntrustedSQL("SELECT pg_backend_pid(), set_config('default_transaction_read_only', 'off', false)")
TIMEOUT_OFF = UntrustedSQL("SELECT pg_backend_pid(), set_config('statement_timeout', '0', false)")
SESSION = sql.SQL(
    "SELECT pg_backend_pid(), current_setting('default_transaction_read_only'), "
    "current_setting('transaction_read_only'), current_setting('statement_timeout')"
)
WRITES = (
    sql.SQL("SELECT lo_create(0)"),
    sql.SQL("INSERT INTO {accounts} (user_id, structure_id, profile) VALUES ('intruder', 'S', 'Teacher') RETURNING 1"),
)


@contextlib.contextmanager
def open_source(dsn: str, **options) -> Iterator[PostgresSource]:
    settings = {
        "statement_timeout_seconds": STATEMENT_TIMEOUT_SECONDS,
        "connect_timeout_seconds": 10,
        "max_connections": CONNECTIONS,
        **options,
    }
    source = PostgresSource(dsn, **settings)
    source.wait_ready()
    try:
        yield source
    finally:
        source.close()


@contextlib.contextmanager
def every_connection(source: PostgresSource, count: int = CONNECTIONS) -> Iterator[list[Snapshot]]:
    """``count`` snapshots held at once: each on a connection of its own, the pool's every one."""
    with contextlib.ExitStack() as stack:
        snapshots = [stack.enter_context(source.snapshot()) for _ in range(count)]
        yield snapshots


def pids(snapshots: list[Snapshot]) -> set[int]:
    found = {snapshot.fetch(sql.SQL("SELECT pg_backend_pid()"))[0][0] for snapshot in snapshots}
    assert len(found) == len(snapshots)
    return found


def written(dsn: str) -> tuple[int, int]:
    """(large objects, accounts): what a write would have left, seen from another connection."""
    with psycopg.connect(dsn) as conn:
        objects = conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()
        accounts = conn.execute("SELECT count(*) FROM ent.accounts").fetchone()
    assert objects is not None and accounts is not None
    return objects[0], accounts[0]


def test_the_test_role_could_write_were_it_not_for_the_session(source_dsn):
    """The premise: the role writes when nothing in its session stops it."""
    with psycopg.connect(source_dsn) as conn:
        conn.execute("SELECT lo_create(0)")
        conn.rollback()


def test_turning_the_read_only_default_off_does_not_outlive_the_statement(source_dsn):
    with open_source(source_dsn) as source:
        with every_connection(source) as snapshots:
            connections = pids(snapshots)
            for snapshot in snapshots:  # inside a snapshot's transaction...
                assert snapshot.fetch(READ_ONLY_OFF)[0][1] == "off"
        for _ in range(2 * CONNECTIONS):  # ... and on its own
            pid, value = source.fetch(READ_ONLY_OFF)[0]
            assert pid in connections and value == "off"
        with every_connection(source) as snapshots:
            assert pids(snapshots) == connections  # the same connections, not new ones
            for snapshot in snapshots:
                assert snapshot.fetch(SESSION)[0][1:] == ("on", "on", "1s")
        for _ in range(2 * CONNECTIONS):
            for statement in WRITES:
                with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                    source.fetch(statement)
        with every_connection(source) as snapshots:
            assert pids(snapshots) == connections
            for snapshot in snapshots:
                with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                    snapshot.fetch(WRITES[0])
    assert written(source_dsn) == (0, 0)


def test_what_outlives_a_transaction_is_reset_before_the_connection_goes_back(source_dsn):
    """The second line, beyond the ROLLBACK: a setting made outside the transaction (a statement that
    ended it with COMMIT, which no SELECT can, then set_config in autocommit) and a session
    advisory lock (which a ROLLBACK keeps) are undone before the pool has the connection back."""
    with open_source(source_dsn, max_connections=1) as source:
        pid = source.fetch(sql.SQL("SELECT pg_backend_pid()"))[0][0]
        with source.snapshot() as snapshot:
            with pytest.raises(psycopg.ProgrammingError, match="didn't produce records"):
                snapshot.fetch(UntrustedSQL("COMMIT"))
            snapshot.fetch(READ_ONLY_OFF)
            snapshot.fetch(TIMEOUT_OFF)
            snapshot.fetch(UntrustedSQL("SELECT pg_advisory_lock(23)"))
            assert snapshot.fetch(SESSION) == [(pid, "off", "off", "0")]  # (no transaction: nothing to roll back)
        assert source.fetch(SESSION) == [(pid, "on", "on", "1s")]
        for statement in WRITES:
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                source.fetch(statement)
        source.fetch(UntrustedSQL("SELECT pg_advisory_lock(24)"))  # a statement's own lock goes the same way
        with psycopg.connect(source_dsn) as observer:
            held = observer.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()
        assert held == (0,)
        assert source.fetch(sql.SQL("SELECT pg_backend_pid()")) == [(pid,)]  # the same connection throughout
    assert written(source_dsn) == (0, 0)


def test_lifting_the_timeout_does_not_outlive_the_statement(source_dsn):
    with open_source(source_dsn) as source:
        with every_connection(source) as snapshots:
            connections = pids(snapshots)
            for snapshot in snapshots:
                assert snapshot.fetch(TIMEOUT_OFF)[0][1] == "0"
        for _ in range(CONNECTIONS):
            assert source.fetch(TIMEOUT_OFF)[0][1] == "0"
        # The server's timeout (1 s) stops each later statement, not the client's deadline
        # (1 s + 5 s, which would say SourceUnavailable).
        with every_connection(source) as snapshots:
            assert pids(snapshots) == connections
            for snapshot in snapshots:
                with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
                    snapshot.fetch(sql.SQL("SELECT pg_sleep(5)"))
        for _ in range(CONNECTIONS):
            with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
                source.fetch(sql.SQL("SELECT pg_sleep(5)"))


@pytest.mark.parametrize("scope", ["false", "true"])
def test_within_one_snapshot_each_statement_has_its_own_timeout(source_dsn, scope):
    """A snapshot's statements share a transaction: after a custom statement (UntrustedSQL, as custom
    indicators' are), the timeout is set again before the next one."""
    with open_source(source_dsn) as source, source.snapshot() as snapshot:
        lifted = snapshot.fetch(UntrustedSQL(f"SELECT set_config('statement_timeout', '0', {scope})"))
        assert lifted == [("0",)]
        with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
            snapshot.fetch(sql.SQL("SELECT pg_sleep(5)"))
    # The statements the exporter writes are trusted: no round trip to set the timeout again after them.
    with open_source(source_dsn) as source, source.snapshot() as snapshot:
        assert snapshot.fetch(sql.SQL("SELECT 1")) == [(1,)]
        assert snapshot.fetch(sql.SQL("SELECT current_setting('statement_timeout')")) == [("1s",)]


def test_a_statement_past_its_deadline_is_cancelled_on_the_server(source_dsn):
    """The server's timeout (120 s) is beyond the client's deadline (1 s here: the case of a server
    that does not enforce its own): when the deadline passes, the statement stops on the server too."""
    marker = "ent-exporter sandbox test: past its deadline"
    with open_source(source_dsn, statement_timeout_seconds=120) as source:
        source.answer_seconds = 1.0
        outcome: list[BaseException] = []

        def run() -> None:
            try:
                source.fetch(sql.SQL(f"SELECT pg_sleep(90) /* {marker} */"))
            except BaseException as error:
                outcome.append(error)

        with psycopg.connect(source_dsn, autocommit=True) as observer:

            def running() -> list[tuple]:
                return observer.execute(
                    "SELECT pid, state FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
                    (f"%{marker}%",),
                ).fetchall()

            worker = threading.Thread(target=run)
            worker.start()
            wait_until(running, timeout=20, message="the statement runs on the server")
            worker.join(timeout=30)
            assert not worker.is_alive()
            assert len(outcome) == 1 and isinstance(outcome[0], SourceUnavailable)
            assert str(outcome[0]) == "no answer from the database within 1 s"
            # Gone from the server well before its 90 s (a bounded wait for a condition).
            wait_until(lambda: not running(), timeout=30, message="the statement is gone from pg_stat_activity")
        # The pool goes on with a new connection.
        assert source.fetch(sql.SQL("SELECT 1")) == [(1,)]


# -- refused when the configuration is loaded ------------------------------------------------


def _refusal(statement: str) -> str:
    entry = {"metric": "ent_custom_probe", "type": "gauge", "help": "A probe.", "sql": statement}
    with pytest.raises(ConfigError) as caught:
        parse_config({"source": {"dsn": "dbname=x"}, "custom": [entry]}, "/etc/ent-exporter/custom.yml", environ={})
    return str(caught.value)


def _message(said: str) -> str:
    return f"/etc/ent-exporter/custom.yml: invalid configuration\n  custom.0.sql: {said}"


def _function(name: str, reason: str) -> str:
    return _message(f"{name}() ({reason}) is not allowed in a custom statement")


SETTINGS = "changes the session's settings"
SLEEP = "waits on the server"
LARGE_OBJECTS = "reads or writes large objects"
REMOTE = "connects to another database"
FILES = "reads the server's files"
SERVER = "acts on the server or other sessions"
LOCKS = "takes a lock"
XIDS = "uses transaction ids"
SEQUENCES = "changes a sequence"
WRITES_ELSEWHERE = "writes to the database"
RUNS_SQL = "runs SQL given as text, which no check sees"

REFUSED = {
    "set_config": ("SELECT set_config('statement_timeout', '0', false) AS value", _function("set_config", SETTINGS)),
    "set_config qualified, in a WITH": (
        "WITH t AS (SELECT pg_catalog.set_config('default_transaction_read_only', 'off', false) AS v) "
        "SELECT count(*) AS value FROM t",
        _function("set_config", SETTINGS),
    ),
    "set_config in a subquery": (
        "SELECT count(*) AS value FROM {accounts} WHERE profile = (SELECT set_config('role', 'x', false))",
        _function("set_config", SETTINGS),
    ),
    "pg_sleep in FROM": ("SELECT 1 AS value FROM pg_sleep(30)", _function("pg_sleep", SLEEP)),
    "pg_sleep_for": ("SELECT 1 AS value FROM pg_sleep_for('1 minute')", _function("pg_sleep_for", SLEEP)),
    "pg_sleep_until": ("SELECT pg_sleep_until(now()) IS NULL AS value", _function("pg_sleep_until", SLEEP)),
    "lo_create": ("SELECT lo_create(0) AS value", _function("lo_create", LARGE_OBJECTS)),
    "lo_import": ("SELECT lo_import('/etc/passwd') AS value", _function("lo_import", LARGE_OBJECTS)),
    "loread": (
        "SELECT length(loread(lo_open(1, 262144), 10)) AS value",
        _message(f"loread() ({LARGE_OBJECTS}), lo_open() ({LARGE_OBJECTS}) are not allowed in a custom statement"),
    ),
    "dblink": (
        "SELECT n AS value FROM dblink('host=elsewhere', 'SELECT 1') AS t(n int)",
        _function("dblink", REMOTE),
    ),
    "dblink_exec": ("SELECT length(dblink_exec('DELETE FROM x')) AS value", _function("dblink_exec", REMOTE)),
    "pg_read_file": ("SELECT length(pg_read_file('/etc/passwd')) AS value", _function("pg_read_file", FILES)),
    "pg_read_binary_file": (
        "SELECT length(pg_read_binary_file('postgresql.conf')) AS value",
        _function("pg_read_binary_file", FILES),
    ),
    "pg_ls_dir": ("SELECT count(*) AS value FROM pg_ls_dir('.')", _function("pg_ls_dir", FILES)),
    "pg_stat_file": ("SELECT (pg_stat_file('PG_VERSION')).size AS value", _function("pg_stat_file", FILES)),
    "pg_terminate_backend": (
        "SELECT count(*) AS value FROM pg_stat_activity WHERE pg_terminate_backend(pid)",
        _function("pg_terminate_backend", SERVER),
    ),
    "pg_cancel_backend": ("SELECT pg_cancel_backend(1)::int AS value", _function("pg_cancel_backend", SERVER)),
    "pg_reload_conf": ("SELECT pg_reload_conf()::int AS value", _function("pg_reload_conf", SERVER)),
    "pg_advisory_lock": ("SELECT 1 AS value FROM pg_advisory_lock(1)", _function("pg_advisory_lock", LOCKS)),
    "pg_try_advisory_xact_lock": (
        "SELECT pg_try_advisory_xact_lock(1)::int AS value",
        _function("pg_try_advisory_xact_lock", LOCKS),
    ),
    "txid_current": ("SELECT txid_current() AS value", _function("txid_current", XIDS)),
    "pg_current_xact_id": ("SELECT pg_current_xact_id()::text::bigint AS value", _function("pg_current_xact_id", XIDS)),
    "nextval": ("SELECT nextval('ent.some_sequence') AS value", _function("nextval", SEQUENCES)),
    "setval": ("SELECT setval('ent.some_sequence', 1) AS value", _function("setval", SEQUENCES)),
    "brin_summarize_new_values": (
        "SELECT brin_summarize_new_values('ent.some_index') AS value",
        _function("brin_summarize_new_values", WRITES_ELSEWHERE),
    ),
    "query_to_xml": (
        "SELECT length(query_to_xml('DELETE FROM ent.accounts RETURNING 1', true, true, '')::text) AS value",
        _function("query_to_xml", RUNS_SQL),
    ),
    "table_to_xml": (
        "SELECT length(table_to_xml('ent.accounts', true, true, '')::text) AS value",
        _function("table_to_xml", RUNS_SQL),
    ),
    "cursor_to_xml": (
        "SELECT length(cursor_to_xml('c', 1, true, true, '')::text) AS value",
        _function("cursor_to_xml", RUNS_SQL),
    ),
    "database_to_xml": (
        "SELECT length(database_to_xml(true, true, '')::text) AS value",
        _function("database_to_xml", RUNS_SQL),
    ),
    "ts_stat": ("SELECT count(*) AS value FROM ts_stat('SELECT 1')", _function("ts_stat", RUNS_SQL)),
    "two at once": (
        "SELECT lo_unlink(pg_advisory_lock(1)::text::oid) AS value",
        _message(f"lo_unlink() ({LARGE_OBJECTS}), pg_advisory_lock() ({LOCKS}) are not allowed in a custom statement"),
    ),
    "whatever the case": ('SELECT "SET_CONFIG"(1) AS value', _function("SET_CONFIG", SETTINGS)),
    "COPY": ("COPY ent.accounts TO STDOUT", _message("a SELECT (or WITH ... SELECT) is expected, not COPY")),
    "SET": ("SET statement_timeout = 0", _message("a SELECT (or WITH ... SELECT) is expected, not SET")),
    "SET LOCAL": (
        "SET LOCAL transaction_read_only = off",
        _message("a SELECT (or WITH ... SELECT) is expected, not SET"),
    ),
    "RESET": ("RESET ALL", _message("a SELECT (or WITH ... SELECT) is expected, not RESET")),
    "DO": ("DO $$ BEGIN PERFORM 1; END $$", _message("a SELECT (or WITH ... SELECT) is expected, not DO")),
    "CALL": ("CALL ent.housekeeping()", _message("a SELECT (or WITH ... SELECT) is expected, not CALL")),
    "LOCK": ("LOCK TABLE ent.accounts", _message("a SELECT (or WITH ... SELECT) is expected, not LOCK")),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_dangerous_statement_is_refused_at_load_naming_file_key_and_function(case):
    statement, expected = REFUSED[case]
    assert _refusal(statement) == expected


ACCEPTED = {
    "names in a literal, a comment, a dollar quote": (
        "SELECT count(*) AS value FROM {accounts} -- pg_sleep(30), set_config('a', 'b', false)\n"
        "WHERE profile <> 'set_config(1)' AND profile <> $q$lo_create(0)$q$ /* dblink() */"
    ),
    "ordinary functions": (
        "SELECT count(DISTINCT lower(coalesce(profile, ''))) + extract(dow FROM {now})::int "
        "+ length(current_setting('TimeZone')) AS value FROM {accounts}"
    ),
    "a column named like a function": "SELECT count(pg_sleep) AS value FROM (SELECT 1 AS pg_sleep) AS t",
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_ordinary_statements_pass_the_load_check(case):
    entry = {"metric": "ent_custom_probe", "type": "gauge", "help": "A probe.", "sql": ACCEPTED[case]}
    config = parse_config({"source": {"dsn": "dbname=x"}, "custom": [entry]}, "custom.yml", environ={})
    assert [custom.metric for custom in config.custom] == ["ent_custom_probe"]


def test_custom_statements_reach_the_source_as_untrusted():
    """What puts a custom: statement in the sandbox: the collectors hand it to the source as UntrustedSQL
    (a gauge's statement, a counter's delta statement)."""
    from ent_exporter.app import custom_collectors
    from ent_exporter.indicators import discover

    gauge = {"metric": "ent_custom_g", "type": "gauge", "help": "G.", "sql": "SELECT 1 AS value"}
    counter = {
        "metric": "ent_custom_c_total",
        "type": "counter",
        "help": "C.",
        "events": "login_events",
        "watermark": "event_id",
        "sql": "SELECT count(*) AS value FROM {events}",
    }
    config = parse_config({"source": {"dsn": "dbname=x"}, "custom": [gauge, counter]}, "custom.yml", environ={})
    made = custom_collectors(config, "custom.yml", discover())
    assert [type(c).__name__ for c in made] == ["CustomGauge", "CustomCounter"]
    assert isinstance(made[0].query, UntrustedSQL) and isinstance(made[1].delta_query, UntrustedSQL)
