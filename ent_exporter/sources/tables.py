"""The source contract as plain tables: what the demo and the tests create, and the `canonical` platform
(`init-source --platform canonical`) for a platform that fills them itself."""

from __future__ import annotations

from importlib import resources

import psycopg
from psycopg import sql


def contract_ddl() -> str:
    return resources.files("ent_exporter.sources").joinpath("sql/contract.sql").read_text()


def create_contract_tables(conn: psycopg.Connection, schema: str = "ent") -> None:
    """Creates (idempotently) the contract's tables and indexes in ``schema``."""
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
    conn.execute(contract_ddl())
    conn.execute("RESET search_path")
