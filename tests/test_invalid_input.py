"""Invalid measurements stay out of sums and are counted per family and reason; empty label
values become "unknown" everywhere; start-up removes temporary files left by crashes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ent_exporter.app import make_runtime, make_source
from ent_exporter.config import parse_config
from ent_exporter.engine.state import StateStore
from tests.support import FULL_BREAKDOWNS, parse

pytestmark = pytest.mark.time_sensitive

START = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)


def run(dsn: str, *names: str, now: datetime = START + timedelta(hours=1)) -> dict:
    config = parse_config({"source": {"dsn": dsn, "settle_seconds": 0}, "breakdowns": FULL_BREAKDOWNS}, "test")
    with make_source(config) as source:
        runtime = make_runtime(config, source, persistent=False)
        for name in names:
            assert runtime.run(name, now)
        return parse(runtime.exposition.body().decode())


def test_invalid_durations_and_outcomes_stay_out_of_the_sums(source_dsn):
    calls = [  # connector, success, duration_ms
        ("ldap", True, 100.0),
        ("ldap", False, 3000.0),
        ("ldap", True, float("nan")),
        ("ldap", True, float("inf")),
        ("ldap", False, float("-inf")),
        ("ldap", True, -5.0),
        ("ldap", True, 90_000_000.0),
        ("ldap", None, 200.0),
        ("ldap", None, float("nan")),
        ("cas", True, None),
    ]
    with psycopg.connect(source_dsn) as conn:
        # A platform's view can give NULL where the canonical table does not allow it.
        conn.execute("ALTER TABLE ent.connector_events ALTER COLUMN success DROP NOT NULL")
        conn.cursor().executemany(
            "INSERT INTO ent.connector_events (connector, structure_id, occurred_at, success, duration_ms)"
            " VALUES (%s, 'S1', %s, %s, %s)",
            [(c, START, s, d) for c, s, d in calls],
        )
    samples = run(source_dsn, "connectors")
    assert samples["ent_connector_requests_total"] == {
        (("connector", "ldap"), ("outcome", "success")): 5,
        (("connector", "ldap"), ("outcome", "failure")): 2,
        (("connector", "cas"), ("outcome", "success")): 1,
        (("connector", "cas"), ("outcome", "failure")): 0,
    }
    # Valid durations only: 100 ms, 3 s, 200 ms (the NULL-outcome call's duration is valid).
    assert samples["ent_connector_request_duration_seconds_count"] == {
        (("connector", "ldap"),): 3,
        (("connector", "cas"),): 0,
    }
    assert samples["ent_connector_request_duration_seconds_sum"][(("connector", "ldap"),)] == pytest.approx(3.3)
    bucket = samples["ent_connector_request_duration_seconds_bucket"]
    assert bucket[(("connector", "ldap"), ("le", "0.1"))] == 1
    assert bucket[(("connector", "ldap"), ("le", "0.25"))] == 2
    assert bucket[(("connector", "ldap"), ("le", "+Inf"))] == 3
    family = "ent_connector_request_duration_seconds"
    assert samples["ent_exporter_invalid_measurements_total"] == {
        (("family", family), ("reason", "nan")): 2,
        (("family", family), ("reason", "infinite")): 2,
        (("family", family), ("reason", "negative")): 1,
        (("family", family), ("reason", "absurd")): 1,
        (("family", "ent_connector_requests_total"), ("reason", "null_outcome")): 2,
    }


def test_invalid_measurements_are_persisted_with_the_counters_and_recounted_by_day(source_dsn, tmp_path):
    """Across restarts, and for the time watermark too (the day's recount replaces its live count)."""
    from psycopg import sql

    with psycopg.connect(source_dsn) as conn:
        conn.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN event_id DROP IDENTITY, ALTER COLUMN event_id DROP NOT NULL").format(
                sql.Identifier("ent", "connector_events")
            )
        )
        conn.execute(
            "INSERT INTO ent.connector_events (connector, structure_id, occurred_at, success, duration_ms)"
            " VALUES ('ldap', 'S1', %s, true, 'NaN'), ('ldap', 'S1', %s, true, 10)",
            (START, START),
        )
    config = parse_config(
        {"source": {"dsn": source_dsn, "settle_seconds": 0}, "timezone": "UTC", "state_dir": str(tmp_path)}, "test"
    )

    def cycle(now):
        with make_source(config) as source:
            runtime = make_runtime(config, source, persistent=True)
            runtime.restore()
            assert runtime.run("connectors", now)
            return parse(runtime.exposition.body().decode())

    key = (("family", "ent_connector_request_duration_seconds"), ("reason", "nan"))
    assert cycle(START + timedelta(hours=1))["ent_exporter_invalid_measurements_total"][key] == 1
    with psycopg.connect(source_dsn) as conn:  # late, into the open day
        conn.execute(
            "INSERT INTO ent.connector_events (connector, structure_id, occurred_at, success, duration_ms)"
            " VALUES ('ldap', 'S1', %s, true, 'NaN')",
            (START,),
        )
    assert cycle(START + timedelta(hours=2))["ent_exporter_invalid_measurements_total"][key] == 1
    closed = cycle(START + timedelta(days=1, hours=2))
    assert closed["ent_exporter_invalid_measurements_total"][key] == 2
    assert closed["ent_connector_request_duration_seconds_count"] == {(("connector", "ldap"),): 1}


