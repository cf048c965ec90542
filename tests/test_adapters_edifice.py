"""The Edifice adapter on an event store with Edifice's own tables, partitioned by month or by
ISO week as its partition manager (edificeio/pg-events, PgEventsManager) creates them: every
metric family the exporter publishes equals the truth computed here from the raw rows (LOGIN,
ACCESS, ACTIVATION and the CAS server's CONNECTOR events), late events included, read through
the views by the read-only role."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ent_exporter.app import make_runtime, make_source
from ent_exporter.config import parse_config
from tests.adapter_truth import (
    WINDOW_SAMPLE_NAMES,
    assert_every_family,
    assert_windows_populated,
    counter_families,
    course_truth,
    feed_truth,
    window_edges,
    window_families,
)
from tests.ent_rows import EntRows
from tests.support import FULL_BREAKDOWNS, parse, run_cli

PARIS = ZoneInfo("Europe/Paris")
PLATFORM = "4f3c2a1e-0000-4000-8000-000000000001"
OTHER_PLATFORM = "4f3c2a1e-0000-4000-8000-000000000002"
PROFILES = ["Teacher", "Student", "Relative", "Personnel", "Guest"]
MODULES = ["Blog", "Conversation", "Workspace", "Pronote", "Moodle", "Actualites", "Timeline"]
# CONNECTOR events as the CAS server writes them (DefaultRegisteredService.createStatsEvent): module =
# the registered service's class (SynchroMoodleRegistredService is spelt so in Edifice), service = the
# URL the ticket was validated for, cas-type = the mapping's type ("unknwown", sic, without one).
CAS_SERVICES = [
    ("PronoteRegisteredService", ("https://0750001a.index-education.net/pronote/eleve.html", "PRONOTE")),
    ("PronoteRegisteredService", ("https://0750002b.index-education.net/pronote/parent.html", "PRONOTE")),
    ("MoodleRegisteredService", ("https://moodle.example.org/login/index.php", "MOODLE")),
    ("SynchroMoodleRegistredService", ("https://moodle.example.org/auth/cas/", "unknwown")),
    ("KneRegisteredService", ("https://www.kiosque-edu.com/", "KNE")),
]
START = datetime(2026, 9, 14, 7, 0, tzinfo=UTC)  # a Monday, 09:00 in Paris
HISTORY = timedelta(days=100)  # the events before START: beyond every window (90 days at most)
# The instant every family is compared at after the live cycles: a Wednesday afternoon, so
# that day, week and month to date all differ, with August as the previous month.
FINAL = datetime(2026, 9, 16, 15, 0, tzinfo=PARIS).astimezone(UTC)
MICROSECOND = timedelta(microseconds=1)

# The event store's tables as Edifice creates them: one per event type in schema "events",
# "id UUID NOT NULL, date TIMESTAMP NOT NULL" then the event's attributes (the column names
# are the event's JSON keys, quoted: "connector-type"), partitioned by range on date, each
# partition with a BRIN index on date.
EVENT_TABLES = {
    "login_events": """
        id uuid NOT NULL, date timestamp NOT NULL,
        event_type varchar(16), module varchar(64), profile varchar(9), platform_id varchar(36),
        user_id varchar(36), ua varchar(256), ip inet, useradmin varchar(16), device_type varchar(32)""",
    "access_events": """
        id uuid NOT NULL, date timestamp NOT NULL,
        profile varchar(9), module varchar(64), event_type varchar(16), ua varchar(256),
        device_type varchar(32), platform_id varchar(36), user_id varchar(36)""",
    "activation_events": """
        id uuid NOT NULL, date timestamp NOT NULL,
        event_type varchar(16), module varchar(64), profile varchar(9), platform_id varchar(36),
        user_id varchar(36), ua varchar(256), ip inet""",
    "connector_events": """
        id uuid NOT NULL, date timestamp NOT NULL,
        event_type varchar(16), module varchar(64), profile varchar(9), platform_id varchar(36),
        user_id varchar(36), service varchar(512), "connector-type" varchar(16), "cas-type" varchar(64)""",
    "create_events": """
        id uuid NOT NULL, date timestamp NOT NULL,
        profile varchar(9), module varchar(64), event_type varchar(16), ua varchar(256),
        platform_id varchar(36), user_id varchar(36), resource_type varchar(64)""",
}


def partitions(interval: str) -> list[tuple[str, datetime, datetime]]:
    """(suffix, from, to) of the partitions PgEventsManager creates: by month (suffix YYYYMM) from
    June to October 2026; or, for a store switched to weekly partitions on 1 September, by month up
    to August, then the partial week from 1 September (a Tuesday) to the next Monday, then ISO
    weeks (suffix YYYYWW, the week-based year and week number), to November."""
    out, first = [], datetime(2026, 6, 1)
    switch = datetime(2026, 11, 1) if interval == "month" else datetime(2026, 9, 1)
    while first < switch:
        following = (first + timedelta(days=32)).replace(day=1)
        out.append((f"{first:%Y%m}", first, following))
        first = following
    while first < datetime(2026, 11, 2):
        following = first + timedelta(days=7 - first.weekday())
        year, week, _day = first.isocalendar()
        out.append((f"{year}{week:02d}", first, following))
        first = following
    return out


def create_event_store(dsn: str, interval: str = "month") -> list[str]:
    """The event store as PgEventsManager creates it; returns the suffixes of the partitions."""
    made = partitions(interval)
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE SCHEMA events")
        for table, columns in EVENT_TABLES.items():
            conn.execute(f"CREATE TABLE events.{table} ({columns}) PARTITION BY RANGE (date)")
            for suffix, first, following in made:
                conn.execute(
                    f"CREATE TABLE events.{table}{suffix} PARTITION OF events.{table}"
                    f" FOR VALUES FROM ('{first.isoformat(timespec='minutes')}')"
                    f" TO ('{following.isoformat(timespec='minutes')}')"
                )
                conn.execute(f"CREATE INDEX ON events.{table}{suffix} USING brin (date)")
    return [suffix for suffix, _first, _following in made]


@dataclass
class Edifice:
    """Raw rows: the directory as exported from Neo4j, and the event store's rows."""

    structures: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # UAI -> name, type
    users: dict[str, tuple] = field(default_factory=dict)  # id -> profile, created (ISO) or None, activated
    attachments: list[tuple[str, str]] = field(default_factory=list)  # user id, UAI
    logins: list[tuple] = field(default_factory=list)  # id, date (naive local), user_id, profile, platform_id
    accesses: list[tuple] = field(default_factory=list)  # id, date, user_id, profile, module, platform_id
    activations: list[tuple] = field(default_factory=list)  # id, date, user_id, profile, platform_id
    connectors: list[tuple] = field(
        default_factory=list
    )  # id, date, user_id, profile, module, service, cas-type, platform_id
    weights: dict[str, float] = field(default_factory=dict)  # how often each user logs in (heavy and light users)
    quiet: set[str] = field(default_factory=set)  # users who log in only where a test puts their logins
    feed_runs: list[tuple] = field(default_factory=list)  # import-directory's runs, as it recorded them


