"""Several platforms federated: the regional Prometheus configuration is valid, and the recording
rules that aggregate across platforms compute what their unit test expects (promtool)."""

from __future__ import annotations

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
    targets = [t for job in config["scrape_configs"] for group in job["static_configs"] for t in group["targets"]]
    assert targets == ["ent-exporter:9877"]  # one exporter per platform


def test_promtool_accepts_the_rules():
    result = promtool("check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_is_named_level_metric_operations_and_unit_tested():
    tested = "\n".join(path.read_text() for path in RULE_TESTS)
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                assert len(rule["record"].split(":")) == 3, rule["record"]
                assert f"expr: {rule['record']}" in tested, f"{rule['record']} has no unit test"


def test_the_rules_unit_tests_pass():
    result = promtool("test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
