"""The Moodle adapter on Moodle's own tables (created from Moodle's XMLDB definitions by
tests/moodle_schema.py): the log, the task log and the other tables written the way Moodle
writes them (the site guest, visitors not logged in, the front page, "log in as", every reason
of a failed login, JSON and PHP-serialized "other", synchronisation tasks); every metric family
equals the truth computed here from those rows, read through the views by the read-only role."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from random import Random

import psycopg
import pytest
from psycopg import sql

from tests.adapter_truth import (
    assert_every_family,
    assert_windows_populated,
    counter_families,
    course_truth,
    feed_truth,
    window_edges,
    window_families,
)
from tests.ent_rows import EntRows
from tests.moodle_schema import create_moodle_tables
from tests.support import run_cli
from tests.test_adapters_edifice import Exporter

START = datetime(2026, 9, 16, 13, 0, tzinfo=UTC)  # a Wednesday, 15:00 in Paris: day, week and month differ
HISTORY = timedelta(days=100)  # the log before START: beyond every window (90 days at most)
CYCLES = 3  # hourly cycles after START; every family is compared at each of them
FINAL = START + timedelta(hours=CYCLES)
SECOND = timedelta(seconds=1)  # Moodle's time resolution
LOGGEDIN, FAILED = "\\core\\event\\user_loggedin", "\\core\\event\\user_login_failed"
COURSE_VIEWED = "\\core\\event\\course_viewed"
GUEST, SITE_COURSE, NOBODY, STRANGER = 1, 1, 0, 9999  # the guest user, the front page, not logged in, no user row

ROLES = [  # id, shortname, archetype (Moodle's standard roles, then a custom one without archetype)
    (1, "manager", "manager"),
    (2, "coursecreator", "coursecreator"),
    (3, "editingteacher", "editingteacher"),
    (4, "teacher", "teacher"),
    (5, "student", "student"),
    (6, "guest", "guest"),
    (7, "user", "user"),
    (8, "frontpage", "frontpage"),
    (9, "parent", ""),
]
PROFILE_OF = {
    "manager": "Personnel",
    "coursecreator": "Personnel",
    "editingteacher": "Teacher",
    "teacher": "Teacher",
    "student": "Student",
    "guest": "Guest",
}
RANK = {"Personnel": 1, "Teacher": 2, "Student": 3, "Guest": 4}
AUTHS = ["manual", "ldap", "cas", "oauth2", "saml2", "shibboleth"]
COMPONENTS = ["mod_forum", "mod_quiz", "mod_assign", "mod_resource", "mod_page", "mod_feedback"]
SYSTEM, USER, COURSECAT, COURSE, MODULE = 10, 30, 40, 50, 70
# The task log: synchronisation tasks (connectors) and others, by class name as Moodle stores it.
SYNC_TASKS = [
    ("auth_ldap", "auth_ldap\\task\\sync_task"),
    ("auth_ldap", "auth_ldap\\task\\sync_roles"),
    ("auth_cas", "auth_cas\\task\\sync_task"),
    ("auth_db", "auth_db\\task\\sync_users"),
    ("enrol_ldap", "enrol_ldap\\task\\sync_enrolments"),
    ("enrol_database", "enrol_database\\task\\sync_enrolments"),
]
OTHER_TASKS = [
    ("core", "core\\task\\session_cleanup_task"),
    ("mod_forum", "mod_forum\\task\\cron_task"),
    ("enrol_cohort", "enrol_cohort\\task\\enrol_cohort_sync"),
    ("tool_task", "core\\task\\send_failed_login_notifications_task"),
]
SYNC_CLASS = re.compile(r"^\\?(auth|enrol)_[a-z0-9]+\\task\\sync_")


def log_row(
    eventname: str,
    component: str,
    action: str,
    target: str,
    user: int,
    moment: int,
    *,
    context: int = 1,
    course: int | None = None,
    realuser: int | None = None,
    anonymous: int = 0,
    other: str | None = None,
) -> tuple:
    """A logstore_standard_log row: (eventname, component, action, target, contextid, userid, courseid,
    realuserid, anonymous, other, timecreated)."""
    return (eventname, component, action, target, context, user, course, realuser, anonymous, other, moment)


def encode_other(values: dict, php: bool) -> str:
    """ "other" as the log store writes it: JSON (jsonformat on, the default of new sites) or PHP serialize()."""
    if not php:
        return json.dumps(values, separators=(",", ":"))
    parts = []
    for key, value in values.items():
        parts.append(f's:{len(key)}:"{key}";')
        parts.append(f"i:{value};" if isinstance(value, int) else f's:{len(value.encode())}:"{value}";')
    return f"a:{len(values)}:{{{''.join(parts)}}}"


def reason_of(other: str | None) -> int | None:
    if other is None:
        return None
    if other.startswith("{"):
        return json.loads(other).get("reason")
    found = re.search(r's:6:"reason";i:(\d+);', other)
    return int(found.group(1)) if found else None


@dataclass
class Moodle:
    categories: list[tuple] = field(default_factory=list)  # id, name, idnumber, parent, depth, path
    courses: list[tuple] = field(default_factory=list)  # id, category (the site course has category 0)
    contexts: list[tuple] = field(default_factory=list)  # id, contextlevel, instanceid, path, depth
    users: list[tuple] = field(default_factory=list)  # id, auth, deleted, suspended, username, firstaccess, timecreated
    assignments: list[tuple] = field(default_factory=list)  # roleid, contextid, userid
    enrols: list[tuple] = field(default_factory=list)  # id, courseid, status (0 enabled, 1 disabled)
    enrolments: list[tuple] = field(default_factory=list)  # enrolid, userid, status (0 active, 1 suspended)
    weights: dict[int, float] = field(default_factory=dict)  # how often each user shows up in the log
    quiet: set[int] = field(default_factory=set)  # users whose log rows a test places itself
    course_contexts: list[int] = field(default_factory=list)
    admins: list[int] = field(default_factory=list)  # who logs in as someone else
    # Course progress: course_modules (id, course, deletioninprogress), course_modules_completion
    # (coursemoduleid, userid, completionstate, timemodified), course_completions (userid, course,
    # timecompleted: None, 0 or unix time), badge (id, type, courseid), badge_issued (badgeid, userid).
    modules: list[tuple] = field(default_factory=list)
    module_completions: list[tuple] = field(default_factory=list)
    course_completions: list[tuple] = field(default_factory=list)
    badges: list[tuple] = field(default_factory=list)
    badges_issued: list[tuple] = field(default_factory=list)
    # Classes: cohort (id, contextid, name), cohort_members (cohortid, userid).
    cohorts: list[tuple] = field(default_factory=list)
    cohort_members: list[tuple] = field(default_factory=list)

    def context(self, level: int, instance: int, parent_path: str) -> int:
        ident = len(self.contexts) + 1
        path = f"{parent_path}/{ident}"
        self.contexts.append((ident, level, instance, path, path.count("/")))
        return ident


def make_moodle(rng: Random, users: int) -> Moodle:
    m = Moodle()
    system = m.context(SYSTEM, 0, "")
    m.courses.append((SITE_COURSE, 0))  # the front page
    m.context(COURSE, SITE_COURSE, "/1")
    category_contexts: dict[int, tuple[int, str]] = {}
    for number, idnumber in enumerate(["0750001A", " 0750002B ", "", "0750004D"], start=1):
        ctx = m.context(COURSECAT, number, "/1")
        m.categories.append((number, f"School {number}", idnumber, 0, 1, f"/{number}"))
        category_contexts[number] = (ctx, f"/1/{ctx}")
    category_paths = {number: f"/{number}" for number in range(1, 5)}
    for number, parent in ((5, 1), (6, 2), (7, 5)):  # sub-categories, one two levels down
        parent_ctx, parent_path = category_contexts[parent]
        ctx = m.context(COURSECAT, number, parent_path)
        category_paths[number] = f"{category_paths[parent]}/{number}"  # as Moodle writes it: the whole chain
        m.categories.append(
            (
                number,
                f"Level {number}",
                f"SUB{number}",
                parent,
                category_paths[number].count("/"),
                category_paths[number],
            )
        )
        category_contexts[number] = (ctx, f"{parent_path}/{ctx}")
    course_contexts, module_contexts, course_of_context = [], [], {}
    for number in range(2, 14):
        category = rng.randint(1, 7)
        m.courses.append((number, category))
        ctx = m.context(COURSE, number, category_contexts[category][1])
        course_contexts.append(ctx)
        course_of_context[ctx] = number
        # Every course has a manual enrolment instance; some a second, disabled one.
        m.enrols.append((len(m.enrols) + 1, number, 0))
        if number % 4 == 0:
            m.enrols.append((len(m.enrols) + 1, number, 1))
        for module in range(2):
            module_ctx = m.context(MODULE, number * 10 + module, m.contexts[ctx - 1][3])
            module_contexts.append(module_ctx)
            course_of_context[module_ctx] = number
    user_contexts = []
    for number in range(2, users + 2):  # 1 is the guest user
        deleted = 1 if number % 13 == 0 else 0
        suspended = 1 if number % 17 == 0 else 0
        first_access = 0 if number % 5 == 0 else int((START - timedelta(days=rng.randint(1, 300))).timestamp())
        if number % 7 == 3:  # first access during the cycles under test, or after the last one
            first_access = int(
                (
                    START
                    + rng.choice(
                        [timedelta(minutes=30), timedelta(minutes=90), timedelta(minutes=150), timedelta(days=1)]
                    )
                ).timestamp()
            )
        created = 0 if number % 19 == 0 else int((START - timedelta(days=rng.randint(300, 600))).timestamp())
        m.users.append((number, rng.choice(AUTHS), deleted, suspended, f"user{number}", first_access, created))
        user_contexts.append(m.context(USER, number, "/1"))
        m.weights[number] = rng.paretovariate(1.2)
    m.course_contexts = course_contexts
    enrolled: set[tuple[int, int]] = set()
    for user, *_ in m.users:
        for _ in range(rng.randint(0, 4)):
            role = rng.choice([3, 4, 5, 5, 5, 9, 7])
            context = rng.choice(course_contexts + module_contexts)
            m.assignments.append((role, context, user))
            course = course_of_context[context]
            if (course, user) not in enrolled and rng.random() < 0.9:  # most with an enrolment, some suspended
                enrolled.add((course, user))
                instances = [e for e in m.enrols if e[1] == course]
                instance = rng.choice(instances)
                m.enrolments.append((instance[0], user, 1 if rng.random() < 0.2 else 0))
        if user % 9 == 0:  # a manager of a school, or of the whole site
            m.assignments.append((1, rng.choice([system] + [c for c, _ in category_contexts.values()]), user))
            m.admins.append(user)
        if user % 10 == 0:  # a parent, in the context of their child's account
            m.assignments.append((9, rng.choice(user_contexts), user))
        if user % 23 == 0:
            m.assignments.append((2, category_contexts[rng.choice([1, 6])][0], user))
    return m


def make_progress(rng: Random, m: Moodle) -> None:
    """Completion and badge rows as Moodle writes them: for enrolled people and for others (suspended
    enrolments, deleted users, the guest: left out), completions dated before, during and after the
    cycles under test, a "not completed" row (NULL) and a 0, every completion state, modules being
    deleted, course badges and a site badge."""
    courses = [c for c, category in m.courses if category != 0]
    for course in courses:
        for number in range(3):
            m.modules.append((len(m.modules) + 1, course, 1 if number == 2 and course % 4 == 0 else 0))
    enrols = {e[0]: e for e in m.enrols}
    candidates = sorted({(enrols[e][1], user) for e, user, _status in m.enrolments})
    candidates += [(rng.choice(courses), user) for user in (GUEST, rng.choice([u[0] for u in m.users]))]
    moments = [
        START - timedelta(days=40),
        START - timedelta(hours=1),
        START + timedelta(minutes=30) + SECOND,
        START + timedelta(hours=2),
        FINAL,
        FINAL + timedelta(seconds=1),
        START + timedelta(days=3),
    ]
    for course, user in candidates:
        roll = rng.random()
        if roll < 0.45:
            m.course_completions.append((user, course, int(rng.choice(moments).timestamp())))
        elif roll < 0.55:
            m.course_completions.append((user, course, None))  # started, not completed
        elif roll < 0.6:
            m.course_completions.append((user, course, 0))
        for module, module_course, _deleting in m.modules:
            if module_course == course and rng.random() < 0.7:
                m.module_completions.append(
                    (module, user, rng.randint(0, 3), int((START - timedelta(days=rng.randint(1, 90))).timestamp()))
                )
    for course in courses[::2]:
        m.badges.append((len(m.badges) + 1, 2, course))
    m.badges.append((len(m.badges) + 1, 1, None))  # a site badge: not a course's
    for badge, _type, course in m.badges:
        holders = [user for c, user in candidates if course is None or c == course]
        for user in sorted(set(rng.sample(holders, min(len(holders), 6)))):
            m.badges_issued.append((badge, user))
    # Cohorts: classes in school categories (top-level and sub-categories), one site-wide (system
    # context: no structure); members among every kind of user (deleted, suspended, the guest too).
    category_contexts = [c[0] for c in m.contexts if c[1] == COURSECAT]
    for number, context in enumerate([*category_contexts, 1], start=1):
        m.cohorts.append((number, context, f"{3 + number % 4}e{'ABC'[number % 3]}"))
    people = [u[0] for u in m.users] + [GUEST]
    for cohort, _context, _name in m.cohorts:
        for user in sorted(set(rng.sample(people, 8))):
            m.cohort_members.append((cohort, user))
    deleted = next(u[0] for u in m.users if u[2])
    m.cohort_members += [(1, user) for user in (GUEST, deleted) if (1, user) not in m.cohort_members]


def make_log(rng: Random, m: Moodle, count: int, start: datetime, span: timedelta) -> list[tuple]:
    people = [u[0] for u in m.users if u[0] not in m.quiet]
    users = people + [GUEST, STRANGER]
    weights = [m.weights.get(user, 1.0) for user in users]
    courses = [c[0] for c in m.courses]
    rows = []
    for number in range(count):
        moment = int((start + span * (number / count)).timestamp())
        user = rng.choices(users, weights)[0]
        course = rng.choice(courses)
        kind = rng.random()
        if kind < 0.22:
            row = log_row(
                LOGGEDIN,
                "core",
                "loggedin",
                "user",
                user,
                moment,
                other=encode_other({"username": f"user{user}"}, rng.random() < 0.3),
            )
        elif kind < 0.32:  # a failed login, each reason as Moodle logs it (unknown username: userid 0)
            reason = rng.randint(1, 6)
            who = NOBODY if reason == 1 else rng.choice(people)
            row = log_row(
                FAILED,
                "core",
                "failed",
                "user_login",
                who,
                moment,
                other=encode_other(
                    {"username": f"user{who}" if who else "nobody", "reason": reason}, rng.random() < 0.4
                ),
            )
        elif kind < 0.47:
            if course == SITE_COURSE and rng.random() < 0.4:  # the front page, not logged in
                user = NOBODY
            row = log_row(COURSE_VIEWED, "core", "viewed", "course", user, moment, course=course)
        elif kind < 0.77:
            component = rng.choice(COMPONENTS)
            row = log_row(
                f"\\{component}\\event\\course_module_viewed",
                component,
                "viewed",
                "course_module",
                user,
                moment,
                course=course,
                anonymous=int(component == "mod_feedback" and rng.random() < 0.5),
            )
        else:  # what the views must leave out
            row = rng.choice(
                [
                    log_row("\\core\\event\\dashboard_viewed", "core", "viewed", "dashboard", user, moment),
                    log_row(
                        "\\mod_forum\\event\\discussion_viewed",
                        "mod_forum",
                        "viewed",
                        "discussion",
                        user,
                        moment,
                        course=course,
                    ),
                    log_row(
                        "\\core\\event\\course_module_instance_list_viewed",
                        "mod_quiz",
                        "viewed",
                        "course_module_instance_list",
                        user,
                        moment,
                        course=course,
                    ),
                    log_row("\\core\\event\\user_loggedout", "core", "loggedout", "user", user, moment),
                    log_row(
                        "\\core\\event\\user_loggedinas",
                        "core",
                        "loggedinas",
                        "user",
                        rng.choice(people),
                        moment,
                        realuser=rng.choice(m.admins),
                    ),
                ]
            )
        # An administrator logged in as this user: what they do is the administrator's, not the user's.
        if row[0] in (COURSE_VIEWED, LOGGEDIN) or row[3] == "course_module":
            if row[5] not in (NOBODY, GUEST) and rng.random() < 0.06:
                row = (*row[:7], rng.choice(m.admins), *row[8:])
        rows.append(row)
    return rows


def make_tasks(rng: Random, count: int, start: datetime, span: timedelta) -> list[tuple]:
    """task_log rows (component, classname, timestart, timeend, result) in the order Moodle writes them
    (at the end of each run); durations are multiples of 1/8 s, so that sums are exact in binary."""
    rows = []
    for number in range(count):
        end = start + span * ((number + 1) / (count + 1))
        component, classname = rng.choice(SYNC_TASKS + OTHER_TASKS)
        duration = Decimal(rng.randint(0, 160)) / 8  # 0 to 20 s
        timeend = Decimal(int(end.timestamp())) + Decimal(rng.randint(0, 7)) / 8
        rows.append((component, classname, timeend - duration, timeend, 1 if rng.random() < 0.15 else 0))
    return sorted(rows, key=lambda row: row[3])


def add_window_cases(rng: Random, m: Moodle, now: datetime) -> tuple[list[tuple], list[tuple]]:
    """Logins on every window edge as of ``now`` (two each, by random users); users in a course whose
    only login is exactly on, or just after, the start of the 30 and 90 days windows; a user logging
    in 58 times in the 30 days before START (beyond the last finite bucket).
    Returns (the log rows before START, the others, in time order)."""
    users = [u[0] for u in m.users if u[0] not in m.quiet]

    def login(user: int, moment: datetime) -> tuple:
        return log_row(LOGGEDIN, "core", "loggedin", "user", user, int(moment.timestamp()))

    before, after = [], []
    for moment in window_edges(now, SECOND):
        for _ in range(2):
            user = rng.choices(users, [m.weights[u] for u in users])[0]
            (before if moment < START else after).append(login(user, moment))
    for days in (30, 90):
        for offset in (timedelta(0), SECOND):
            user = max(u[0] for u in m.users) + 1
            m.users.append(
                (
                    user,
                    "manual",
                    0,
                    0,
                    f"user{user}",
                    int((START - timedelta(days=200)).timestamp()),
                    int((START - timedelta(days=400)).timestamp()),
                )
            )
            m.assignments.append((3, m.course_contexts[0], user))  # a manual enrolment, active
            m.enrolments.append((next(e[0] for e in m.enrols if e[1] == 2 and e[2] == 0), user, 0))
            m.quiet.add(user)
            before.append(login(user, now - timedelta(days=days) + offset))
    heavy = next(
        u
        for u, _auth, deleted, suspended, _n, first_access, _c in m.users
        if not deleted
        and not suspended
        and 0 < first_access < START.timestamp()
        and any(a[2] == u and a[0] == 5 for a in m.assignments)
    )
    for number in range(58):
        before.append(login(heavy, START - timedelta(days=27) + timedelta(hours=11 * number)))
    return sorted(before, key=lambda row: row[-1]), sorted(after, key=lambda row: row[-1])


def insert(dsn: str, schema: str, prefix: str, m: Moodle, log: list[tuple], tasks: list[tuple] = ()) -> None:
    def table(name: str) -> sql.Identifier:
        return sql.Identifier(schema, prefix + name)

    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        if m.contexts:
            cur.execute(
                sql.SQL("INSERT INTO {} (name, value) VALUES ('siteguest', %s), ('siteadmins', '2')").format(
                    table("config")
                ),
                (str(GUEST),),
            )
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {} (id, contextlevel, instanceid, path, depth) VALUES (%s, %s, %s, %s, %s)"
                ).format(table("context")),
                m.contexts,
            )
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {} (id, name, idnumber, parent, depth, path) VALUES (%s, %s, %s, %s, %s, %s)"
                ).format(table("course_categories")),
                m.categories,
            )
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {} (id, category, fullname, shortname, idnumber, lang, calendartype, theme)"
                    " VALUES (%s, %s, 'c', 'c' || %s, '', '', '', '')"
                ).format(table("course")),
                [(ident, category, ident) for ident, category in m.courses],
            )
            cur.executemany(
                sql.SQL("INSERT INTO {} (id, enrol, courseid, status) VALUES (%s, 'manual', %s, %s)").format(
                    table("enrol")
                ),
                m.enrols,
            )
            cur.executemany(
                sql.SQL("INSERT INTO {} (enrolid, userid, status) VALUES (%s, %s, %s)").format(
                    table("user_enrolments")
                ),
                m.enrolments,
            )
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {} (id, shortname, archetype, description, sortorder) VALUES (%s, %s, %s, '', %s)"
                ).format(table("role")),
                [(*role, role[0]) for role in ROLES],
            )
            cur.execute(
                sql.SQL(
                    "INSERT INTO {} (id, auth, username, mnethostid, confirmed) VALUES (%s, 'manual', 'guest', 1, 1)"
                ).format(table("user")),
                (GUEST,),
            )
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {} (id, auth, deleted, suspended, username, firstaccess, timecreated, confirmed, mnethostid)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, 1, 1)"
                ).format(table("user")),
                m.users,
            )
            cur.executemany(
                sql.SQL("INSERT INTO {} (roleid, contextid, userid) VALUES (%s, %s, %s)").format(
                    table("role_assignments")
                ),
                m.assignments,
            )
        if m.modules:
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {} (id, course, module, instance, section, deletioninprogress)"
                    " VALUES (%s, %s, 1, %s, 1, %s)"
                ).format(table("course_modules")),
                [(ident, course, ident, deleting) for ident, course, deleting in m.modules],
            )
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {} (coursemoduleid, userid, completionstate, timemodified) VALUES (%s, %s, %s, %s)"
                ).format(table("course_modules_completion")),
                m.module_completions,
            )
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {} (userid, course, timeenrolled, timestarted, timecompleted)"
                    " VALUES (%s, %s, 0, 0, %s)"
                ).format(table("course_completions")),
                m.course_completions,
            )
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {} (id, name, usercreated, usermodified, issuername, issuerurl, type, courseid, message,"
                    " messagesubject, status) VALUES (%s, 'b' || %s, 2, 2, 'ENT', 'https://ent.example', %s, %s, '', '', 1)"
                ).format(table("badge")),
                [(ident, ident, kind, course) for ident, kind, course in m.badges],
            )
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {} (id, contextid, name, descriptionformat, component, timecreated,"
                    " timemodified) VALUES (%s, %s, %s, 1, '', 1, 1)"
                ).format(table("cohort")),
                m.cohorts,
            )
            cur.executemany(
                sql.SQL("INSERT INTO {} (cohortid, userid) VALUES (%s, %s)").format(table("cohort_members")),
                m.cohort_members,
            )
            cur.executemany(
                sql.SQL("INSERT INTO {} (badgeid, userid, uniquehash, dateissued) VALUES (%s, %s, md5(%s), 1)").format(
                    table("badge_issued")
                ),
                [(badge, user, f"{badge}-{user}") for badge, user in m.badges_issued],
            )
        cur.executemany(
            sql.SQL(
                "INSERT INTO {} (eventname, component, action, target, contextid, userid, courseid, realuserid, anonymous,"
                " other, timecreated, crud, edulevel, contextlevel, contextinstanceid, origin)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'r', 0, 50, 1, 'web')"
            ).format(table("logstore_standard_log")),
            log,
        )
        cur.executemany(
            sql.SQL(
                "INSERT INTO {} (type, component, classname, userid, timestart, timeend, dbreads, dbwrites, result, output,"
                " hostname, pid) VALUES (0, %s, %s, 0, %s, %s, 12, 3, %s, '', 'moodle-cron', 4242)"
            ).format(table("task_log")),
            tasks,
        )
        # What autovacuum does after a bulk load: without statistics the planner takes the freshly
        # filled tables for empty ones (nested loops over the views, ten times slower here).
        cur.execute(
            sql.SQL("ANALYZE {}").format(
                sql.SQL(", ").join(
                    table(name) for name in ("logstore_standard_log", "task_log", "user", "role_assignments", "context")
                )
            )
        )


# -- the truth, from the raw rows -----------------------------------------------------------


def structure_of(category: tuple) -> str:
    ident, _name, idnumber = category[:3]
    return idnumber.strip() if idnumber and idnumber.strip() else f"category-{ident}"


@dataclass
class Options:
    skip_anonymous: bool = False
    active_enrolments_only: bool = False
    per_course: bool = False  # the exporter's opt-in collector course_progress_by_course (not an adapter option)

    def arguments(self) -> list[str]:
        return ["--skip-anonymous"] * self.skip_anonymous + ["--active-enrolments-only"] * self.active_enrolments_only


def truth(m: Moodle, log: list[tuple], tasks: list[tuple], upto: datetime, options: Options | None = None) -> dict:
    """Every family as of ``upto``, from Moodle's rows by the README's mapping."""
    options = options or Options()
    archetype = {ident: kind for ident, _short, kind in ROLES}
    profiles: dict[int, str] = {}
    for role, _context, user in m.assignments:
        profile = PROFILE_OF.get(archetype[role])
        if profile and (user not in profiles or RANK[profile] < RANK[profiles[user]]):
            profiles[user] = profile
    contexts = {c[0]: c for c in m.contexts}
    categories = {c[0]: c for c in m.categories}
    users = {u[0]: u for u in m.users}
    enrols = {e[0]: e for e in m.enrols}
    active = {(enrols[e][1], user) for e, user, status in m.enrolments if status == 0 and enrols[e][2] == 0}
    accounts = set()
    for _role, context, user in m.assignments:
        parts = contexts[context][3].split("/")
        top = contexts.get(int(parts[2])) if len(parts) > 2 else None
        if top is None or top[1] != COURSECAT or categories[top[2]][3] != 0:
            continue
        _id, _auth, deleted, suspended, _name, first_access, created = users[user]
        if deleted or suspended or user == GUEST:
            continue
        courses = [contexts[int(c)][2] for c in parts[1:] if contexts[int(c)][1] == COURSE]
        if options.active_enrolments_only and courses and (courses[0], user) not in active:
            continue
        accounts.add(
            (
                str(user),
                structure_of(categories[top[2]]),
                profiles.get(user),
                datetime.fromtimestamp(created, UTC) if created else None,
                datetime.fromtimestamp(first_access, UTC) if first_access else None,
            )
        )
    accounts = sorted(accounts, key=str)
    site_course = min(c[0] for c in m.courses if c[1] == 0)

    def auth(user: int) -> str | None:
        return users[user][1] if user in users else ("manual" if user == GUEST else None)

    logins, accesses, calls = [], [], []
    for eventname, component, action, target, _ctx, user, course, realuser, anonymous, other, moment in log:
        when = datetime.fromtimestamp(moment, UTC)
        person = user not in (NOBODY, GUEST) and realuser is None
        counted = person and not (options.skip_anonymous and anonymous)
        if eventname == LOGGEDIN and counted:
            logins.append((str(user), profiles.get(user), when))
        if eventname == COURSE_VIEWED and counted:
            accesses.append((str(user), profiles.get(user), "frontpage" if course == site_course else "course", when))
        elif target == "course_module" and action == "viewed" and counted:
            accesses.append((str(user), profiles.get(user), component, when))
        if eventname == LOGGEDIN and person:
            calls.append((auth(user), None, when, True, None))
        if eventname == FAILED and reason_of(other) == 3:
            calls.append((auth(user), None, when, False, None))
    for component, classname, timestart, timeend, result in tasks:
        if SYNC_CLASS.match(classname):
            calls.append(
                (
                    component,
                    None,
                    datetime.fromtimestamp(float(timeend), UTC),
                    result == 0,
                    float((timeend - timestart) * 1000),
                )
            )
    rows = EntRows(
        structures=[(structure_of(c), c[1], "course_category") for c in m.categories if c[3] == 0],
        accounts=accounts,
        logins=logins,
    )
    progress = course_progress(m, active)
    # The id counters have read every row at least settle (0) old (the rows are written in time
    # order, so an id watermark reads just those); connector_events has no event_id (two tables
    # feed it), so its counter reads [watermark, now); the windows cut by themselves.
    return (
        counter_families(
            accounts,
            [e for e in logins if e[2] <= upto],
            [e for e in accesses if e[3] <= upto],
            [c for c in calls if c[2] < upto],
            upto,
        )
        | window_families(rows, upto)
        | course_truth(progress, [s for s, _n, _k in rows.structures], upto, options.per_course)
        | feed_truth(feed_runs(tasks), upto)
    )


def user_classes(m: Moodle) -> set[tuple[str, str, str]]:
    """The README's user_classes rows from Moodle's: members of cohorts of a category, under its top-level category."""
    contexts = {c[0]: c for c in m.contexts}
    categories = {c[0]: c for c in m.categories}
    users = {u[0]: u for u in m.users}
    cohorts = {ident: (context, name) for ident, context, name in m.cohorts}
    rows = set()
    for cohort, user in m.cohort_members:
        context, name = cohorts[cohort]
        parts = contexts[context][3].split("/")
        top = contexts.get(int(parts[2])) if len(parts) > 2 else None
        if top is None or top[1] != COURSECAT or categories[top[2]][3] != 0:
            continue
        if user == GUEST or user not in users or users[user][2] or users[user][3]:
            continue
        rows.add((str(user), structure_of(categories[top[2]]), name))
    return rows


def feed_runs(tasks: list[tuple]) -> list[tuple]:
    """The README's account_feeds rows from the task log: each run of a synchronisation task, feed = its
    class without "\\task\\", no row counts."""
    return [
        (
            classname.lstrip("\\").replace("\\task\\", "/"),
            datetime.fromtimestamp(float(timestart), UTC),
            datetime.fromtimestamp(float(timeend), UTC),
            result == 0,
            None,
            None,
            None,
            None,
        )
        for _component, classname, timestart, timeend, result in tasks
        if SYNC_CLASS.match(classname)
    ]


def course_progress(m: Moodle, active: set[tuple[int, int]]) -> list[tuple]:
    """The README's course_progress rows from Moodle's: one per person with an active enrolment in a
    course of a top-level category (user, structure, course, completed_at, complete, passed, failed, badges)."""
    users = {u[0]: u for u in m.users}
    categories = {c[0]: c for c in m.categories}
    category_of = dict(m.courses)
    modules = {ident: (course, deleting) for ident, course, deleting in m.modules}
    badges = {ident: (kind, course) for ident, kind, course in m.badges}
    rows = []
    for course, user in sorted(active):
        if user == GUEST or user not in users or users[user][2] or users[user][3] or category_of[course] == 0:
            continue
        top = categories[category_of[course]]
        while top[3] != 0:
            top = categories[top[3]]
        completed = [t for u, c, t in m.course_completions if (u, c) == (user, course) and t]
        states = Counter(
            state for module, u, state, _t in m.module_completions if u == user and modules[module] == (course, 0)
        )
        held = sum(1 for badge, u in m.badges_issued if u == user and badges[badge] == (2, course))
        rows.append(
            (
                str(user),
                structure_of(top),
                f"course-{course}",
                datetime.fromtimestamp(completed[0], UTC) if completed else None,
                states[1],
                states[2],
                states[3],
                held,
            )
        )
    return rows


def _env(dsn: str) -> dict:
    return {**os.environ, "ENT_EXPORTER_ADMIN_DSN": dsn, "ENT_TEST_PASSWORD": "not-a-real-secret"}


def init_source(dsn: str, schema: str = "public", prefix: str = "mdl_", *extra: str):
    result = run_cli(
        "init-source",
        "--platform",
        "moodle",
        "--moodle-schema",
        schema,
        "--prefix",
        prefix,
        "--password-env",
        "ENT_TEST_PASSWORD",
        *extra,
        env=_env(dsn),
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize(
    "schema, prefix, options",
    [
        ("public", "mdl_", Options()),
        ("moodle", "m2_", Options(skip_anonymous=True, active_enrolments_only=True, per_course=True)),
    ],
)
def test_every_family_equals_the_truth_from_the_raw_rows(empty_database, tmp_path, schema, prefix, options):
    rng = Random(17)
    m = make_moodle(rng, users=90)
    log = make_log(rng, m, 3000, START - HISTORY, HISTORY)
    tasks = make_tasks(rng, 300, START - HISTORY, HISTORY)
    edges_before, edges_after = add_window_cases(rng, m, FINAL)
    make_progress(Random(16), m)
    log += edges_before
    create_moodle_tables(empty_database, schema, prefix)
    insert(empty_database, schema, prefix, m, log, tasks)
    init_source(empty_database, schema, prefix, *options.arguments())
    init_source(empty_database, schema, prefix, *options.arguments())  # idempotent

    exporter = Exporter(
        empty_database,
        tmp_path / "state",
        collectors={"enabled": ["course_progress_by_course"] if options.per_course else []},
    )
    now = START
    result = exporter.cycle(now)
    first = truth(m, log, tasks, now, options)
    assert_every_family(result, first)

    for cycle in range(1, CYCLES + 1):  # new rows between cycles
        batch = make_log(rng, m, 200, now, timedelta(minutes=50))
        task_batch = make_tasks(rng, 12, now, timedelta(minutes=50))
        if cycle == CYCLES:  # the edges of the last instant's windows: written last, as Moodle would
            batch += edges_after
        insert(empty_database, schema, prefix, Moodle(), batch, task_batch)
        log += batch
        tasks += task_batch
        now += timedelta(hours=1)
        result = exporter.cycle(now)
        expected = truth(m, log, tasks, now, options)
        assert_every_family(result, expected)
    assert now == FINAL

    with psycopg.connect(empty_database) as conn:
        structures = set(conn.execute("SELECT structure_id, name, kind FROM ent.structures").fetchall())
        classes = set(conn.execute("SELECT user_id, structure_id, class_name FROM ent.user_classes").fetchall())
    assert classes == user_classes(m)
    # Classes of sub-categories are their school's; the site-wide cohort and the excluded users are there.
    assert len({s for _u, s, _c in classes}) >= 3 and any(context == 1 for _i, context, _n in m.cohorts)
    assert structures == {(structure_of(c), c[1], "course_category") for c in m.categories if c[3] == 0}

    # The mapping and the definitions are exercised, not only allowed for.
    logins = result["ent_logins_total"]
    assert {dict(k)["profile"] for k in logins} >= {"Teacher", "Student", "Personnel", "unknown"}
    assert {dict(k)["structure"] for k in logins} >= {"0750001A", "0750002B", "category-3", "unknown", "all"}
    apps = {dict(k)["app"] for k in result["ent_app_accesses_total"]}
    assert apps == {"course", "frontpage", *COMPONENTS}
    connectors = {dict(k)["connector"] for k in result["ent_connector_requests_total"]}
    assert connectors >= {"manual", "ldap", "cas", "auth_ldap", "auth_db", "enrol_database"}
    assert "core" not in connectors and "enrol_cohort" not in connectors
    assert {dict(k)["outcome"] for k in result["ent_connector_requests_total"]} == {"success", "failure"}
    assert sum(v for k, v in result["ent_connector_request_duration_seconds_count"].items()) > 0
    assert any(v for k, v in result["ent_account_activations_total"].items() if dict(k)["structure"] == "all")
    assert_windows_populated(expected)
    # Accounts activated (first access) between the cycles were counted as they came.
    activations = [sum(t["ent_account_activations_total"].values()) for t in (first, expected)]
    assert activations[1] > activations[0], activations
    # The rows the views leave out are there, and make a difference.
    assert {row[5] for row in log} >= {NOBODY, GUEST, STRANGER}
    assert any(row[7] is not None for row in log) and any(row[8] for row in log)
    assert {reason_of(row[9]) for row in log if row[0] == FAILED} == {1, 2, 3, 4, 5, 6}
    assert {row[9][0] for row in log if row[0] == FAILED} == {"{", "a"}  # JSON and PHP-serialized
    # Course progress: every definition exercised (completions during the cycles, all three activity
    # states, course badges), what the view leaves out is there, per course only when opted in.
    completed = [t["ent_course_completed_users"][(("course", "all"), ("structure", "all"))] for t in (first, expected)]
    assert 0 < completed[0] < completed[1], completed
    assert result["ent_course_completed_users"] == expected["ent_course_completed_users"]
    platform = {
        dict(k)["state"]: v
        for k, v in result["ent_course_activity_completions"].items()
        if dict(k)["structure"] == "all" and dict(k)["course"] == "all"
    }
    assert set(platform) == {"complete", "passed", "failed"} and all(platform.values()), platform
    assert result["ent_course_badges_issued"][(("course", "all"), ("structure", "all"))] > 0
    assert 0 < result["ent_course_completion_ratio"][(("course", "all"), ("structure", "all"))] < 1
    assert {dict(k)["structure"] for k in result["ent_course_enrolled_users"]} >= {"0750001A", "category-3", "all"}
    assert any(badge[2] is None for badge in m.badges) and any(t == 0 for _u, _c, t in m.course_completions)
    assert any(deleting for *_x, deleting in m.modules) and any(
        u == GUEST for _c, u in [(c, u) for u, c, _t in m.course_completions]
    )
    feeds = {dict(k)["feed"]: v for k, v in result["ent_account_feed_last_run_success"].items()}
    assert set(feeds) == {
        "auth_ldap/sync_task",
        "auth_ldap/sync_roles",
        "auth_cas/sync_task",
        "auth_db/sync_users",
        "enrol_ldap/sync_enrolments",
        "enrol_database/sync_enrolments",
    }, feeds
    assert "ent_account_feed_last_run_rows" not in result  # Moodle does not record rows
    per_course = {dict(k)["course"] for k in result["ent_course_enrolled_users"]}
    assert (len(per_course) > 5) == options.per_course, per_course
    everything = truth(m, log, tasks, now, Options())
    if options.skip_anonymous:
        assert everything["ent_app_accesses_total"] != expected["ent_app_accesses_total"]
    if options.active_enrolments_only:
        assert everything["ent_accounts"] != expected["ent_accounts"]


def test_the_indexes_match_the_views(empty_database):
    rng = Random(4)
    m = make_moodle(rng, users=40)
    create_moodle_tables(empty_database, "public", "mdl_")
    insert(
        empty_database,
        "public",
        "mdl_",
        m,
        make_log(rng, m, 3000, START - timedelta(days=60), timedelta(days=60)),
        make_tasks(rng, 500, START - timedelta(days=60), timedelta(days=60)),
    )
    init_source(empty_database)
    day = (START - timedelta(days=3), START - timedelta(days=2))
    with psycopg.connect(empty_database) as conn:
        conn.execute("ANALYZE")
        conn.execute("SET enable_seqscan = off")
        for relation, indexes in (
            ("login_events", ["mdl_logstore_standard_log_ent_logins"]),
            ("app_access_events", ["mdl_logstore_standard_log_ent_app_accesses"]),
            ("connector_events", ["mdl_logstore_standard_log_ent_login_outcomes", "mdl_task_log_ent_sync_tasks"]),
        ):
            plan = str(
                conn.execute(
                    sql.SQL("EXPLAIN SELECT count(*) FROM {} WHERE occurred_at >= %s AND occurred_at < %s").format(
                        sql.Identifier("ent", relation)
                    ),
                    day,
                ).fetchall()
            )
            for index in indexes:
                assert index in plan, plan
        plan = str(
            conn.execute(
                "EXPLAIN SELECT * FROM ent.accounts WHERE activated_at > %s AND activated_at <= %s", day
            ).fetchall()
        )
        assert "mdl_user_ent_activated_at" in plan, plan
        plan = str(
            conn.execute(
                "EXPLAIN SELECT DISTINCT structure_id FROM ent.accounts WHERE user_id = %s", ("42",)
            ).fetchall()
        )
        assert "mdl_user_ent_id_text" in plan, plan


def test_a_connector_counter_counted_by_id_carries_on_by_time_after_the_upgrade(empty_database, tmp_path):
    """Before this version Moodle's connector_events had the log's ids: a state directory from then
    holds an event_id watermark. After init-source the relation has no ids; the counter notices and
    counts it by time, from the start of its history, instead of stopping."""
    rng = Random(23)
    m = make_moodle(rng, users=30)
    log = make_log(rng, m, 800, START - timedelta(days=20), timedelta(days=20))
    tasks = make_tasks(rng, 60, START - timedelta(days=20), timedelta(days=20))
    create_moodle_tables(empty_database)
    insert(empty_database, "public", "mdl_", m, log, tasks)
    init_source(empty_database)
    with psycopg.connect(empty_database) as conn:  # the view as the previous version created it
        conn.execute(r"""
            CREATE OR REPLACE VIEW ent.connector_events AS
            SELECT l.id AS event_id, u.auth::text AS connector, NULL::text AS structure_id,
                   to_timestamp(l.timecreated) AS occurred_at,
                   l.eventname = '\core\event\user_loggedin' AS success, NULL::double precision AS duration_ms
            FROM mdl_logstore_standard_log AS l LEFT JOIN mdl_user AS u ON u.id = l.userid
            WHERE l.eventname IN ('\core\event\user_loggedin', '\core\event\user_login_failed')""")
    exporter = Exporter(empty_database, tmp_path / "state")
    before = exporter.cycle(START)["ent_connector_requests_total"]
    failures = sum(v for k, v in before.items() if dict(k)["outcome"] == "failure")
    assert failures == sum(1 for row in log if row[0] == FAILED)  # every reason, as it was

    init_source(empty_database)
    later = START + timedelta(hours=1)
    samples = exporter.cycle(later)
    expected = truth(m, log, tasks, later)
    assert_every_family(
        samples,
        expected,
        only={
            "ent_connector_requests_total",
            "ent_connector_request_duration_seconds_bucket",
            "ent_connector_request_duration_seconds_count",
            "ent_connector_request_duration_seconds_sum",
        },
    )
    assert (
        sum(v for k, v in samples["ent_connector_requests_total"].items() if dict(k)["outcome"] == "failure") < failures
    )