def local(moment: datetime) -> datetime:
    """An instant as the event store writes it: Paris wall time, without zone."""
    return moment.astimezone(PARIS).replace(tzinfo=None)


def make_directory(rng: Random, users: int, structures: int) -> Edifice:
    data = Edifice()
    for number in range(structures):
        name = 'Lycée "Jean Moulin" d\'Angers, site 2' if number == 0 else f"Collège {number}"
        # A structure without a type (kind NULL), and the last one without a UAI: its directory id.
        kind = None if number == 1 else rng.choice(["COLLEGE", "LYCEE", "ECOLE"])
        code = (
            str(uuid.UUID(int=rng.getrandbits(128)))
            if number == structures - 1 and structures > 2
            else f"07500{number:02d}{'ABCDEFGH'[number % 8]}"
        )
        data.structures[code] = (name, kind)
    uais = list(data.structures)
    for number in range(users):
        user = str(uuid.UUID(int=rng.getrandbits(128)))
        created = START - timedelta(days=rng.randint(10, 400), minutes=rng.randint(0, 1000))
        activated = number % 4 != 0
        # Users without a profile, and pending users the directory gives no creation date.
        profile = None if number % 13 == 5 else rng.choice(PROFILES)
        created_text = None if number % 8 == 4 else created.astimezone(PARIS).isoformat(timespec="milliseconds")
        data.users[user] = (profile, created_text, activated)
        data.weights[user] = rng.paretovariate(1.2)
        for uai in rng.sample(uais, 2 if number % 6 == 0 else (0 if number % 11 == 0 else 1)):
            data.attachments.append((user, uai))
    return data


