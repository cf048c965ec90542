"""The demo's optional relations: course progress, classes and account feed runs, derived from its accounts.

The contract's tables are its core; a platform gives the optional relations only when
it has such figures (Moodle: course progress; Edifice: the directory import's runs). The demo
shows them too, so that every dashboard panel has data: ``course_progress``, ``user_classes`` and
``account_feeds`` are created as tables in the demo's schema and refilled at each start, deterministically from the
accounts (a hash of the user id decides enrolments and completions), and the feed runs are the
nightly imports of the last two weeks up to the demo's clock (all successful; 2 % of rows rejected).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

TABLES = """
CREATE TABLE IF NOT EXISTS {course_progress} (
    user_id text, structure_id text, course_id text, completed_at timestamptz,
    activities_complete bigint, activities_passed bigint, activities_failed bigint, badges bigint
);
CREATE TABLE IF NOT EXISTS {user_classes} (user_id text, structure_id text, class_name text);
CREATE TABLE IF NOT EXISTS {account_feeds} (
    feed text, started_at timestamptz, finished_at timestamptz, success boolean,
    rows_read bigint, rows_imported bigint, rows_rejected bigint, rows_skipped bigint
);
TRUNCATE {course_progress}, {account_feeds}, {user_classes};
"""

# Students and teachers in 1 to 3 of their structure's six courses; about 40 % of the enrolments
# completed, before the demo's clock; activities and badges in proportion.
COURSES = """
INSERT INTO {course_progress}
SELECT a.user_id, a.structure_id, a.structure_id || '-course-' || c.n,
       CASE WHEN mod(h.v, 10) < 4 THEN %(now)s - ((mod(h.v, 60)) || ' days')::interval END,
       mod(h.v, 7), mod(h.v, 3), mod(h.v, 2), CASE WHEN mod(h.v, 10) < 4 THEN mod(h.v, 2) ELSE 0 END
FROM {accounts} AS a
CROSS JOIN LATERAL (SELECT abs(hashtext(a.user_id || a.structure_id)) AS v) AS h
CROSS JOIN LATERAL generate_series(1, 1 + mod(h.v, 3)) AS c(n)
WHERE a.profile IN ('Student', 'Teacher')
"""

# Pupils in one class of their structure (6e to 3e, A to D), teachers in two, by a hash of their id.
CLASSES = """
INSERT INTO {user_classes}
SELECT DISTINCT a.user_id, a.structure_id, (6 - mod(h.v + c.n, 4)) || 'e' || chr(65 + mod(h.v / 4 + c.n, 4))
FROM {accounts} AS a
CROSS JOIN LATERAL (SELECT abs(hashtext(a.user_id)) AS v) AS h
CROSS JOIN LATERAL generate_series(1, CASE WHEN a.profile = 'Teacher' THEN 2 ELSE 1 END) AS c(n)
WHERE a.profile IN ('Student', 'Teacher')
"""


def seed_extras(conn: psycopg.Connection, schema: str, now: datetime, zone: str) -> None:
    names = {
        "course_progress": sql.Identifier(schema, "course_progress"),
        "account_feeds": sql.Identifier(schema, "account_feeds"),
        "accounts": sql.Identifier(schema, "accounts"),
        "user_classes": sql.Identifier(schema, "user_classes"),
    }
    with conn.transaction():
        conn.execute(sql.SQL(TABLES).format(**names))
        conn.execute(sql.SQL(COURSES).format(**names), {"now": now})
        conn.execute(sql.SQL(CLASSES).format(**names))
        row = conn.execute(sql.SQL("SELECT count(*) FROM {accounts}").format(**names)).fetchone()
        assert row is not None  # (one row, always)
        accounts = row[0]
        local = now.astimezone(ZoneInfo(zone))
        runs = []
        for days_ago in range(14, -1, -1):
            started = datetime.combine(local.date() - timedelta(days=days_ago), time(1, 30), tzinfo=local.tzinfo)
            if started + timedelta(minutes=2) > local:
                continue  # tonight's run has not happened yet
            rejected = accounts // 50
            runs.append(
                (
                    "directory",
                    started,
                    started + timedelta(seconds=95),
                    True,
                    accounts + rejected,
                    accounts,
                    rejected,
                    0,
                )
            )
        conn.cursor().executemany(
            sql.SQL("INSERT INTO {account_feeds} VALUES (%s, %s, %s, %s, %s, %s, %s, %s)").format(**names), runs
        )
