"""prometheus/alertmanager.yml on a real Alertmanager (the Debian package prometheus-alertmanager):
amtool accepts it and routes as documented, and each inhibition hides the alert that only repeats a
bigger one of the same platform, exporter and connector (or certificate) — and nothing else.

The inhibitions' `equal` labels must be on the alerts the rules produce: checked against the labels
the promtool unit tests (prometheus/tests/) expect of each alert."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.support import free_port, wait_until

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "prometheus" / "alertmanager.yml"
UNIT_TESTS = sorted((REPO / "prometheus" / "tests").glob("*.yml"))


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: install the Debian package `prometheus-alertmanager` "
            "(apt-get install prometheus-alertmanager; the README's test command does it)"
        )
    return path


def test_amtool_accepts_the_configuration():
    result = subprocess.run([binary("amtool"), "check-config", str(CONFIG)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 inhibit rules" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ({"alertname": "ENTWatchdog", "severity": "none"}, "ent-deadmansswitch-PLACEHOLDER"),
        ({"alertname": "ENTConnectorFailureRatioHigh", "severity": "critical"}, "ent-oncall-PLACEHOLDER"),
        ({"alertname": "ENTConnectorSilent", "severity": "warning"}, "ent-oncall-PLACEHOLDER"),
    ],
)
def test_amtool_routes(labels, receiver):
    result = subprocess.run(
        [
            binary("amtool"),
            "config",
            "routes",
            "test",
            f"--config.file={CONFIG}",
            f"--verify.receivers={receiver}",
            *(f"{name}={value}" for name, value in labels.items()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def expected_labels() -> dict[str, list[set[str]]]:
    """Per alert, the label names of each alert the promtool unit tests expect it to produce."""
    out: dict[str, list[set[str]]] = {}
    for path in UNIT_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                for alert in case.get("exp_alerts") or []:
                    out.setdefault(case["alertname"], []).append(set(alert["exp_labels"]) | {"alertname"})
    return out


def alert_names(matchers: list[str]) -> set[str]:
    names: set[str] = set()
    for matcher in matchers:
        match = re.fullmatch(r'alertname=~?"([^"]+)"', matcher)
        assert match, matcher
        names |= set(match.group(1).split("|"))
    return names


def test_inhibitions_compare_labels_the_alerts_have():
    """`equal` on a label neither alert has is always true (both empty): an inhibition on a label the
    rules drop would hide one platform's alert behind another's. `platform` is the external label
    Prometheus adds when it sends; every other label must be on the alerts (the unit tests show them)."""
    labels = expected_labels()
    for rule in yaml.safe_load(CONFIG.read_text())["inhibit_rules"]:
        wanted = set(rule["equal"]) - {"platform"}
        for name in alert_names(rule["source_matchers"]) | alert_names(rule["target_matchers"]):
            assert labels.get(name), f"{name}: no promtool test shows its labels"
            assert any(wanted <= found for found in labels[name]), f"{name}: lacks one of {sorted(wanted)}"


def api(port: int, path: str, body: object = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read()
    return json.loads(text) if text.strip() else None


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory):
    """The shipped configuration on a real Alertmanager, alone (no cluster), on a free port."""
    directory = tmp_path_factory.mktemp("alertmanager")
    port = free_port()
    log = (directory / "alertmanager.log").open("w")
    process = subprocess.Popen(
        [
            binary("prometheus-alertmanager"),
            f"--config.file={CONFIG}",
            f"--storage.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2).status == 200, 60)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


PLATFORM = {"platform": "occitanie", "job": "ent-exporter"}
A = {**PLATFORM, "instance": "exporter-a:9877"}
B = {**PLATFORM, "instance": "exporter-b:9877"}  # another exporter in the same Prometheus
OTHER_PLATFORM = {"platform": "bretagne", "job": "ent-exporter", "instance": "exporter-a:9877"}

# (name of the case, labels); the suffix of each name says what the inhibitions must do with it.
ALERTS = [
    # Source alerts: never hidden.
    ("imminent-a-pronote source", {"alertname": "ENTConnectorCertificateExpiryImminent", **A, "connector": "pronote"}),
    ("exporter-down-a source", {"alertname": "ENTExporterDown", **A}),
    ("database-down-b source", {"alertname": "ENTSourceDatabaseDown", **B}),
    ("failing-a-cas source", {"alertname": "ENTConnectorFailureRatioHigh", **A, "connector": "cas"}),
    (
        "probe-failing-a-ldap-tcp source",
        {"alertname": "ENTConnectorProbeFailing", **A, "connector": "ldap", "kind": "tcp"},
    ),
    # One certificate: the 14-day warning is hidden behind the imminent expiry...
    ("expiring-a-pronote hidden", {"alertname": "ENTConnectorCertificateExpiring", **A, "connector": "pronote"}),
    # ...not another connector's, another exporter's or another platform's certificate.
    ("expiring-a-gar shown", {"alertname": "ENTConnectorCertificateExpiring", **A, "connector": "gar"}),
    ("expiring-b-pronote shown", {"alertname": "ENTConnectorCertificateExpiring", **B, "connector": "pronote"}),
    (
        "expiring-other-pronote shown",
        {"alertname": "ENTConnectorCertificateExpiring", **OTHER_PLATFORM, "connector": "pronote"},
    ),
    # The exporter down hides its own collectors' and feeds' alerts, not another exporter's.
    ("stale-a hidden", {"alertname": "ENTCollectorStale", **A, "collector": "logins", "reason": "overdue"}),
    ("feed-overdue-a hidden", {"alertname": "ENTAccountFeedOverdue", **A, "feed": "directory"}),
    (
        "stale-other-platform shown",
        {"alertname": "ENTCollectorStale", **OTHER_PLATFORM, "collector": "logins", "reason": "overdue"},
    ),
    # The database down hides its exporter's silent connectors and stale collectors.
    ("silent-b-pronote hidden", {"alertname": "ENTConnectorSilent", **B, "connector": "pronote"}),
    ("stale-b hidden", {"alertname": "ENTCollectorStale", **B, "collector": "logins", "reason": "overdue"}),
    ("silent-a-pronote shown", {"alertname": "ENTConnectorSilent", **A, "connector": "pronote"}),
    # A connector failing hard hides its latency and low-traffic alerts; not another exporter's.
    ("latency-a-cas hidden", {"alertname": "ENTConnectorLatencyHigh", **A, "connector": "cas", "quantile": "0.95"}),
    ("lowtraffic-a-cas hidden", {"alertname": "ENTConnectorFailureRatioHighLowTraffic", **A, "connector": "cas"}),
    ("latency-b-cas shown", {"alertname": "ENTConnectorLatencyHigh", **B, "connector": "cas", "quantile": "0.95"}),
    # A probe failing hides the same probe's "unreliable" warning, not another kind's.
    (
        "unreliable-a-ldap-tcp hidden",
        {"alertname": "ENTConnectorProbesUnreliable", **A, "connector": "ldap", "kind": "tcp"},
    ),
    (
        "unreliable-a-ldap-bind shown",
        {"alertname": "ENTConnectorProbesUnreliable", **A, "connector": "ldap", "kind": "bind"},
    ),
]


def test_inhibitions_hide_what_repeats_a_bigger_alert_and_nothing_else(alertmanager):
    severity = {"ENTConnectorCertificateExpiring": "warning", "ENTConnectorSilent": "warning"}
    api(
        alertmanager,
        "/api/v2/alerts",
        [
            {"labels": {**labels, "case": case, "severity": severity.get(labels["alertname"], "critical")}}
            for case, labels in ALERTS
        ],
    )

    def states() -> dict[str, tuple[str, int]] | None:
        alerts = api(alertmanager, "/api/v2/alerts")
        found = {a["labels"]["case"]: (a["status"]["state"], len(a["status"]["inhibitedBy"])) for a in alerts}
        # The inhibitor learns of the source alerts asynchronously: wait until every one counts.
        hidden = sum(1 for case, _ in ALERTS if case.endswith(" hidden"))
        if len(found) < len(ALERTS) or sum(1 for state, _ in found.values() if state == "suppressed") < hidden:
            return None
        return found

    found = wait_until(states, 30, interval=0.2, message="the inhibitions to apply")
    expected = {case: ("suppressed", 1) if case.endswith(" hidden") else ("active", 0) for case, _ in ALERTS}
    assert found == expected