def make_activations(rng: Random, data: Edifice) -> None:
    for user, (profile, _created, activated) in data.users.items():
        # Most activated accounts have their ACTIVATION event; some were activated before the
        # event store existed (no event); a few activated after the last directory export.
        if (activated and rng.random() < 0.7) or (not activated and rng.random() < 0.1):
            moment = START - timedelta(hours=rng.randint(1, 900))
            data.activations.append((event_id(rng), local(moment), user, profile, PLATFORM))
            if rng.random() < 0.2:  # activated again later: the first one counts
                data.activations.append((event_id(rng), local(moment + timedelta(days=3)), user, profile, PLATFORM))
    # Another platform sharing the event store.
    data.activations.append(
        (event_id(rng), local(START - timedelta(days=1)), next(iter(data.users)), "Teacher", OTHER_PLATFORM)
    )


def event_id(rng: Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def login_at(
    rng: Random, data: Edifice, batch: Edifice, moment: datetime, user: str | None = None, platform: str = PLATFORM
) -> None:
    """A LOGIN event, and the ACCESS that follows it, stamped ``moment`` (an instant)."""
    if user is None:
        users = [u for u in data.users if u not in data.quiet]
        strangers = [str(uuid.UUID(int=n)) for n in range(1, 6)]  # users unknown to the directory
        user = rng.choices(users + strangers, [data.weights[u] for u in users] + [1.0] * len(strangers))[0]
    # The event's profile is the user's at the time: mostly the directory's, sometimes another.
    known = data.users.get(user)
    profile = known[0] if known and rng.random() < 0.9 else rng.choice(PROFILES)
    batch.logins.append((event_id(rng), local(moment), user, profile, platform))
    module = rng.choice(MODULES)
    batch.accesses.append((event_id(rng), local(moment), user, profile, module, platform))
    if rng.random() < 0.4:  # the CAS server validates a ticket for a registered service
        service, cas_type = rng.choice(CAS_SERVICES)
        batch.connectors.append(
            (event_id(rng), local(moment), user, profile, service, cas_type[0], cas_type[1], platform)
        )


def make_events(rng: Random, data: Edifice, count: int, start: datetime, span: timedelta) -> Edifice:
    batch = Edifice()
    for number in range(count):
        login_at(
            rng, data, batch, start + span * (number / count), platform=OTHER_PLATFORM if number % 17 == 0 else PLATFORM
        )
    return batch


def add_window_cases(rng: Random, data: Edifice, now: datetime) -> tuple[Edifice, Edifice]:
    """Logins on every window edge as of ``now`` (two each, by random users); activated users whose
    only login is exactly on, or just after, the start of the 30 and 90 days windows; and a user
    logging in 58 times in the 30 days before START (beyond the last finite bucket).
    Returns (the logins before START, the others)."""
    before, after = Edifice(), Edifice()
    for moment in window_edges(now, MICROSECOND):
        for _ in range(2):
            login_at(rng, data, before if moment < START else after, moment)
    uai = next(iter(data.structures))
    for days in (30, 90):
        for offset in (timedelta(0), MICROSECOND):
            user = str(uuid.UUID(int=rng.getrandbits(128)))
            data.users[user] = ("Teacher", (START - timedelta(days=200)).isoformat(), True)
            data.attachments.append((user, uai))
            data.quiet.add(user)
            login_at(rng, data, before, now - timedelta(days=days) + offset, user)
    heavy = next(u for u, s in data.attachments if u not in data.quiet and data.users[u][2])
    for number in range(58):
        login_at(rng, data, before, START - timedelta(days=27) + timedelta(hours=11 * number), heavy)
    return before, after


def insert(dsn: str, data: Edifice) -> None:
    with psycopg.connect(dsn) as conn, conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO events.login_events (id, date, event_type, module, user_id, profile, platform_id, ua, ip)"
            " VALUES (%s, %s, 'LOGIN', 'Auth', %s, %s, %s, 'Mozilla/5.0', '192.0.2.1')",
            data.logins,
        )
        cursor.executemany(
            "INSERT INTO events.access_events (id, date, event_type, user_id, profile, module, platform_id)"
            " VALUES (%s, %s, 'ACCESS', %s, %s, %s, %s)",
            data.accesses,
        )
        cursor.executemany(
            "INSERT INTO events.activation_events (id, date, event_type, module, user_id, profile, platform_id)"
            " VALUES (%s, %s, 'ACTIVATION', 'Auth', %s, %s, %s)",
            data.activations,
        )
        cursor.executemany(
            'INSERT INTO events.connector_events (id, date, user_id, profile, module, service, "cas-type", platform_id,'
            " event_type, \"connector-type\") VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'CONNECTOR', 'Cas')",
            data.connectors,
        )


