"""The French dashboards hold no English a user can see.

Every visible string of every French dashboard is collected the way Grafana shows it: titles,
descriptions, legends (with each label value the exporter can put in them, renamed by the panel's
overrides as Grafana would), value mappings, overrides' display names, units (custom ``suffix:``
units, and the words Grafana's own units print), table column headers (``organize`` renames),
variable labels, descriptions and their "All" text, link titles and tooltips, "no value" texts and
annotation names. Each word is looked up in a short list of English words (and an English-only
ending, "-ing"); the few proper names and application identifiers that would match are allowed,
each with its reason. Zero hits. No description names a configuration key either (a user cannot act
on ``breakdowns.…``; the documentation names them).

The label values come from where the exporter defines them (profiles, outcomes, probe reasons,
cadences, collectors, account states, metric families): a value added there and left untranslated
in a dashboard makes this test fail.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.test_dashboards import iter_panels, load_dashboards

# Common English words, and the English words the exporter's label values and Grafana's units are
# made of. A word also French (« Applications », « Parents », « Badges », « Classes », « Type »,
# « Source », « Total », « Date », « Max »...) is not listed: it is not a sign of English.
ENGLISH = set(
    """
    about above after all and any are as at be before below between both but by can day days do does each
    every failed failure failures for from has have hour hours if in into is it its last less like month months more most new no none not now of off on one only or other others over per previous
    same second seconds since so some than that the their them then there these this those through time to
    today too under until up us was week weeks were what when where whether which while who whole will with
    within without year years yes yet you
    success successes succeeded pending activated complete completed passed failed imported rejected skipped
    read timeout refused error content status large instant hourly daily weekly monthly value values name
    logins login visitors visitor accounts account connections opened openings calls call requests request
    people user users student students teacher teachers staff guest guests unknown profile profiles platform
    establishment establishments collector collectors series samples scrape scraped family families feed
    feeds probe probes latency duration expiry certificate alert alerts firing state states ratio
    k mil tri bil req ago count
    """.split()
)
# Proper names and application identifiers that the list above would flag, and why they may stay.
ALLOWED: dict[str, str] = {
    "ENT": "the product's name (Espace numérique de travail)",
}
ENDINGS = re.compile(r"^[a-z]{3,}ing$")  # an English-only ending (-ing); French words do not end so
WORD = re.compile(r"[A-Za-zÀ-ÿ']+")
TEMPLATE = re.compile(r"\{\{\s*(\w+)\s*\}\}")
VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
CONFIG_KEY = re.compile(r"\b(?:breakdowns|collectors|limits|privacy|probes|source|http|history|reports)\.[a-z_]+")

# Grafana's units that print English words (or abbreviations): "12 K", "2 Mil", "1.8 Tri", "12.9 week",
# "3 hours ago", "req/s". Durations in seconds ("s") print ms, s and min for the values the duration panels
# hold (calls, runs and scrapes under an hour), allowed on those only.
ENGLISH_UNITS = {
    "short": "K Mil Bil Tri",
    "reqps": "req/s",
    "rps": "req/s",
    "dtdurations": "hours minutes",
    "dtdurationms": "hours minutes",
    "dateTimeFromNow": "hours ago",
    "d": "day week year",
    "h": "hour day week",
    "m": "hour day week",
}
DURATION_UNITS = {"s", "ms"}


def label_values() -> dict[str, set[str]]:
    """Each label a legend or a column may show, with the values the exporter gives it, from their
    definitions (not from the dashboards)."""
    from ent_exporter.catalogue import families
    from ent_exporter.engine.collector import Cadence
    from ent_exporter.indicators import discover
    from ent_exporter.indicators.feeds import ROW_OUTCOMES
    from ent_exporter.probes import REASONS

    return {
        "profile": {"Teacher", "Student", "Relative", "Personnel", "Guest", "unknown", "all"},
        "outcome": {"success", "failure", *ROW_OUTCOMES},
        "reason": set(REASONS),
        "cadence": {cadence.value for cadence in Cadence},
        "collector": set(discover()),
        "state": {"activated", "pending", "complete", "passed", "failed"},
        "period": {"day", "week", "month"},
        "family": {family.name for family in families()},
        "structure": {"all", "other"},
        "app": {"other"},
        "course": {"other"},
        "class": {"other"},
    }


# Labels whose values depend on the family read (the query's metric name starts with the prefix).
SCOPES = {
    ("state", "ent_accounts"): {"activated", "pending"},
    ("state", "ent_course_activity_completions"): {"complete", "passed", "failed"},
    ("outcome", "ent_connector_"): {"success", "failure"},
}


def scoped(values: dict[str, set[str]], label: str, expr: str) -> set[str]:
    for (name, family), only in SCOPES.items():
        if name == label and family in expr:
            return values.get(label, set()) & only
    return values.get(label, set())


def english_words(text: str) -> list[str]:
    text = VARIABLE.sub(" ", TEMPLATE.sub(" ", text))
    hits = []
    for word in WORD.findall(text):
        word = word.strip("'")
        if not word or word in ALLOWED:
            continue
        lower = word.lower().removesuffix("'s")
        if lower in ENGLISH or ENDINGS.match(lower) or word.lower().endswith("'s"):
            hits.append(word)
    return hits


def _display(panel: dict, name: str, labels: dict[str, str]) -> str:
    """The name Grafana shows for a field named ``name`` (with ``labels``): the last matching override's
    displayName, its ${__field.labels.x} filled in."""
    shown = name
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        matcher = override.get("matcher", {})
        hit = (matcher.get("id") == "byName" and matcher.get("options") == name) or (
            matcher.get("id") == "byRegexp" and re.fullmatch(matcher.get("options", ""), name)
        )
        if hit:
            for prop in override.get("properties", []):
                if prop.get("id") == "displayName":
                    shown = re.sub(
                        r"\$\{__field\.labels\.(\w+)\}", lambda m: labels.get(m.group(1), "x"), prop["value"]
                    )
    return shown


def _mapped(panel: dict, column: str, value: str) -> str | None:
    """The text a value mapping shows for a cell ``value`` of ``column`` (defaults or the column's
    override, by its name after the panel's organize renames), or None."""
    for transformation in panel.get("transformations", []):
        column = transformation.get("options", {}).get("renameByName", {}).get(column, column)
    sets = [panel.get("fieldConfig", {}).get("defaults", {}).get("mappings", [])]
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        if override.get("matcher", {}).get("options") == column:
            sets += [p["value"] for p in override.get("properties", []) if p.get("id") == "mappings"]
    for mappings in sets:
        for mapping in mappings:
            option = mapping.get("options", {}).get(value) if mapping.get("type") == "value" else None
            if option and option.get("text"):
                return option["text"]
    return None


def visible_texts(dashboard: dict, values: dict[str, set[str]]) -> Iterator[tuple[str, str]]:
    """(where, text) for everything the dashboard shows in words."""
    yield "title", dashboard.get("title", "")
    yield "description", dashboard.get("description", "")
    for link in dashboard.get("links", []):
        yield "link", link.get("title", "")
        yield "link tooltip", link.get("tooltip", "")
    for annotation in dashboard.get("annotations", {}).get("list", []):
        yield "annotation", annotation.get("name", "")
        target = annotation.get("target", {})
        yield "annotation title", target.get("titleFormat", "")
        yield "annotation text", target.get("textFormat", "")
    for variable in dashboard.get("templating", {}).get("list", []):
        where = f"variable {variable['name']}"
        yield where, variable.get("label", "")
        yield where, variable.get("description", "")
        current = variable.get("current", {}).get("text", "")
        for text in current if isinstance(current, list) else [current]:
            yield where + " current", text
        for option in variable.get("options", []):
            yield where + " option", option.get("text", "")
    for panel in iter_panels(dashboard):
        where = f"panel {panel.get('title', '?')!r}"
        yield where + " title", panel.get("title", "")
        yield where + " description", panel.get("description", "")
        for link in panel.get("links", []):
            yield where + " link", link.get("title", "")
            yield where + " link tooltip", link.get("tooltip", "")
        config = panel.get("fieldConfig", {})
        defaults = config.get("defaults", {})
        for link in defaults.get("links", []):
            yield where + " data link", link.get("title", "")
        yield where + " noValue", defaults.get("noValue", "")
        yield from _unit(where, panel, defaults.get("unit", ""))
        yield where + " axis", defaults.get("custom", {}).get("axisLabel", "")
        for mapping in defaults.get("mappings", []):
            for option in _options(mapping):
                yield where + " mapping", option
        for override in config.get("overrides", []):
            for prop in override.get("properties", []):
                if prop.get("id") == "displayName":
                    yield where + " override", VARIABLE.sub(" ", prop["value"])
                elif prop.get("id") == "unit":
                    yield from _unit(where, panel, prop["value"])
                elif prop.get("id") == "mappings":
                    for mapping in prop["value"]:
                        for option in _options(mapping):
                            yield where + " mapping", option
                elif prop.get("id") == "links":
                    for link in prop["value"]:
                        yield where + " data link", link.get("title", "")
        for transformation in panel.get("transformations", []):
            options = transformation.get("options", {})
            for shown in options.get("renameByName", {}).values():
                yield where + " column", shown
        if panel.get("type") == "table":
            for column in _columns(panel, values):
                yield where + " column", column
        yield from _legends(where, panel, values)


def _columns(panel: dict, values: dict[str, set[str]]) -> list[str]:
    """The column headers a table shows: its queries' fields (Time, Value or Value #<refId>, the labels they
    keep), less those an organize transformation hides, renamed as its transformations and overrides say."""
    targets = panel.get("targets", [])
    fields: list[str] = []
    for target in targets:
        fields += ["Time", "Value" if len(targets) == 1 else f"Value #{target.get('refId', 'A')}"]
        for group in re.findall(r"\bby\s*\(([^)]*)\)", target.get("expr", "")):
            fields += [name.strip() for name in group.split(",") if name.strip()]
    shown = list(dict.fromkeys(fields))
    for transformation in panel.get("transformations", []):
        options = transformation.get("options", {})
        if transformation.get("id") == "organize":
            hidden = {name for name, hide in options.get("excludeByName", {}).items() if hide}
            renames = options.get("renameByName", {})
            shown = [renames.get(name, name) for name in shown if name not in hidden]
        elif transformation.get("id") == "groupingToMatrix":
            # The matrix's headers: "<row field>\\<column field>" and the column field's values.
            column, row = options.get("columnField", ""), options.get("rowField", "")
            shown = [f"{row}\\{column}", *sorted(values.get(column, ()))]
    return [_display(panel, name, {}) for name in shown]


def _options(mapping: dict) -> Iterator[str]:
    options = mapping.get("options", {})
    if mapping.get("type") == "value":
        yield from (option.get("text", "") for option in options.values())
    else:
        yield options.get("result", {}).get("text", "")


def _unit(where: str, panel: dict, unit: str) -> Iterator[tuple[str, str]]:
    if unit.startswith("suffix:") or unit.startswith("prefix:"):
        yield where + " unit", unit.split(":", 1)[1]
    elif unit in DURATION_UNITS:
        exprs = " ".join(t.get("expr", "") for t in panel.get("targets", []))
        if "duration" not in exprs:
            yield where + f" unit {unit}", "hour day week"
    elif unit in ENGLISH_UNITS:
        yield where + f" unit {unit}", ENGLISH_UNITS[unit]


def _legends(where: str, panel: dict, values: dict[str, set[str]]) -> Iterator[tuple[str, str]]:
    """Each legend with each value of each label it shows, as displayed; and each table cell of a
    label column (a label the query groups by) through the value mappings."""
    headers = {  # a matrix's column field: its values are headers (_columns), not cells
        t.get("options", {}).get("columnField")
        for t in panel.get("transformations", [])
        if t.get("id") == "groupingToMatrix"
    }
    for target in panel.get("targets", []):
        legend = target.get("legendFormat", "")
        if target.get("format") == "table" or panel.get("type") == "table":
            for label in re.findall(r"\bby\s*\(([^)]*)\)", target.get("expr", "")):
                for name in (n.strip() for n in label.split(",") if n.strip() not in headers):
                    for value in sorted(scoped(values, name, target.get("expr", ""))):
                        mapped = _mapped(panel, name, value)
                        yield f"{where} cell {name}={value}", mapped if mapped is not None else value
            continue
        labels = TEMPLATE.findall(legend)
        if not legend or not labels:
            yield where + " legend", legend
            continue
        for label in labels:
            for value in sorted(scoped(values, label, target.get("expr", ""))):
                fields = {other: "x" for other in labels} | {label: value}
                name = TEMPLATE.sub(lambda m, fields=fields: fields[m.group(1)], legend)
                yield f"{where} legend {label}={value}", _display(panel, name, fields)
        yield where + " legend", TEMPLATE.sub(" ", legend)


FRENCH = load_dashboards("fr")
OPERATORS = ("connectors", "exporter")  # the on-call person's dashboards (ent_exporter.mixin.panels.OPS_DASHBOARDS)


@pytest.mark.parametrize("stem", sorted(FRENCH))
def test_the_french_dashboard_shows_no_english(stem):
    values = label_values()
    hits = [
        f"{where}: {text!r} ({', '.join(words)})"
        for where, text in visible_texts(FRENCH[stem], values)
        if text and (words := english_words(text))
    ]
    assert not hits, f"{len(hits)} English texts in fr/{stem}.json:\n" + "\n".join(hits)


@pytest.mark.parametrize("stem", sorted(FRENCH))
def test_no_french_description_names_a_configuration_key(stem):
    keys = [
        f"{where}: {CONFIG_KEY.search(text).group(0)}"
        for where, text in visible_texts(FRENCH[stem], {})
        if "description" in where and CONFIG_KEY.search(text)
    ]
    assert not keys, "\n".join(keys)


@pytest.mark.parametrize("stem", sorted(FRENCH))
def test_alert_annotations_only_on_the_operators_dashboards(stem):
    """Alert names and severities are Prometheus' identifiers (English): shown on the operators' dashboards
    (connectors, exporter health) only, never on those heads of establishment and the region read."""
    exprs = [a.get("target", {}).get("expr", "") for a in FRENCH[stem]["annotations"]["list"]]
    shown = any("ALERTS" in expr or "ent_exporter_collector_failures_total" in expr for expr in exprs)
    assert shown == (stem in OPERATORS), stem


def test_the_scan_finds_what_it_looks_for():
    """The detector itself: English words, -ing, possessives and English units are found, French is not."""
    assert english_words("Connexions réussies pendant la période") == []
    assert english_words("Applications, Parents, Badges, Classes") == []
    assert english_words("{{connector}} success") == ["success"]
    assert english_words("Probe running") == ["Probe", "running"]
    assert english_words("the exporter's memory") == ["the", "exporter's"]
    assert english_words(dict(_unit("p", {"targets": []}, "short"))["p unit short"]) == ["K", "Mil", "Bil", "Tri"]
    assert not list(_unit("p", {"targets": []}, "locale"))
    panel = {
        "type": "timeseries",
        "targets": [{"expr": "sum by (outcome) (x)", "legendFormat": "{{connector}} {{outcome}}"}],
        "fieldConfig": {
            "overrides": [
                {
                    "matcher": {"id": "byRegexp", "options": "(.*) success"},
                    "properties": [{"id": "displayName", "value": "${__field.labels.connector} réussis"}],
                }
            ]
        },
    }
    shown = dict(_legends("p", panel, {"outcome": {"success", "failure"}}))
    assert shown["p legend outcome=success"] == "x réussis"
    assert shown["p legend outcome=failure"] == "x failure"
