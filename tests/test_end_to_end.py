"""End to end with real servers: the demo exporter, a real Prometheus with the project's config and rules,
every dashboard panel query evaluated through Prometheus' HTTP API, and a connector alert firing."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.support import REPO, free_port, require_binary, wait_until
from tests.test_dashboards import all_dashboards, iter_panels, panel_queries, substitute

PROMETHEUS = REPO / "prometheus"
SCRAPE_INTERVAL = "1s"

# Concrete values for Grafana's variables, as a user picking them would produce.
BUILTINS = {
    "__rate_interval": "1m",
    "__range": "10m",
    "__interval": "15s",
    "__range_s": "600",
    "__interval_ms": "15000",
    "instance": ".*",
}


# Per-structure breakdowns that are opt-in (series budget, `breakdowns`) and that the demo leaves off, as the
# default configuration does: visits per visitor by profile, and the weekday x hour grid, exist for structure
# "all" only. A panel reading them must be empty for an establishment (no wrong number, no platform figure under
# its name; its description says how to enable them) and have data for "All".
OPT_IN_PER_STRUCTURE = re.compile(
    r'ent_visits_per_visitor\{[^}]*profile!="all"'
    r'|^sum by \(weekday, hour\) \(ent_logins_by_hour\{structure="\$structure", [^}]*weekday!="all", hour!="all"\}\)$'
)


def api(port: int, path: str, **params) -> dict:
    url = f"http://127.0.0.1:{port}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def shortened_rules(source: Path, target_dir: Path) -> list[str]:
    """The project's rule files with every `for:` cut to a few seconds, so alerts can fire in a test."""
    paths = []
    for rule_file in sorted(source.rglob("*.yml")) + sorted(source.rglob("*.yaml")):
        document = yaml.safe_load(rule_file.read_text())
        for group in document.get("groups", []):
            group["interval"] = SCRAPE_INTERVAL
            for rule in group.get("rules", []):
                if "for" in rule:
                    rule["for"] = "2s"
        copy = target_dir / rule_file.name
        copy.write_text(yaml.safe_dump(document, sort_keys=False))
        paths.append(str(copy))
    return paths


def prometheus_config(target: str, rule_files: list[str]) -> dict:
    """The project's prometheus.yml, pointed at the test's exporter, with short intervals and no Alertmanager."""
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config["global"] = {
        **config.get("global", {}),
        "scrape_interval": SCRAPE_INTERVAL,
        "evaluation_interval": SCRAPE_INTERVAL,
    }
    config["rule_files"] = rule_files
    config.pop("alerting", None)
    jobs = [job for job in config["scrape_configs"] if "ent" in job["job_name"]]
    assert jobs, "prometheus.yml has no job scraping the exporter"
    job = jobs[0]
    job["scrape_interval"] = SCRAPE_INTERVAL
    job["scrape_timeout"] = SCRAPE_INTERVAL
    job["static_configs"] = [{"targets": [target], "labels": job["static_configs"][0].get("labels", {})}]
    job.pop("file_sd_configs", None)
    config["scrape_configs"] = [job]
    return config


# The demo's clock pinned where a wall-clock run used to find missing series: early in the
# morning (before anyone of a structure and profile logged in today; here the Sunday of the
# autumn DST change) and Monday 00:05 (a new day, a new ISO week and a new month at once).
PINNED = {
    "early-morning": "2026-10-25T06:40:00+01:00",
    "monday-0005": "2027-03-01T00:05:00+01:00",
}