def add(data: Edifice, batch: Edifice) -> None:
    data.logins += batch.logins
    data.accesses += batch.accesses
    data.activations += batch.activations
    data.connectors += batch.connectors


def directory_export(data: Edifice) -> str:
    """The directory as `cypher-shell --format plain` prints the README's export query."""

    def text(value) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["user_id, structure_id, structure_name, structure_kind, profile, created_at, activated"]
    for user, uai in data.attachments:
        profile, created, activated = data.users[user]
        name, kind = data.structures[uai]
        lines.append(", ".join(text(v) for v in (user, uai, name, kind, profile, created, activated)))
    return "\n".join(lines) + "\n"


# -- the truth, from the raw rows -----------------------------------------------------------
# The README's mapping, in plain Python: a naive local "date" is an instant in the event
# timezone; only the configured platform's events count; the directory export gives the
# structures (those it attaches someone to) and the accounts; activated_at is the user's
# first ACTIVATION event, else the creation date of an account the directory says is activated.


def occurred_at(date: datetime) -> datetime:
    return date.replace(tzinfo=PARIS).astimezone(UTC)


def canonical_accounts(data: Edifice) -> list[tuple]:
    """(user, structure, profile, created_at, activated_at) as the README defines them for Edifice."""
    first_activation: dict[str, datetime] = {}
    for _id, date, user, _profile, platform in data.activations:
        if platform == PLATFORM:
            moment = occurred_at(date)
            first_activation[user] = min(first_activation.get(user, moment), moment)
    rows = []
    for user, uai in data.attachments:
        profile, created, activated = data.users[user]
        created_at = datetime.fromisoformat(created) if created else None
        assert created_at or not activated, "activated_at would be the import's time: not a truth from the rows"
        activated_at = first_activation.get(user) or (created_at if activated else None)
        rows.append((user, uai, profile, created_at, activated_at))
    return rows


def canonical(data: Edifice) -> EntRows:
    """The canonical structures, accounts and logins the views should show for these raw rows."""
    structures: dict[str, tuple] = {}
    for _user, uai in data.attachments:
        structures.setdefault(uai, data.structures[uai])
    return EntRows(
        structures=[(uai, name, kind) for uai, (name, kind) in structures.items()],
        accounts=canonical_accounts(data),
        logins=[(u, p, occurred_at(d)) for _i, d, u, p, platform in data.logins if platform == PLATFORM],
    )


def expected(data: Edifice, upto: datetime) -> dict:
    """Every family as of ``upto``; the counters as counted once every day up to it is closed."""
    rows = canonical(data)
    logins = [login for login in rows.logins if login[2] < upto]
    accesses = [
        (u, p, m, occurred_at(d))
        for _i, d, u, p, m, platform in data.accesses
        if platform == PLATFORM and occurred_at(d) < upto
    ]
    # CONNECTOR events: a use of the service's connector, no outcome, no duration.
    calls = [
        (re.sub("Regist(e)?redService$", "", module), None, occurred_at(d), True, None)
        for _i, d, _u, _p, module, _s, _t, platform in data.connectors
        if platform == PLATFORM and occurred_at(d) < upto
    ]
    return (
        counter_families(rows.accounts, logins, accesses, calls, upto)
        | window_families(rows, upto)
        | feed_truth(data.feed_runs, upto)
        | course_truth(None, (), upto)
    )


# -- the exporter, as deployed --------------------------------------------------------------


