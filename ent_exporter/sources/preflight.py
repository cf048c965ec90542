"""``check-config --connect``: what would stop the exporter from reading its source, one line each.

The configuration being valid says nothing of the database. Before a start, an operator
wants to know at once whether the DSN reaches a server (and, if not, whether the server is
unreachable or refuses the credentials), whether the schema and the contract's five
relations are there with their columns, and whether the role may read them. Each check is
one catalogue query on one direct connection (not the daemon's retrying pool): a wrong
password is reported as soon as the server says so, not after the pool's retries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from ent_exporter.config import Config
from ent_exporter.engine import clock as clocks
from ent_exporter.engine.collector import ALL_STRUCTURES
from ent_exporter.sources.postgres import RELATIONS

# The columns of each relation of the source contract (design.md, "Source contract").
CONTRACT_COLUMNS: dict[str, tuple[str, ...]] = {
    "structures": ("structure_id", "name", "kind"),
    "accounts": ("user_id", "structure_id", "profile", "created_at", "activated_at"),
    "login_events": ("event_id", "user_id", "profile", "occurred_at"),
    "app_access_events": ("event_id", "user_id", "profile", "app", "occurred_at"),
    "connector_events": ("event_id", "connector", "structure_id", "occurred_at", "success", "duration_ms"),
}
assert tuple(CONTRACT_COLUMNS) == RELATIONS

# What libpq says, and what the operator should understand by it (first match wins).
CONNECTION_FAILURES = (
    (
        r"password authentication failed|no password supplied|authentication failed",
        "wrong password (or user) for the role: the server refused the credentials",
    ),
    (r'role "[^"]*" does not exist', "the role does not exist on the server"),
    (r'database "[^"]*" does not exist', "the database does not exist on the server"),
    (r"no pg_hba\.conf entry", "the server does not accept this role from this host (pg_hba.conf)"),
    (
        r"could not translate host name|Name or service not known|nodename nor servname",
        "unreachable: the host name does not resolve",
    ),
    (r"Connection refused|No such file or directory", "unreachable: nothing listens at that address and port"),
    (r"timeout expired|timed out", "unreachable: no answer within source.connect_timeout_seconds"),
    (r"Network is unreachable|No route to host", "unreachable: no route to the host"),
    (r"SSL|certificate", "TLS failed"),
)

CATALOGUE = sql.SQL("""
    SELECT n.nspname IS NOT NULL,
           n.nspname IS NOT NULL AND has_schema_privilege(n.oid, 'USAGE')
    FROM (SELECT %(schema)s AS wanted) AS w
    LEFT JOIN pg_namespace AS n ON n.nspname = w.wanted
""")
RELATION = sql.SQL("""
    SELECT c.oid IS NOT NULL,
           c.oid IS NOT NULL AND has_table_privilege(c.oid, 'SELECT'),
           coalesce(array_agg(a.attname::text) FILTER (WHERE a.attnum > 0 AND NOT a.attisdropped), '{}')
    FROM (SELECT %(schema)s AS schema_name, %(relation)s AS relation_name) AS w
    LEFT JOIN pg_namespace AS n ON n.nspname = w.schema_name
    LEFT JOIN pg_class AS c ON c.relnamespace = n.oid AND c.relname = w.relation_name
    LEFT JOIN pg_attribute AS a ON a.attrelid = c.oid
    GROUP BY c.oid
""")
WRITABLE = sql.SQL("""
    SELECT has_table_privilege(c.oid, 'INSERT') OR has_table_privilege(c.oid, 'UPDATE')
           OR has_table_privilege(c.oid, 'DELETE')
    FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE n.nspname = %(schema)s AND c.relname = %(relation)s