def test_empty_structure_ids_and_label_values_become_unknown(source_dsn):
    with psycopg.connect(source_dsn) as conn:
        conn.execute(
            "INSERT INTO ent.accounts VALUES ('u1', '', 'Teacher', %s, %s), ('u2', '', '', %s, %s)",
            (START, START, START, START),
        )
        conn.execute(
            "INSERT INTO ent.login_events (user_id, profile, occurred_at)"
            " VALUES ('u1', 'Teacher', %s), ('u2', '', %s), ('u3', NULL, %s)",
            (START, START, START),
        )
        conn.execute(
            "INSERT INTO ent.app_access_events (user_id, profile, app, occurred_at) VALUES ('u1', 'Teacher', '', %s)",
            (START,),
        )
        conn.execute(
            "INSERT INTO ent.connector_events (connector, structure_id, occurred_at, success, duration_ms)"
            " VALUES ('', '', %s, true, 10)",
            (START,),
        )
    samples = run(source_dsn, "logins", "app_accesses", "connectors", "account_activations")
    assert samples["ent_logins_total"] == {
        (("profile", "Teacher"), ("structure", "unknown")): 1,
        (("profile", "unknown"), ("structure", "unknown")): 2,
        (("profile", "Teacher"), ("structure", "all")): 1,
        (("profile", "unknown"), ("structure", "all")): 2,
    }
    assert samples["ent_app_accesses_total"] == {
        (("app", "unknown"), ("profile", "Teacher"), ("structure", "unknown")): 1,
        (("app", "unknown"), ("profile", "Teacher"), ("structure", "all")): 1,
    }
    assert samples["ent_connector_requests_total"] == {
        (("connector", "unknown"), ("outcome", "success")): 1,
        (("connector", "unknown"), ("outcome", "failure")): 0,
    }
    for name, series in samples.items():
        for labels in series:
            assert all(value != "" for _, value in labels), (name, labels)


def test_the_exposition_applies_the_label_rule_to_every_publisher():
    from ent_exporter.engine.collector import Family, Kind
    from ent_exporter.engine.exposition import Exposition

    family = Family("x_total", Kind.COUNTER, "x", ("structure",))
    exposition = Exposition([family])
    exposition.publish({"a": {"x_total": {("",): 2.0, ("unknown",): 1.0, ("S1",): 1.0}}})
    assert parse(exposition.body().decode())["x_total"] == {(("structure", "S1"),): 1, (("structure", "unknown"),): 3}


def test_start_up_removes_temporary_files_left_by_a_crash(tmp_path):
    store = StateStore(tmp_path)
    from ent_exporter.engine.state import StoredResult

    store.save("logins", StoredResult(samples={}, state={"watermark": 3}))
    leftovers = [store.directory / ".logins.abc123.tmp", store.directory / ".connectors.x.tmp"]
    for path in leftovers:
        path.write_text("{half a write")
    keep = store.directory / "notes.txt"
    keep.write_text("not ours")
    StateStore(tmp_path)  # a restart
    assert not any(path.exists() for path in leftovers)
    assert keep.exists() and (store.directory / "logins.json").exists()
    assert StateStore(tmp_path).load("logins").state == {"watermark": 3}


def test_state_files_keep_non_finite_values_and_read_files_of_earlier_versions(tmp_path):
    """A custom gauge can give NaN or an infinity (PostgreSQL's 'NaN'::float8): written by orjson
    (NaN as null) they read back as they were; a file written by json.dumps (NaN, Infinity literals,
    earlier versions) is read too, not recounted."""
    import json
    import math

    from ent_exporter.engine.state import StoredResult

    store = StateStore(tmp_path)
    samples = {"ent_custom": [(("S1",), math.nan), (("S2",), math.inf), (("S3",), 2.5)]}
    store.save("custom_x", StoredResult(samples=dict(samples), state={"watermark": 7}, last_success=1.0))
    loaded = store.load("custom_x")
    values = dict(loaded.samples["ent_custom"])
    assert math.isnan(values[("S1",)]) and values[("S2",)] == math.inf and values[("S3",)] == 2.5
    assert loaded.state == {"watermark": 7} and loaded.last_success == 1.0
    earlier = {
        "version": 2,
        "collector": "custom_y",
        "totals_are_samples": False,
        "last_success": 2.0,
        "complete": True,
        "state": {"watermark": 9},
        "changed_at": {},
        "samples": {"ent_custom": {"labels": [["S1", "S2"]], "values": [math.nan, -math.inf]}},
    }
    (store.directory / "custom_y.json").write_text(json.dumps(earlier))
    loaded = store.load("custom_y")
    values = dict(loaded.samples["ent_custom"])
    assert math.isnan(values[("S1",)]) and values[("S2",)] == -math.inf and loaded.state == {"watermark": 9}


