"""The Edifice adapter on an event store with Edifice's own tables: every metric family the
exporter publishes equals the truth computed here from the raw rows, late events included,
read through the views by the read-only role."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from random import Random
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from exporter.app import make_runtime, make_source
from exporter.config import parse_config
from tests.support import as_samples, expected_activations, expected_event_counts, parse, run_cli

PARIS = ZoneInfo("Europe/Paris")
UTC = timezone.utc
PLATFORM = "4f3c2a1e-0000-4000-8000-000000000001"
OTHER_PLATFORM = "4f3c2a1e-0000-4000-8000-000000000002"
PROFILES = ["Teacher", "Student", "Relative", "Personnel", "Guest"]
MODULES = ["Blog", "Conversation", "Workspace", "Pronote", "Moodle", "Actualites", "Timeline"]
MONTHS = ["202608", "202609", "202610"]
START = datetime(2026, 9, 14, 7, 0, tzinfo=UTC)  # a Monday, 09:00 in Paris

# The event store's tables as Edifice creates them: one per event type in schema "events",
# "id UUID NOT NULL, date TIMESTAMP NOT NULL" then the event's attributes, partitioned by
# month on date, each partition with a BRIN index on date.
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
    "create_events": """
        id uuid NOT NULL, date timestamp NOT NULL,
        profile varchar(9), module varchar(64), event_type varchar(16), ua varchar(256),
        platform_id varchar(36), user_id varchar(36), resource_type varchar(64)""",
}


def create_event_store(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE SCHEMA events")
        for table, columns in EVENT_TABLES.items():
            conn.execute(f"CREATE TABLE events.{table} ({columns}) PARTITION BY RANGE (date)")
            for month in MONTHS:
                first = datetime.strptime(month, "%Y%m")
                following = (first + timedelta(days=32)).replace(day=1)
                conn.execute(f"CREATE TABLE events.{table}{month} PARTITION OF events.{table}"
                             f" FOR VALUES FROM ('{first:%Y-%m-%d}') TO ('{following:%Y-%m-%d}')")
                conn.execute(f"CREATE INDEX ON events.{table}{month} USING brin (date)")


@dataclass
class Edifice:
    """Raw rows: the directory as exported from Neo4j, and the event store's rows."""

    structures: dict[str, tuple[str, str]] = field(default_factory=dict)  # UAI -> name, type
    users: dict[str, tuple[str, str, bool]] = field(default_factory=dict)  # id -> profile, created (ISO), activated
    attachments: list[tuple[str, str]] = field(default_factory=list)  # user id, UAI
    logins: list[tuple] = field(default_factory=list)  # id, date (naive local), user_id, profile, platform_id
    accesses: list[tuple] = field(default_factory=list)  # id, date, user_id, profile, module, platform_id
    activations: list[tuple] = field(default_factory=list)  # id, date, user_id, profile, platform_id


def local(moment: datetime) -> datetime:
    """An instant as the event store writes it: Paris wall time, without zone."""
    return moment.astimezone(PARIS).replace(tzinfo=None)


def make_directory(rng: Random, users: int, structures: int) -> Edifice:
    data = Edifice()
    for number in range(structures):
        name = 'Lycée "Jean Moulin" d\'Angers, site 2' if number == 0 else f"Collège {number}"
        data.structures[f"07500{number:02d}{'ABCDEFGH'[number % 8]}"] = (name, rng.choice(["COLLEGE", "LYCEE", "ECOLE"]))
    uais = list(data.structures)
    for number in range(users):
        user = str(uuid.UUID(int=rng.getrandbits(128)))
        created = START - timedelta(days=rng.randint(10, 400), minutes=rng.randint(0, 1000))
        data.users[user] = (rng.choice(PROFILES), created.astimezone(PARIS).isoformat(timespec="milliseconds"),
                            number % 4 != 0)
        for uai in rng.sample(uais, 2 if number % 6 == 0 else (0 if number % 11 == 0 else 1)):
            data.attachments.append((user, uai))
    return data


def make_activations(rng: Random, data: Edifice) -> None:
    for user, (profile, created, activated) in data.users.items():
        # Most activated accounts have their ACTIVATION event; some were activated before the
        # event store existed (no event); a few activated after the last directory export.
        if (activated and rng.random() < 0.7) or (not activated and rng.random() < 0.1):
            moment = START - timedelta(hours=rng.randint(1, 900))
            data.activations.append((uuid.uuid4(), local(moment), user, profile, PLATFORM))
            if rng.random() < 0.2:  # activated again later: the first one counts
                data.activations.append((uuid.uuid4(), local(moment + timedelta(days=3)), user, profile, PLATFORM))
    # Another platform sharing the event store.
    data.activations.append((uuid.uuid4(), local(START - timedelta(days=1)), next(iter(data.users)), "Teacher",
                             OTHER_PLATFORM))


