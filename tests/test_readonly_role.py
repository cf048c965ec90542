"""The role init-source creates reads the contract's relations and nothing else: reading a
base table, writing anything or creating anything is refused by privileges (not only by
the read-only session default, which a client may turn off)."""

from __future__ import annotations

import psycopg
import pytest

from ent_exporter.sources.postgres import RELATIONS
from tests.moodle_schema import create_moodle_tables
from tests.support import run_cli
from tests.test_adapters_edifice import _env, create_event_store, readonly_dsn

# The optional relations of the contract each platform's adapter gives (readable like the core ones).
OPTIONAL = {
    "canonical": (),
    "edifice": ("account_feeds", "user_classes"),
    "moodle": ("course_progress", "account_feeds", "user_classes"),
}

REFUSED = (psycopg.errors.InsufficientPrivilege,)
OURS = "_ent_(logins|app_accesses|login_outcomes|id_text|activated_at)$"  # the Moodle indexes init-source builds
# Writing into a view that is not simple enough to be updatable fails before privileges are checked.
NOT_UPDATABLE = (psycopg.errors.ObjectNotInPrerequisiteState, psycopg.errors.FeatureNotSupported)


def setup_platform(dsn: str, platform: str) -> list[str]:
    """Creates the platform's tables; returns base tables the role must not read."""
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE public.unrelated (secret text)")
        conn.execute("INSERT INTO public.unrelated VALUES ('s')")
    if platform == "edifice":
        create_event_store(dsn)
        return [
            "events.login_events",
            "events.access_events",
            "events.activation_events",
            "ent_directory.attachments",
            "ent_directory.structures",
            "public.unrelated",
        ]
    if platform == "moodle":
        create_moodle_tables(dsn, "public", "mdl_")
        return [
            "public.mdl_user",
            "public.mdl_logstore_standard_log",
            "public.mdl_role_assignments",
            "public.unrelated",
        ]
    return ["public.unrelated"]


def refused(conn: psycopg.Connection, statement: str, also: tuple = ()) -> bool:
    try:
        with conn.transaction():
            conn.execute(statement)
    except REFUSED + also:
        return True
    return False


@pytest.mark.parametrize("platform", ["canonical", "edifice", "moodle"])
def test_the_role_reads_the_views_and_nothing_else(empty_database, platform):
    base_tables = setup_platform(empty_database, platform)
    result = run_cli(
        "init-source", "--platform", platform, "--password-env", "ENT_TEST_PASSWORD", env=_env(empty_database)
    )
    assert result.returncode == 0, result.stderr

    with psycopg.connect(readonly_dsn(empty_database), autocommit=True) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
        # Whatever the session says, privileges refuse: turn the read-only default off.
        conn.execute("SET default_transaction_read_only = off")
        for relation in RELATIONS + OPTIONAL[platform]:
            conn.execute(f"SELECT * FROM ent.{relation} LIMIT 1").fetchall()
        for table in base_tables:
            assert refused(conn, f"SELECT * FROM {table} LIMIT 1"), table
        assert refused(conn, "INSERT INTO ent.login_events (user_id, occurred_at) VALUES ('u', now())", NOT_UPDATABLE)
        assert refused(conn, "UPDATE ent.accounts SET profile = 'x'", NOT_UPDATABLE)
        assert refused(conn, "DELETE FROM ent.connector_events", NOT_UPDATABLE)
        if platform != "moodle":  # a simple view (or a table): updatable, so privileges decide
            assert refused(conn, "UPDATE ent.structures SET name = 'x'")
            assert refused(conn, "DELETE FROM ent.structures")
        assert refused(conn, "CREATE TABLE ent.mine (x int)")
        assert refused(conn, "CREATE VIEW ent.mine AS SELECT 1")
        assert refused(conn, "CREATE TABLE public.mine (x int)")
        assert (
            refused(conn, "DROP VIEW ent.login_events")
            if platform != "canonical"
            else refused(conn, "DROP TABLE ent.login_events")
        )
        if platform == "moodle":
            assert refused(conn, "UPDATE public.mdl_user SET deleted = 1")
        if platform == "edifice":
            assert refused(conn, "INSERT INTO ent_directory.structures VALUES ('x', 'x', 'x')")
            assert refused(conn, "SELECT * FROM ent_directory.feed_runs")
        role = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolinherit, rolcanlogin"
            " FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert role == (False, False, False, False, True)


def test_without_a_password_the_role_cannot_log_in(empty_database):
    result = run_cli(
        "init-source", "--platform", "canonical", "--role", "ent_exporter_nologin", env=_env(empty_database)
    )
    assert result.returncode == 0, result.stderr
    with psycopg.connect(empty_database) as conn:
        assert conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'ent_exporter_nologin'").fetchone() == (
            False,
        )
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(readonly_dsn(empty_database, "ent_exporter_nologin")).close()


def test_print_changes_nothing(empty_database):
    setup_platform(empty_database, "moodle")
    result = run_cli(
        "init-source", "--platform", "moodle", "--print", "--role", "ent_exporter_printed", env=_env(empty_database)
    )
    assert result.returncode == 0, result.stderr
    assert 'CREATE OR REPLACE VIEW "ent".login_events' in result.stdout
    assert 'GRANT SELECT ON "ent"."structures"' in result.stdout
    assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS" in result.stdout
    with psycopg.connect(empty_database) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'ent'").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'ent_exporter_printed'").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname ~ %s", (OURS,)).fetchone() == (0,)


def test_the_printed_script_is_what_init_source_runs(empty_database, tmp_path):
    """A DBA may run the reviewed script with psql instead: it gives the same result."""
    setup_platform(empty_database, "moodle")
    script = run_cli("init-source", "--platform", "moodle", "--print", env=_env(empty_database)).stdout
    with psycopg.connect(empty_database, autocommit=True) as conn:
        for statement in split_psql(script):
            conn.execute(statement)
        views = {
            name
            for (name,) in conn.execute("SELECT table_name FROM information_schema.views WHERE table_schema = 'ent'")
        }
        indexes = conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname ~ %s", (OURS,)).fetchone()[0]
    assert views == set(RELATIONS + OPTIONAL["moodle"])
    assert indexes == 5


def split_psql(script: str) -> list[str]:
    """Statements of the printed script, as psql would send them (';' at a line end, outside $$)."""
    out, current, quoted = [], [], False
    for line in script.splitlines():
        if line.startswith("--") and not current:
            continue
        current.append(line)
        if not line.lstrip().startswith("--"):
            quoted ^= line.count("$$") % 2 == 1
        if not quoted and line.rstrip().endswith(";") and not line.lstrip().startswith("--"):
            text = "\n".join(current).strip()
            if text not in ("BEGIN;", "COMMIT;"):
                out.append(text)
            current = []
    return out


def test_errors_say_what_to_do(empty_database):
    missing = run_cli("init-source", "--platform", "moodle", env=_env(empty_database))
    assert missing.returncode == 1
    assert "mdl_course_categories" in missing.stderr and "does not exist" in missing.stderr
    no_dsn = run_cli(
        "init-source",
        "--platform",
        "moodle",
        env={k: v for k, v in _env(empty_database).items() if k != "ENT_EXPORTER_ADMIN_DSN"},
    )
    assert no_dsn.returncode == 2 and "--print" in no_dsn.stderr
    bad_name = run_cli("init-source", "--platform", "moodle", "--role", "x; DROP TABLE y", "--print")
    assert bad_name.returncode == 2 and "role" in bad_name.stderr