""")


@dataclass
class Finding:
    problem: bool  # False: a note worth reading, not a reason to refuse the configuration
    text: str


def explain_connection_failure(error: psycopg.Error) -> str:
    message = " ".join(str(error).split())
    for pattern, meaning in CONNECTION_FAILURES:
        if re.search(pattern, message, re.IGNORECASE):
            return f"{meaning} ({_server_words(message)})"
    return f"cannot connect ({_server_words(message)})"


def _server_words(message: str) -> str:
    """The useful end of libpq's message (after the last 'failed:'), without the connection preamble."""
    tail = message.rsplit("failed: ", 1)[-1].split(" Is the server running", 1)[0]
    return tail.replace("FATAL: ", "").strip()


def connect(config: Config) -> psycopg.Connection:
    """One direct connection with the configured DSN, failing at once (no pool, no retries)."""
    return psycopg.connect(
        config.source.dsn or "",
        autocommit=True,
        application_name="ent-exporter check-config",
        connect_timeout=max(1, int(config.source.connect_timeout_seconds)),
    )


def connection_problem(config: Config) -> str | None:
    """Why the DSN does not give a connection, in one line naming the key; None when it does."""
    try:
        connect(config).close()
    except psycopg.Error as error:
        return f"source.dsn: {explain_connection_failure(error)}"
    return None


def _one_row(conn: psycopg.Connection[Any], query: sql.SQL, params: dict[str, str]) -> tuple[Any, ...]:
    """The one row of a catalogue query (WRITABLE: of a relation found to exist)."""
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row


def check_source(config: Config) -> list[Finding]:
    """Connects with the configured DSN and checks the schema, the relations, their columns and rights."""
    schema = config.source.schema_name
    try:
        conn = connect(config)
    except psycopg.Error as error:
        return [Finding(True, f"source.dsn: {explain_connection_failure(error)}")]
    findings: list[Finding] = []
    with conn:
        exists, usable = _one_row(conn, CATALOGUE, {"schema": schema})
        if not exists:
            return [
                Finding(
                    True,
                    f"source.schema: schema {schema!r} does not exist in this database"
                    " (run `ent-exporter init-source`, or set source.schema)",
                )
            ]
        if not usable:
            return [
                Finding(
                    True,
                    f"source.schema: the role {conn.info.user!r} has no USAGE on schema {schema!r}"
                    " (GRANT USAGE ON SCHEMA ... TO ...; init-source does it)",
                )
            ]
        for relation, columns in CONTRACT_COLUMNS.items():
            found, readable = _relation_findings(conn, schema, relation, columns, findings)
            where = f"source.schema: {schema}.{relation}"
            if not found:
                findings.append(Finding(True, f"{where}: missing (the contract needs this view)"))
            elif readable and _one_row(conn, WRITABLE, {"schema": schema, "relation": relation})[0]:
                findings.append(
                    Finding(
                        False,
                        f"{where}: the role {conn.info.user!r} may also write to it"
                        " (a read-only role is recommended: see init-source)",
                    )
                )
        findings.extend(check_optional(conn, schema))
        findings.extend(check_structure_codes(conn, schema, findings))
    findings.extend(check_custom(config, conn_factory=lambda: connect(config)))
    return findings


# The optional relations of the contract and the collectors that read them (absent: they publish nothing).
OPTIONAL_COLUMNS: dict[str, tuple[tuple[str, ...], str]] = {
    "course_progress": (
        (
            "user_id",
            "structure_id",
            "course_id",
            "completed_at",
            "activities_complete",
            "activities_passed",
            "activities_failed",
            "badges",
        ),
        "course_progress, course_progress_by_course",
    ),
    "account_feeds": (
        ("feed", "started_at", "finished_at", "success", "rows_read", "rows_imported", "rows_rejected", "rows_skipped"),
        "account_feeds",
    ),
    "user_classes": (("user_id", "structure_id", "class_name"), "class_visitors, class_accounts (opt-in)"),
}


