"""Moodle: views over the standard log store, the task log, users, roles and course categories."""

from __future__ import annotations

from psycopg import sql

from ent_exporter.sources.adapters.plan import Index, Plan, readonly_role, sql_file, statements
from ent_exporter.sources.postgres import RELATIONS

TABLES = (
    "logstore_standard_log",
    "user",
    "role",
    "role_assignments",
    "context",
    "course_categories",
    "course",
    "config",
    "task_log",
    "user_enrolments",
    "enrol",
    # course_progress (optional relation): completion and badges
    "course_modules",
    "course_modules_completion",
    "course_completions",
    "badge",
    "badge_issued",
    # user_classes (optional relation): cohorts of course categories
    "cohort",
    "cohort_members",
)
LOGIN = r"eventname = '\core\event\user_loggedin'"
APP_ACCESS = r"eventname = '\core\event\course_viewed' OR (target = 'course_module' AND action = 'viewed')"
LOGIN_OUTCOME = r"eventname IN ('\core\event\user_loggedin', '\core\event\user_login_failed')"
# The synchronisation tasks of authentication and enrolment plugins, by class name as the task
# log stores it (get_class(): no leading backslash): auth_ldap\task\sync_task, auth_ldap\task\sync_roles,
# auth_cas\task\sync_task, auth_db\task\sync_users, enrol_ldap\task\sync_enrolments,
# enrol_database\task\sync_enrolments, enrol_lti\task\sync_members, ... The same text is the view's
# filter and the partial index's predicate, so that the index serves the view.
SYNC_TASKS = r"classname ~ '^\\?(auth|enrol)_[a-z0-9]+\\task\\sync_'"
CONTEXT_COURSE = 50


def build(options) -> Plan:
    plan = Plan("moodle", options.schema, options.role, password=options.password)
    schema, prefix = options.moodle_schema, options.prefix
    table = {name: (schema, prefix + name) for name in TABLES}
    plan.notes.append(f"Moodle tables: {schema}.{prefix}*")
    ident = {name: sql.Identifier(*where) for name, where in table.items()}
    guest = sql.SQL("(SELECT nullif(btrim(c.value), '')::bigint FROM {config} AS c WHERE c.name = 'siteguest')").format(
        config=ident["config"]
    )
    site_course = sql.SQL("(SELECT min(c.id) FROM {course} AS c WHERE c.category = 0)").format(course=ident["course"])
    if options.skip_anonymous:
        plan.notes.append("log rows marked anonymous are left out")
        anonymous_rule = sql.SQL(
            "\n--   Log rows marked anonymous (anonymous = 1) are left out too (--skip-anonymous)."
        )
        anonymous_filter = sql.SQL("\n  AND l.anonymous = 0")
    else:
        anonymous_rule = anonymous_filter = sql.SQL("")
    if options.active_enrolments_only:
        plan.notes.append("role assignments in a course count only with an active enrolment in it")
        enrolment_rule = sql.SQL(
            "A role assignment in a course (or below) attaches only with an active enrolment in\n"
            "--   that course: user_enrolments.status = 0 in an enabled enrolment instance (--active-enrolments-only)."
        )
        # The course of the assignment's context is the context of level 50 on its path (if any).
        enrolment_filter: sql.Composable = sql.SQL("""
  AND NOT EXISTS (
      SELECT 1 FROM {context} AS course_ctx
      WHERE course_ctx.id = ANY (string_to_array(btrim(ctx.path, '/'), '/')::bigint[])
        AND course_ctx.contextlevel = {course_level}
        AND NOT EXISTS (
            SELECT 1 FROM {user_enrolments} AS ue
            JOIN {enrol} AS e ON e.id = ue.enrolid
            WHERE e.courseid = course_ctx.instanceid AND ue.userid = ra.userid AND ue.status = 0 AND e.status = 0))""").format(
            context=ident["context"],
            course_level=sql.Literal(CONTEXT_COURSE),
            user_enrolments=ident["user_enrolments"],
            enrol=ident["enrol"],
        )
    else:
        enrolment_rule = sql.SQL("Enrolments are not looked at: a suspended enrolment still attaches.")
        enrolment_filter = sql.SQL("")
    plan.transactional += [
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(options.schema)),
        *statements(
            sql_file("moodle.sql"),
            ent=sql.Identifier(options.schema),
            log=ident["logstore_standard_log"],
            user=ident["user"],
            role=ident["role"],
            role_assignments=ident["role_assignments"],
            context=ident["context"],
            course_categories=ident["course_categories"],
            task_log=ident["task_log"],
            course=ident["course"],
            user_enrolments=ident["user_enrolments"],
            enrol=ident["enrol"],
            course_modules=ident["course_modules"],
            course_modules_completion=ident["course_modules_completion"],
            course_completions=ident["course_completions"],
            badge=ident["badge"],
            badge_issued=ident["badge_issued"],
            cohort=ident["cohort"],
            cohort_members=ident["cohort_members"],
            guest=guest,
            site_course=site_course,
            anonymous_rule=anonymous_rule,
            anonymous_filter=anonymous_filter,
            enrolment_rule=enrolment_rule,
            enrolment_filter=enrolment_filter,
            sync_tasks=sql.SQL("t." + SYNC_TASKS),
        ),
        # The contract's core relations and the optional one this platform gives.
        *readonly_role(options.schema, options.role, RELATIONS + ("course_progress", "account_feeds", "user_classes")),
    ]
    if options.indexes:
        log, user, task_log = table["logstore_standard_log"], table["user"], table["task_log"]
        occurred_at = "(to_timestamp(timecreated)) WHERE "
        plan.indexes += [
            # Partial: only the log rows behind each view, so they stay small.
            Index(
                log,
                f"{log[1]}_ent_logins",
                sql.SQL(occurred_at + LOGIN),
                "login_events: occurred_at (time windows, settle cut-off)",
            ),
            Index(
                log,
                f"{log[1]}_ent_app_accesses",
                sql.SQL(occurred_at + f"({APP_ACCESS})"),
                "app_access_events: occurred_at (time windows, settle cut-off)",
            ),
            Index(
                log,
                f"{log[1]}_ent_login_outcomes",
                sql.SQL(occurred_at + LOGIN_OUTCOME),
                "connector_events (logins, credential failures): occurred_at, the counters' watermark",
            ),
            Index(
                task_log,
                f"{task_log[1]}_ent_sync_tasks",
                sql.SQL("((to_timestamp(timeend::double precision))) WHERE " + SYNC_TASKS),
                "connector_events (synchronisation tasks): occurred_at, the counters' watermark",
            ),
            Index(
                user,
                f"{user[1]}_ent_id_text",
                sql.SQL("((id::text))"),
                "accounts.user_id: attributing events to structures",
            ),
            Index(
                user,
                f"{user[1]}_ent_activated_at",
                sql.SQL("((to_timestamp(nullif(firstaccess, 0))))"),
                "accounts.activated_at: the incremental activation counter",
            ),
        ]
    return plan
