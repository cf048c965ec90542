"""Generates the monitoring bundle from its sources:

- every module of ``ent_exporter/mixin/dashboards/`` (grafanalib) → ``grafana/dashboards/fr/*.json`` and
  ``grafana/dashboards/en/*.json`` (one model, its words from i18n.py's table; French is the default)
- ``ent_exporter/mixin/rules.py`` (from config.py) → ``prometheus/rules/*.yml``

Usage, from the repository root::

    python -m ent_exporter.mixin.generate          # writes the files
    python -m ent_exporter.mixin.generate --check  # exits 1 and lists what is out of date

The generated files are committed; tests/test_dashboards.py fails when they drift.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]  # the checkout: the generated files are committed there
DASHBOARDS = REPO / "grafana" / "dashboards"  # {fr,en}/*.json
RULES = REPO / "prometheus" / "rules"
COMMAND = "python -m ent_exporter.mixin.generate"


def sources() -> list[str]:
    """The dashboards' names: one module of ent_exporter.mixin.dashboards each."""
    from ent_exporter.mixin import dashboards

    return sorted(module.name for module in pkgutil.iter_modules(dashboards.__path__))


def load_dashboard(name: str):
    """The ``dashboard`` object the module ``ent_exporter.mixin.dashboards.<name>`` defines."""
    module = importlib.import_module(f"ent_exporter.mixin.dashboards.{name}")
    if not hasattr(module, "dashboard"):
        raise SystemExit(f"{module.__file__} defines no variable 'dashboard'")
    return module.dashboard


# Keys grafanalib writes that Grafana's current model (@grafana/schema's Dashboard) does not have:
# Graph-era panel options and dashboard fields, read by no current panel. Checked by
# grafana/schema-check (tsc against @grafana/schema), run by tests/test_dashboards.py.
LEGACY_DASHBOARD_KEYS = {
    "__inputs",
    "__requires",
    "rows",
    "sharedCrosshair",
    "hideControls",
    "gnetId",
    "version",
    "id",
    "style",
}
LEGACY_PANEL_KEYS = {
    "dataSource",
    "cacheTimeout",
    "hideTimeOverride",
    "minSpan",
    "repeatDirection",
    "span",
    "height",
    "editable",
    "error",
    "isNew",
    "renderer",
    "timeShift",
    "timeFrom",
    "alert",
    "format",
    "thresholds",
    "mappings",
    "overrides",
    "decimals",
    "reduceCalc",
    "legend",
    "tooltip",
    "xAxis",
    "yAxes",
    "aliasColors",
    "nullPointMode",
    "yAxis",
    "xBuckets",
    "yBuckets",
    "color",
    "cards",
    "dataFormat",
    "heatmap",
    "hideZeroBuckets",
    "highlightCards",
    "yBucketBound",
    "reverseYBuckets",
    "yBucketSize",
    "yBucketNumber",
    "xBucketSize",
    "xBucketNumber",
    "tooltipDecimals",
    "maxPerRow",
    "showHeader",
    "columns",
    "fontSize",
    "pageSize",
    "scroll",
    "sort",
    "styles",
    "transform",
    "valueMaxLength",
    "valueName",
    "textMode",
    "colorMode",
    "graphMode",
    "orientation",
    "noValue",
    "sparkline",
    "gauge",
    "prefix",
    "postfix",
    "valueFontSize",
    "prefixFontSize",
    "postfixFontSize",
    "rangeMaps",
    "mappingType",
    "mappingTypes",
    "valueMaps",
    "colorBackground",
    "colorValue",
    "colors",
    "nullText",
    "timeRegions",
    "minValue",
    "maxValue",
    "displayMode",
    "showUnfilled",
    "reduce",
    "unit",
    "pieType",
    "legendType",
    "values",
    "mergeValues",
    "rowHeight",
    "showValue",
    "alignValue",
    "calcs",
    "limit",
    "fields",
    "percentage",
    "stack",
    "points",
    "pointradius",
    "lines",
    "linewidth",
    "bars",
    "fill",
    "fillGradient",
    "dashLength",
    "dashes",
    "spaceLength",
    "steppedLine",
    "seriesOverrides",
}
LEGACY_TARGET_KEYS = {"step", "target", "metric", "hide", "intervalFactor", "datasource_uid"}