def readonly_dsn(dsn: str, role: str = "ent_exporter") -> str:
    return make_conninfo(dsn, user=role)


class Exporter:
    """Every collector runs like the daemon's, restarted for every cycle, as the read-only role;
    a cycle returns the exposition it publishes, parsed."""

    def __init__(self, dsn: str, state_dir: Path, **extra) -> None:
        self.config = parse_config(
            {
                "source": {"dsn": readonly_dsn(dsn), "settle_seconds": 0},
                "timezone": "Europe/Paris",
                "state_dir": str(state_dir),
                "breakdowns": FULL_BREAKDOWNS,
                **extra,
            },
            "test",
        )

    def cycle(self, now: datetime) -> dict:
        source = make_source(self.config)
        source.open()
        try:
            runtime = make_runtime(self.config, source, persistent=True)
            runtime.restore()
            for name in sorted(runtime.collectors):
                assert runtime.run(name, now), name
            return parse(runtime.exposition.body().decode())
        finally:
            source.close()


def init_source(dsn: str, *extra: str):
    result = run_cli(
        "init-source",
        "--platform",
        "edifice",
        "--platform-id",
        PLATFORM,
        "--password-env",
        "ENT_TEST_PASSWORD",
        *extra,
        env=_env(dsn),
    )
    assert result.returncode == 0, result.stderr
    return result


def _env(dsn: str) -> dict:
    import os

    return {**os.environ, "ENT_EXPORTER_ADMIN_DSN": dsn, "ENT_TEST_PASSWORD": "not-a-real-secret"}


@pytest.fixture
def event_store(empty_database):
    create_event_store(empty_database)
    return empty_database


@pytest.mark.parametrize("interval", ["month", "week"])
def test_every_family_equals_the_truth_from_the_raw_rows(empty_database, tmp_path, interval):
    event_store = empty_database
    create_event_store(event_store, interval)
    rng = Random(42)
    data = make_directory(rng, users=80, structures=5)
    make_activations(rng, data)
    history = make_events(rng, data, 1500, START - HISTORY, HISTORY)
    edges_before, edges_after = add_window_cases(rng, data, FINAL)
    for part in (history, edges_before):
        add(data, part)
    insert(event_store, data)

    init_source(event_store)
    init_source(event_store)  # idempotent
    export = tmp_path / "directory.csv"
    export.write_text(directory_export(data))
    imported = run_cli("import-directory", str(export), env=_env(event_store))
    assert imported.returncode == 0, imported.stderr
    with psycopg.connect(event_store) as conn:  # the run, as import-directory recorded it (wall-clock times)
        data.feed_runs = conn.execute(
            "SELECT feed, started_at, finished_at, success, rows_read, rows_imported, rows_rejected, rows_skipped"
            " FROM ent_directory.feed_runs"
        ).fetchall()
    assert [run[3:] for run in data.feed_runs] == [(True, len(data.attachments), len(data.attachments), 0, 0)]
    assert f"imported {len(data.structures)} structures" in imported.stdout
    with psycopg.connect(readonly_dsn(event_store)) as conn:
        structures = {row[0]: row[1:] for row in conn.execute("SELECT structure_id, name, kind FROM ent.structures")}
    assert structures == data.structures

    exporter = Exporter(event_store, tmp_path / "state")
    now = START
    assert_every_family(exporter.cycle(now), expected(data, now))

    # Events keep coming, some late: stamped before the last cycle, written after it.
    for hour in range(1, 4):
        batch = make_events(rng, data, 40, now, timedelta(minutes=50))
        late = make_events(rng, data, 10, now - timedelta(hours=1), timedelta(minutes=30))
        # An account activated now, and one activated again (only the first activation counts).
        pending = next(
            u
            for u, (_p, _c, activated) in data.users.items()
            if not activated and not any(a[2] == u for a in data.activations)
        )
        again = next(a[2] for a in data.activations if a[4] == PLATFORM)
        batch.activations = [
            (event_id(rng), local(now + timedelta(minutes=m)), u, data.users[u][0], PLATFORM)
            for m, u in ((10, pending), (20, again))
        ]
        for part in (batch, late):
            insert(event_store, part)
            add(data, part)
        now += timedelta(hours=1)
        samples = exporter.cycle(now)
        truth = expected(data, now)
        # The window families read the views afresh: exact at every cycle, late events included.
        assert_every_family(samples, truth, only=WINDOW_SAMPLE_NAMES)
        # Late events are not counted yet, on-time ones are, nothing twice.
        counted = sum(v for k, v in samples["ent_logins_total"].items() if dict(k)["structure"] == "all")
        total = sum(v for k, v in truth["ent_logins_total"].items() if dict(k)["structure"] == "all")
        assert total - 10 * hour <= counted <= total

    # Once the day is closed (1 h after midnight, Paris), every family is exact.
    closed = datetime(2026, 9, 15, 1, 5, tzinfo=PARIS).astimezone(UTC)
    assert_every_family(exporter.cycle(closed), expected(data, closed))
    logins = exporter.cycle(closed + timedelta(minutes=1))["ent_logins_total"]

    # Then up to a Wednesday afternoon, with logins on every edge of its windows.
    assert all(moment >= closed for moment in window_edges(FINAL, MICROSECOND) if moment >= START)
    for part in (make_events(rng, data, 200, closed, FINAL - closed), edges_after):
        insert(event_store, part)
        add(data, part)
    samples = exporter.cycle(FINAL)
    truth = expected(data, FINAL)
    assert_every_family(samples, truth)

    # The cases the mapping and the definitions turn on are exercised, not only allowed for:
    # two structures, no structure, another platform; every period and window populated.
    assert any(dict(k)["structure"] == "unknown" for k in logins)
    activations = expected(data, closed)["ent_account_activations_total"]
    assert sum(v for k, v in activations.items() if dict(k)["structure"] != "all") > sum(
        v for k, v in activations.items() if dict(k)["structure"] == "all"
    )
    assert any(platform == OTHER_PLATFORM for *_, platform in data.logins)
    assert_windows_populated(truth)
    assert {dict(k)["profile"] for k in truth["ent_accounts"]} >= {*PROFILES, "unknown"}
    assert {dict(k)["kind"] for k in truth["ent_structure_info"]} >= {"unknown", "COLLEGE"}
    assert len({dict(k)["structure"] for k in truth["ent_logins_by_hour"]}) == len(data.structures) + 2
    connectors = {dict(k)["connector"]: v for k, v in samples["ent_connector_requests_total"].items()}
    assert set(connectors) == {"Pronote", "Moodle", "SynchroMoodle", "Kne"} and all(connectors.values())
    assert any(c[-1] == OTHER_PLATFORM for c in data.connectors)


