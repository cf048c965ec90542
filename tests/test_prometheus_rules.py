"""Prometheus configuration, rules and Alertmanager: promtool accepts them, every alert is
unit-tested firing and not firing (prometheus/tests/), and the rules follow the
monitoring-mixin conventions."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.support import require_binary
from tests.test_dashboards import allowed_series_names, metric_names

REPO = Path(__file__).resolve().parent.parent
PROMETHEUS = REPO / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
UNIT_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
REQUIRED_ALERTS = {
    "ENTConnectorFailureRatioHigh",  # connector failure ratio above a threshold
    "ENTConnectorSilent",  # no requests where there usually are
    "ENTConnectorLatencyHigh",  # p95 latency high
    "ENTExporterDown",
    "ENTCollectorStale",  # no success for twice its cadence
    "ENTSourceDatabaseDown",
    "ENTConnectorProbeFailing",  # a connector's active probes fail
    "ENTConnectorCertificateExpiring",  # certificate under 14 days
    "ENTConnectorCertificateExpiryImminent",  # certificate under 3 days
    "ENTConnectorFailureRatioHighLowTraffic",  # the failure ratio over an hour where the 5-minute guard is not met
    "ENTWatchdog",  # the dead man's switch
}
SEVERITIES = {"critical", "warning", "info", "none"}
ALWAYS_FIRING = {"ENTWatchdog"}  # by design: never tested "not firing"


def promtool() -> str:
    return require_binary("promtool")


def run_promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=300, cwd=REPO)


def rules() -> list[dict]:
    return [
        rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]
    ]


def alerts() -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for rule in rules():
        if "alert" in rule:
            out.setdefault(rule["alert"], []).append(rule)
    return out


def test_promtool_check_config():
    result = run_promtool("check", "config", "prometheus/prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    # The config loads the rule files (relative to itself): the same ones checked below.
    assert f"{len(RULE_FILES)} rule files found" in result.stdout


def test_promtool_check_rules():
    assert RULE_FILES, "no rule files in prometheus/rules"
    result = run_promtool("check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests():
    assert UNIT_TESTS, "no promtool tests in prometheus/tests"
    result = run_promtool("test", "rules", *map(str, UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout


def test_every_alert_is_tested_firing_and_not_firing():
    firing, quiet = set(), set()
    for path in UNIT_TESTS:
        document = yaml.safe_load(path.read_text())
        for test in document["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = set(alerts())
    assert names - firing == set(), f"alerts never tested firing: {sorted(names - firing)}"
    assert names - quiet - ALWAYS_FIRING == set(), f"alerts never tested not firing: {sorted(names - quiet)}"


def duration_seconds(duration: str) -> int:
    """A promtool duration (1w190m, 6h5m, 80m) in seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    return sum(int(number) * units[unit] for number, unit in re.findall(r"(\d+)([smhdw])", duration))


def test_every_alert_is_tested_for_how_long_it_keeps_firing():
    """Issue 25: not only when an alert starts. In one test (one set of input series) some alert of
    each rule (one label set) is expected firing at two instants at least, and then gone once its
    cause is (the Watchdog, which never resolves, excepted)."""
    kept, resolved = set(), set()
    for path in UNIT_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            # (alert name, its labels) -> the instants it is expected firing; alert name -> every instant tested.
            firing: dict[tuple[str, frozenset], set[int]] = {}
            tested: dict[str, dict[int, set[frozenset]]] = {}
            for case in test.get("alert_rule_test", []):
                moment = duration_seconds(case["eval_time"])
                found = {frozenset(a["exp_labels"].items()) for a in case.get("exp_alerts") or []}
                tested.setdefault(case["alertname"], {}).setdefault(moment, set()).update(found)
                for labels in found:
                    firing.setdefault((case["alertname"], labels), set()).add(moment)
            for (name, labels), moments in firing.items():
                if len(moments) >= 2:
                    kept.add(name)
                    later = [m for m, found in tested[name].items() if m > max(moments) and labels not in found]
                    if later:
                        resolved.add(name)
    names = set(alerts())
    assert names - kept == set(), f"alerts never tested still firing later: {sorted(names - kept)}"
    unresolved = names - resolved - ALWAYS_FIRING
    assert unresolved == set(), f"alerts never tested resolving: {sorted(unresolved)}"


def test_required_alerts_exist_with_severity_and_annotations():
    defined = alerts()
    assert REQUIRED_ALERTS <= set(defined), f"missing: {sorted(REQUIRED_ALERTS - set(defined))}"
    runbook = (PROMETHEUS / "RUNBOOK.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
        for line in runbook.splitlines()
        if line.startswith("## ")
    }
    for name, variants in defined.items():
        assert re.fullmatch(r"ENT[A-Z][A-Za-z0-9]+", name), f"{name}: CamelCase with the ENT prefix"
        for rule in variants:
            assert rule["labels"]["severity"] in SEVERITIES, name
            annotations = rule["annotations"]
            assert {"summary", "description", "runbook_url"} <= set(annotations), name
            assert annotations["runbook_url"].endswith(f"RUNBOOK.md#{name.lower()}"), name
            assert "for" in rule, f"{name}: no `for`: one bad evaluation would page"
        assert name.lower() in anchors, f"{name}: no section in prometheus/RUNBOOK.md"


