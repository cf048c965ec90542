"""Account feeds: import-directory records each run (rows read, imported, rejected, skipped; success or
not) where the exporter reads it (the Edifice adapter's account_feeds view); the exporter's gauges equal
the recorded runs; a failed import makes ENTAccountFeedFailed fire on a real Prometheus; a source
without the relation publishes nothing and fails no run."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import yaml

from tests.adapter_truth import FEED_FAMILIES, feed_truth
from tests.support import free_port, parse, require_binary, run_cli, wait_until, write_config
from tests.test_adapters_edifice import _env, create_event_store, init_source, readonly_dsn
from tests.test_end_to_end import api, prometheus_config, shortened_rules

HEADER = "user_id, structure_id, structure_name, structure_kind, profile, created_at, activated"
# 6 data lines and a blank one: 4 attachments, 1 line without a structure (rejected), 1 repeated.
GOOD = (
    "\n".join(
        [
            HEADER,
            '"u1", "0750001A", "Collège A", "COLLEGE", "Student", "2026-01-05T10:00:00Z", TRUE',
            '"u2", "0750001A", "Collège A", "COLLEGE", "Teacher", NULL, FALSE',
            '"u3", NULL, NULL, NULL, "Student", NULL, FALSE',
            "",
            '"u2", "0750002B", "Lycée B", "LYCEE", "Teacher", NULL, TRUE',
            '"u4", "0750002B", "Lycée B", "LYCEE", "Relative", NULL, TRUE',
            '"u4", "0750002B", "Lycée B", "LYCEE", "Relative", NULL, TRUE',
        ]
    )
    + "\n"
)
# Every line invalid: nothing to import, the previous directory is kept, the run is a failure.
BAD = "\n".join(
    [HEADER, '"u9", NULL, NULL, NULL, "Student", NULL, FALSE', '"", "0750001A", "x", NULL, NULL, NULL, NULL']
)


def recorded_runs(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT feed, started_at, finished_at, success, rows_read, rows_imported, rows_rejected, rows_skipped,"
            " message FROM ent_directory.feed_runs ORDER BY run_id"
        ).fetchall()


def once(config: Path, now: datetime) -> dict:
    result = run_cli("once", "--config", str(config), "--now", now.isoformat())
    assert result.returncode == 0, result.stderr
    return parse(result.stdout)


def test_import_directory_records_its_runs_and_the_exporter_publishes_them(empty_database, tmp_path):
    create_event_store(empty_database)
    init_source(empty_database)
    good, bad = tmp_path / "directory.csv", tmp_path / "bad.csv"
    good.write_text(GOOD)
    bad.write_text(BAD)
    imported = run_cli("import-directory", str(good), env=_env(empty_database))
    assert imported.returncode == 0, imported.stderr
    assert "(6 lines read, 1 rejected, 1 repeated)" in imported.stdout
    runs = recorded_runs(empty_database)
    assert [run[3:9] for run in runs] == [(True, 6, 4, 1, 1, None)]
    config = write_config(tmp_path / "exporter.yml", readonly_dsn(empty_database))
    after_first = runs[0][2] + timedelta(minutes=5)
    samples = once(config, after_first)
    truth = feed_truth(runs, after_first)
    assert {name: samples.get(name, {}) for name in FEED_FAMILIES} == truth
    assert truth["ent_account_feed_last_run_rows"] == {
        (("feed", "directory"), ("outcome", outcome)): value
        for outcome, value in (("read", 6.0), ("imported", 4.0), ("rejected", 1.0), ("skipped", 1.0))
    }

    # A failed run: recorded on its own, with what it read; the directory is unchanged.
    failed = run_cli("import-directory", str(bad), env=_env(empty_database))
    assert failed.returncode == 2
    assert "no attachment in the file" in failed.stderr
    runs = recorded_runs(empty_database)
    assert [run[3:8] for run in runs] == [(True, 6, 4, 1, 1), (False, 2, 0, 2, 0)]
    assert "no attachment in the file" in runs[1][8]
    with psycopg.connect(empty_database) as conn:
        assert conn.execute("SELECT count(*) FROM ent_directory.attachments").fetchone()[0] == 4
    later = runs[1][2] + timedelta(minutes=5)
    samples = once(config, later)
    truth = feed_truth(runs, later)
    assert {name: samples.get(name, {}) for name in FEED_FAMILIES} == truth
    key = (("feed", "directory"),)
    assert samples["ent_account_feed_last_run_success"][key] == 0.0
    assert samples["ent_account_feed_last_success_timestamp_seconds"][key] == runs[0][2].timestamp()
    # As of an instant before the failure (a pinned --now), the failure is not seen yet.
    assert runs[1][2] > runs[0][2]
    assert once(config, runs[0][2])["ent_account_feed_last_run_success"][key] == 1.0


def test_a_source_without_account_feeds_publishes_nothing_and_fails_no_run(source_dsn, tmp_path):
    config = write_config(tmp_path / "exporter.yml", source_dsn)
    result = run_cli("once", "--config", str(config), "--now", "2026-11-18T12:00:00+01:00")
    assert result.returncode == 0, result.stderr
    samples = parse(result.stdout)
    assert not any(name.startswith("ent_account_feed_") for name in samples)
    assert samples["ent_exporter_collector_failures_total"][(("collector", "account_feeds"),)] == 0.0
    assert samples["ent_exporter_collector_last_success_timestamp_seconds"][(("collector", "account_feeds"),)] > 0
    checked = run_cli("check-config", "--connect", "--config", str(config))
    assert checked.returncode == 0, checked.stderr
    assert (
        f"{config}: note: source.schema: ent.account_feeds: absent (optional): collector(s) account_feeds "
        "publish nothing"
    ) in checked.stderr
    # Present but incomplete: a problem, since its collector would fail every run.
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        conn.execute("CREATE VIEW ent.account_feeds AS SELECT 'x'::text AS feed, now() AS finished_at")
    checked = run_cli("check-config", "--connect", "--config", str(config))
    assert checked.returncode == 1
    assert "ent.account_feeds: missing column(s) started_at, success, rows_read" in checked.stderr


def test_a_failed_import_fires_the_feed_alert_on_a_real_prometheus(empty_database, tmp_path):
    create_event_store(empty_database)
    init_source(empty_database)
    (tmp_path / "good.csv").write_text(GOOD)
    (tmp_path / "bad.csv").write_text(BAD)
    assert run_cli("import-directory", str(tmp_path / "good.csv"), env=_env(empty_database)).returncode == 0
    assert run_cli("import-directory", str(tmp_path / "bad.csv"), env=_env(empty_database)).returncode == 2

    exporter_port, prometheus_port = free_port(), free_port()
    config = write_config(
        tmp_path / "exporter.yml", readonly_dsn(empty_database), listen={"address": "127.0.0.1", "port": exporter_port}
    )
    exporter = subprocess.Popen(
        [sys.executable, "-m", "ent_exporter.cli", "--log-level", "WARNING", "serve", "--config", str(config)],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=(tmp_path / "exporter.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    rules = tmp_path / "rules"
    rules.mkdir()
    repo = Path(__file__).resolve().parent.parent
    prometheus_yml = prometheus_config(
        f"127.0.0.1:{exporter_port}", shortened_rules(repo / "prometheus" / "rules", rules)
    )
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prometheus_yml, sort_keys=False))
    prometheus = subprocess.Popen(
        [
            require_binary("prometheus"),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
            "--log.level=warn",
        ],
        stdout=(tmp_path / "prometheus.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:

        def firing() -> list[dict]:
            alerts = api(prometheus_port, "/api/v1/alerts")["data"]["alerts"]
            return [a for a in alerts if a["labels"]["alertname"] == "ENTAccountFeedFailed" and a["state"] == "firing"]

        alerts = wait_until(firing, 120, interval=0.5, message="ENTAccountFeedFailed firing")
        assert [a["labels"]["feed"] for a in alerts] == ["directory"]
        assert alerts[0]["labels"]["severity"] == "critical"
        # The import before succeeded just now: the feed is not overdue.
        names = {a["labels"]["alertname"] for a in api(prometheus_port, "/api/v1/alerts")["data"]["alerts"]}
        assert "ENTAccountFeedOverdue" not in names
    finally:
        for process in (prometheus, exporter):
            process.send_signal(signal.SIGINT)
        for process in (prometheus, exporter):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