def test_a_late_activation_event_is_counted_once_its_day_is_closed(event_store, tmp_path):
    rng = Random(5)
    data = make_directory(rng, users=20, structures=2)
    history = make_events(rng, data, 50, START - timedelta(days=2), timedelta(days=2))
    add(data, history)
    insert(event_store, history)
    init_source(event_store)
    export = tmp_path / "directory.csv"
    export.write_text(directory_export(data))
    assert run_cli("import-directory", str(export), env=_env(event_store)).returncode == 0
    exporter = Exporter(event_store, tmp_path / "state")
    exporter.cycle(START)

    # A pending user activated half an hour before the cycle; the event store writes it after.
    pending = next(u for u, _uai in data.attachments if not data.users[u][2])
    late = Edifice(
        activations=[(event_id(rng), local(START - timedelta(minutes=30)), pending, data.users[pending][0], PLATFORM)]
    )
    insert(event_store, late)
    add(data, late)
    closed = datetime(2026, 9, 15, 1, 5, tzinfo=PARIS).astimezone(UTC)
    exporter.cycle(START + timedelta(hours=1))
    samples = exporter.cycle(closed)
    # The view, and so ent_accounts, has the account activated since then; the counter should count it.
    with psycopg.connect(readonly_dsn(event_store)) as conn:
        assert conn.execute(
            "SELECT DISTINCT activated_at FROM ent.accounts WHERE user_id = %s", (pending,)
        ).fetchall() == [(START - timedelta(minutes=30),)]
    assert_every_family(samples, expected(data, closed), only={"ent_account_activations_total"})


