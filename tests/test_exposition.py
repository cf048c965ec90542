"""The exposition is valid for Prometheus' own checker, and the cardinality guard folds without losing counts."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from random import Random

from ent_exporter.app import make_runtime, make_source
from ent_exporter.config import parse_config
from tests.support import (
    FULL_BREAKDOWNS,
    RawData,
    insert,
    make_accounts,
    make_events,
    parse,
    require_binary,
    run_cli,
    write_config,
)

START = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)


def promtool() -> str:
    return require_binary("promtool")


def seed(dsn: str, rng: Random, users: int = 80) -> RawData:
    raw = RawData(accounts=make_accounts(rng, users, structures=4, start=START))
    events = make_events(rng, 600, users, START, timedelta(hours=6))
    raw.logins, raw.app_accesses, raw.connector_calls = events.logins, events.app_accesses, events.connector_calls
    insert(dsn, raw)
    return raw


def test_promtool_accepts_the_exposition(source_dsn, tmp_path):
    seed(source_dsn, Random(1))
    config = write_config(tmp_path / "c.yml", source_dsn)
    result = run_cli("once", "--config", str(config), "--now", (START + timedelta(days=1)).isoformat())
    assert result.returncode == 0, result.stderr
    assert "ent_logins_total" in result.stdout
    check = subprocess.run([promtool(), "check", "metrics"], input=result.stdout, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip() == "" and check.stderr.strip() == "", check.stdout + check.stderr


def test_the_cardinality_guard_folds_rare_values_into_other_and_keeps_the_sum(source_dsn, caplog):
    rng = Random(2)
    raw = seed(source_dsn, rng)
    import psycopg

    # 40 rarely used applications on top of the usual ones.
    with psycopg.connect(source_dsn) as conn:
        for number in range(40):
            conn.execute(
                "INSERT INTO ent.app_access_events (user_id, profile, app, occurred_at)"
                " VALUES ('user-1', 'Teacher', %s, %s)",
                (f"rare-app-{number}", START),
            )
    cap = 30
    config = parse_config(
        {
            "source": {"dsn": source_dsn, "settle_seconds": 0},
            "limits": {"max_series_per_family": cap},
            "breakdowns": FULL_BREAKDOWNS,
        },
        "test",
    )
    with make_source(config) as source:
        runtime = make_runtime(config, source, persistent=False)
        for _ in range(2):
            assert runtime.run("app_accesses", START + timedelta(days=1))
    samples = parse(runtime.exposition.body().decode())
    accesses = samples["ent_app_accesses_total"]
    assert len(accesses) <= cap
    assert any(dict(labels)["app"] == "other" for labels in accesses)
    # Nothing dropped: the folded series still add up to every access, once per attribution.
    structures_of: dict[str, set] = {}
    for user, structure, *_ in raw.accounts:
        structures_of.setdefault(user, set()).add(structure)
    total = sum(len(structures_of.get(e[0], {"unknown"})) + 1 for e in raw.app_accesses) + 40 * 2
    assert sum(accesses.values()) == total
    folded = samples["ent_exporter_folded_series_total"][(("family", "ent_app_accesses_total"),)]
    assert folded > 0
    assert samples["ent_exporter_series"][(("family", "ent_app_accesses_total"),)] == len(accesses)
    warnings = [r for r in caplog.records if "folded" in r.getMessage()]
    assert len(warnings) == 1  # logged once, not at every publication


def test_counts_survive_a_change_of_published_form(source_dsn):
    """Folding is applied at publication only: the persisted totals keep every label value."""
    seed(source_dsn, Random(3))
    config = parse_config(
        {"source": {"dsn": source_dsn, "settle_seconds": 0}, "limits": {"max_series_per_family": 5}}, "test"
    )
    with make_source(config) as source:
        runtime = make_runtime(config, source, persistent=False)
        runtime.run("logins", START + timedelta(days=1))
    stored = runtime.samples("logins")["ent_logins_total"]
    assert len(stored) > 5
    published = parse(runtime.exposition.body().decode())["ent_logins_total"]
    assert len(published) <= 5
    assert sum(published.values()) == sum(stored.values())