def make_events(rng: Random, data: Edifice, count: int, start: datetime, span: timedelta) -> Edifice:
    batch = Edifice()
    users = list(data.users) + [str(uuid.uuid4()) for _ in range(5)]  # some users unknown to the directory
    for number in range(count):
        moment = local(start + span * (number / count))
        user = rng.choice(users)
        profile = data.users.get(user, (rng.choice(PROFILES),))[0]
        platform = OTHER_PLATFORM if number % 17 == 0 else PLATFORM
        batch.logins.append((uuid.uuid4(), moment, user, profile, platform))
        batch.accesses.append((uuid.uuid4(), moment, user, profile, rng.choice(MODULES), platform))
    return batch


def insert(dsn: str, data: Edifice) -> None:
    with psycopg.connect(dsn) as conn, conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO events.login_events (id, date, event_type, module, user_id, profile, platform_id, ua, ip)"
            " VALUES (%s, %s, 'LOGIN', 'Auth', %s, %s, %s, 'Mozilla/5.0', '192.0.2.1')", data.logins)
        cursor.executemany(
            "INSERT INTO events.access_events (id, date, event_type, user_id, profile, module, platform_id)"
            " VALUES (%s, %s, 'ACCESS', %s, %s, %s, %s)", data.accesses)
        cursor.executemany(
            "INSERT INTO events.activation_events (id, date, event_type, module, user_id, profile, platform_id)"
            " VALUES (%s, %s, 'ACTIVATION', 'Auth', %s, %s, %s)", data.activations)


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

def canonical_accounts(data: Edifice) -> list[tuple]:
    """(user, structure, profile, created_at, activated_at) as the README defines them for Edifice."""
    first_activation: dict[str, datetime] = {}
    for _id, date, user, _profile, platform in data.activations:
        if platform == PLATFORM:
            moment = date.replace(tzinfo=PARIS)
            first_activation[user] = min(first_activation.get(user, moment), moment)
    rows = []
    for user, uai in data.attachments:
        profile, created, activated = data.users[user]
        created_at = datetime.fromisoformat(created)
        activated_at = first_activation.get(user) or (created_at if activated else None)
        rows.append((user, uai, profile, created_at, activated_at))
    return rows


def expected(data: Edifice, upto: datetime) -> dict:
    accounts = canonical_accounts(data)
    logins = [(u, p, d.replace(tzinfo=PARIS)) for _i, d, u, p, platform in data.logins
              if platform == PLATFORM and d.replace(tzinfo=PARIS) < upto]
    accesses = [(u, p, m, d.replace(tzinfo=PARIS)) for _i, d, u, p, m, platform in data.accesses
                if platform == PLATFORM and d.replace(tzinfo=PARIS) < upto]
    return {
        "ent_logins_total": as_samples("ent_logins_total", ("structure", "profile"),
                                       expected_event_counts(accounts, logins, False)),
        "ent_app_accesses_total": as_samples("ent_app_accesses_total", ("structure", "profile", "app"),
                                             expected_event_counts(accounts, accesses, True)),
        "ent_account_activations_total": as_samples("ent_account_activations_total", ("structure", "profile"),
                                                    expected_activations(accounts, upto)),
        # The event store has no connector calls: no series.
        "ent_connector_requests_total": {},
        "ent_connector_request_duration_seconds_count": {},
    }


def assert_matches(samples: dict, truth: dict) -> None:
    for name, values in truth.items():
        assert samples.get(name, {}) == values, name


# -- the exporter, as deployed --------------------------------------------------------------

def readonly_dsn(dsn: str, role: str = "ent_exporter") -> str:
    return make_conninfo(dsn, user=role)


class Exporter:
    """Every collector runs like the daemon's, restarted for every cycle, as the read-only role.

    All of them must succeed on the views; the families compared with the truth are those
    of the instant counters (see ``expected``).
    """

    def __init__(self, dsn: str, state_dir: Path) -> None:
        self.config = parse_config({"source": {"dsn": readonly_dsn(dsn), "settle_seconds": 0},
                                    "timezone": "Europe/Paris", "state_dir": str(state_dir)}, "test")

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
    result = run_cli("init-source", "--platform", "edifice", "--platform-id", PLATFORM, "--password-env",
                     "ENT_TEST_PASSWORD", *extra, env=_env(dsn))
    assert result.returncode == 0, result.stderr
    return result


def _env(dsn: str) -> dict:
    import os

    return {**os.environ, "ENT_EXPORTER_ADMIN_DSN": dsn, "ENT_TEST_PASSWORD": "not-a-real-secret"}


@pytest.fixture
def event_store(empty_database):
    create_event_store(empty_database)
    return empty_database


