"""What init-source does, as a list of SQL steps that can be printed for review or applied.

A plan has two parts: statements that run in one transaction (schema, views or tables,
the read-only role and its grants, then a check that every relation can be read), and
index builds, each on its own (``CREATE INDEX CONCURRENTLY`` cannot run in a transaction
and does not block the platform's writes while it builds).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources

import psycopg
from psycopg import sql

from ent_exporter.sources.postgres import RELATIONS

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
PARTITIONED, TABLE = "p", "r"


class AdapterError(Exception):
    """init-source or import-directory cannot go on; the message says why and what to do."""


def checked_name(value: str, what: str) -> str:
    """An SQL name given on the command line: letters, digits and underscores only."""
    if not NAME.match(value):
        raise AdapterError(
            f"{what} {value!r}: use letters, digits and underscores (at most 63, not starting with a digit)"
        )
    return value


def sql_file(name: str) -> str:
    return resources.files("ent_exporter.sources").joinpath(f"sql/{name}").read_text()


def statements(text: str, **placeholders: sql.Composable) -> list[sql.SQL | sql.Composed]:
    """The statements of an SQL file, placeholders filled, without their final ';'.

    A statement ends with ';' at the end of a line outside a $$-quoted body; the comments
    before a statement stay with it, so the printed plan reads like the file.
    """
    chunks, current, quoted = [], [], False
    for line in text.splitlines():
        current.append(line)
        if not line.lstrip().startswith("--"):
            quoted ^= line.count("$$") % 2 == 1
        if not quoted and line.rstrip().endswith(";") and not line.lstrip().startswith("--"):
            chunks.append("\n".join(current).strip().removesuffix(";"))
            current = []
    if "\n".join(current).strip():
        chunks.append("\n".join(current).strip())
    return [sql.SQL(chunk).format(**placeholders) for chunk in chunks if _has_code(chunk)]


def _has_code(chunk: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in chunk.splitlines())


@dataclass
class Index:
    """An index the collectors need on one of the platform's tables."""

    table: tuple[str, str]  # schema, table
    name: str  # created in the table's schema
    definition: sql.Composable  # what follows "ON table": (columns or expressions) [WHERE ...]
    purpose: str
    partitioned: bool = False  # what to print without a connection to look the table up
    optional: bool = False  # a table the platform may not have: no index then, rather than an error

    def build(self, conn: psycopg.Connection | None) -> list[sql.SQL | sql.Composed]:
        """Statements that build it without blocking writes; on a partitioned table, partition by partition."""
        schema, table = self.table
        target = sql.Identifier(schema, table)
        kind = PARTITIONED if self.partitioned else TABLE
        partitions: list[str] = []
        invalid: set[str] = set()
        if conn is not None:
            if self.optional and not _exists(conn, schema, table):
                return [sql.SQL("-- {} does not exist here: no index").format(target)]
            kind, partitions, invalid = _inspect(conn, schema, table, self.name)
        out: list[sql.SQL | sql.Composed] = []
        if kind == PARTITIONED:
            out.append(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON ONLY {} {}").format(
                    sql.Identifier(self.name), target, self.definition
                )
            )
            if conn is None:
                out.append(
                    sql.SQL(
                        "-- then, for each partition P of {table} (init-source --print --dsn ... lists them):\n"
                        "--   CREATE INDEX CONCURRENTLY IF NOT EXISTS <P>_{suffix} ON {schema}.<P> {definition};\n"
                        "--   ALTER INDEX {schema}.{index} ATTACH PARTITION {schema}.<P>_{suffix};"
                    ).format(
                        table=target,
                        schema=sql.Identifier(schema),
                        index=sql.Identifier(self.name),
                        suffix=sql.SQL(self.suffix),
                        definition=self.definition,
                    )
                )
            for partition in partitions:
                name = partition_index_name(partition, self.suffix)
                if name in invalid:  # left behind by an interrupted concurrent build
                    out.append(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(schema, name)))
                out.append(
                    sql.SQL("CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} {}").format(
                        sql.Identifier(name), sql.Identifier(schema, partition), self.definition
                    )
                )
                out.append(
                    sql.SQL("ALTER INDEX {} ATTACH PARTITION {}").format(
                        sql.Identifier(schema, self.name), sql.Identifier(schema, name)
                    )
                )
        else:
            if self.name in invalid:
                out.append(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(schema, self.name)))
            out.append(
                sql.SQL("CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} {}").format(
                    sql.Identifier(self.name), target, self.definition
                )
            )
        return out

    @property
    def suffix(self) -> str:
        return self.name.removeprefix(self.table[1] + "_")