def check_structure_codes(conn: psycopg.Connection, schema: str, earlier: list[Finding]) -> list[Finding]:
    """A structure coded like the platform-wide series (structure="all"): its figures would merge into
    the platform's, and its reports take the platform's directory."""
    findings = []
    for relation in ("structures", "accounts"):
        where = f"source.schema: {schema}.{relation}"
        if any(finding.problem and finding.text.startswith(f"{where}:") for finding in earlier):
            continue  # (missing, or not readable: said already)
        query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE structure_id = %(code)s)").format(
            sql.Identifier(schema, relation)
        )
        if conn.execute(query, {"code": ALL_STRUCTURES}).fetchone() == (True,):
            findings.append(
                Finding(
                    True,
                    f"{where}: a structure is coded {ALL_STRUCTURES!r}, the code of the platform-wide series"
                    f' (structure="{ALL_STRUCTURES}"): its figures would merge into the platform\'s and its reports'
                    " would take the platform's directory; give it another code in the source's views",
                )
            )
    return findings


def reserved_structure_code(config: Config) -> str | None:
    """The problem of a structure coded ``all`` in the source (one line), None when there is none or
    the source cannot say (unreachable or incomplete: said by other checks)."""
    try:
        conn = connect(config)
    except psycopg.Error:
        return None
    try:
        with conn:
            findings = check_structure_codes(conn, config.source.schema_name, [])
    except psycopg.Error:
        return None
    return findings[0].text if findings else None


def check_optional(conn: psycopg.Connection, schema: str) -> list[Finding]:
    """The optional relations: absent is a note (their collectors publish nothing), present but
    incomplete or unreadable is a problem (their collectors would fail every run)."""
    findings: list[Finding] = []
    for relation, (columns, collectors) in OPTIONAL_COLUMNS.items():
        found, _readable = _relation_findings(conn, schema, relation, columns, findings)
        if not found:
            findings.append(
                Finding(
                    False,
                    f"source.schema: {schema}.{relation}: absent (optional): collector(s) {collectors} publish nothing",
                )
            )
    return findings


def _relation_findings(
    conn: psycopg.Connection, schema: str, relation: str, columns: tuple[str, ...], findings: list[Finding]
) -> tuple[bool, bool]:
    """Appends the missing columns and the missing SELECT right of a relation; returns (found, readable)."""
    found, readable, present = _one_row(conn, RELATION, {"schema": schema, "relation": relation})
    if found:
        where = f"source.schema: {schema}.{relation}"
        missing = [column for column in columns if column not in present]
        if missing:
            findings.append(Finding(True, f"{where}: missing column(s) {', '.join(missing)}"))
        if not readable:
            findings.append(Finding(True, f"{where}: the role {conn.info.user!r} may not SELECT from it"))
    return found, readable


def check_custom(config: Config, conn_factory) -> list[Finding]:
    """Has the database plan each ``custom:`` statement as the collector runs it (EXPLAIN, nothing
    executed), in a read-only transaction: a missing relation or column, a type error, a result
    without the label columns are said before the exporter starts, naming the entry."""
    from ent_exporter.indicators import custom
    from ent_exporter.sources.postgres import OPTIONAL_RELATIONS

    findings: list[Finding] = []
    if not config.custom:
        return findings
    relations = {name: sql.Identifier(config.source.schema_name, name) for name in RELATIONS + OPTIONAL_RELATIONS}
    with conn_factory() as conn:
        for index, (entry, collector) in enumerate(zip(config.custom, custom.build(config.custom))):
            query = collector.delta_query if isinstance(collector, custom.CustomCounter) else collector.query
            statement = sql.SQL("EXPLAIN ") + query.format(
                **relations,
                events=relations[entry.events] if entry.events else sql.SQL(""),
                now=sql.Literal(clocks.default().now()),
                timezone=sql.Literal(config.timezone),
            )
            try:
                with conn.transaction():
                    conn.execute("SET TRANSACTION READ ONLY")
                    conn.execute(statement, {"after": 0, "upto": 0})
            except psycopg.Error as error:
                message = " ".join(str(error).split())
                findings.append(
                    Finding(
                        True, f"custom.{index}.sql: the database refuses the statement of {entry.metric}: {message}"
                    )
                )
    return findings
