"""Indicators declared in ``custom:``: exact values from a real PostgreSQL against a recount of the raw
rows, incremental counters that never count an event twice (across runs and a restart), the privacy
rule, and a clear error naming the file and key for each bad definition."""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from random import Random

import psycopg
import pytest
import yaml

from ent_exporter.app import make_runtime, make_source
from ent_exporter.config import load_config
from tests.support import RawData, insert, make_accounts, make_events, parse, run_cli, write_config

NOW = datetime(2026, 11, 18, 14, 0, tzinfo=UTC)

PENDING = {
    "metric": "ent_custom_pending_accounts",
    "type": "gauge",
    "help": "Accounts not activated yet, per structure, of profiles starting with T or S.",
    "labels": ["structure", "profile"],
    "counts_people": True,
    "cadence": "hourly",
    # A literal % (LIKE) and {now}: the administrator writes PostgreSQL as is.
    "sql": """
        SELECT structure_id AS structure, profile, count(*) AS value
        FROM {accounts}
        WHERE (activated_at IS NULL OR activated_at > {now}) AND (profile LIKE 'T%' OR profile LIKE 'S%')
        GROUP BY 1, 2
    """,
}
LOGINS_BY_WEEKDAY = {
    "metric": "ent_custom_logins_by_weekday_total",
    "type": "counter",
    "help": "Logins per local ISO weekday.",
    "labels": ["weekday"],
    "events": "login_events",
    "watermark": "event_id",
    "cadence": "instant",
    "sql": """
        SELECT extract(isodow FROM occurred_at AT TIME ZONE {timezone})::int AS weekday, count(*) AS value
        FROM {events}
        GROUP BY 1
    """,
}
APP_USES = {
    "metric": "ent_custom_app_uses_total",
    "type": "counter",
    "help": "Application openings per application, counted by time.",
    "labels": ["app"],
    "events": "app_access_events",
    "watermark": "occurred_at",
    "sql": "SELECT app, count(*) AS value FROM {events} GROUP BY app",
}


@pytest.fixture
def data(source_dsn):
    rng = Random(16)
    raw = RawData(accounts=make_accounts(rng, 60, 4, NOW))
    events = make_events(rng, 400, 60, NOW - timedelta(days=10), timedelta(days=9))
    raw.logins, raw.app_accesses = events.logins, events.app_accesses
    insert(source_dsn, raw)
    return source_dsn, raw


def expected_pending(raw: RawData, min_count: int = 0) -> dict[tuple, float]:
    counts = Counter()
    for _user, structure, profile, _created, activated in raw.accounts:
        if (activated is None or activated > NOW) and profile and profile[0] in "TS":
            counts[(structure, profile)] += 1
    return {(("profile", p), ("structure", s)): float(0 if n < min_count else n) for (s, p), n in counts.items()}


def expected_weekdays(logins, zone) -> dict[tuple, float]:
    counts = Counter(moment.astimezone(zone).isoweekday() for _user, _profile, moment in logins)
    return {(("weekday", str(day)),): float(n) for day, n in counts.items()}


def expected_apps(accesses) -> dict[tuple, float]:
    counts = Counter(app or "unknown" for _user, _profile, app, _moment in accesses)
    return {(("app", app),): float(n) for app, n in counts.items()}


def test_custom_gauge_and_counters_in_once_output_equal_the_raw_rows(data, tmp_path):
    dsn, raw = data
    path = write_config(tmp_path / "custom.yml", dsn, custom=[PENDING, LOGINS_BY_WEEKDAY, APP_USES])
    result = run_cli("once", "--config", str(path), "--now", NOW.isoformat())
    assert result.returncode == 0, result.stderr
    samples = parse(result.stdout)
    from zoneinfo import ZoneInfo

    assert samples["ent_custom_pending_accounts"] == expected_pending(raw)
    assert samples["ent_custom_logins_by_weekday_total"] == expected_weekdays(raw.logins, ZoneInfo("Europe/Paris"))
    assert samples["ent_custom_app_uses_total"] == expected_apps(raw.app_accesses)
    # Run by the same runtime: its own self-metrics, like any collector.
    assert (
        samples["ent_exporter_collector_last_success_timestamp_seconds"][
            (("collector", "custom:ent_custom_pending_accounts"),)
        ]
        > 0
    )
    assert "# TYPE ent_custom_logins_by_weekday_total counter" in result.stdout
    assert "# HELP ent_custom_pending_accounts Accounts not activated yet" in result.stdout