@dataclass
class LocalTimeBounds:
    """CHECK constraints that let PostgreSQL skip the partitions a time window cannot touch.

    The views expose ``occurred_at`` as ``date AT TIME ZONE <zone>``; the collectors' windows are
    on occurred_at, not on the partition key ``date``, so partition pruning cannot apply. Each
    partition of ``table`` gets the constraint its range [FROM, TO) of ``date`` already implies,
    written on the views' expression: ``(date AT TIME ZONE zone) >= (FROM AT TIME ZONE zone) AND
    < (TO AT TIME ZONE zone)``. The planner then excludes, by constraint exclusion
    (constraint_exclusion = partition, the default), every partition whose range a window's
    bounds refute. Added NOT VALID (a brief lock, no scan), then validated (a scan that does not
    block writes). A partition created later has none until init-source runs again.
    """

    table: tuple[str, str]  # schema, partitioned table
    name: str  # the constraints' suffix: <partition>_<name>
    timezone: str
    purpose: str
    optional: bool = False
    partitioned: bool = True

    def expression(self) -> sql.Composable:
        return sql.SQL("(date AT TIME ZONE {})").format(sql.Literal(self.timezone))

    def build(self, conn: psycopg.Connection | None) -> list[sql.SQL | sql.Composed]:
        schema, table = self.table
        if conn is None:
            return [
                sql.SQL(
                    "-- then, for each partition P of {table} FOR VALUES FROM (F) TO (T) (init-source --print --dsn ... lists them):\n"
                    "--   ALTER TABLE {schema}.<P> ADD CONSTRAINT <P>_{name} CHECK ({expr} >= (F::timestamp AT TIME ZONE {zone})"
                    " AND {expr} < (T::timestamp AT TIME ZONE {zone})) NOT VALID;\n"
                    "--   ALTER TABLE {schema}.<P> VALIDATE CONSTRAINT <P>_{name};"
                ).format(
                    table=sql.Identifier(schema, table),
                    schema=sql.Identifier(schema),
                    name=sql.SQL(self.name),
                    expr=self.expression(),
                    zone=sql.Literal(self.timezone),
                )
            ]
        if not _exists(conn, schema, table):
            if self.optional:
                return [sql.SQL("-- {} does not exist here: no constraint").format(sql.Identifier(schema, table))]
            raise AdapterError(f"table {schema}.{table} not found: is this the platform's database and schema?")
        out: list[sql.SQL | sql.Composed] = []
        rows = conn.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid),"
            " (SELECT k.convalidated FROM pg_constraint k WHERE k.conrelid = c.oid AND k.conname = c.relname || '_' || %s)"
            " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent"
            " JOIN pg_namespace n ON n.oid = p.relnamespace"
            " WHERE n.nspname = %s AND p.relname = %s AND c.relkind = 'r' ORDER BY c.relname",
            (self.name, schema, table),
        ).fetchall()
        for partition, bound, validated in rows:
            found = re.fullmatch(r"FOR VALUES FROM \('([^']+)'\) TO \('([^']+)'\)", bound or "")
            if found is None:  # DEFAULT, or not a range of plain timestamps (MINVALUE, MAXVALUE)
                continue
            constraint = sql.Identifier(partition_index_name(partition, self.name))
            target = sql.Identifier(schema, partition)
            if validated is None:
                out.append(
                    sql.SQL(
                        "ALTER TABLE {target} ADD CONSTRAINT {constraint} CHECK ({expr} >= ({low}::timestamp AT TIME ZONE {zone})"
                        " AND {expr} < ({high}::timestamp AT TIME ZONE {zone})) NOT VALID"
                    ).format(
                        target=target,
                        constraint=constraint,
                        expr=self.expression(),
                        zone=sql.Literal(self.timezone),
                        low=sql.Literal(found.group(1)),
                        high=sql.Literal(found.group(2)),
                    )
                )
            if not validated:
                out.append(sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(target, constraint))
        return out


def partition_index_name(partition: str, suffix: str) -> str:
    name = f"{partition}_{suffix}"
    if len(name) > 63:
        import hashlib

        name = f"{partition[:40]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}_{suffix}"[:63]
    return name


def _exists(conn: psycopg.Connection, schema: str, table: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = %s",
            (schema, table),
        ).fetchone()
        is not None
    )


def _inspect(conn: psycopg.Connection, schema: str, table: str, index: str) -> tuple[str, list[str], set[str]]:
    row = conn.execute(
        "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s",
        (schema, table),
    ).fetchone()
    if row is None:
        raise AdapterError(f"table {schema}.{table} not found: is this the platform's database and schema?")
    partitions = [
        name
        for (name,) in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace"
            " WHERE n.nspname = %s AND p.relname = %s AND c.relkind = 'r' ORDER BY c.relname",
            (schema, table),
        )
    ]
    invalid = {
        name
        for (name,) in conn.execute(
            "SELECT c.relname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND NOT x.indisvalid",
            (schema,),
        )
    }
    return row[0], partitions, invalid


