"""The platform database, read-only, through a small psycopg connection pool."""
from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import psycopg
import psycopg_pool
from psycopg import sql

log = logging.getLogger(__name__)

# The relations of the source contract (see README, "Source contract").
RELATIONS = ("structures", "accounts", "login_events", "app_access_events", "connector_events")
# Relations a platform may give or not (README, "Source contract"): a collector that reads one
# publishes nothing, without failing, on a source that lacks it (see collectors.optional).
OPTIONAL_RELATIONS = ("course_progress", "account_feeds", "user_classes")


class SourceUnavailable(Exception):
    """The database cannot be reached (as opposed to a query that failed)."""


class PostgresSource:
    """Runs collectors' statements on a read-only pool with a statement timeout."""

    def __init__(
        self,
        dsn: str,
        schema: str = "ent",
        *,
        statement_timeout_seconds: float = 60,
        connect_timeout_seconds: float = 10,
        max_connections: int = 2,
    ) -> None:
        self.schema = schema
        self.relations = {name: sql.Identifier(schema, name) for name in RELATIONS + OPTIONAL_RELATIONS}
        self._wait_seconds = connect_timeout_seconds
        self.pool = psycopg_pool.ConnectionPool(
            dsn,
            min_size=1,
            max_size=max_connections,
            open=False,
            timeout=connect_timeout_seconds,
            check=psycopg_pool.ConnectionPool.check_connection,
            kwargs={
                "application_name": "ent-exporter",
                "connect_timeout": max(1, int(connect_timeout_seconds)),
                "options": (
                    "-c default_transaction_read_only=on"
                    f" -c statement_timeout={int(statement_timeout_seconds * 1000)}"
                ),
                "autocommit": True,
            },
            name="ent-exporter",
        )

    def open(self) -> None:
        """Starts connecting in the background: an unreachable database does not stop the exporter."""
        self.pool.open(wait=False)

    def wait_ready(self) -> None:
        """Opens the pool and waits for a first connection (one-off runs fail fast instead of retrying)."""
        try:
            self.pool.open(wait=True, timeout=self._wait_seconds)
        except psycopg_pool.PoolTimeout as error:
            raise SourceUnavailable(f"no connection to the database within {self._wait_seconds:g} s") from error

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> "PostgresSource":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def compose(self, query: sql.SQL, **placeholders: str | sql.Composable) -> sql.Composable:
        fill: dict[str, sql.Composable] = dict(self.relations)
        for name, value in placeholders.items():
            fill[name] = self.relations[value] if isinstance(value, str) else value
        return query.format(**fill)

    def fetch(
        self,
        query: sql.SQL,
        params: Mapping[str, Any] | Sequence[Any] | None = None,
        **placeholders: str | sql.Composable,
    ) -> list[tuple]:
        statement = self.compose(query, **placeholders)
        try:
            with self.pool.connection(timeout=self._wait_seconds) as conn:
                return conn.execute(statement, params).fetchall()
        except psycopg_pool.PoolTimeout as error:
            raise SourceUnavailable(f"no connection to the database within {self._wait_seconds:g} s") from error
        except psycopg.errors.QueryCanceled:
            raise  # statement_timeout: the query is too slow, the database is up
        except psycopg.OperationalError as error:
            raise SourceUnavailable(str(error).strip()) from error
