"""The Grafana dashboards: generated JSON in sync with the grafanalib sources, every panel
described, with a unit and thresholds, every query on metrics the exporter exports (or the
recording rules define) and valid PromQL once Grafana's variables are substituted.

The helpers at the top (EXPORTED_METRICS, panel_queries, substitute, metric_names) are
meant to be reused: by the end-to-end test, which evaluates every panel query through a
real Prometheus, and by anything that compares the exporter's live /metrics with the
metric names the dashboards rely on.
"""

from __future__ import annotations

import difflib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ent_exporter.mixin.panels import shifted
from tests.support import require_binary

REPO = Path(__file__).resolve().parent.parent
DASHBOARDS = REPO / "grafana" / "dashboards"
RULES = REPO / "prometheus" / "rules"
GENERATE = "python -m ent_exporter.mixin.generate"
DATASOURCE_UID = "ent-prometheus"

# -- what the exporter exports (design.md's metric table and the exporter's self-metrics) ---
# The probes' details, exported for an operator's own queries (the chain's leaf, the last run, the phases, the
# HTTP status, the TLS version): no panel draws them.
PROBE_DETAIL_METRICS: frozenset[str] = frozenset(
    {
        "ent_connector_leaf_certificate_expiry_timestamp_seconds",
        "ent_connector_probe_last_run_timestamp_seconds",
        "ent_connector_probe_phase_duration_seconds",
        "ent_connector_probe_http_status_code",
        "ent_connector_probe_tls_version_info",
    }
)
# The one list of metric families the dashboards and rules may use. Histograms (and gauge
# histograms) are listed by family name; their series are <name>_bucket/_count/_sum.
EXPORTED_METRICS: frozenset[str] = frozenset(
    {
        "ent_logins_total",
        "ent_app_accesses_total",
        "ent_account_activations_total",
        "ent_connector_requests_total",
        "ent_connector_request_duration_seconds",
        "ent_unique_visitors",
        "ent_visits_per_visitor",
        "ent_accounts",
        "ent_account_activation_ratio",
        "ent_inactive_accounts",
        "ent_user_logins_30d",
        "ent_logins_by_hour",
        "ent_structure_info",
        "ent_exporter_collector_last_success_timestamp_seconds",
        "ent_exporter_collector_duration_seconds",
        "ent_exporter_collector_failures_total",
        "ent_exporter_collector_cadence_seconds",
        "ent_exporter_source_up",
        "ent_exporter_series",
        "ent_exporter_folded_series_total",
        # The exporter's own active probes of the connectors (probes: in its configuration).
        "ent_connector_probes_total",
        "ent_connector_probe_failures_total",
        "ent_connector_probe_duration_seconds",
        "ent_connector_probe_success",
        "ent_connector_certificate_expiry_timestamp_seconds",
        *PROBE_DETAIL_METRICS,
        # prometheus-client's process collector, published by ent_exporter/engine/process_metrics.py.
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        # Account feeds (issue 16).
        "ent_account_feed_last_run_timestamp_seconds",
        "ent_account_feed_last_success_timestamp_seconds",
        "ent_account_feed_last_run_success",
        "ent_account_feed_last_run_duration_seconds",
        "ent_account_feed_last_run_rows",
        # Learning progress (issue 16; Moodle's course_progress).
        "ent_course_enrolled_users",
        "ent_course_completed_users",
        "ent_course_completion_ratio",
        "ent_course_activity_completions",
        "ent_course_badges_issued",
        # Classes (issue 16; opt-in collectors).
        "ent_class_unique_visitors",
        "ent_class_accounts",
        "ent_class_inactive_accounts",
    }
)
# Exported, but no panel needs them.
UNDRAWN_METRICS: frozenset[str] = frozenset({"process_virtual_memory_bytes", *PROBE_DETAIL_METRICS})
HISTOGRAMS: frozenset[str] = frozenset(
    {
        "ent_connector_request_duration_seconds",
        "ent_user_logins_30d",
        "ent_connector_probe_duration_seconds",
        "ent_connector_probe_phase_duration_seconds",
    }
)
# Series Prometheus itself makes: scrape health and alert state; from its self-scrape (job "prometheus"),
# the oldest instant it stores (a comparison is shown only when its whole window is stored).
PROMETHEUS_SERIES: frozenset[str] = frozenset(
    {
        "prometheus_tsdb_lowest_timestamp_seconds",
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "ALERTS",
        "ALERTS_FOR_STATE",
    }
)
# Grafana variables the dashboards' queries may use, with a value of each for static checks
# (the end-to-end test picks real ones from the data).
EXAMPLE_VALUES: dict[str, str] = {
    "structure": "0750001A",
    "profile": "Student",
    "connector": "pronote",
    "app": "pronote",
    "class": "6A",
    "instance": "exporter:9877",
    "platform": "occitanie",
    "kind": "college",
    "__rate_interval": "2m",
    "__range": "7d",
    "__interval": "1h",
    "__range_s": "604800",
    "__interval_ms": "3600000",
}
# What Grafana substitutes when "All" is selected (the custom all values of the variables).
ALL_VALUES: dict[str, str] = {
    **EXAMPLE_VALUES,
    "structure": "all",
    "profile": ".*",
    "connector": ".*",
    "app": ".*",
    "instance": ".*",
    "platform": ".*",
    "kind": ".*",
    "class": ".*",
}


