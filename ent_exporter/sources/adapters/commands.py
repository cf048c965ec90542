"""The init-source and import-directory commands (argument handling is in ent_exporter.cli)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TextIO

import psycopg

from ent_exporter.sources.adapters import SourceOptions, build_plan
from ent_exporter.sources.adapters.directory import import_directory
from ent_exporter.sources.adapters.plan import AdapterError

ADMIN_DSN_VARIABLE = "ENT_EXPORTER_ADMIN_DSN"


def admin_dsn(given: str | None) -> str | None:
    """The DSN of a role that may create the views (--dsn, else ENT_EXPORTER_ADMIN_DSN)."""
    return given or os.environ.get(ADMIN_DSN_VARIABLE) or None


def password_from(variable: str | None) -> str | None:
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        raise AdapterError(f"--password-env {variable}: the environment variable is not set or empty")
    return value


def run_init_source(options: SourceOptions, dsn: str | None, print_only: bool, out: TextIO = sys.stdout) -> int:
    plan = build_plan(options)
    if print_only:
        if dsn:  # to name the partitions of partitioned tables; nothing is changed
            with psycopg.connect(dsn, autocommit=True, options="-c default_transaction_read_only=on") as conn:
                out.write(plan.render(conn))
        else:
            out.write(plan.render())
        out.write("\n")
        return 0
    if not dsn:
        raise AdapterError(
            f"no database to set up: give --dsn or set {ADMIN_DSN_VARIABLE} (a role that can read"
            " the platform's tables and create a schema and a role), or review the SQL with --print"
        )
    with psycopg.connect(dsn, autocommit=True) as conn:
        plan.apply(conn, log=lambda line: print(f"ent-exporter: {line}", file=out))
    return 0


def run_import_directory(source: str | Path, dsn: str | None, directory_schema: str, out: TextIO = sys.stdout) -> int:
    if not dsn:
        raise AdapterError(
            f"no database: give --dsn or set {ADMIN_DSN_VARIABLE}"
            " (the role that ran init-source, owner of the directory tables)"
        )
    with psycopg.connect(dsn) as conn:
        conn.autocommit = True
        import_directory(conn, source, directory_schema, log=lambda line: print(f"ent-exporter: {line}", file=out))
    return 0