@contextlib.contextmanager
def running_stack(work: Path, now: str):
    """The demo exporter with its clock started at ``now`` and a Prometheus scraping it every second."""
    exporter_port, prometheus_port = free_port(), free_port()
    state_dir = work / "demo"
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ent_exporter.cli",
            "--log-level",
            "WARNING",
            "demo",
            "--state-dir",
            str(state_dir),
            "--port",
            str(exporter_port),
            "--scale",
            "0.3",
            "--days",
            "35",
            "--now",
            now,
        ],
        cwd=REPO,
        stdout=(work / "demo.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    rules = work / "rules"
    rules.mkdir()
    config = prometheus_config(f"127.0.0.1:{exporter_port}", shortened_rules(PROMETHEUS / "rules", rules))
    (work / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    prometheus = subprocess.Popen(
        [
            require_binary("prometheus"),
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
            "--log.level=warn",
        ],
        stdout=(work / "prometheus.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:

        def exporter_scraped() -> bool:
            targets = api(prometheus_port, "/api/v1/targets")["data"]["activeTargets"]
            return bool(targets) and all(t["health"] == "up" for t in targets)

        wait_until(exporter_scraped, 120, message="Prometheus scraping the demo")
        # Every collector of the demo has run once and been scraped a few times.
        wait_until(
            lambda: len(api(prometheus_port, "/api/v1/query", query="ent_logins_by_hour")["data"]["result"]),
            120,
            message="window collectors scraped",
        )
        time.sleep(8)
        yield {
            "prometheus": prometheus_port,
            "exporter": exporter_port,
            "state_dir": state_dir,
            "work": work,
            "now": now,
        }
    finally:
        for process in (prometheus, demo):
            process.send_signal(signal.SIGINT)
        for process in (prometheus, demo):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The stack early in the morning: every test of this module runs against it."""
    with running_stack(tmp_path_factory.mktemp("e2e"), PINNED["early-morning"]) as running:
        yield running


@pytest.fixture(scope="module")
def stack_monday(tmp_path_factory):
    """The stack at Monday 00:05, the first minutes of a day, a week and a month."""
    with running_stack(tmp_path_factory.mktemp("e2e-monday"), PINNED["monday-0005"]) as running:
        yield running


def variable_values(port: int) -> dict[str, str]:
    """Picks values the way a user would: a real structure, profile, connector and app from the data."""

    def first(metric: str, label: str, exclude: tuple[str, ...] = ()) -> str:
        result = api(port, "/api/v1/series", **{"match[]": metric})["data"]
        values = sorted({s[label] for s in result if label in s and s[label] not in exclude})
        assert values, f"no {label} in {metric}"
        return values[0]

    return {
        **BUILTINS,
        "structure": first("ent_structure_info", "structure"),
        "profile": "Student",
        "connector": "pronote",
        "app": first("ent_app_accesses_total", "app", ("unknown",)),
        "class": first("ent_class_accounts", "class"),
        "datasource": "ent-prometheus",
        "kind": first("ent_structure_info", "kind"),
        "platform": ".*",  # one Prometheus, no federation: no platform label
    }


@pytest.mark.parametrize("fixture", ["stack", "stack_monday"], ids=list(PINNED))
def test_every_panel_query_returns_data(request, fixture):
    stack = request.getfixturevalue(fixture)
    # The pinned instant is a quiet one: some structure and profile has nobody today, and says 0.
    quiet = api(stack["prometheus"], "/api/v1/query", query='count(ent_unique_visitors{period="day"} == 0)')
    assert quiet["data"]["result"] and float(quiet["data"]["result"][0]["value"][1]) > 0, quiet
    queries = panel_queries()
    assert len(queries) >= 20, "the dashboards should have been generated (grafana/dashboards/<lang>/*.json)"
    values = variable_values(stack["prometheus"])
    empty, failed, opt_in, opt_in_checked = [], [], [], []
    asked = set()
    for dashboard, panel, expr in queries:
        concrete = substitute(expr, values)
        if concrete in asked:  # the same query in the other language
            continue
        asked.add(concrete)
        if OPT_IN_PER_STRUCTURE.search(expr):
            if api(stack["prometheus"], "/api/v1/query", query=concrete)["data"]["result"]:
                opt_in.append(f"{dashboard} / {panel}: {concrete}")
            opt_in_checked.append(concrete)
            concrete = substitute(expr, {**values, "structure": "all"})
        if " offset " in expr:
            # A comparison with the previous period or a year earlier: the demo's history is minutes
            # long, so it may rightly be empty; tests/test_panels_history.py checks these on a backfilled
            # year. Prometheus must still accept it.
            api(stack["prometheus"], "/api/v1/query", query=concrete)
            continue
        if 'period="month_a_year_earlier"' in expr and ") > 0)" in expr:
            # The change over a year of a month to date: nothing when the same days a year earlier had nobody
            # (no percent of nothing); tests/test_history_backfill.py checks it on two years of history.
            api(stack["prometheus"], "/api/v1/query", query=concrete)
            continue
        if ":increase1d" in expr:
            # A daily history rule (group interval 1 h) may not have recorded yet on a stack minutes old: wait
            # for it, as test_recording_rules_produce_series does.
            wait_until(
                lambda query=concrete: api(stack["prometheus"], "/api/v1/query", query=query)["data"]["result"],
                120,
                message=f"{dashboard} / {panel}: the history rule's first evaluation",
            )
        try:
            answer = api(stack["prometheus"], "/api/v1/query", query=concrete)
        except urllib.error.HTTPError as error:
            failed.append(f"{dashboard} / {panel}: {concrete}: {error.read().decode()}")
            continue
        if not answer["data"]["result"]:
            empty.append(f"{dashboard} / {panel}: {concrete}")
    assert not failed, "queries Prometheus rejected:\n" + "\n".join(failed)
    assert opt_in_checked and not opt_in, "opt-in per-structure series published by default:\n" + "\n".join(opt_in)
    # Panels that hide intervals without enough calls (as the alerts do) say "no calls" instead of a
    # 0/0 ratio: empty is right for them when the connector has too few calls at this hour.
    quiet = api(
        stack["prometheus"],
        "/api/v1/query",
        query='sum(rate(ent_connector_requests_total{connector="pronote"}[5m])) * 60 < 2',
    )["data"]["result"]
    no_calls = {
        (d["title"], p["title"])
        for d in all_dashboards().values()
        for p in iter_panels(d)
        if p.get("fieldConfig", {}).get("defaults", {}).get("noValue") in ("no calls", "aucun appel")
    }
    if quiet:
        empty = [line for line in empty if tuple(line.split(": ", 1)[0].split(" / ", 1)) not in no_calls]
    assert not empty, "queries that returned no data:\n" + "\n".join(empty)


def test_recording_rules_produce_series(stack):
    groups = api(stack["prometheus"], "/api/v1/rules", type="record")["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    # A rule that compares with a week before (offset) has nothing to say on a stack minutes old
    # (connector:...:total_last_busy): it must evaluate without error; every other one must give series.
    names = [rule["name"] for rule in rules if "offset" not in rule["query"]]
    assert names, "no recording rules loaded"
    wait_until(
        lambda: all(api(stack["prometheus"], "/api/v1/query", query=name)["data"]["result"] for name in names),
        60,
        message="every recording rule has a series",
    )
    later = api(stack["prometheus"], "/api/v1/rules", type="record")["data"]["groups"]
    assert {rule["name"]: rule["health"] for group in later for rule in group["rules"]} == {
        rule["name"]: "ok" for rule in rules
    }


def test_the_flaky_connector_failing_hard_fires_its_alert(stack):
    port = stack["prometheus"]

    def firing() -> list[dict]:
        alerts = api(port, "/api/v1/alerts")["data"]["alerts"]
        return [
            a
            for a in alerts
            if a["state"] == "firing"
            and a["labels"].get("connector") == "pronote"
            and "Failure" in a["labels"]["alertname"]
        ]

    assert not firing(), "the connector alert fires before the outage"
    (stack["state_dir"] / "outage-pronote").touch()
    try:
        # Instant counters are collected every minute: wait for one cycle, then the rule's window.
        alerts = wait_until(firing, 200, interval=2, message="the pronote failure alert firing")
    finally:
        (stack["state_dir"] / "outage-pronote").unlink()
    alert = alerts[0]
    assert alert["labels"]["severity"] in ("critical", "warning")
    assert {"summary", "description", "runbook_url"} <= set(alert["annotations"])


def test_a_probe_target_going_down_fires_the_probe_alert_which_resolves_when_it_comes_back(stack):
    """The demo probes its stand-in Pronote service every 5 s: an outage file makes it answer 503,
    ENTConnectorProbeFailing fires on the real Prometheus (rules as generated, `for` shortened),
    and resolves once the file is gone. Its dead-port probe (gar) is down from the start."""
    port = stack["prometheus"]

    def probe_alerts(connector: str, state: str | None = None) -> list[dict]:
        alerts = api(port, "/api/v1/alerts")["data"]["alerts"]
        return [
            a
            for a in alerts
            if a["labels"]["alertname"] == "ENTConnectorProbeFailing"
            and a["labels"].get("connector") == connector
            and (state is None or a["state"] == state)
        ]

    def value(query: str) -> float | None:
        result = api(port, "/api/v1/query", query=query)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    # One probe down out of the box: the dead port, refused.
    gar = wait_until(lambda: probe_alerts("gar", "firing"), 120, interval=2, message="the gar probe alert firing")
    assert gar[0]["labels"]["kind"] == "tcp"
    assert value('ent_connector_probe_failures_total{connector="gar", reason="refused"}') >= 1
    # Pronote's probe is up (an earlier test's outage, if any, is over) with its certificate's expiry.
    wait_until(
        lambda: value('ent_connector_probe_success{connector="pronote"}') == 1 and not probe_alerts("pronote"),
        120,
        interval=2,
        message="the pronote probe up, no alert",
    )
    assert value('ent_connector_certificate_expiry_timestamp_seconds{connector="pronote"} - time()') > 80 * 86400
    failures_before = value('ent_connector_probe_failures_total{connector="pronote", reason="status"}')

    outage = stack["state_dir"] / "outage-pronote"
    outage.touch()
    try:
        alerts = wait_until(
            lambda: probe_alerts("pronote", "firing"), 120, interval=1, message="the pronote probe alert firing"
        )
    finally:
        outage.unlink()
    alert = alerts[0]
    assert alert["labels"]["severity"] == "critical" and alert["labels"]["kind"] == "http"
    assert {"summary", "description", "runbook_url"} <= set(alert["annotations"])
    assert alert["annotations"]["runbook_url"].endswith("#entconnectorprobefailing")
    assert value('ent_connector_probe_failures_total{connector="pronote", reason="status"}') > failures_before

    wait_until(lambda: not probe_alerts("pronote"), 120, interval=1, message="the pronote probe alert resolved")
    assert value('ent_connector_probe_success{connector="pronote"}') == 1
    assert probe_alerts("gar", "firing"), "the dead port's alert resolved on its own"