def exported_series_names() -> set[str]:
    """Every series name the exporter exposes: families, histograms expanded."""
    names = set(EXPORTED_METRICS - HISTOGRAMS)
    for family in HISTOGRAMS:
        names |= {f"{family}_bucket", f"{family}_count", f"{family}_sum"}
    return names


def recording_rule_names() -> set[str]:
    names = set()
    for path in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text()).get("groups", []):
            names |= {rule["record"] for rule in group.get("rules", []) if "record" in rule}
    return names


def allowed_series_names() -> set[str]:
    return exported_series_names() | recording_rule_names() | set(PROMETHEUS_SERIES)


_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
    "atan2",
}


def metric_names(expr: str) -> set[str]:
    """The metric (series) names a PromQL expression selects; Grafana variables allowed."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"'(?:[^'\\]|\\.)*'", "''", text)
    text = re.sub(r"`[^`]*`", "``", text)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{\w+(?::\w+)?\}|\$\w+", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w:.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        name, call = match.groups()
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


# -- the dashboards ------------------------------------------------------------------------

LANGUAGES = ("fr", "en")  # grafana/dashboards/<lang>/*.json, one model in each language
STEMS = {"overview", "establishment", "applications", "connectors", "exporter", "regional", "courses", "classes"}


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*/*.json"))


def load_dashboards(lang: str = "en") -> dict[str, dict]:
    """{file stem: dashboard model} of every generated dashboard in one language (English by default:
    the sources' language, whose titles the other tests name)."""
    out = {}
    for path in sorted((DASHBOARDS / lang).glob("*.json")):
        data = json.loads(path.read_text())
        out[path.stem] = data.get("dashboard", data)
    return out


def all_dashboards() -> dict[str, dict]:
    """{"<lang>/<stem>": dashboard model} of every generated dashboard in every language."""
    return {f"{lang}/{stem}": model for lang in LANGUAGES for stem, model in load_dashboards(lang).items()}


def iter_panels(dashboard: dict) -> Iterator[dict]:
    """Every panel, rows and panels nested in (collapsed) rows included."""
    stack = list(dashboard.get("panels", [])) + [p for r in dashboard.get("rows", []) for p in r.get("panels", [])]
    while stack:
        panel = stack.pop(0)
        yield panel
        stack[0:0] = panel.get("panels", [])


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard title, panel title, expr) for every query target of every panel, in every language."""
    queries = []
    for dashboard in all_dashboards().values():
        for panel in iter_panels(dashboard):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    queries.append((dashboard["title"], panel.get("title", "?"), target["expr"]))
    return queries


def variables_used(expr: str) -> set[str]:
    return {a or b for a, b in re.findall(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", expr)}


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replaces $var, ${var} and ${var:format} the way Grafana does for single values.
    Raises KeyError for a variable without a value."""

    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for ${name} in {expr}")
        return values[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", replace, expr)


def promtool() -> str:
    return require_binary("promtool")


# -- tests -----------------------------------------------------------------------------------


def test_generated_files_match_their_sources():
    """The committed JSON (and prometheus/rules/*.yml) are what the generator writes now."""
    sys.path.insert(0, str(REPO))
    try:
        from ent_exporter.mixin.generate import outputs

        expected = outputs()
    finally:
        sys.path.remove(str(REPO))
    assert len([p for p in expected if p.suffix == ".json"]) == len(STEMS) * len(LANGUAGES)
    drifted = []
    for path, text in expected.items():
        current = path.read_text() if path.exists() else ""
        if current != text:
            diff = "".join(
                list(
                    difflib.unified_diff(
                        current.splitlines(True), text.splitlines(True), str(path.relative_to(REPO)), "generated"
                    )
                )[:40]
            )
            drifted.append(diff or f"{path.relative_to(REPO)} is missing")
    assert not drifted, f"generated files are out of date: run `{GENERATE}` and commit the result\n" + "\n".join(
        drifted
    )
    stray = {p for p in dashboard_files()} - set(expected)
    assert not stray, f"JSON without a dashboards/*.py source: {sorted(map(str, stray))}"


def test_generator_writes_into_a_fresh_tree(tmp_path):
    """Running the generator as documented, in a copy of the sources, reproduces the committed files."""
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "ent_exporter", copy / "ent_exporter", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "grafana", copy / "grafana", ignore=shutil.ignore_patterns("*.json", "node_modules"))
    (copy / "prometheus" / "rules").mkdir(parents=True)
    result = subprocess.run(
        [sys.executable, "-m", "ent_exporter.mixin.generate"], cwd=copy, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    for path in dashboard_files():
        relative = path.relative_to(DASHBOARDS)
        assert (copy / "grafana" / "dashboards" / relative).read_text() == path.read_text(), (
            f"{relative} differs when regenerated: run `{GENERATE}`"
        )
    for path in sorted(RULES.glob("*.yml")):
        assert (copy / "prometheus" / "rules" / path.name).read_text() == path.read_text()


def test_the_six_dashboards_in_both_languages_have_fixed_uids_and_tags():
    """Each dashboard in French (the default: plain uids) and in English (uids ending in -en)."""
    for lang in LANGUAGES:
        assert set(load_dashboards(lang)) == STEMS, lang
    dashboards = all_dashboards()
    uids = [d.get("uid") for d in dashboards.values()]
    assert all(uids) and len(set(uids)) == len(uids), uids
    for stem in STEMS:
        assert dashboards[f"en/{stem}"]["uid"] == dashboards[f"fr/{stem}"]["uid"] + "-en", stem
    for name, dashboard in dashboards.items():
        assert dashboard["title"].startswith("ENT "), name
        lang = name.split("/")[0]
        assert dashboard["tags"][-1] == lang, name  # the language, also asked by the link to the others
        assert any(link["type"] == "dashboards" and lang in link["tags"] for link in dashboard["links"]), name
        assert "ent" in dashboard["tags"], name
        assert dashboard["description"], name


def test_every_panel_has_a_description_a_unit_and_thresholds():
    problems = []
    for name, dashboard in all_dashboards().items():
        for panel in iter_panels(dashboard):
            if panel["type"] == "row":
                continue
            where = f"{name} / {panel.get('title')!r}"
            defaults = panel.get("fieldConfig", {}).get("defaults", {})
            if not panel.get("description"):
                problems.append(f"{where}: no description")
            if not defaults.get("unit"):
                problems.append(f"{where}: no unit")
            if not defaults.get("thresholds", {}).get("steps"):
                problems.append(f"{where}: no thresholds")
            if not panel.get("targets"):
                problems.append(f"{where}: no query")
            if "gridPos" not in panel or not panel["gridPos"]:
                problems.append(f"{where}: no position")
    assert not problems, "\n".join(problems)


def test_every_panel_and_variable_uses_the_datasource_variable_defaulting_to_the_provisioned_one():
    provisioned = yaml.safe_load((REPO / "grafana/provisioning/datasources/ent-prometheus.yml").read_text())
    assert DATASOURCE_UID in {d["uid"] for d in provisioned["datasources"]}
    expected = {"type": "prometheus", "uid": "${datasource}"}
    for name, dashboard in all_dashboards().items():
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        datasource = variables["datasource"]
        assert datasource["type"] == "datasource" and datasource["query"] == "prometheus", name
        assert datasource["current"]["value"] == DATASOURCE_UID, name
        instance = variables["instance"]
        assert instance["multi"] and instance["includeAll"] and instance["allValue"] == ".*", name
        for annotation in dashboard["annotations"]["list"]:
            if not annotation.get("builtIn"):
                assert annotation["datasource"] == expected, name
        for panel in iter_panels(dashboard):
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == expected, f"{name} / {panel['title']}"
            for target in panel["targets"]:
                assert target["datasource"] == expected, f"{name} / {panel['title']}"
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["datasource"] == expected, f"{name} / ${variable['name']}"


def test_panel_queries_use_only_exported_metrics_and_recording_rules():
    allowed = allowed_series_names()
    queries = panel_queries()
    assert len(queries) >= 40
    unknown = [
        f"{d} / {p}: {sorted(metric_names(e) - allowed)} in {e}" for d, p, e in queries if metric_names(e) - allowed
    ]
    assert not unknown, "queries on metrics the exporter does not export:\n" + "\n".join(unknown)
    # And they do use them: every exported family appears in some panel, or in a recording rule a panel reads
    # (the daily bars read the history rules).
    used = set().union(*(metric_names(e) for _, _, e in queries))
    recorded = {
        rule["record"]: rule["expr"]
        for path in sorted(RULES.glob("*.yml"))
        for group in yaml.safe_load(path.read_text()).get("groups", [])
        for rule in group.get("rules", [])
        if "record" in rule
    }
    used |= set().union(*(metric_names(recorded[name]) for name in used if name in recorded))
    families = {
        re.sub(r"_(bucket|count|sum)$", "", n) if re.sub(r"_(bucket|count|sum)$", "", n) in HISTOGRAMS else n
        for n in used
    }
    drawn = EXPORTED_METRICS - UNDRAWN_METRICS
    assert drawn <= families, f"exported but on no panel: {sorted(drawn - families)}"


def test_every_probe_family_is_listed():
    from ent_exporter.probes import runner

    families = {family.name for family in runner.FAMILIES}
    assert families <= EXPORTED_METRICS, sorted(families - EXPORTED_METRICS)
    histograms = {family.name for family in runner.FAMILIES if family.buckets}
    assert histograms <= HISTOGRAMS, sorted(histograms - HISTOGRAMS)


def test_metric_names_extraction():
    expr = (
        'sum by (le) (rate(ent_connector_request_duration_seconds_bucket{connector=~"$connector"}'
        '[$__rate_interval])) / on (job) group_left (cadence) up{job="x"} or on() label_replace(vector(1), '
        '"name", "a b", "", "") * 3600 offset 1w and topk(1, foo:bar:rate5m)'
    )
    assert metric_names(expr) == {"ent_connector_request_duration_seconds_bucket", "up", "foo:bar:rate5m"}


def test_queries_use_only_known_variables():
    unknown = [
        f"{d} / {p}: {sorted(variables_used(e) - set(EXAMPLE_VALUES))}"
        for d, p, e in panel_queries()
        if variables_used(e) - set(EXAMPLE_VALUES)
    ]
    assert not unknown, "\n".join(unknown)


@pytest.mark.parametrize("values", [EXAMPLE_VALUES, ALL_VALUES], ids=["one-structure", "all"])
def test_panel_queries_are_valid_promql(values, tmp_path):
    """promtool parses every query, variables substituted, as the expression of a recording rule."""
    rules = [
        {"record": f"dashboard:query_{index}:check", "expr": substitute(expr, values)}
        for index, (_, _, expr) in enumerate(panel_queries())
    ]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, sort_keys=False))
    result = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_heatmaps_and_the_weekday_hour_grid():
    """The connectors' latency heatmap reads the histogram; the establishment's hour-of-day profile is one
    instant query (not 24 queries of a weekly gauge over a time axis) and the weekday × hour grid is
    coloured on a continuous scale."""
    dashboards = load_dashboards()
    for panel in iter_panels(dashboards["establishment"]):
        assert len(panel.get("targets", [])) < 24, panel["title"]
        if "ent_logins_by_hour" in json.dumps(panel.get("targets", [])):
            assert all(t["instant"] for t in panel["targets"]), panel["title"]
    grid = next(p for p in iter_panels(dashboards["establishment"]) if p["title"].startswith("Logins by weekday"))
    assert grid["fieldConfig"]["defaults"]["color"]["mode"].startswith("continuous-")
    assert grid["fieldConfig"]["defaults"]["custom"]["cellOptions"]["type"] == "color-background"
    heatmaps = [p for p in iter_panels(dashboards["connectors"]) if p["type"] == "heatmap"]
    assert heatmaps, "connectors has no heatmap panel"
    for panel in heatmaps:
        assert panel["options"]["calculate"] is False
    latency = next(p for p in iter_panels(dashboards["connectors"]) if p["type"] == "heatmap")
    (target,) = latency["targets"]
    assert target["format"] == "heatmap" and "ent_connector_request_duration_seconds_bucket" in target["expr"]
    assert "sum by (le)" in target["expr"]


def test_targets_are_grafana_10_prometheus_queries():
    for name, dashboard in all_dashboards().items():
        for panel in iter_panels(dashboard):
            refs = [t["refId"] for t in panel.get("targets", [])]
            assert len(refs) == len(set(refs)), f"{name} / {panel['title']}: duplicate refIds {refs}"
            for target in panel.get("targets", []):
                assert "intervalFactor" not in target  # legacy: Grafana's step is the panel's interval
                assert target["range"] is not target["instant"]


def test_structure_variable_and_links_carry_the_chosen_structure():
    for name, dashboard in all_dashboards().items():
        if name.endswith("/regional"):  # every establishment at once: kind and platform, no structure
            variables = {v["name"]: v for v in dashboard["templating"]["list"]}
            assert {"platform", "kind"} <= set(variables) and "structure" not in variables, name
            continue
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        structure = variables["structure"]
        # "All" is the platform-wide series, not a regex over every structure.
        assert structure["includeAll"] and structure["allValue"] == "all", name
        assert not structure["multi"], name
        assert structure["query"] == "ent_structure_info", name
        assert "(?<text>" in structure["regex"] and "(?<value>" in structure["regex"], name
        assert variables["profile"]["multi"], name
        links = dashboard["links"]
        assert any(
            link["type"] == "dashboards" and "ent" in link["tags"] and link["includeVars"] and link["keepTime"]
            for link in links
        ), f"{name}: no link to the other dashboards keeping variables"


