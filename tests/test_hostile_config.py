"""Bad configurations caught at check-config (and serve) in one message naming the file and the key:
duplicate YAML keys at any depth, custom metric names that collide with a built-in family (a
collector's, the probes', the process metrics'), by name or by one of its series' names."""

from __future__ import annotations

import pytest
import yaml

from tests.support import free_port, run_cli

CUSTOM = {"type": "gauge", "help": "A test gauge.", "sql": "SELECT count(*) AS value FROM {accounts}"}


def check(path) -> object:
    result = run_cli("check-config", "--config", str(path))
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return result


# -- duplicate keys --------------------------------------------------------------------------------


def test_a_duplicate_top_level_key_is_an_error_naming_file_line_and_key(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text('timezone: UTC\nsource:\n  dsn: "dbname=x"\ntimezone: Europe/Paris\n')
    result = check(path)
    assert result.returncode == 2
    assert (
        result.stderr == f"ent-exporter: {path}:4:1: not valid YAML (duplicate key timezone (first given at line 1))\n"
    )


def test_a_duplicate_nested_key_is_an_error_naming_file_line_and_key(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text(
        'source:\n  dsn: "dbname=x"\ncustom:\n  - metric: ent_custom_a\n    type: gauge\n    help: A.\n'
        "    sql: SELECT 1 AS value\n    type: counter\n"
    )
    result = check(path)
    assert result.returncode == 2
    assert result.stderr == f"ent-exporter: {path}:8:5: not valid YAML (duplicate key type (first given at line 5))\n"


def test_merge_keys_may_still_be_overridden(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text(
        "x-limits: &limits {max_series_per_family: 10, idle_series_days: 5}\n"
        'source: {dsn: "dbname=x"}\nlimits: {<<: *limits, idle_series_days: 7}\n'
    )
    from ent_exporter.config import load_yaml

    assert load_yaml(path.read_text())["limits"] == {"max_series_per_family": 10, "idle_series_days": 7}


def test_a_duplicate_key_in_the_web_configuration_is_an_error_too(tmp_path):
    config = tmp_path / "c.yml"
    config.write_text(yaml.safe_dump({"source": {"dsn": "dbname=x"}, "state_dir": str(tmp_path / "state")}))
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  alice: x\n  alice: y\n")
    result = run_cli("check-config", "--config", str(config), "--web.config.file", str(web))
    assert result.returncode == 2
    assert result.stderr == f"ent-exporter: {web}:3:3: not valid YAML (duplicate key alice (first given at line 2))\n"


# -- metric name collisions ---------------------------------------------------------------------------

COLLISIONS = {
    # A collector's family, by its name (a histogram) and by a counter's name without _total.
    "ent_connector_request_duration_seconds": "is a built-in metric (collector connectors)",
    "ent_logins": "collides with the built-in metric ent_logins_total (collector logins)",
    # An opt-in collector's, even though it does not run.
    "ent_class_unique_visitors": "is a built-in metric (collector class_visitors)",
    # The probes' (gauge, histogram, counter).
    "ent_connector_probe_success": "is a built-in metric (probes)",
    "ent_connector_probe_duration_seconds": "is a built-in metric (probes)",
    "ent_connector_probes": "collides with the built-in metric ent_connector_probes_total (probes)",
    # The process metrics'.
    "process_open_fds": "is a built-in metric (process metrics)",
    "process_cpu_seconds": "collides with the built-in metric process_cpu_seconds_total (process metrics)",
}


@pytest.mark.parametrize("metric", sorted(COLLISIONS))
def test_a_custom_metric_named_like_a_built_in_is_refused_at_check_config(tmp_path, metric):
    path = tmp_path / "c.yml"
    path.write_text(yaml.safe_dump({"source": {"dsn": "dbname=x"}, "custom": [{"metric": metric, **CUSTOM}]}))
    result = check(path)
    assert result.returncode == 2
    assert result.stderr == (
        f"ent-exporter: {path}: invalid configuration\n"
        f"  custom.0.metric: {metric} {COLLISIONS[metric]}: choose another name\n"
    )


def test_a_custom_counter_whose_series_would_collide_is_refused(tmp_path):
    """A counter ent_connector_probe_success_total takes ent_connector_probe_success (its family name)."""
    path = tmp_path / "c.yml"
    entry = {
        **CUSTOM,
        "metric": "ent_connector_probe_success_total",
        "type": "counter",
        "events": "login_events",
        "watermark": "event_id",
        "sql": "SELECT count(*) AS value FROM {events}",
    }
    path.write_text(
        yaml.safe_dump({"source": {"dsn": "dbname=x"}, "custom": [{"metric": "ent_custom_ok", **CUSTOM}, entry]})
    )
    result = check(path)
    assert result.returncode == 2
    assert result.stderr == (
        f"ent-exporter: {path}: invalid configuration\n  custom.1.metric: ent_connector_probe_success_total"
        " collides with the built-in metric ent_connector_probe_success (probes): choose another name\n"
    )


@pytest.mark.parametrize("metric", ["ent_connector_probe_success", "process_open_fds"])
def test_serve_refuses_the_collision_in_one_message_not_a_traceback(tmp_path, metric):
    path = tmp_path / "c.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "source": {"dsn": "host=127.0.0.1 port=1 dbname=x"},
                "state_dir": str(tmp_path / "state"),
                "listen": {"address": "127.0.0.1", "port": free_port()},
                "custom": [{"metric": metric, **CUSTOM}],
            }
        )
    )
    result = run_cli("serve", "--config", str(path), timeout=60)
    assert result.returncode == 2
    assert result.stderr == (
        f"ent-exporter: {path}: invalid configuration\n"
        f"  custom.0.metric: {metric} {COLLISIONS[metric]}: choose another name\n"
    )
