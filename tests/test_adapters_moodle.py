"""The Moodle adapter on Moodle's own tables (names, columns and types as Moodle creates them
on PostgreSQL): every metric family equals the truth computed here from the raw rows, read
through the views by the read-only role."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from random import Random

import psycopg
import pytest
from psycopg import sql

from tests.adapter_truth import (
    assert_every_family, assert_windows_populated, counter_families, window_edges, window_families,
)
from tests.ent_rows import EntRows
from tests.support import run_cli
from tests.test_adapters_edifice import Exporter

UTC = timezone.utc
START = datetime(2026, 9, 16, 13, 0, tzinfo=UTC)  # a Wednesday, 15:00 in Paris: day, week and month differ
HISTORY = timedelta(days=100)  # the log before START: beyond every window (90 days at most)
CYCLES = 3  # hourly cycles after START; every family is compared at each of them
FINAL = START + timedelta(hours=CYCLES)
SECOND = timedelta(seconds=1)  # Moodle's time resolution
LOGGEDIN = ("\\core\\event\\user_loggedin", "core", "loggedin", "user", 1)

# Moodle's XMLDB types on PostgreSQL: int(10) -> bigint, int(1..4) -> smallint,
# char(n) -> varchar(n), sequences -> bigserial. Columns the views do not read are kept,
# so that the views are checked against the real shape of the tables.
TABLES = {
    "logstore_standard_log": """
        id bigserial PRIMARY KEY, eventname varchar(255) NOT NULL DEFAULT '', component varchar(100) NOT NULL DEFAULT '',
        action varchar(100) NOT NULL DEFAULT '', target varchar(100) NOT NULL DEFAULT '', objecttable varchar(50),
        objectid bigint, crud varchar(1) NOT NULL DEFAULT '', edulevel smallint NOT NULL, contextid bigint NOT NULL,
        contextlevel bigint NOT NULL, contextinstanceid bigint NOT NULL, userid bigint NOT NULL, courseid bigint,
        relateduserid bigint, anonymous smallint NOT NULL DEFAULT 0, other text, timecreated bigint NOT NULL,
        origin varchar(10), ip varchar(45), realuserid bigint""",
    "user": """
        id bigserial PRIMARY KEY, auth varchar(20) NOT NULL DEFAULT 'manual', confirmed smallint NOT NULL DEFAULT 0,
        policyagreed smallint NOT NULL DEFAULT 0, deleted smallint NOT NULL DEFAULT 0,
        suspended smallint NOT NULL DEFAULT 0, mnethostid bigint NOT NULL DEFAULT 0,
        username varchar(100) NOT NULL DEFAULT '', password varchar(255) NOT NULL DEFAULT '',
        idnumber varchar(255) NOT NULL DEFAULT '', firstname varchar(100) NOT NULL DEFAULT '',
        lastname varchar(100) NOT NULL DEFAULT '', email varchar(100) NOT NULL DEFAULT '',
        firstaccess bigint NOT NULL DEFAULT 0, lastaccess bigint NOT NULL DEFAULT 0, lastlogin bigint NOT NULL DEFAULT 0,
        currentlogin bigint NOT NULL DEFAULT 0, timecreated bigint NOT NULL DEFAULT 0,
        timemodified bigint NOT NULL DEFAULT 0""",
    "role": """
        id bigserial PRIMARY KEY, name varchar(255) NOT NULL DEFAULT '', shortname varchar(100) NOT NULL DEFAULT '',
        description text NOT NULL, sortorder bigint NOT NULL DEFAULT 0, archetype varchar(30) NOT NULL DEFAULT ''""",
    "role_assignments": """
        id bigserial PRIMARY KEY, roleid bigint NOT NULL DEFAULT 0, contextid bigint NOT NULL DEFAULT 0,
        userid bigint NOT NULL DEFAULT 0, timemodified bigint NOT NULL DEFAULT 0, modifierid bigint NOT NULL DEFAULT 0,
        component varchar(100) NOT NULL DEFAULT '', itemid bigint NOT NULL DEFAULT 0,
        sortorder bigint NOT NULL DEFAULT 0""",
    "context": """
        id bigserial PRIMARY KEY, contextlevel bigint NOT NULL DEFAULT 0, instanceid bigint NOT NULL DEFAULT 0,
        path varchar(255), depth smallint NOT NULL DEFAULT 0, locked smallint NOT NULL DEFAULT 0""",
    "course_categories": """
        id bigserial PRIMARY KEY, name varchar(255) NOT NULL DEFAULT '', idnumber varchar(100), description text,
        descriptionformat smallint NOT NULL DEFAULT 0, parent bigint NOT NULL DEFAULT 0,
        sortorder bigint NOT NULL DEFAULT 0, coursecount bigint NOT NULL DEFAULT 0, visible smallint NOT NULL DEFAULT 1,
        visibleold smallint NOT NULL DEFAULT 1, timemodified bigint NOT NULL DEFAULT 0, depth bigint NOT NULL DEFAULT 0,
        path varchar(255) NOT NULL DEFAULT '', theme varchar(50)""",
    "course": """
        id bigserial PRIMARY KEY, category bigint NOT NULL DEFAULT 0, sortorder bigint NOT NULL DEFAULT 0,
        fullname varchar(1333) NOT NULL DEFAULT '', shortname varchar(255) NOT NULL DEFAULT '',
        idnumber varchar(100) NOT NULL DEFAULT '', visible smallint NOT NULL DEFAULT 1,
        timecreated bigint NOT NULL DEFAULT 0, timemodified bigint NOT NULL DEFAULT 0""",
}
# Moodle's own indexes on the tables the views read.
INDEXES = {
    "logstore_standard_log": ["timecreated", "contextid, component", "userid, contextid", "eventname", "crud", "edulevel"],
    "role_assignments": ["roleid", "contextid", "userid", "roleid, contextid", "userid, contextid, roleid", "sortorder"],
    "context": ["contextlevel, instanceid", "instanceid", "path"],
    "course_categories": ["parent"],
    "user": ["deleted", "confirmed", "auth"],
}
ROLES = [  # id, shortname, archetype (Moodle's standard roles, then a custom one without archetype)
    (1, "manager", "manager"), (2, "coursecreator", "coursecreator"), (3, "editingteacher", "editingteacher"),
    (4, "teacher", "teacher"), (5, "student", "student"), (6, "guest", "guest"), (7, "user", "user"),
    (8, "frontpage", "frontpage"), (9, "parent", ""),
]
PROFILE_OF = {"manager": "Personnel", "coursecreator": "Personnel", "editingteacher": "Teacher", "teacher": "Teacher",
              "student": "Student", "guest": "Guest"}
RANK = {"Personnel": 1, "Teacher": 2, "Student": 3, "Guest": 4}
AUTHS = ["manual", "ldap", "cas", "oauth2", "saml2", "shibboleth"]
COMPONENTS = ["mod_forum", "mod_quiz", "mod_assign", "mod_resource", "mod_page"]
SYSTEM, USER, COURSECAT, COURSE, MODULE = 10, 30, 40, 50, 70


@dataclass
class Moodle:
    categories: list[tuple] = field(default_factory=list)  # id, name, idnumber, parent, depth, path
    courses: list[tuple] = field(default_factory=list)  # id, category
    contexts: list[tuple] = field(default_factory=list)  # id, contextlevel, instanceid, path, depth
    users: list[tuple] = field(default_factory=list)  # id, auth, deleted, suspended, username, firstaccess, timecreated
    assignments: list[tuple] = field(default_factory=list)  # roleid, contextid, userid
    log: list[tuple] = field(default_factory=list)  # eventname, component, action, target, contextid, userid, timecreated
    weights: dict[int, float] = field(default_factory=dict)  # how often each user shows up in the log
    quiet: set[int] = field(default_factory=set)  # users whose log rows a test places itself
    course_contexts: list[int] = field(default_factory=list)

    def context(self, level: int, instance: int, parent_path: str) -> int:
        ident = len(self.contexts) + 1
        path = f"{parent_path}/{ident}"
        self.contexts.append((ident, level, instance, path, path.count("/")))
        return ident


def make_moodle(rng: Random, users: int) -> Moodle:
    m = Moodle()
    system = m.context(SYSTEM, 0, "")
    category_contexts: dict[int, tuple[int, str]] = {}
    for number, idnumber in enumerate(["0750001A", " 0750002B ", "", "0750004D"], start=1):
        ctx = m.context(COURSECAT, number, "/1")
        m.categories.append((number, f"School {number}", idnumber, 0, 1, f"/{number}"))
        category_contexts[number] = (ctx, f"/1/{ctx}")
    for number, parent in ((5, 1), (6, 2), (7, 5)):  # sub-categories, one two levels down
        parent_ctx, parent_path = category_contexts[parent]
        ctx = m.context(COURSECAT, number, parent_path)
        m.categories.append((number, f"Level {number}", f"SUB{number}", parent, 2, f"/{parent}/{number}"))
        category_contexts[number] = (ctx, f"{parent_path}/{ctx}")
    course_contexts, module_contexts = [], []
    for number in range(1, 13):
        category = rng.randint(1, 7)
        m.courses.append((number, category))
        ctx = m.context(COURSE, number, category_contexts[category][1])
        course_contexts.append(ctx)
        for module in range(2):
            module_contexts.append(m.context(MODULE, number * 10 + module, m.contexts[ctx - 1][3]))
    user_contexts = []
    for number in range(2, users + 2):  # 1 is the guest user
        deleted = 1 if number % 13 == 0 else 0
        suspended = 1 if number % 17 == 0 else 0
        first_access = 0 if number % 5 == 0 else int((START - timedelta(days=rng.randint(1, 300))).timestamp())
        if number % 7 == 3:  # first access during the cycles under test, or after the last one
            first_access = int((START + rng.choice([timedelta(minutes=30), timedelta(minutes=90),
                                                    timedelta(minutes=150), timedelta(days=1)])).timestamp())
        created = 0 if number % 19 == 0 else int((START - timedelta(days=rng.randint(300, 600))).timestamp())
        m.users.append((number, rng.choice(AUTHS), deleted, suspended, f"user{number}", first_access, created))
        user_contexts.append(m.context(USER, number, "/1"))
        m.weights[number] = rng.paretovariate(1.2)
    m.course_contexts = course_contexts
    for user, *_ in m.users:
        for _ in range(rng.randint(0, 4)):
            role = rng.choice([3, 4, 5, 5, 5, 9, 7])
            m.assignments.append((role, rng.choice(course_contexts + module_contexts), user))
        if user % 9 == 0:  # a manager of a school, or of the whole site
            m.assignments.append((1, rng.choice([system] + [c for c, _ in category_contexts.values()]), user))
        if user % 10 == 0:  # a parent, in the context of their child's account
            m.assignments.append((9, rng.choice(user_contexts), user))
        if user % 23 == 0:
            m.assignments.append((2, category_contexts[rng.choice([1, 6])][0], user))
    return m


def make_log(rng: Random, m: Moodle, count: int, start: datetime, span: timedelta) -> list[tuple]:
    users = [u[0] for u in m.users if u[0] not in m.quiet] + [1, 9999]  # the guest user, an id with no user row
    weights = [m.weights.get(user, 1.0) for user in users]
    rows = []
    for number in range(count):
        moment = int((start + span * (number / count)).timestamp())
        user = rng.choices(users, weights)[0]
        kind = rng.random()
        if kind < 0.25:
            row = ("\\core\\event\\user_loggedin", "core", "loggedin", "user", 1, user)
        elif kind < 0.33:
            row = ("\\core\\event\\user_login_failed", "core", "failed", "user_login", 1, rng.choice([user, 0]))
        elif kind < 0.5:
            row = ("\\core\\event\\course_viewed", "core", "viewed", "course", rng.randint(1, 40), user)
        elif kind < 0.8:
            component = rng.choice(COMPONENTS)
            row = (f"\\{component}\\event\\course_module_viewed", component, "viewed", "course_module",
                   rng.randint(1, 40), user)
        else:  # what the views must leave out
            row = rng.choice([
                ("\\core\\event\\dashboard_viewed", "core", "viewed", "dashboard", 1, user),
                ("\\mod_forum\\event\\discussion_viewed", "mod_forum", "viewed", "discussion", 3, user),
                ("\\core\\event\\course_module_instance_list_viewed", "mod_quiz", "viewed",
                 "course_module_instance_list", 3, user),
                ("\\core\\event\\user_loggedout", "core", "loggedout", "user", 1, user),
            ])
        rows.append((*row, moment))
    return rows


def add_window_cases(rng: Random, m: Moodle, now: datetime) -> tuple[list[tuple], list[tuple]]:
    """Logins on every window edge as of ``now`` (two each, by random users); users in a course whose
    only login is exactly on, or just after, the start of the 30 and 90 days windows; a user logging
    in 58 times in the 30 days before START (beyond the last finite bucket).
    Returns (the log rows before START, the others, in time order)."""
    users = [u[0] for u in m.users if u[0] not in m.quiet]
    before, after = [], []
    for moment in window_edges(now, SECOND):
        for _ in range(2):
            user = rng.choices(users, [m.weights[u] for u in users])[0]
            (before if moment < START else after).append((*LOGGEDIN, user, int(moment.timestamp())))
    for days in (30, 90):
        for offset in (timedelta(0), SECOND):
            user = max(u[0] for u in m.users) + 1
            m.users.append((user, "manual", 0, 0, f"user{user}", int((START - timedelta(days=200)).timestamp()),
                            int((START - timedelta(days=400)).timestamp())))
            m.assignments.append((3, m.course_contexts[0], user))
            m.quiet.add(user)
            before.append((*LOGGEDIN, user, int((now - timedelta(days=days) + offset).timestamp())))
    heavy = next(u for u, _auth, deleted, suspended, _n, first_access, _c in m.users
                 if not deleted and not suspended and 0 < first_access < START.timestamp()
                 and any(a[2] == u and a[0] == 5 for a in m.assignments))
    for number in range(58):
        before.append((*LOGGEDIN, heavy, int((START - timedelta(days=27) + timedelta(hours=11 * number)).timestamp())))
    return sorted(before, key=lambda row: row[-1]), sorted(after, key=lambda row: row[-1])


def create_tables(dsn: str, schema: str, prefix: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        for table, columns in TABLES.items():
            conn.execute(sql.SQL("CREATE TABLE {} (" + columns + ")").format(sql.Identifier(schema, prefix + table)))
            for number, index_columns in enumerate(INDEXES.get(table, [])):
                conn.execute(sql.SQL("CREATE INDEX {} ON {} (" + index_columns + ")").format(
                    sql.Identifier(f"{prefix}{table[:12]}_{number}_ix"), sql.Identifier(schema, prefix + table)))


def insert(dsn: str, schema: str, prefix: str, m: Moodle, log: list[tuple]) -> None:
    def table(name: str) -> sql.Identifier:
        return sql.Identifier(schema, prefix + name)

    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        if m.contexts:
            cur.executemany(sql.SQL("INSERT INTO {} (id, contextlevel, instanceid, path, depth) VALUES (%s, %s, %s, %s, %s)")
                            .format(table("context")), m.contexts)
            cur.executemany(sql.SQL("INSERT INTO {} (id, name, idnumber, parent, depth, path) VALUES (%s, %s, %s, %s, %s, %s)")
                            .format(table("course_categories")), m.categories)
            cur.executemany(sql.SQL("INSERT INTO {} (id, category, fullname, shortname) VALUES (%s, %s, 'c', 'c')")
                            .format(table("course")), m.courses)
            cur.executemany(sql.SQL("INSERT INTO {} (id, shortname, archetype, description) VALUES (%s, %s, %s, '')")
                            .format(table("role")), ROLES)
            cur.execute(sql.SQL("INSERT INTO {} (id, auth, username, mnethostid, confirmed) VALUES (1, 'manual', 'guest', 1, 1)")
                        .format(table("user")))
            cur.executemany(sql.SQL(
                "INSERT INTO {} (id, auth, deleted, suspended, username, firstaccess, timecreated, confirmed, mnethostid)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, 1, 1)").format(table("user")), m.users)
            cur.executemany(sql.SQL("INSERT INTO {} (roleid, contextid, userid) VALUES (%s, %s, %s)")
                            .format(table("role_assignments")), m.assignments)
        cur.executemany(sql.SQL(
            "INSERT INTO {} (eventname, component, action, target, contextid, userid, timecreated,"
            " crud, edulevel, contextlevel, contextinstanceid, origin, anonymous)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, 'r', 0, 50, 1, 'web', 0)").format(table("logstore_standard_log")), log)
        # What autovacuum does after a bulk load: without statistics the planner takes the freshly
        # filled tables for empty ones (nested loops over the views, ten times slower here).
        cur.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(table(name) for name in TABLES)))


# -- the truth, from the raw rows -----------------------------------------------------------

def structure_of(category: tuple) -> str:
    ident, _name, idnumber = category[:3]
    return idnumber.strip() if idnumber and idnumber.strip() else f"category-{ident}"


def truth(m: Moodle, log: list[tuple], upto: datetime) -> dict:
    """Every family as of ``upto``, from Moodle's rows by the README's mapping."""
    archetype = {ident: kind for ident, _short, kind in ROLES}
    profiles: dict[int, str] = {}
    for role, _context, user in m.assignments:
        profile = PROFILE_OF.get(archetype[role])
        if profile and (user not in profiles or RANK[profile] < RANK[profiles[user]]):
            profiles[user] = profile
    contexts = {c[0]: c for c in m.contexts}
    categories = {c[0]: c for c in m.categories}
    users = {u[0]: u for u in m.users}
    accounts = set()
    for _role, context, user in m.assignments:
        parts = contexts[context][3].split("/")
        top = contexts.get(int(parts[2])) if len(parts) > 2 else None
        if top is None or top[1] != COURSECAT or categories[top[2]][3] != 0:
            continue
        _id, _auth, deleted, suspended, _name, first_access, created = users[user]
        if deleted or suspended:
            continue
        accounts.add((str(user), structure_of(categories[top[2]]), profiles.get(user),
                      datetime.fromtimestamp(created, UTC) if created else None,
                      datetime.fromtimestamp(first_access, UTC) if first_access else None))
    accounts = sorted(accounts, key=str)
    logins, accesses, calls = [], [], []
    for eventname, component, action, target, _context, user, moment in log:
        when = datetime.fromtimestamp(moment, UTC)
        if eventname == "\\core\\event\\user_loggedin":
            logins.append((str(user), profiles.get(user), when))
        if eventname == "\\core\\event\\course_viewed":
            accesses.append((str(user), profiles.get(user), "course", when))
        elif target == "course_module" and action == "viewed":
            accesses.append((str(user), profiles.get(user), component, when))
        if eventname in ("\\core\\event\\user_loggedin", "\\core\\event\\user_login_failed"):
            auth = users[user][1] if user in users else ("manual" if user == 1 else None)
            calls.append((auth, None, when, eventname.endswith("loggedin"), None))
    rows = EntRows(structures=[(structure_of(c), c[1], "course_category") for c in m.categories if c[3] == 0],
                   accounts=accounts, logins=logins)
    # The counters have read every row at least settle (0) old (the rows are written in time
    # order, so an id watermark reads just those); the windows cut by themselves.
    return counter_families(accounts, [e for e in logins if e[2] <= upto], [e for e in accesses if e[3] <= upto],
                            [c for c in calls if c[2] <= upto], upto) | window_families(rows, upto)


def _env(dsn: str) -> dict:
    return {**os.environ, "ENT_EXPORTER_ADMIN_DSN": dsn, "ENT_TEST_PASSWORD": "not-a-real-secret"}


def init_source(dsn: str, schema: str = "public", prefix: str = "mdl_", *extra: str):
    result = run_cli("init-source", "--platform", "moodle", "--moodle-schema", schema, "--prefix", prefix,
                     "--password-env", "ENT_TEST_PASSWORD", *extra, env=_env(dsn))
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("schema, prefix", [("public", "mdl_"), ("moodle", "m2_")])
def test_every_family_equals_the_truth_from_the_raw_rows(empty_database, tmp_path, schema, prefix):
    rng = Random(17)
    m = make_moodle(rng, users=90)
    log = make_log(rng, m, 3000, START - HISTORY, HISTORY)
    edges_before, edges_after = add_window_cases(rng, m, FINAL)
    log += edges_before
    create_tables(empty_database, schema, prefix)
    insert(empty_database, schema, prefix, m, log)
    init_source(empty_database, schema, prefix)
    init_source(empty_database, schema, prefix)  # idempotent

    exporter = Exporter(empty_database, tmp_path / "state")
    now = START
    result = exporter.cycle(now)
    first = truth(m, log, now)
    assert_every_family(result, first)

    for cycle in range(1, CYCLES + 1):  # new rows between cycles
        batch = make_log(rng, m, 200, now, timedelta(minutes=50))
        if cycle == CYCLES:  # the edges of the last instant's windows: written last, as Moodle would
            batch += edges_after
        insert(empty_database, schema, prefix, Moodle(), batch)
        log += batch
        now += timedelta(hours=1)
        result = exporter.cycle(now)
        expected = truth(m, log, now)
        assert_every_family(result, expected)
    assert now == FINAL

    with psycopg.connect(empty_database) as conn:
        structures = set(conn.execute("SELECT structure_id, name, kind FROM ent.structures").fetchall())
    assert structures == {(structure_of(c), c[1], "course_category") for c in m.categories if c[3] == 0}

    # The mapping and the definitions are exercised, not only allowed for.
    logins = result["ent_logins_total"]
    assert {dict(k)["profile"] for k in logins} >= {"Teacher", "Student", "Personnel", "unknown"}
    assert {dict(k)["structure"] for k in logins} >= {"0750001A", "0750002B", "category-3", "unknown", "all"}
    apps = {dict(k)["app"] for k in result["ent_app_accesses_total"]}
    assert apps == {"course", *COMPONENTS}
    connectors = {dict(k)["connector"] for k in result["ent_connector_requests_total"]}
    assert connectors >= {"manual", "ldap", "cas", "unknown"}
    assert {dict(k)["outcome"] for k in result["ent_connector_requests_total"]} == {"success", "failure"}
    assert any(v for k, v in result["ent_account_activations_total"].items() if dict(k)["structure"] == "all")
    assert_windows_populated(expected)
    # Accounts activated (first access) between the cycles were counted as they came.
    activations = [sum(t["ent_account_activations_total"].values()) for t in (first, expected)]
    assert activations[1] > activations[0], activations


def test_the_indexes_match_the_views(empty_database):
    rng = Random(4)
    m = make_moodle(rng, users=40)
    create_tables(empty_database, "public", "mdl_")
    insert(empty_database, "public", "mdl_", m, make_log(rng, m, 3000, START - timedelta(days=60), timedelta(days=60)))
    init_source(empty_database)
    day = (START - timedelta(days=3), START - timedelta(days=2))
    with psycopg.connect(empty_database) as conn:
        conn.execute("ANALYZE")
        conn.execute("SET enable_seqscan = off")
        for relation, index in (("login_events", "mdl_logstore_standard_log_ent_logins"),
                                ("app_access_events", "mdl_logstore_standard_log_ent_app_accesses"),
                                ("connector_events", "mdl_logstore_standard_log_ent_login_outcomes")):
            plan = str(conn.execute(sql.SQL(
                "EXPLAIN SELECT count(*) FROM {} WHERE occurred_at >= %s AND occurred_at < %s").format(
                    sql.Identifier("ent", relation)), day).fetchall())
            assert index in plan, plan
        plan = str(conn.execute(
            "EXPLAIN SELECT * FROM ent.accounts WHERE activated_at > %s AND activated_at <= %s", day).fetchall())
        assert "mdl_user_ent_activated_at" in plan, plan
        plan = str(conn.execute(
            "EXPLAIN SELECT DISTINCT structure_id FROM ent.accounts WHERE user_id = %s", ("42",)).fetchall())
        assert "mdl_user_ent_id_text" in plan, plan