def test_runbook_table_matches_the_rules():
    """The runbook's summary table states each alert's severity and delay as the rules do."""
    runbook = (PROMETHEUS / "RUNBOOK.md").read_text()
    for name, variants in alerts().items():
        row = re.search(rf"^\| `{name}` \| (\w+) \| (.+) \| (\w+) \|$", runbook, re.M)
        assert row, f"{name}: no row in the runbook's table"
        severity, text, delay = row.groups()
        assert severity == variants[0]["labels"]["severity"], name
        assert delay == variants[0]["for"], name


def test_alert_semantics_the_issue_asks_for():
    """Issue 14: the failure alert keeps firing when traffic drops; latency has a traffic guard; Silent does
    not compare with exactly one week earlier (DST); a never-succeeded collector is caught; the Watchdog
    always fires with severity none. Issue 25: Silent keeps firing while the connector is dead."""
    defined = alerts()
    (failure,) = defined["ENTConnectorFailureRatioHigh"]
    assert failure.get("keep_firing_for")
    (latency,) = defined["ENTConnectorLatencyHigh"]
    assert "connector:ent_connector_requests:rate5m * 300 >=" in latency["expr"]
    (silent,) = defined["ENTConnectorSilent"]
    # Issue 25: it fires until calls come back, from a memory of the connector being busy when its calls
    # stopped (a recording rule carrying its own last value), not from "busy in the hour before", which
    # stops being true an hour into the silence.
    memory = "connector:ent_connector_requests:total_last_busy"
    assert memory in silent["expr"] and "offset" not in silent["expr"]
    (remember,) = [rule for rule in rules() if rule.get("record") == memory]
    assert "offset 1w" not in remember["expr"] and "offset 167h" in remember["expr"]
    assert f"last_over_time({memory}[1h])" in remember["expr"]
    stale = {rule["labels"]["reason"]: rule for rule in defined["ENTCollectorStale"]}
    assert set(stale) == {"overdue", "never_succeeded"}
    assert "unless on (job, instance, collector)" in stale["never_succeeded"]["expr"]
    assert "2 *" not in stale["overdue"]["expr"]
    (watchdog,) = defined["ENTWatchdog"]
    assert watchdog["expr"].strip() == "vector(1)" and watchdog["labels"]["severity"] == "none"


def test_recording_rules_follow_level_metric_operations():
    records = [rule["record"] for rule in rules() if "record" in rule]
    assert records
    for name in records:
        assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", name), f"{name}: not level:metric:operations"
    # What the dashboards compute again and again.
    assert {
        "connector:ent_connector_requests:success_ratio_rate5m",
        "connector:ent_connector_requests:failure_ratio_rate5m",
        "connector_quantile:ent_connector_request_duration_seconds:histogram_quantile_rate5m",
        "structure:ent_logins:rate5m",
    } <= set(records)


def test_rules_keep_each_exporter_apart():
    """Issue 25: several exporters (platforms) may feed one Prometheus. Every aggregation and every
    vector match of the rules keeps job and instance, so one platform's failures are not diluted by
    another's, and a structure code (unique within one platform only) is not merged across them."""
    for rule in rules():
        name = rule.get("alert") or rule.get("record")
        for clause in re.findall(r"\b(?:by|on) \(([^)]*)\)", rule["expr"]):
            labels = {label.strip() for label in clause.split(",")}
            assert {"job", "instance"} <= labels, f"{name}: ({clause}) drops job or instance"
        # An aggregation without by () before its argument would merge every exporter.
        assert not re.findall(r"\b(?:sum|max|min|avg|count|topk|bottomk)\s*\(", rule["expr"]), name


def test_rule_expressions_use_only_exported_metrics():
    allowed = allowed_series_names()
    unknown = {
        rule.get("alert") or rule.get("record"): sorted(metric_names(rule["expr"]) - allowed)
        for rule in rules()
        if metric_names(rule["expr"]) - allowed
    }
    assert not unknown, unknown


def test_prometheus_scrapes_the_exporter_and_sends_to_alertmanager():
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    exporter = jobs["ent-exporter"]
    assert [t for c in exporter["static_configs"] for t in c["targets"]] == ["exporter:9877"]
    # The alerts select the exporter by this job name.
    for rule in rules():
        for selector in re.findall(r'job="([^"]+)"', rule["expr"]):
            assert selector == "ent-exporter", rule
    targets = [t for a in config["alerting"]["alertmanagers"] for c in a["static_configs"] for t in c["targets"]]
    assert targets == ["alertmanager:9093"]


def test_alertmanager_config():
    config = yaml.safe_load((PROMETHEUS / "alertmanager.yml").read_text())
    receivers = {r["name"] for r in config["receivers"]}
    routes = [config["route"], *config["route"].get("routes", [])]
    assert all(route.get("receiver", config["route"]["receiver"]) in receivers for route in routes)
    severities = {
        m.split("=")[1].strip('"') for r in routes[1:] for m in r.get("matchers", []) if m.startswith("severity=")
    }
    assert {"critical", "warning"} <= severities
    # The receiver is a placeholder, and says so.
    text = (PROMETHEUS / "alertmanager.yml").read_text()
    assert "PLACEHOLDER" in text and any("PLACEHOLDER" in name for name in receivers)
    # Inhibitions name alerts that exist.
    names = set(alerts())
    for rule in config.get("inhibit_rules", []):
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            match = re.fullmatch(r'alertname=~?"([^"]+)"', matcher)
            assert match, matcher
            assert set(match.group(1).split("|")) <= names, matcher
    amtool = shutil.which("amtool")
    if amtool:  # the Debian package prometheus-alertmanager; not required
        result = subprocess.run(
            [amtool, "check-config", str(PROMETHEUS / "alertmanager.yml")], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr
