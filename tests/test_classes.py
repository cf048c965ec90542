"""Classes (opt-in): per-class unique visitors, accounts and inactive accounts equal an independent
recount of the raw rows; privacy.min_count applies to them; the cardinality guard folds classes; a
source without user_classes, or a configuration that does not opt in, publishes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from random import Random
from zoneinfo import ZoneInfo

import psycopg
import pytest

from ent_exporter.indicators.classes import ClassAccountsCollector, ClassVisitorsCollector
from tests.support import RawData, insert, make_accounts, make_events, parse, run_cli, write_config

pytestmark = pytest.mark.time_sensitive

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 11, 18, 15, 0, tzinfo=PARIS)  # a Wednesday: day, week and month differ
CLASSES = ["6A", "6B", "5A", "3C", "", None]
OPT_IN = {"enabled": ["class_visitors", "class_accounts"]}


@pytest.fixture
def data(source_dsn):
    rng = Random(2)
    raw = RawData(accounts=make_accounts(rng, 90, 3, NOW.astimezone(UTC)))
    events = make_events(rng, 900, 90, NOW.astimezone(UTC) - timedelta(days=100), timedelta(days=100, hours=1))
    raw.logins = events.logins
    # Each class's members: people of the structure (a pupil in one class, a teacher in two), a few
    # people without an account there, a NULL and an empty class name (-> unknown), one membership twice.
    memberships = []
    for user, structure, *_ in raw.accounts:
        for _ in range(rng.choice([0, 1, 1, 1, 2])):
            memberships.append((user, structure, rng.choice(CLASSES)))
    memberships += [("user-9999", "S1", "6A"), ("user-5", "S2", "6A")]
    memberships.append(memberships[0])
    # Logins on the edges the definitions turn on, by members of classes who log in nowhere else.
    local = NOW.replace(hour=0, minute=0)
    edges = [local, local - timedelta(days=local.weekday()), local.replace(day=1), NOW]
    edges += [NOW.astimezone(UTC) - timedelta(days=days) for days in (30, 90)]
    micro = timedelta(microseconds=1)
    for number, edge in enumerate(edges):
        for offset, suffix in ((timedelta(0), "on"), (-micro if edge != NOW else micro, "off")):
            user = f"edge-{number}-{suffix}"
            raw.accounts.append(
                (
                    user,
                    "S0",
                    "Student",
                    NOW.astimezone(UTC) - timedelta(days=400),
                    NOW.astimezone(UTC) - timedelta(days=300),
                )
            )
            raw.logins.append((user, "Student", (edge + offset).astimezone(UTC)))
            memberships.append((user, "S0", "EDGE"))
    insert(source_dsn, raw)
    with psycopg.connect(source_dsn) as conn:
        conn.execute("CREATE TABLE ent.user_classes (user_id text, structure_id text, class_name text)")
        conn.cursor().executemany("INSERT INTO ent.user_classes VALUES (%s, %s, %s)", memberships)
    return source_dsn, raw, memberships


def members(memberships) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for user, structure, class_name in memberships:
        out.setdefault((structure or "unknown", class_name or "unknown"), set()).add(user)
    return out


def truth(raw: RawData, memberships, now: datetime, min_count: int = 0) -> dict[str, dict[tuple, float]]:
    now_utc = now.astimezone(UTC)
    local = now.astimezone(PARIS)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    starts = {"day": day, "week": day - timedelta(days=local.weekday()), "month": day.replace(day=1)}

    visitors, accounts, inactive = {}, {}, {}
    for (structure, class_name), people in members(memberships).items():
        for period, start in starts.items():
            seen = {u for u, _p, t in raw.logins if u in people and start.astimezone(UTC) <= t <= now_utc}
            visitors[(("class", class_name), ("period", period), ("structure", structure))] = float(len(seen))
        activated = {u for u, s, _p, _c, a in raw.accounts if u in people and s == structure and a and a <= now_utc}
        accounts[(("class", class_name), ("state", "activated"), ("structure", structure))] = float(len(activated))
        accounts[(("class", class_name), ("state", "pending"), ("structure", structure))] = float(
            len(people - activated)
        )
        for days in (30, 90):
            since = now_utc - timedelta(days=days)
            active = {u for u, _p, t in raw.logins if since < t <= now_utc}
            inactive[(("class", class_name), ("days", str(days)), ("structure", structure))] = float(
                len(activated - active)
            )
    counts = {
        "ent_class_unique_visitors": visitors,
        "ent_class_accounts": accounts,
        "ent_class_inactive_accounts": inactive,
    }
    return {name: protected(name, series, min_count) for name, series in counts.items()}


def protected(name: str, series: dict[tuple, float], min_count: int) -> dict[tuple, float]:
    """The recount as privacy.min_count publishes it (the rule itself is tested in tests/test_privacy.py):
    small counts, and for inactive accounts the people between 30 and 90 days, withheld."""
    from ent_exporter.engine.exposition import apply_privacy

    family = next(f for c in (ClassAccountsCollector, ClassVisitorsCollector) for f in c.families if f.name == name)
    ordered = {tuple(dict(key)[label] for label in family.labels): value for key, value in series.items()}
    published, _ = apply_privacy(family, ordered, min_count)  # type: ignore[arg-type]
    return {tuple(sorted(zip(family.labels, key))): value for key, value in published.items()}


def once(path, now: datetime) -> dict:
    result = run_cli("once", "--config", str(path), "--now", now.isoformat())
    assert result.returncode == 0, result.stderr
    return parse(result.stdout)


@pytest.mark.parametrize("min_count", [0, 3])
def test_class_breakdowns_equal_an_independent_recount(data, tmp_path, min_count):
    dsn, raw, memberships = data
    path = write_config(tmp_path / "c.yml", dsn, collectors=OPT_IN, privacy={"min_count": min_count})
    samples = once(path, NOW)
    expected = truth(raw, memberships, NOW, min_count)
    for name, series in expected.items():
        assert samples[name] == series, name
    visitors = expected["ent_class_unique_visitors"]
    assert {dict(k)["class"] for k in visitors} == {"6A", "6B", "5A", "3C", "EDGE", "unknown"}
    assert len({v for k, v in visitors.items() if dict(k)["period"] == "month"}) > 2  # not trivial
    if min_count:  # the rule bites: some small counts are published as 0, the larger are kept
        unhidden = truth(raw, memberships, NOW)
        assert any(unhidden[n][k] != v for n in expected for k, v in expected[n].items())
        assert any(v >= min_count for v in visitors.values())


def test_the_cardinality_guard_folds_classes(data, tmp_path):
    dsn, raw, memberships = data
    path = write_config(tmp_path / "c.yml", dsn, collectors=OPT_IN, limits={"max_series_per_family": 20})
    samples = once(path, NOW)
    folded = samples["ent_class_accounts"]
    assert len(folded) <= 20 and any(dict(k)["class"] == "other" for k in folded)
    exact = truth(raw, memberships, NOW)["ent_class_accounts"]
    assert sum(folded.values()) == sum(exact.values())  # counts are summed into "other", not lost


def test_nothing_without_the_relation_or_without_opting_in(data, source_dsn, tmp_path):
    dsn, _raw, _memberships = data
    not_opted = once(write_config(tmp_path / "a.yml", dsn), NOW)
    assert not any(name.startswith("ent_class_") for name in not_opted)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE ent.user_classes")
    result = run_cli(
        "once", "--config", str(write_config(tmp_path / "b.yml", dsn, collectors=OPT_IN)), "--now", NOW.isoformat()
    )
    assert result.returncode == 0, result.stderr
    samples = parse(result.stdout)
    assert not any(name.startswith("ent_class_") for name in samples)
    assert samples["ent_exporter_collector_failures_total"][(("collector", "class_visitors"),)] == 0.0


def test_enabling_a_collector_that_is_not_opt_in_is_a_config_error(tmp_path):
    path = write_config(tmp_path / "c.yml", "dbname=x", collectors={"enabled": ["visitors"]})
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 2
    assert "collectors.enabled: visitors is not an opt-in collector" in result.stderr


def test_edifice_directory_import_brings_the_classes(empty_database, tmp_path):
    """import-directory reads the export's classes column (names joined with ";") into the view
    user_classes; the class figures then equal a recount of the file's rows."""
    from tests.test_adapters_edifice import _env, create_event_store, init_source, readonly_dsn

    create_event_store(empty_database)
    init_source(empty_database)
    header = "user_id, structure_id, structure_name, structure_kind, profile, created_at, activated, classes"
    lines = [
        header,
        '"u1", "0750001A", "A", "COLLEGE", "Student", "2025-09-01T08:00:00Z", TRUE, "6A"',
        '"u2", "0750001A", "A", "COLLEGE", "Student", "2025-09-01T08:00:00Z", FALSE, "6A"',
        '"u3", "0750001A", "A", "COLLEGE", "Teacher", "2025-09-01T08:00:00Z", TRUE, "6A;6B"',
        '"u3", "0750002B", "B", "LYCEE", "Teacher", "2025-09-01T08:00:00Z", TRUE, "2NDE1"',
        '"u4", "0750002B", "B", "LYCEE", "Relative", NULL, TRUE, NULL',
    ]
    export = tmp_path / "directory.csv"
    export.write_text("\n".join(lines) + "\n")
    assert run_cli("import-directory", str(export), env=_env(empty_database)).returncode == 0
    with psycopg.connect(readonly_dsn(empty_database)) as conn:
        rows = set(conn.execute("SELECT user_id, structure_id, class_name FROM ent.user_classes").fetchall())
    assert rows == {
        ("u1", "0750001A", "6A"),
        ("u2", "0750001A", "6A"),
        ("u3", "0750001A", "6A"),
        ("u3", "0750001A", "6B"),
        ("u3", "0750002B", "2NDE1"),
    }
    # A new export: u2 leaves 6A for 6B; the view follows.
    export.write_text("\n".join(lines).replace('FALSE, "6A"', 'FALSE, "6B"') + "\n")
    assert run_cli("import-directory", str(export), env=_env(empty_database)).returncode == 0
    path = write_config(tmp_path / "c.yml", readonly_dsn(empty_database), collectors=OPT_IN)
    samples = once(path, NOW)
    # activated: u1 and u3 (TRUE: activated at their creation); u2 pending; u4 has no class.
    assert samples["ent_class_accounts"] == {
        (("class", "6A"), ("state", "activated"), ("structure", "0750001A")): 2.0,
        (("class", "6A"), ("state", "pending"), ("structure", "0750001A")): 0.0,
        (("class", "6B"), ("state", "activated"), ("structure", "0750001A")): 1.0,
        (("class", "6B"), ("state", "pending"), ("structure", "0750001A")): 1.0,
        (("class", "2NDE1"), ("state", "activated"), ("structure", "0750002B")): 1.0,
        (("class", "2NDE1"), ("state", "pending"), ("structure", "0750002B")): 0.0,
    }