def test_privacy_min_count_applies_to_a_custom_people_count(data, tmp_path):
    dsn, raw = data
    path = write_config(tmp_path / "custom.yml", dsn, custom=[PENDING], privacy={"min_count": 3})
    result = run_cli("once", "--config", str(path), "--now", NOW.isoformat())
    assert result.returncode == 0, result.stderr
    expected = expected_pending(raw, min_count=3)
    assert parse(result.stdout)["ent_custom_pending_accounts"] == expected
    assert 0.0 in expected.values() and any(v >= 3 for v in expected.values())  # both sides of the rule


def test_custom_counter_counts_each_event_once_across_runs_and_a_restart(data, tmp_path):
    dsn, raw = data
    path = write_config(
        tmp_path / "custom.yml",
        dsn,
        custom=[LOGINS_BY_WEEKDAY, APP_USES],
        collectors={
            "disabled": [
                "accounts",
                "account_activations",
                "activity",
                "app_accesses",
                "connectors",
                "login_heatmap",
                "logins",
                "structure_info",
                "visitors",
                "visitors_previous_month",
                "visitors_month_a_year_earlier",
            ]
        },
    )
    config = load_config(path)
    zone = config.zone

    def run_at(moment: datetime) -> dict:
        source = make_source(config)
        runtime = make_runtime(config, source, persistent=True)
        runtime.restore()
        source.wait_ready()
        try:
            assert runtime.run_all(moment)
        finally:
            source.close()
        return parse(runtime.exposition.body().decode())

    first = run_at(NOW)
    assert first["ent_custom_logins_by_weekday_total"] == expected_weekdays(raw.logins, zone)
    # New events after the first run, and a few that commit late with a time behind the watermark, in
    # today's still open day (occurred_at watermark: caught by the day's recount once it is closed).
    later = make_events(Random(7), 50, 60, NOW + timedelta(minutes=1), timedelta(hours=3))
    late = [(user, profile, app, NOW - timedelta(minutes=30)) for user, profile, app, _ in later.app_accesses[:5]]
    insert(dsn, RawData(logins=later.logins, app_accesses=later.app_accesses + late))
    # A new process each time (a restart): the state on disk carries the watermark and the totals.
    second = run_at(NOW + timedelta(hours=4))  # 19:00 in Paris: the day is still open
    assert second["ent_custom_logins_by_weekday_total"] == expected_weekdays(raw.logins + later.logins, zone)
    assert second["ent_custom_app_uses_total"] == expected_apps(raw.app_accesses + later.app_accesses)
    third = run_at(NOW + timedelta(days=1))  # the day is closed: recounted, the late rows are in, once
    assert third["ent_custom_app_uses_total"] == expected_apps(raw.app_accesses + later.app_accesses + late)
    assert third["ent_custom_logins_by_weekday_total"] == second["ent_custom_logins_by_weekday_total"]


def test_check_config_connect_has_the_database_plan_each_statement(data, tmp_path):
    dsn, _raw = data
    broken = {**PENDING, "sql": PENDING["sql"].replace("activated_at IS NULL", "activation IS NULL")}
    path = write_config(tmp_path / "custom.yml", dsn, custom=[APP_USES, broken])
    result = run_cli("check-config", "--connect", "--config", str(path))
    assert result.returncode == 1
    assert f"{path}: custom.1.sql: the database refuses the statement of ent_custom_pending_accounts" in result.stderr
    assert 'column "activation" does not exist' in result.stderr
    assert "custom.0" not in result.stderr
    good = write_config(tmp_path / "good.yml", dsn, custom=[APP_USES, PENDING, LOGINS_BY_WEEKDAY])
    result = run_cli("check-config", "--connect", "--config", str(good))
    assert result.returncode == 0, result.stderr
    assert "custom:ent_custom_pending_accounts" in result.stdout


def test_a_statement_that_would_write_fails_in_the_read_only_session(data, tmp_path):
    """Beyond what the parser can see (a function that writes), the session is read-only."""
    dsn, _raw = data
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE ent.scratch (n int)")
        conn.execute(
            "CREATE FUNCTION ent.sneaky() RETURNS int LANGUAGE sql AS $$ INSERT INTO ent.scratch VALUES (1)"
            " RETURNING n $$"
        )
    sneaky = {**PENDING, "labels": [], "counts_people": False, "sql": "SELECT ent.sneaky() AS value"}
    path = write_config(
        tmp_path / "custom.yml",
        dsn,
        custom=[sneaky],
        collectors={
            "disabled": [
                "accounts",
                "account_activations",
                "activity",
                "app_accesses",
                "connectors",
                "login_heatmap",
                "logins",
                "structure_info",
                "visitors",
                "visitors_previous_month",
                "visitors_month_a_year_earlier",
            ]
        },
    )
    result = run_cli("once", "--config", str(path), "--now", NOW.isoformat())
    assert result.returncode == 1
    assert "read-only transaction" in result.stderr
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM ent.scratch").fetchone()[0] == 0


