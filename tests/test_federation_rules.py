"""Several platforms federated: the regional Prometheus configuration is valid, and the recording
rules that aggregate across platforms compute what their unit test expects (promtool)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

FEDERATION = Path(__file__).resolve().parent.parent / "prometheus" / "federation"
REGIONAL = FEDERATION / "prometheus-regional.yml"
RULES = sorted((FEDERATION / "rules").glob("*.yml"))
RULE_TESTS = sorted((FEDERATION / "tests").glob("*.test.yml"))


def promtool(*args: str) -> subprocess.CompletedProcess:
    executable = shutil.which("promtool")
    if executable is None:
        pytest.fail(
            "promtool is not installed: it comes with Prometheus (Debian: apt-get install prometheus);"
            " the README's test command installs it"
        )
    return subprocess.run([executable, *args], capture_output=True, text=True, timeout=120, cwd=FEDERATION)


def test_the_files_are_there():
    assert REGIONAL.exists() and RULES and RULE_TESTS


def test_promtool_accepts_the_regional_configuration():
    result = promtool("check", "config", str(REGIONAL))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_regional_configuration_labels_its_platform_and_writes_remotely():
    config = yaml.safe_load(REGIONAL.read_text())
    assert config["global"]["external_labels"]["platform"]
    assert config["remote_write"] and config["remote_write"][0]["url"].startswith("http")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for group in jobs["ent-exporter"]["static_configs"] for t in group["targets"]]
    assert targets == ["ent-exporter:9877"]  # one exporter per platform
    # Itself, for one series only: the oldest instant it stores (the dashboards' comparisons read it).
    assert set(jobs) == {"ent-exporter", "prometheus"}
    assert jobs["prometheus"]["metric_relabel_configs"] == [
        {"source_labels": ["__name__"], "regex": "prometheus_tsdb_lowest_timestamp_seconds", "action": "keep"}
    ]


def test_promtool_accepts_the_rules():
    result = promtool("check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def all_rules() -> list[dict]:
    return [rule for path in RULES for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def test_every_rule_is_named_level_metric_operations_and_unit_tested():
    tested = "\n".join(path.read_text() for path in RULE_TESTS)
    records = [rule["record"] for rule in all_rules() if "record" in rule]
    assert records
    for record in records:
        assert len(record.split(":")) == 3, record
        assert f"expr: {record}" in tested, f"{record} has no unit test"


def test_the_regional_prometheus_alerts_on_its_platform():
    """Issue 25: the regional Prometheus evaluates the mixin's alerts and sends them to an Alertmanager."""
    config = yaml.safe_load(REGIONAL.read_text())
    mixin_rules = sorted((FEDERATION.parent / "rules").glob("*.yml"))
    assert config["rule_files"] == ["../rules/*.yml"] and mixin_rules
    result = promtool("check", "config", str(REGIONAL))
    assert f"{len(mixin_rules)} rule files found" in result.stdout, result.stdout
    targets = [t for a in config["alerting"]["alertmanagers"] for c in a["static_configs"] for t in c["targets"]]
    assert targets == ["alertmanager:9093"]


def test_the_global_ruler_alerts_when_a_platform_vanishes():
    """Every alert of the global rules has a severity, a runbook section and promtool tests firing, not
    firing, and still firing hours after it started."""
    runbook = (FEDERATION.parent / "RUNBOOK.md").read_text()
    alerts = {rule["alert"]: rule for rule in all_rules() if "alert" in rule}
    assert "ENTPlatformMissing" in alerts
    cases: dict[str, list[tuple[int, bool]]] = {}
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], []).append((seconds(case["eval_time"]), bool(case["exp_alerts"])))
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["runbook_url"].endswith(f"RUNBOOK.md#{name.lower()}"), name
        assert f"\n## {name}\n" in runbook, f"{name}: no section in prometheus/RUNBOOK.md"
        firing = [t for t, fires in cases.get(name, []) if fires]
        quiet = [t for t, fires in cases.get(name, []) if not fires]
        assert firing and quiet, f"{name}: tested firing and not firing"
        assert max(firing) - min(firing) >= 6 * 3600, f"{name}: not tested still firing 6 hours on"
        assert any(t > max(firing) for t in quiet), f"{name}: not tested resolving"


def seconds(duration: str) -> int:
    """A promtool duration (1w190m, 6h5m, 80m) in seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    return sum(int(number) * units[unit] for number, unit in re.findall(r"(\d+)([smhdw])", duration))


def test_the_rules_unit_tests_pass():
    result = promtool("test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