def test_a_new_directory_replaces_the_previous_one_without_moving_activations(event_store, tmp_path):
    rng = Random(3)
    data = make_directory(rng, users=30, structures=3)
    insert(event_store, data)
    init_source(event_store)
    export = tmp_path / "directory.csv"
    export.write_text(directory_export(data))
    assert run_cli("import-directory", str(export), env=_env(event_store)).returncode == 0
    with psycopg.connect(event_store) as conn:
        before = dict(conn.execute("SELECT user_id || structure_id, activated_at FROM ent.accounts").fetchall())

    # A user leaves, another changes structure, a structure is renamed; the rest is unchanged.
    gone, moved = data.attachments[0], data.attachments[1]
    data.attachments.remove(gone)
    other = next(uai for uai in data.structures if uai != moved[1])
    data.attachments[data.attachments.index(moved)] = (moved[0], other)
    data.structures[other] = ("Renamed", data.structures[other][1])
    export.write_text(directory_export(data))
    assert run_cli("import-directory", str(export), env=_env(event_store)).returncode == 0
    with psycopg.connect(event_store) as conn:
        after = dict(conn.execute("SELECT user_id || structure_id, activated_at FROM ent.accounts").fetchall())
        names = dict(conn.execute("SELECT structure_id, name FROM ent.structures").fetchall())
    assert set(after) == {u + s for u, s in data.attachments}
    assert all(after[key] == before[key] for key in after if key in before)
    assert names[other] == "Renamed"


def test_indexes_are_built_on_every_partition_and_used(event_store):
    suffixes = [suffix for suffix, _first, _following in partitions("month")]
    rng = Random(8)
    data = make_directory(rng, users=50, structures=2)
    events = make_events(rng, data, 3000, datetime(2026, 8, 1, tzinfo=UTC), timedelta(days=80))
    insert(event_store, events)
    init_source(event_store)
    with psycopg.connect(event_store) as conn:
        invalid = conn.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone()[0]
        per_partition = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'events' AND indexname LIKE %s",
            ("login_events2026%_ent_occurred_at",),
        ).fetchone()[0]
        conn.execute("ANALYZE")
        conn.execute("SET enable_seqscan = off")  # small tables: ask whether the index matches the view
        plan = conn.execute(
            "EXPLAIN (FORMAT JSON) SELECT count(*) FROM ent.login_events WHERE occurred_at >= %s AND occurred_at < %s",
            (datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 9, 2, tzinfo=UTC)),
        ).fetchone()[0]
    assert invalid == 0
    assert per_partition == len(suffixes)
    text = str(plan)
    assert "Seq Scan" not in text and "_ent_occurred_at" in text, text
    # Printing with a connection names each partition; without one, it says what to do.
    printed = run_cli("init-source", "--platform", "edifice", "--print", env=_env(event_store)).stdout
    for suffix in suffixes:
        assert f'"login_events{suffix}_ent_occurred_at"' in printed
    offline = run_cli(
        "init-source",
        "--platform",
        "edifice",
        "--print",
        env={k: v for k, v in _env(event_store).items() if k != "ENT_EXPORTER_ADMIN_DSN"},
    ).stdout
    assert "for each partition P" in offline and "CREATE OR REPLACE VIEW" in offline


def test_directory_errors_are_reported_and_keep_the_previous_import(event_store, tmp_path):
    init_source(event_store)
    bad = tmp_path / "bad.csv"
    bad.write_text("login, school\nalice, 0750001A\n")
    result = run_cli("import-directory", str(bad), env=_env(event_store))
    assert result.returncode == 2
    assert "no column user_id, structure_id" in result.stderr