@dataclass
class Plan:
    """The SQL of init-source: ``transactional`` statements, then ``indexes``."""

    platform: str
    schema: str
    role: str
    transactional: list[sql.SQL | sql.Composed] = field(default_factory=list)
    indexes: list = field(default_factory=list)  # Index, LocalTimeBounds
    password: str | None = field(default=None, repr=False)  # the role's; never printed
    notes: list[str] = field(default_factory=list)

    def render(self, conn: psycopg.Connection | None = None) -> str:
        """The whole plan as a psql script a DBA can read and run."""
        context = conn
        lines = [
            f"-- ent-exporter init-source --platform {self.platform}: review, then run with psql -v ON_ERROR_STOP=1",
            *(f"-- {note}" for note in self.notes),
            "",
            "BEGIN;",
            "",
        ]
        for statement in self.transactional:
            lines += [_text(statement, context) + ";", ""]
        if self.password is not None:
            lines += [
                f"-- and a password for {self.role}, which is not printed:",
                f"-- ALTER ROLE {self.role} LOGIN PASSWORD '...';",
                "",
            ]
        lines += ["COMMIT;", ""]
        if self.indexes:
            lines.append("-- Indexes the collectors need, built without blocking the platform's writes")
            lines.append("-- (each on its own: CREATE INDEX CONCURRENTLY cannot run inside a transaction).")
            if any(isinstance(index, LocalTimeBounds) for index in self.indexes):
                lines.append("-- Then the constraints that let a time window skip partitions (NOT VALID: a brief lock;")
                lines.append("-- VALIDATE: a scan that does not block writes).")
            for index in self.indexes:
                lines.append(f"-- {index.purpose}")
                for statement in index.build(conn):
                    text = _text(statement, context)
                    lines.append(text if text.startswith("--") else text + ";")
                lines.append("")
        return "\n".join(lines)

    def apply(self, conn: psycopg.Connection, log=print) -> None:
        """Runs the plan; ``conn`` must be in autocommit mode."""
        with conn.transaction():
            for statement in self.transactional:
                conn.execute(statement)
            if self.password is not None:
                # Stored as a SCRAM verifier computed here: the clear password never reaches
                # the server (nor its logs).
                verifier = conn.pgconn.encrypt_password(self.password.encode(), self.role.encode(), b"scram-sha-256")
                conn.execute(
                    sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(self.role), sql.Literal(verifier.decode())
                    )
                )
            for relation in RELATIONS:  # the owner of the views can read through them
                try:
                    with conn.transaction():
                        conn.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(sql.Identifier(self.schema, relation)))
                except psycopg.errors.InsufficientPrivilege as error:
                    raise AdapterError(
                        f"{self.schema}.{relation} was created but cannot be read by its owner ({error.diag.message_primary});"
                        " run init-source as a role that can read the platform's tables (its owner)"
                    ) from None
        log(f"schema {self.schema}: the contract's relations are in place; role {self.role} may read them")
        can_login = conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (self.role,)).fetchone()
        if can_login and not can_login[0]:
            log(
                f"role {self.role} cannot log in: run init-source again with --password-env, or"
                f" GRANT {self.role} TO <the exporter's login role>"
            )
        for index in self.indexes:
            built = index.build(conn)
            notes = [_text(statement, conn) for statement in built if _text(statement, conn).startswith("--")]
            for statement in built:
                if not _text(statement, conn).startswith("--"):
                    conn.execute(statement)
            what = (
                f"index {index.table[0]}.{index.name}"
                if isinstance(index, Index)
                else f"constraints {index.name} on the partitions of {index.table[0]}.{index.table[1]}"
            )
            if notes:
                log(f"{what}: skipped ({notes[0].removeprefix('-- ')})")
            else:
                log(f"{what}: ready ({index.purpose})")


def _text(statement: sql.Composable, context) -> str:
    return statement.as_string(context).strip()


def readonly_role(schema: str, role: str, relations: Iterable[str] = RELATIONS) -> list[sql.SQL | sql.Composed]:
    """The read-only role, its session defaults and its grants (SELECT on the contract's relations only)."""
    return statements(
        sql_file("readonly_role.sql"),
        role=sql.Identifier(role),
        role_name=sql.Literal(role),
        ent=sql.Identifier(schema),
        relations=sql.SQL(", ").join(sql.Identifier(schema, relation) for relation in relations),
    )