def _no_nulls(value):
    """Drops every null (Grafana reads a missing key as its default; the schema has no nulls)."""
    if isinstance(value, dict):
        if set(value) == {"color", "value"}:  # a threshold step: the base one's value is null
            return value
        return {key: _no_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_no_nulls(item) for item in value if item is not None]
    return value


def clean(data: dict) -> dict:
    """grafanalib's output in Grafana's current model: no legacy keys, no nulls."""
    data = _no_nulls(data)
    for key in LEGACY_DASHBOARD_KEYS:
        data.pop(key, None)
    data.get("timepicker", {}).pop("time_options", None)
    for variable in data.get("templating", {}).get("list", []):
        variable.pop("definition", None)  # the editor's display copy of the query
    stack = list(data.get("panels", []))
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        if panel.get("type") == "row":  # a row is a title, a position and (collapsed) its panels
            for key in set(panel) - {"type", "title", "collapsed", "gridPos", "id", "panels"}:
                del panel[key]
            continue
        for key in LEGACY_PANEL_KEYS:
            panel.pop(key, None)
        panel.get("fieldConfig", {}).setdefault("overrides", [])
        if panel.get("fieldConfig"):
            panel["fieldConfig"].setdefault("defaults", {})
        for target in panel.get("targets", []):
            for key in LEGACY_TARGET_KEYS:
                target.pop(key, None)
    return data


def dashboard_model(name: str) -> dict:
    """The dashboard a source defines, as Grafana's JSON model (in English, the sources' language)."""
    from grafanalib._gen import DashboardEncoder

    from ent_exporter.mixin.panels import name_profiles

    data = clean(json.loads(json.dumps(load_dashboard(name).to_json_data(), cls=DashboardEncoder)))
    stack = list(data.get("panels", []))
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        if panel.get("type") != "row":
            name_profiles(panel)
    return data


def dashboard_json(name: str, lang: str = "en") -> str:
    from ent_exporter.mixin.config import CONFIG
    from ent_exporter.mixin.i18n import localize, name_label_values

    data = name_label_values(localize(dashboard_model(name), lang, CONFIG.dashboard_uids), lang)
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


class _Dumper(yaml.SafeDumper):
    pass


def _string(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def rules_yaml(groups: list[dict]) -> str:
    header = (
        f"# Generated by `{COMMAND}` from ent_exporter/mixin/rules.py and config.py: do not edit by hand.\n"
        "# The runbook of every alert: prometheus/RUNBOOK.md.\n"
    )
    body = yaml.dump({"groups": groups}, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
    return header + body


def outputs() -> dict[Path, str]:
    """Every generated file and its expected content."""
    from ent_exporter.mixin.i18n import LANGUAGES, Untranslated
    from ent_exporter.mixin.rules import rule_files

    files, missing = {}, []
    for name in sources():
        for lang in LANGUAGES:
            try:
                files[DASHBOARDS / lang / f"{name}.json"] = dashboard_json(name, lang)
            except Untranslated as error:
                missing += [f"dashboards/{name}.py ({lang}): {text!r}" for text in error.args[0]]
    if missing:
        raise SystemExit("texts without a translation in ent_exporter/mixin/i18n.py:\n" + "\n".join(missing))
    files.update({RULES / name: rules_yaml(groups) for name, groups in rule_files().items()})
    return files


def out_of_date() -> list[Path]:
    return [path for path, text in outputs().items() if not path.exists() or path.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report files that are out of date")
    args = parser.parse_args(argv)
    if args.check:
        stale = out_of_date()
        for path in stale:
            print(f"out of date: {path.relative_to(REPO)}", file=sys.stderr)
        if stale:
            print(f"run `{COMMAND}` and commit the result", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