def plan_relations(plan) -> list[str]:
    """The relations an EXPLAIN (FORMAT JSON) plan reads."""
    found, stack = [], [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        if "Relation Name" in node:
            found.append(node["Relation Name"])
        stack += node.get("Plans", [])
    return found


@pytest.mark.parametrize("interval", ["month", "week"])
def test_a_one_day_window_reads_one_partition(empty_database, interval):
    suffixes = create_event_store(empty_database, interval)
    rng = Random(11)
    data = make_directory(rng, users=30, structures=2)
    events = make_events(rng, data, 2500, datetime(2026, 6, 2, tzinfo=UTC), timedelta(days=150))
    insert(empty_database, events)
    # A day of the event timezone, bound as the collectors bind their windows (query parameters).
    day = (datetime(2026, 9, 15, tzinfo=PARIS), datetime(2026, 9, 16, tzinfo=PARIS))
    holding = "202609" if interval == "month" else "202638"  # the month, or the ISO week (14-20 September)
    relations = {
        "login_events": events.logins,
        "app_access_events": events.accesses,
        "connector_events": events.connectors,
    }
    source = {
        "login_events": "login_events",
        "app_access_events": "access_events",
        "connector_events": "connector_events",
    }

    def read(conn, relation: str) -> tuple[list[str], int]:
        plan = conn.execute(
            sql.SQL(
                "EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM {} WHERE occurred_at >= %s AND occurred_at < %s"
            ).format(sql.Identifier("ent", relation)),
            day,
        ).fetchone()[0]
        count = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE occurred_at >= %s AND occurred_at < %s").format(
                sql.Identifier("ent", relation)
            ),
            day,
        ).fetchone()[0]
        return sorted(plan_relations(plan)), count

    def truth(rows) -> int:
        return sum(1 for row in rows if row[-1] == PLATFORM and day[0] <= occurred_at(row[1]) < day[1])

    init_source(empty_database, "--no-indexes")  # the views alone: every partition is read
    with psycopg.connect(readonly_dsn(empty_database)) as conn:
        for relation, rows in relations.items():
            read_from, count = read(conn, relation)
            assert read_from == sorted(source[relation] + suffix for suffix in suffixes), read_from
            assert count == truth(rows) > 0

    init_source(empty_database)  # with the constraints on each partition's local time range
    with psycopg.connect(readonly_dsn(empty_database)) as conn:
        for relation, rows in relations.items():
            read_from, count = read(conn, relation)
            assert read_from == [source[relation] + holding], read_from
            assert count == truth(rows)
    with psycopg.connect(empty_database) as conn:
        checks = conn.execute(
            "SELECT count(*) FILTER (WHERE convalidated), count(*) FROM pg_constraint WHERE conname LIKE %s",
            ("%_ent_local_time",),
        ).fetchone()
        assert checks == (3 * len(suffixes), 3 * len(suffixes))
        # The constraints only restate each partition's range: the event store still writes its
        # first and last instant, DST changes included (25 October 2026).
        for _suffix, first, following in partitions(interval):
            for date in (first, following - MICROSECOND):
                conn.execute(
                    "INSERT INTO events.login_events (id, date, user_id, platform_id) VALUES (%s, %s, 'u', %s)",
                    (uuid.uuid4(), date, PLATFORM),
                )
    init_source(empty_database)  # again: nothing to add, nothing fails


def test_an_event_store_without_connector_events_gives_an_empty_relation(event_store):
    with psycopg.connect(event_store) as conn:
        conn.execute("DROP TABLE events.connector_events")
    result = init_source(event_store)
    assert result.stdout.count('skipped ("events"."connector_events" does not exist here') == 2  # index, constraints
    with psycopg.connect(readonly_dsn(event_store)) as conn:
        assert conn.execute("SELECT count(*) FROM ent.connector_events").fetchone() == (0,)
    # Once the platform records CONNECTOR events, running init-source again reads them.
    create = EVENT_TABLES["connector_events"]
    with psycopg.connect(event_store) as conn:
        conn.execute(f"CREATE TABLE events.connector_events ({create}) PARTITION BY RANGE (date)")
        conn.execute(
            "CREATE TABLE events.connector_events202609 PARTITION OF events.connector_events"
            " FOR VALUES FROM ('2026-09-01T00:00') TO ('2026-10-01T00:00')"
        )
        conn.execute(
            "INSERT INTO events.connector_events (id, date, module, platform_id, event_type)"
            " VALUES (%s, '2026-09-15 10:00', 'PronoteRegisteredService', %s, 'CONNECTOR')",
            (uuid.uuid4(), PLATFORM),
        )
    init_source(event_store)
    with psycopg.connect(readonly_dsn(event_store)) as conn:
        assert conn.execute(
            "SELECT connector, occurred_at, success, duration_ms FROM ent.connector_events"
        ).fetchall() == [("Pronote", datetime(2026, 9, 15, 8, 0, tzinfo=UTC), True, None)]
