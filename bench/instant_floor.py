"""The instant cycle's floor: the least work any incremental cycle must do for the same new events.

Through the exporter's role, in one connection: the new rows of each event table read through the
``event_id`` index above the watermark and grouped as the counters need them (logins and application
openings per user and profile, and application; connector calls per connector and outcome with the
duration histogram's buckets), the new users' attachments looked up in ``accounts`` (one statement for
the distinct users), and the last minute's activations (an index range on ``activated_at``). The bench
measures it with pg_stat_statements and table statistics like the cycle (bench.database.Meter); the
report gives the cycle as a ratio to it."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg
from psycopg import sql

from ent_exporter.indicators.connectors import DURATION_BUCKETS_SECONDS

SCHEMA = "ent"
EVENT_TABLES = ("login_events", "app_access_events", "connector_events")

_BUCKETS = sql.SQL(", ").join(
    sql.SQL("count(*) FILTER (WHERE duration_ms >= 0 AND duration_ms <= {})").format(sql.Literal(bound * 1000))
    for bound in DURATION_BUCKETS_SECONDS
)
NEW_ROWS = {
    "login_events": sql.SQL(
        "SELECT user_id, coalesce(nullif(profile, ''), 'unknown'), count(*) FROM {table}"
        " WHERE event_id > %(since)s GROUP BY 1, 2"
    ),
    "app_access_events": sql.SQL(
        "SELECT user_id, coalesce(nullif(profile, ''), 'unknown'), coalesce(nullif(app, ''), 'unknown'), count(*)"
        " FROM {table} WHERE event_id > %(since)s GROUP BY 1, 2, 3"
    ),
    "connector_events": sql.SQL(
        "SELECT coalesce(nullif(connector, ''), 'unknown'), success, count(*), sum(duration_ms), {buckets}"
        " FROM {table} WHERE event_id > %(since)s GROUP BY 1, 2"
    ),
}
ATTACHMENTS = sql.SQL("SELECT DISTINCT user_id, structure_id FROM {accounts} WHERE user_id = ANY(%(users)s)")
ACTIVATIONS = sql.SQL(
    "SELECT coalesce(nullif(structure_id, ''), 'unknown'), coalesce(nullif(profile, ''), 'unknown'), count(*)"
    " FROM {accounts} WHERE activated_at > %(since)s AND activated_at <= %(now)s GROUP BY 1, 2"
)


def watermarks(admin_dsn: str) -> dict[str, int]:
    """Each event table's highest event_id: what a cycle has counted before new events arrive."""
    with psycopg.connect(admin_dsn) as conn:
        return {
            table: conn.execute(
                sql.SQL("SELECT coalesce(max(event_id), 0) FROM {}").format(sql.Identifier(SCHEMA, table))
            ).fetchone()[0]
            for table in EVENT_TABLES
        }


def run(dsn: str, since: dict[str, int], now: datetime) -> int:
    """The floor's statements, as of ``now``, above the ``since`` watermarks; returns the groups they gave."""
    groups = 0
    users: set[str] = set()
    accounts = sql.Identifier(SCHEMA, "accounts")
    with psycopg.connect(dsn) as conn:
        conn.read_only = True
        for table, query in NEW_ROWS.items():
            rows = conn.execute(
                query.format(table=sql.Identifier(SCHEMA, table), buckets=_BUCKETS), {"since": since[table]}
            ).fetchall()
            groups += len(rows)
            if table != "connector_events":
                users.update(row[0] for row in rows if row[0] is not None)
        groups += len(conn.execute(ATTACHMENTS.format(accounts=accounts), {"users": sorted(users)}).fetchall())
        groups += len(
            conn.execute(
                ACTIVATIONS.format(accounts=accounts), {"since": now - timedelta(minutes=1), "now": now}
            ).fetchall()
        )
    return groups