def test_every_family_equals_the_truth_from_the_raw_rows(event_store, tmp_path):
    rng = Random(42)
    data = make_directory(rng, users=80, structures=5)
    make_activations(rng, data)
    history = make_events(rng, data, 600, START - timedelta(days=20), timedelta(days=20))
    data.logins, data.accesses = history.logins, history.accesses
    insert(event_store, data)

    init_source(event_store)
    init_source(event_store)  # idempotent
    export = tmp_path / "directory.csv"
    export.write_text(directory_export(data))
    imported = run_cli("import-directory", str(export), env=_env(event_store))
    assert imported.returncode == 0, imported.stderr
    assert f"imported {len(data.structures)} structures" in imported.stdout
    with psycopg.connect(readonly_dsn(event_store)) as conn:
        structures = {row[0]: row[1:] for row in conn.execute("SELECT structure_id, name, kind FROM ent.structures")}
    assert structures == data.structures

    exporter = Exporter(event_store, tmp_path / "state")
    now = START
    assert_matches(exporter.cycle(now), expected(data, now))

    # Events keep coming, some late: stamped before the last cycle, written after it.
    for hour in range(1, 4):
        batch = make_events(rng, data, 40, now, timedelta(minutes=50))
        late = make_events(rng, data, 10, now - timedelta(hours=1), timedelta(minutes=30))
        # An account activated now, and one activated again (only the first activation counts).
        pending = next(u for u, (_p, _c, activated) in data.users.items()
                       if not activated and not any(a[2] == u for a in data.activations))
        again = next(a[2] for a in data.activations if a[4] == PLATFORM)
        batch.activations = [(uuid.uuid4(), local(now + timedelta(minutes=m)), u, data.users[u][0], PLATFORM)
                             for m, u in ((10, pending), (20, again))]
        for part in (batch, late):
            insert(event_store, part)
            data.logins += part.logins
            data.accesses += part.accesses
            data.activations += part.activations
        now += timedelta(hours=1)
        samples = exporter.cycle(now)
        # Late events are not counted yet, on-time ones are, nothing twice.
        counted = sum(v for k, v in samples["ent_logins_total"].items() if dict(k)["structure"] == "all")
        truth = sum(v for k, v in expected(data, now)["ent_logins_total"].items() if dict(k)["structure"] == "all")
        assert truth - 10 * hour <= counted <= truth

    # Once the day is closed (1 h after midnight, Paris), every family is exact.
    closed = datetime(2026, 9, 15, 1, 5, tzinfo=PARIS).astimezone(UTC)
    assert_matches(exporter.cycle(closed), expected(data, closed))

    # The attribution rules are exercised: two structures, no structure, another platform.
    logins = exporter.cycle(closed + timedelta(minutes=1))["ent_logins_total"]
    assert any(dict(k)["structure"] == "unknown" for k in logins)
    activations = expected(data, closed)["ent_account_activations_total"]
    assert sum(v for k, v in activations.items() if dict(k)["structure"] != "all") > \
        sum(v for k, v in activations.items() if dict(k)["structure"] == "all")


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
    rng = Random(8)
    data = make_directory(rng, users=50, structures=2)
    events = make_events(rng, data, 3000, datetime(2026, 8, 1, tzinfo=UTC), timedelta(days=80))
    insert(event_store, events)
    init_source(event_store)
    with psycopg.connect(event_store) as conn:
        invalid = conn.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone()[0]
        per_partition = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'events' AND indexname LIKE %s",
            ("login_events2026%_ent_occurred_at",)).fetchone()[0]
        conn.execute("ANALYZE")
        conn.execute("SET enable_seqscan = off")  # small tables: ask whether the index matches the view
        plan = conn.execute(
            "EXPLAIN (FORMAT JSON) SELECT count(*) FROM ent.login_events"
            " WHERE occurred_at >= %s AND occurred_at < %s",
            (datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 9, 2, tzinfo=UTC))).fetchone()[0]
    assert invalid == 0
    assert per_partition == len(MONTHS)
    text = str(plan)
    assert "Seq Scan" not in text and "_ent_occurred_at" in text, text
    # Printing with a connection names each partition; without one, it says what to do.
    printed = run_cli("init-source", "--platform", "edifice", "--print", env=_env(event_store)).stdout
    for month in MONTHS:
        assert f'"login_events{month}_ent_occurred_at"' in printed
    offline = run_cli("init-source", "--platform", "edifice", "--print", env={
        k: v for k, v in _env(event_store).items() if k != "ENT_EXPORTER_ADMIN_DSN"}).stdout
    assert "for each partition P" in offline and "CREATE OR REPLACE VIEW" in offline


def test_directory_errors_are_reported_and_keep_the_previous_import(event_store, tmp_path):
    init_source(event_store)
    bad = tmp_path / "bad.csv"
    bad.write_text("login, school\nalice, 0750001A\n")
    result = run_cli("import-directory", str(bad), env=_env(event_store))
    assert result.returncode == 2
    assert "no column user_id, structure_id" in result.stderr
