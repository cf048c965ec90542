"""The source contract as plain tables (demo, tests, and the canonical platform)."""

from __future__ import annotations

from importlib import resources

import psycopg
from psycopg import sql


def canonical_ddl() -> str:
    return resources.files("ent_exporter.sources").joinpath("sql/canonical.sql").read_text()


def create_canonical_tables(conn: psycopg.Connection, schema: str = "ent") -> None:
    """Creates (idempotently) the contract's tables and indexes in ``schema``."""
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
    conn.execute(canonical_ddl())
    conn.execute("RESET search_path")
