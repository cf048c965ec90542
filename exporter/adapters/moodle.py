"""Moodle: views over the standard log store, users, roles and course categories."""
from __future__ import annotations

from psycopg import sql

from .plan import Index, Plan, readonly_role, sql_file, statements

TABLES = ("logstore_standard_log", "user", "role", "role_assignments", "context", "course_categories")
LOGIN = r"eventname = '\core\event\user_loggedin'"
APP_ACCESS = r"eventname = '\core\event\course_viewed' OR (target = 'course_module' AND action = 'viewed')"
LOGIN_OUTCOME = r"eventname IN ('\core\event\user_loggedin', '\core\event\user_login_failed')"


def build(options) -> Plan:
    plan = Plan("moodle", options.schema, options.role, password=options.password)
    schema, prefix = options.moodle_schema, options.prefix
    table = {name: (schema, prefix + name) for name in TABLES}
    plan.notes.append(f"Moodle tables: {schema}.{prefix}*")
    plan.transactional += [
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(options.schema)),
        *statements(
            sql_file("moodle.sql"),
            ent=sql.Identifier(options.schema),
            log=sql.Identifier(*table["logstore_standard_log"]),
            user=sql.Identifier(*table["user"]),
            role=sql.Identifier(*table["role"]),
            role_assignments=sql.Identifier(*table["role_assignments"]),
            context=sql.Identifier(*table["context"]),
            course_categories=sql.Identifier(*table["course_categories"]),
        ),
        *readonly_role(options.schema, options.role),
    ]
    if options.indexes:
        log, user = table["logstore_standard_log"], table["user"]
        occurred_at = "(to_timestamp(timecreated)) WHERE "
        plan.indexes += [
            # Partial: only the log rows behind each view, so they stay small.
            Index(log, f"{log[1]}_ent_logins", sql.SQL(occurred_at + LOGIN),
                  "login_events: occurred_at (time windows, settle cut-off)"),
            Index(log, f"{log[1]}_ent_app_accesses", sql.SQL(occurred_at + f"({APP_ACCESS})"),
                  "app_access_events: occurred_at (time windows, settle cut-off)"),
            Index(log, f"{log[1]}_ent_login_outcomes", sql.SQL(occurred_at + LOGIN_OUTCOME),
                  "connector_events: occurred_at (time windows, settle cut-off)"),
            Index(user, f"{user[1]}_ent_id_text", sql.SQL("((id::text))"),
                  "accounts.user_id: attributing events to structures"),
            Index(user, f"{user[1]}_ent_activated_at", sql.SQL("((to_timestamp(nullif(firstaccess, 0))))"),
                  "accounts.activated_at: the incremental activation counter"),
        ]
    return plan