def _entry(**changes):
    entry = {**PENDING, **changes}
    return {key: value for key, value in entry.items() if value is not None}


BAD = {
    "metric name": (_entry(metric="ent-pending"), "custom.0.metric", "not a Prometheus metric name"),
    "self-metric prefix": (_entry(metric="ent_exporter_mine"), "custom.0.metric", "exporter's own metrics"),
    "counter without _total": (
        _entry(type="counter", events="login_events", watermark="event_id"),
        "custom.0.metric",
        "ends with _total",
    ),
    "gauge with _total": (_entry(metric="ent_pending_total"), "custom.0.metric", "_total is for counters"),
    "counter without events": (_entry(metric="ent_x_total", type="counter"), "custom.0.events", "incremental"),
    "counter not reading {events}": (
        _entry(metric="ent_x_total", type="counter", events="login_events", watermark="event_id"),
        "custom.0.sql",
        "{events}",
    ),
    "unknown type": (_entry(type="summary"), "custom.0.type", "'gauge' or 'counter'"),
    "missing help": (_entry(help=None), "custom.0.help", "Field required"),
    "label column missing": (_entry(labels=["structure", "profile", "app"]), "custom.0.sql", "missing column(s) app"),
    "column not a label": (_entry(labels=["structure"]), "custom.0.sql", "column(s) profile are not labels"),
    "select star": (_entry(sql="SELECT * FROM {accounts}"), "custom.0.sql", "name every column"),
    "writes": (
        _entry(
            sql="WITH gone AS (DELETE FROM {accounts} RETURNING structure_id AS structure, profile) "
            "SELECT structure, profile, count(*) AS value FROM gone GROUP BY 1, 2"
        ),
        "custom.0.sql",
        "read-only statements only: found DELETE",
    ),
    "not a select": (_entry(sql="TRUNCATE {accounts}"), "custom.0.sql", "a SELECT"),
    "leaves the sandbox": (
        _entry(sql="SELECT structure_id AS structure, profile, pg_sleep(30)::int AS value FROM {accounts}"),
        "custom.0.sql",
        "pg_sleep() (waits on the server) is not allowed in a custom statement",
    ),
    "two statements": (
        _entry(sql="SELECT 'a' AS structure, 'b' AS profile, 1 AS value; SELECT 2"),
        "custom.0.sql",
        "one statement expected, found 2",
    ),
    "syntax": (_entry(sql="SELEC structure, profile, 1 AS value"), "custom.0.sql", "not valid PostgreSQL"),
    "unknown relation": (
        _entry(sql="SELECT structure, profile, 1 AS value FROM {acounts}"),
        "custom.0.sql",
        "unknown placeholder(s) {acounts}",
    ),
    "identifying label": (_entry(labels=["user_id"]), "custom.0.labels", "would identify a person"),
    "identifying column": (
        _entry(sql="SELECT user_id AS structure, profile, count(*) AS value FROM {accounts} GROUP BY 1, 2"),
        "custom.0.sql",
        "identifies a person",
    ),
    "reserved label": (_entry(labels=["le"]), "custom.0.labels", "reserved"),
    "bad cadence": (_entry(cadence="yearly"), "custom.0.cadence", "'instant'"),
    "unknown key": (_entry(colour="red"), "custom.0.colour", "unknown key"),
    "built-in name": (_entry(metric="ent_accounts"), "custom.0.metric", "is a built-in metric"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_bad_custom_definition_names_the_file_and_key(tmp_path, case):
    entry, key, fragment = BAD[case]
    path = tmp_path / "custom.yml"
    path.write_text(yaml.safe_dump({"source": {"dsn": "dbname=x"}, "custom": [entry]}))
    environment = {k: v for k, v in os.environ.items() if k != "ENT_EXPORTER_DSN"}
    result = run_cli("check-config", "--config", str(path), env=environment)
    assert result.returncode == 2, result.stderr
    assert f"{path}: invalid configuration" in result.stderr
    line = next((line for line in result.stderr.splitlines() if line.strip().startswith(f"{key}:")), None)
    assert line is not None, result.stderr
    assert fragment in line, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_two_entries_with_one_metric_name(tmp_path):
    path = tmp_path / "custom.yml"
    path.write_text(yaml.safe_dump({"source": {"dsn": "dbname=x"}, "custom": [PENDING, PENDING]}))
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 2
    assert "custom.1.metric: ent_custom_pending_accounts is already declared by custom.0" in result.stderr
