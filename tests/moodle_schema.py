"""Moodle's tables on PostgreSQL, from Moodle's own XMLDB definitions (tests/fixtures/moodle/*.xml).

The rules are those of Moodle's PostgreSQL generator (lib/ddl/postgres_sql_generator.php and
the generic sql_generator.php): int -> SMALLINT (length <= 4), INTEGER (<= 9) or BIGINT;
a sequence -> BIGSERIAL; number -> NUMERIC(length, decimals); float -> DOUBLE PRECISION;
char -> VARCHAR(length); text -> TEXT; binary -> BYTEA; NOT NULL char fields without a default
get DEFAULT ''; the primary key is a PRIMARY KEY; unique keys and indexes are unique indexes;
foreign keys are plain indexes (Moodle creates no constraint); index hints (varchar_pattern_ops)
are kept.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import psycopg
from psycopg import sql

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "moodle"
XMLDB_FILES = ("install.xml", "logstore_standard.xml", "completion.xml")


def xmldb_tables(files=XMLDB_FILES) -> dict[str, ET.Element]:
    tables = {}
    for name in files:
        for table in ET.parse(FIXTURES / name).getroot().iter("TABLE"):
            tables[table.get("NAME")] = table
    return tables


def column_type(field: ET.Element) -> str:
    kind, length = field.get("TYPE"), field.get("LENGTH")
    if kind == "int":
        if field.get("SEQUENCE") == "true":
            return "BIGSERIAL"
        size = int(length)
        return "BIGINT" if size > 9 else "INTEGER" if size > 4 else "SMALLINT"
    if kind == "number":
        return f"NUMERIC({int(length)},{int(field.get('DECIMALS') or 0)})"
    if kind == "float":
        return "DOUBLE PRECISION"
    if kind == "char":
        return f"VARCHAR({int(length)})"
    if kind == "text":
        return "TEXT"
    if kind == "binary":
        return "BYTEA"
    raise ValueError(f"XMLDB type {kind!r} of field {field.get('NAME')!r}")


def column(field: ET.Element) -> sql.Composable:
    parts = [sql.Identifier(field.get("NAME")), sql.SQL(column_type(field))]
    not_null = field.get("NOTNULL") == "true"
    default = field.get("DEFAULT")
    if default is None and not_null and field.get("TYPE") == "char":
        default = ""
    if field.get("SEQUENCE") != "true":
        if not_null:
            parts.append(sql.SQL("NOT NULL"))
        if default is not None:
            value = (
                default
                if field.get("TYPE") in ("char", "text")
                else (float(default) if "." in default else int(default))
            )
            parts.append(sql.SQL("DEFAULT {}").format(sql.Literal(value)))
    return sql.SQL(" ").join(parts)


def table_ddl(name: str, table: ET.Element, schema: str, prefix: str) -> list[sql.Composable]:
    """CREATE TABLE and CREATE INDEX statements for one XMLDB table."""
    target = sql.Identifier(schema, prefix + name)
    columns = [column(f) for f in table.find("FIELDS").iter("FIELD")]
    out, indexes = [], []
    for key in table.find("KEYS").iter("KEY"):
        fields = [f.strip() for f in key.get("FIELDS").split(",")]
        if key.get("TYPE") == "primary":
            columns.append(sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(map(sql.Identifier, fields))))
        else:
            indexes.append((key.get("TYPE") == "unique", fields, None))
    for index in table.iter("INDEX"):
        indexes.append(
            (index.get("UNIQUE") == "true", [f.strip() for f in index.get("FIELDS").split(",")], index.get("HINTS"))
        )
    out.append(sql.SQL("CREATE TABLE {} ({})").format(target, sql.SQL(", ").join(columns)))
    for number, (unique, fields, hints) in enumerate(indexes):
        opclass = sql.SQL(" varchar_pattern_ops" if hints == "varchar_pattern_ops" else "")
        out.append(
            sql.SQL("CREATE {}INDEX {} ON {} ({})").format(
                sql.SQL("UNIQUE " if unique else ""),
                sql.Identifier(f"{prefix}{name[:20]}_{number}_ix"),
                target,
                sql.SQL(", ").join(sql.SQL("{}{}").format(sql.Identifier(f), opclass) for f in fields),
            )
        )
    return out


def create_moodle_tables(dsn: str, schema: str = "public", prefix: str = "mdl_") -> list[str]:
    """Creates every table of the fixtures; returns their names (without prefix)."""
    tables = xmldb_tables()
    with psycopg.connect(dsn) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        for name, table in tables.items():
            for statement in table_ddl(name, table, schema, prefix):
                conn.execute(statement)
    return list(tables)