def test_a_restore_reads_a_window_state_file_without_parsing_its_state(tmp_path):
    """The state is the file's last key: loaded without it, the rest is parsed up to it only. A label
    value that looks like the key (quotes are escaped inside JSON strings) does not cut the file; a
    file of the earlier layout (state before changed_at) is parsed whole."""
    import json

    from ent_exporter.engine.state import StoredResult

    store = StateStore(tmp_path)
    tricky = 'x,"state":{"a":1}'
    samples = {"ent_unique_visitors": [((tricky, "Student", "day"), 4.0), (("S2", "all", "day"), 9.0)]}
    store.save(
        "visitors", StoredResult(samples=dict(samples), state={"days": {"2026-11-02": "AAAA"}}, last_success=5.0)
    )
    text = (store.directory / "visitors.json").read_text()
    assert text.rstrip("}").endswith('"state":{"days":{"2026-11-02":"AAAA"')
    light = store.load("visitors", with_state=False)
    assert light.state is None and light.last_success == 5.0
    assert dict(light.samples["ent_unique_visitors"]) == dict(samples["ent_unique_visitors"])
    assert store.load("visitors").state == {"days": {"2026-11-02": "AAAA"}}
    earlier = {
        "version": 2,
        "collector": "visitors",
        "samples": {"ent_unique_visitors": {"labels": [["S1"], ["Student"], ["day"]], "values": [3.0]}},
        "state": {"days": {}},
        "totals_are_samples": False,
        "last_success": 6.0,
        "complete": True,
        "changed_at": {},
    }
    (store.directory / "visitors.json").write_text(json.dumps(earlier))
    light = store.load("visitors", with_state=False)
    assert light.state is None and dict(light.samples["ent_unique_visitors"]) == {("S1", "Student", "day"): 3.0}


def test_privacy_min_count_protects_counters_and_histograms_of_people():
    from ent_exporter.engine.collector import HistogramValue
    from ent_exporter.engine.exposition import Exposition, Policy
    from ent_exporter.indicators.activations import ACTIVATIONS
    from ent_exporter.indicators.activity import USER_LOGINS_30D

    assert ACTIVATIONS.counts_people and USER_LOGINS_30D.counts_people
    exposition = Exposition([ACTIVATIONS, USER_LOGINS_30D], Policy(privacy_min_count=5))
    published = []
    # A counter that grows 1, 3, 4, 6, 9: published 0, 0, 0, 6, 9 (monotonic: rate() sees all 9).
    for total in (1, 3, 4, 6, 9):
        exposition.publish({"activations": {ACTIVATIONS.name: {("S1", "Teacher"): float(total)}}})
        published.append(
            parse(exposition.body().decode())[ACTIVATIONS.name][(("profile", "Teacher"), ("structure", "S1"))]
        )
    assert published == [0, 0, 0, 6, 9]
    assert all(a <= b for a, b in zip(published, published[1:]))
    # Buckets le = 0, 1, 2, 5, 10, 20, 50: people per bucket 6, 2, 0, 7, 0, 0, 1, and 3 above 50.
    people = [6, 2, 0, 7, 0, 0, 1, 3]
    cumulative = [sum(people[: i + 1]) for i in range(7)]
    exposition.publish(
        {
            "activity": {
                USER_LOGINS_30D.name: {
                    ("S1", "Teacher"): HistogramValue([float(c) for c in cumulative], 19.0, 321.0),
                    ("S2", "Teacher"): HistogramValue([1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0], 4.0, 40.0),
                }
            }
        }
    )
    samples = parse(exposition.body().decode())
    buckets = {
        dict(k)["le"]: v for k, v in samples[USER_LOGINS_30D.name + "_bucket"].items() if dict(k)["structure"] == "S1"
    }
    assert buckets == {"0.0": 6, "1.0": 6, "2.0": 6, "5.0": 13, "10.0": 13, "20.0": 13, "50.0": 13, "+Inf": 13}
    assert samples[USER_LOGINS_30D.name + "_count"][(("profile", "Teacher"), ("structure", "S2"))] == 0
    assert all(v == 0 for k, v in samples[USER_LOGINS_30D.name + "_bucket"].items() if dict(k)["structure"] == "S2")