def test_structure_variable_regex_reads_names_from_series():
    dashboard = load_dashboards()["overview"]
    structure = next(v for v in dashboard["templating"]["list"] if v["name"] == "structure")
    # What Grafana's series lookup returns for the variable query: labels sorted by name.
    line = 'ent_structure_info{instance="exporter:9877",job="ent-exporter",kind="college",name="Collège Jean Moulin",structure="0750001A"}'
    pattern = structure["regex"].strip("/").replace("(?<", "(?P<")
    match = re.search(pattern, line)
    assert match and match["text"] == "Collège Jean Moulin" and match["value"] == "0750001A"


def test_connector_alert_thresholds_are_drawn_on_the_connectors_dashboard():
    """The mixin's single config: a threshold line on a panel is the alert's threshold."""
    alerts = {
        rule["alert"]: rule
        for group in yaml.safe_load((RULES / "ent-exporter.alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    dashboard = load_dashboards()["connectors"]
    panels = {p["title"]: p for p in iter_panels(dashboard)}

    def threshold_values(title: str) -> list:
        return [s["value"] for s in panels[title]["fieldConfig"]["defaults"]["thresholds"]["steps"]]

    failure_threshold = float(re.search(r"> ([0-9.]+)", alerts["ENTConnectorFailureRatioHigh"]["expr"]).group(1))
    latency_threshold = float(re.search(r"> ([0-9.]+)", alerts["ENTConnectorLatencyHigh"]["expr"]).group(1))
    assert failure_threshold in threshold_values("Failure ratio")
    assert latency_threshold in threshold_values("Latency p50 / p95 / p99")


SCHEMA_CHECK = REPO / "grafana" / "schema-check"


def test_every_dashboard_type_checks_against_grafana_schema():
    """tsc --noEmit over every dashboard JSON as an object literal typed as @grafana/schema's Dashboard
    (the versions pinned in grafana/schema-check/package-lock.json): no unknown (legacy) key, no null
    where the schema has none, every required key, every value of its type. Zero errors."""
    node = shutil.which("node")
    tsc = SCHEMA_CHECK / "node_modules" / "typescript" / "bin" / "tsc"
    schema = SCHEMA_CHECK / "node_modules" / "@grafana" / "schema" / "package.json"
    if node is None or not tsc.exists() or not schema.exists():
        pytest.fail(
            "node or grafana/schema-check's npm packages are missing: the README's test command installs "
            "them (apt-get install nodejs npm; npm ci --prefix grafana/schema-check)"
        )
    lock = json.loads((SCHEMA_CHECK / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/@grafana/schema"]["version"]
    assert json.loads(schema.read_text())["version"] == pinned, "run npm ci --prefix grafana/schema-check"
    generated = subprocess.run(
        [node, "generate-check.mjs"], cwd=SCHEMA_CHECK, capture_output=True, text=True, timeout=120
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert f"checking {len(dashboard_files())} dashboards" in generated.stdout
    result = subprocess.run(
        [node, str(tsc), "--noEmit", "-p", "."], cwd=SCHEMA_CHECK, capture_output=True, text=True, timeout=600
    )
    errors = [line for line in result.stdout.splitlines() if "error TS" in line]
    assert result.returncode == 0 and not errors, f"{len(errors)} schema errors:\n" + "\n".join(errors[:30])


def test_dashboards_have_no_grafanalib_leftovers():
    """No null anywhere but a base threshold step, no panel left at grafanalib's maxDataPoints 100, and
    a compose file running Grafana 12."""
    for name, dashboard in all_dashboards().items():
        text = json.dumps(dashboard)
        assert text.count("null") == text.count('"value": null'), name
        for panel in iter_panels(dashboard):
            assert panel.get("maxDataPoints") != 100, f"{name} / {panel.get('title')}"
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert re.fullmatch(r"grafana/grafana:12\.\d+\.\d+", compose["services"]["grafana"]["image"])


@pytest.mark.parametrize("lang", LANGUAGES)
def test_annotations_drill_down_links_and_collapsed_rows(lang):
    """Firing ENT alerts and collector failures are annotated on the operators' dashboards (alert names are
    Prometheus' identifiers, in English) and on no other (heads' dashboards, in their language); an application links to
    the Applications dashboard and a structure to the Establishment one, of the same language; detail rows
    start collapsed."""
    dashboards = load_dashboards(lang)
    suffix = "-en" if lang == "en" else ""
    for name, dashboard in dashboards.items():
        exprs = [a["target"]["expr"] for a in dashboard["annotations"]["list"] if "target" in a]
        ops = name in ("connectors", "exporter")
        assert any("ALERTS{" in e and 'alertstate="firing"' in e for e in exprs) == ops, name
        assert any("ent_exporter_collector_failures_total" in e for e in exprs) == ops, name
    links = {
        name: [
            link["url"]
            for p in iter_panels(d)
            for link in p.get("fieldConfig", {}).get("defaults", {}).get("links", [])
        ]
        for name, d in dashboards.items()
    }
    assert any(f"/d/ent-applications{suffix}?var-app=" in url for url in links["overview"])
    assert any(f"/d/ent-applications{suffix}?var-app=" in url for url in links["establishment"])
    assert any(
        f"/d/ent-establishment{suffix}?var-structure=${{__data.fields.structure}}" in url for url in links["overview"]
    )
    assert any(f"/d/ent-establishment{suffix}?var-structure=" in url for url in links["regional"])
    every = [
        url
        for d in dashboards.values()
        for p in iter_panels(d)
        for url in [
            link["url"] for link in p.get("links", []) + p.get("fieldConfig", {}).get("defaults", {}).get("links", [])
        ]
    ]
    uids = {d["uid"] for d in dashboards.values()}
    for url in every:
        if url.startswith("/d/"):
            assert url[3:].split("?")[0] in uids, f"{lang}: a link to another language's dashboard: {url}"
    collapsed = [p for d in dashboards.values() for p in d["panels"] if p["type"] == "row" and p["collapsed"]]
    assert len(collapsed) >= 3 and all(row["panels"] for row in collapsed)


def test_people_panels_never_sum_profiles():
    """A people family summed (sum, count...) over a profile matcher that includes "all" or several
    profiles would count a two-profile user twice: headline panels read profile="all", per-profile
    panels exclude it."""
    people = (
        "ent_unique_visitors",
        "ent_visits_per_visitor",
        "ent_accounts",
        "ent_account_activation_ratio",
        "ent_inactive_accounts",
        "ent_user_logins_30d",
    )
    wrong = []
    for dashboard, panel, expr in panel_queries():
        for selector in re.findall(r"(\w+)\{([^}]*)\}", expr):
            name, matchers = selector
            if name.startswith(people) and 'profile="all"' not in matchers and 'profile!="all"' not in matchers:
                wrong.append(f"{dashboard} / {panel}: {name}{{{matchers}}}")
    assert not wrong, "\n".join(wrong)


def test_visits_per_visitor_by_profile_is_read_only_where_published_and_the_panel_says_it_is_opt_in():
    """Per structure, ent_visits_per_visitor by profile is an opt-in breakdown (series budget): by default an
    establishment publishes only its profile="all" ratio. A panel reading it by profile reads profile!="all"
    with no fallback (no other series, which would be a wrong number in a profile's row, nor a sum of
    ratios) and its description, in both languages, names the option that publishes it."""
    readers = 0
    for name, dashboard in all_dashboards().items():
        for panel in iter_panels(dashboard):
            exprs = [t["expr"] for t in panel.get("targets", []) if "ent_visits_per_visitor" in t.get("expr", "")]
            for expr in exprs:
                matchers = re.search(r"ent_visits_per_visitor\{([^}]*)\}", expr).group(1)
                if 'profile="all"' in matchers:
                    continue
                readers += 1
                # Over several exporters: the sum of each one's ratio × its visitors (its logins) ÷ the sum of
                # the visitors, from the same series; never a sum or an average of ratios, nor an "or" fallback.
                assert 'profile!="all"' in matchers and not re.search(r"\b(?:or|avg|max)\b", expr), (name, expr)
                assert re.search(
                    r"sum by \(profile\) \(ent_visits_per_visitor\{([^}]*)\} \* ent_unique_visitors\{\1\}\)", expr
                ), (
                    name,
                    expr,
                )
                # English (the operators' language) names the option; French says it is an option of the
                # exporter's series budget and names no configuration key (tests/test_french_dashboards.py).
                key = "breakdowns.visits_per_visitor_by_profile_per_structure"
                if name.startswith("en/"):
                    assert key in panel["description"], (name, panel["title"])
                else:
                    assert "budget de séries" in panel["description"], (name, panel["title"])
    assert readers == 2  # the overview's "Visitors by profile", in French and English


# -- languages ------------------------------------------------------------------------------------


def french_table() -> dict[str, str]:
    sys.path.insert(0, str(REPO))
    try:
        from ent_exporter.mixin import i18n

        return dict(i18n.FR)
    finally:
        sys.path.remove(str(REPO))


def _differences(french, english, path: str = "") -> Iterator[tuple[str, object, object]]:
    """Every leaf where the two models differ, with its path; a structural difference is one too."""
    if isinstance(english, dict) and isinstance(french, dict):
        if set(english) != set(french):
            yield path, sorted(french), sorted(english)
            return
        for key in english:
            yield from _differences(french[key], english[key], f"{path}/{key}")
    elif isinstance(english, list) and isinstance(french, list):
        if len(english) != len(french):
            yield path, len(french), len(english)
            return
        for index, (f, e) in enumerate(zip(french, english)):
            yield from _differences(f, e, f"{path}[{index}]")
    elif french != english:
        yield path, french, english


@pytest.mark.parametrize("stem", sorted(STEMS))
def test_french_and_english_dashboards_are_the_same_but_for_their_words(stem):
    """The two languages come from one model: the same panels, positions, units, thresholds and queries.
    Where they differ, the French is the table's translation of the English text, the uid (and the uids
    links point to) carries -en in English, and a constant shown by a query is translated."""
    table = french_table()
    words = label_words_table()
    french, english = load_dashboards("fr")[stem], load_dashboards("en")[stem]
    problems = []
    for path, fr, en in _differences(french, english):
        key = path.rsplit("/", 1)[-1]
        if not (isinstance(fr, str) and isinstance(en, str)):
            problems.append(f"{path}: structure differs ({fr!r} / {en!r})")
        elif "/overrides[" in path and path.endswith("/matcher/options") and _regexp(french, path):
            pass  # a label value's override matches the legend of its language (its words translated)
        elif "/overrides[" in path and any(
            en.replace(e, f) == fr or table.get(en.replace(e, f"{{{{{label}}}}}")) == fr.replace(f, f"{{{{{label}}}}}")
            for label, e, f in words
            if e in en
        ):
            pass  # a label value's name (i18n.label_words), in a legend of the language
        elif not (isinstance(fr, str) and isinstance(en, str)):
            problems.append(f"{path}: structure differs ({fr!r} / {en!r})")
        elif re.search(r"/tags\[\d+\]$", path):
            if (fr, en) != ("fr", "en"):
                problems.append(f"{path}: tags {fr!r} / {en!r}")
        elif key == "expr":
            if fr != en.replace('"Whole platform"', '"Toute la plateforme"'):
                problems.append(f"{path}: queries differ")
        elif key == "uid":
            if en != fr + "-en":
                problems.append(f"{path}: uid {fr} / {en}")
        elif key == "url":
            expected = re.sub(
                r"\$\{__data\.fields\.([^}]+)\}",
                lambda m: f"${{__data.fields.{table.get(m.group(1), m.group(1))}}}",
                re.sub(r"/d/([\w-]+)-en\?", r"/d/\1?", en),
            )
            if fr != expected:
                problems.append(f"{path}: links differ ({fr} / {en})")
        elif key == "unit":
            if fr != "suffix:" + table.get(en.removeprefix("suffix:").strip(), "?"):
                problems.append(f"{path}: unit {fr!r} is not the French of {en!r}")
        elif table.get(en) != fr:
            problems.append(f"{path}: {fr!r} is not the table's French for {en!r}")
    assert not problems, "\n".join(problems[:40])
    assert french["description"] != english["description"]


def label_words_table() -> list[tuple[str, str, str]]:
    """(label, English, French) names of the label values (i18n.label_words)."""
    sys.path.insert(0, str(REPO))
    try:
        from ent_exporter.mixin import i18n

        return [
            (label, shown["en"], shown["fr"])
            for label, values in i18n.label_words().items()
            for shown in values.values()
        ]
    finally:
        sys.path.remove(str(REPO))


def _regexp(dashboard: dict, path: str) -> bool:
    """Whether the override at ``path`` (…/overrides[i]/matcher/options) matches by regular expression."""
    node: object = dashboard
    for part in re.findall(r"/([^/\[]+)|\[(\d+)\]", path.removesuffix("/options")):
        node = node[part[0]] if part[0] else node[int(part[1])]  # type: ignore[index]
    return isinstance(node, dict) and node.get("id") == "byRegexp"


def test_the_language_table_has_no_stale_entry():
    """Every French text is used by some dashboard (the generator fails on a missing one)."""
    sys.path.insert(0, str(REPO))
    try:
        from ent_exporter.mixin import i18n
        from ent_exporter.mixin.generate import outputs

        i18n.USED.clear()
        outputs()
        stale = set(i18n.HAND_FR) - i18n.USED["fr"]
    finally:
        sys.path.remove(str(REPO))
    assert not stale, f"entries no dashboard uses: {sorted(stale)[:20]}"


def test_the_hand_table_repeats_no_word_of_the_catalogue():
    """A family's title and help have one French, the catalogue's (beside the family, ent_exporter/catalogue.py):
    the hand-written table has no entry for them, and the table the dashboards use has the catalogue's."""
    sys.path.insert(0, str(REPO))
    try:
        from ent_exporter import catalogue
        from ent_exporter.mixin import i18n

        repeated = sorted(set(i18n.HAND_FR) & set(i18n.CATALOGUE_FR))
        french = catalogue.french()
        connections = next(f for f in catalogue.families() if f.name == "ent_logins_total")
    finally:
        sys.path.remove(str(REPO))
    assert not repeated, f"words of the catalogue written again in i18n.py: {repeated}"
    assert {english: i18n.FR[english] for english in french} == french
    assert i18n.FR[connections.title_en] == connections.title_fr == "Connexions"
    assert i18n.FR[connections.help] == connections.meaning_fr


def test_titles_name_no_metric_and_french_says_what_a_number_means():
    """No metric name in any title; French descriptions name no metric either (one sentence on what the
    number means) and French legends and column names hold no English word of the table."""
    metric = re.compile(r"\b(?:ent|process)_[a-z_0-9]+|_total\b|_seconds\b")
    for name, dashboard in all_dashboards().items():
        assert not metric.search(dashboard["title"]), name
        for panel in iter_panels(dashboard):
            assert not metric.search(panel.get("title", "")), f"{name} / {panel.get('title')}"
            if name.startswith("fr/"):
                assert not metric.search(panel.get("description", "")), f"{name} / {panel.get('title')}"
    french = json.dumps(all_dashboards()["fr/overview"], ensure_ascii=False)
    for english in ("Connections", "Unique visitors", "Month to date", "Previous period", "A year earlier"):
        assert f'"{english}"' not in french, english


def test_french_weekday_names_on_the_grid_and_the_peak_day():
    weekdays = {
        "1": "lundi",
        "2": "mardi",
        "3": "mercredi",
        "4": "jeudi",
        "5": "vendredi",
        "6": "samedi",
        "7": "dimanche",
    }
    french = load_dashboards("fr")
    grid = next(p for p in iter_panels(french["establishment"]) if p["title"].startswith("Connexions par jour et"))
    (first,) = [o for o in grid["fieldConfig"]["overrides"] if o["matcher"]["options"] == "weekday\\hour"]
    mappings = next(p["value"] for p in first["properties"] if p["id"] == "mappings")
    assert {value: option["text"] for value, option in mappings[0]["options"].items()} == weekdays
    peak = next(p for p in iter_panels(french["overview"]) if p["title"] == "Jour de pointe")
    assert {o["matcher"]["options"]: o["properties"][0]["value"] for o in peak["fieldConfig"]["overrides"]} == weekdays


def test_provisioning_installs_french_by_default_and_english_on_a_switch():
    """One provider, its path under ENT_DASHBOARDS_LANGUAGE (default fr) — compose sets nothing else."""
    (provider_file,) = (REPO / "grafana/provisioning/dashboards").glob("*.yml")
    text = provider_file.read_text()
    (provider,) = yaml.safe_load(text)["providers"]
    assert provider["options"]["path"].endswith("/$ENT_DASHBOARDS_LANGUAGE")
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    environment = compose["services"]["grafana"]["environment"]
    assert environment["ENT_DASHBOARDS_LANGUAGE"] == "${ENT_DASHBOARDS_LANGUAGE:-fr}"
    assert environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].endswith(
        "/${ENT_DASHBOARDS_LANGUAGE:-fr}/overview.json"
    )
    for lang in LANGUAGES:
        assert (DASHBOARDS / lang / "overview.json").exists()


def test_headline_comparisons_use_the_previous_period_and_a_year_earlier():
    """Each comparison: the figure, the same query offset by the period and by 52 weeks, each only while
    Prometheus stores its whole window (prometheus_tsdb_lowest_timestamp_seconds), or for a month to date the
    exporter's closed previous month and the same calendar days a year earlier; the changes in percent with
    nothing when the earlier figure is 0."""
    comparisons = [
        (name, p)
        for name, d in load_dashboards("en").items()
        for p in iter_panels(d)
        if p["title"].endswith(" compared")
    ]
    assert {p["title"] for _n, p in comparisons} >= {
        "Connections compared",
        "Unique visitors compared",
        "Visits per visitor compared",
        "Activated accounts compared",
        "Application openings compared",
        "Activation ratio compared",
        "Inactive accounts compared",
    }

    def guarded(expr: str, offset: str, back: str) -> bool:
        return expr == (
            f"(\n{shifted(exprs['A'], offset)}\n)\nand on ()\n"
            f"(time() - ({back}) > max(prometheus_tsdb_lowest_timestamp_seconds))"
        )

    for _name, panel in comparisons:
        exprs = {t["refId"]: t["expr"] for t in panel["targets"]}
        assert all(t["instant"] for t in panel["targets"]), panel["title"]
        assert "offset" not in exprs["A"] and "1y" not in "".join(exprs.values())
        assert "> 0" in exprs["E"]
        if "visitor" in panel["title"].lower():
            assert 'period="previous_month"' in exprs["B"] and "C" not in exprs, panel["title"]
            assert exprs["D"] == exprs["A"].replace('period="month"', 'period="month_a_year_earlier"')
            assert "offset" not in exprs["D"]
            continue
        over_period = "[$__range]" in exprs["A"]
        assert guarded(exprs["B"], "$__range", "2 * $__range_s" if over_period else "$__range_s"), panel["title"]
        assert guarded(exprs["D"], "52w", f"{52 * 7 * 86400} + {'$__range_s' if over_period else '0'}")
        assert "> 0" in exprs["C"]


def test_profiles_periods_and_states_have_french_names():
    """Series named by a label value (a profile, a calendar period, an account state) are renamed for display:
    the platform's profile names (Teacher...) become Enseignants..., day/week/month and activated/pending too."""
    french = load_dashboards("fr")

    def renames(dashboard: str, title: str) -> dict[str, str]:
        panel = next(p for p in iter_panels(french[dashboard]) if p["title"] == title)
        return {
            o["matcher"]["options"]: o["properties"][0]["value"]
            for o in panel["fieldConfig"]["overrides"]
            if o["properties"][0]["id"] == "displayName"
        }

    assert renames("overview", "Connexions par profil") == {
        "Teacher": "Enseignants",
        "Student": "Élèves",
        "Relative": "Parents",
        "Personnel": "Personnels",
        "Guest": "Invités",
        "unknown": "Profil inconnu",
        "all": "Tous les profils",  # under the series budget, an establishment's only row (i18n.label_words)
    }
    assert renames("overview", "Visiteurs uniques : jour, semaine et mois en cours") == {
        "day": "Aujourd'hui",
        "week": "Cette semaine",
        "month": "Ce mois-ci",
    }
    assert renames("establishment", "Comptes par état") == {"activated": "Activés", "pending": "En attente"}
