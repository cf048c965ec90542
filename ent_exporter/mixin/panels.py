"""Panel, variable and layout helpers shared by the ``dashboards/*.py`` files.

grafanalib 0.7.1 models Grafana 8-era panels; what it lacks (modern bar gauges,
heatmap options, value mappings, ``range`` on targets) is filled in with ``extraJson``
or small subclasses here, so the dashboards themselves read as a list of queries.
Every helper requires a description and a unit, and takes thresholds as a list of
``(value, color)`` pairs (the first value is None: the base color).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import attr
from grafanalib import core as g

from ent_exporter.mixin.config import CONFIG

SCHEMA_VERSION = 41  # Grafana 12: the JSON below is written in its model, no migration needed
# Every panel, variable and annotation reads the datasource variable ($datasource: any Prometheus,
# by default the provisioned one), so one dashboard serves any Prometheus holding the metrics.
DS = {"type": "prometheus", "uid": "${datasource}"}
# Several exporters (platforms) may feed one Prometheus: every query is filtered by $instance.
INSTANCE = 'instance=~"$instance"'
# The failure alert's traffic guard as a rate: ratio panels hide what the alert ignores.
MIN_CALLS_PER_SECOND = CONFIG.connector_min_requests_per_minute / 60

# Threshold presets: (value, color) pairs, increasing.
NEUTRAL = [(None, "blue")]
FAILURE_RATIO = [
    (None, "green"),
    (CONFIG.connector_failure_ratio_warning, "yellow"),
    (CONFIG.connector_failure_ratio, "red"),
]
SUCCESS_RATIO = [
    (None, "red"),
    (round(1 - CONFIG.connector_failure_ratio, 6), "yellow"),
    (round(1 - CONFIG.connector_failure_ratio_warning, 6), "green"),
]
ACTIVATION_RATIO = [(None, "red"), (0.5, "yellow"), (0.8, "green")]
UP_DOWN = [(None, "red"), (1, "green")]


def shown_unit(unit: str) -> str:
    """The unit Grafana is given: counts ("short" in the sources) are written with the browser's locale
    ("locale": 12 345 and 2,5 in French) instead of Grafana's "short" (12 K, 2 Mil, 1.8 Tri)."""
    return "locale" if unit == "short" else unit


def steps(thresholds: Sequence[tuple[float | None, str]]) -> list[dict]:
    return [{"color": color, "value": value} for value, color in thresholds]


@attr.s
class PromTarget(g.Target):
    """A Prometheus query, instant or range, in Grafana 10's target model."""

    def to_json_data(self):
        data = super().to_json_data()
        data.update({"range": not self.instant, "editorMode": "code", "datasource": DS})
        data.pop("target", None)
        data.pop("metric", None)
        data.pop("step", None)
        return data


def target(
    expr: str, legend: str = "", ref: str = "A", instant: bool = False, fmt: str = "time_series", interval: str = ""
) -> PromTarget:
    return PromTarget(  # type: ignore[call-arg]  # (grafanalib's attrs fields are untyped)
        expr=expr.strip(),
        legendFormat=legend,
        refId=ref,
        instant=instant,
        format=fmt,
        intervalFactor=1,
        interval=interval,
    )


def _targets(queries) -> list[PromTarget]:
    """Accepts targets, or strings (one target each, refIds A, B, ...)."""
    out = []
    for index, query in enumerate(queries if isinstance(queries, (list, tuple)) else [queries]):
        if isinstance(query, str):
            query = target(query)
        if not query.refId:
            query = attr.evolve(query, refId=chr(ord("A") + index))
        out.append(query)
    # refIds must be unique within a panel
    seen = set()
    for index, query in enumerate(out):
        if query.refId in seen:
            out[index] = attr.evolve(query, refId=chr(ord("A") + index))
        seen.add(out[index].refId)
    return out


def _field_config(
    unit: str,
    thresholds,
    extra_defaults: dict | None = None,
    overrides: list | None = None,
    mappings: list | None = None,
) -> dict:
    defaults = {
        "unit": shown_unit(unit),
        "thresholds": {"mode": "absolute", "steps": steps(thresholds)},
        "mappings": mappings or [],
    }
    defaults.update(extra_defaults or {})
    return {"fieldConfig": {"defaults": defaults, "overrides": overrides or []}}


def _merge(*parts: dict) -> dict:
    out: dict = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = _merge(out[key], value)
            else:
                out[key] = value
    return out


def _common(title: str, description: str, targets, links=None, max_points: int | None = None) -> dict:
    """What every panel has. ``max_points``: the panel's maxDataPoints (None: Grafana's default, the
    panel's width in pixels; instant queries ignore it)."""
    if not description:
        raise ValueError(f"panel {title!r}: a description is required")
    return {
        "title": title,
        "description": description,
        "dataSource": DS,
        "targets": _targets(targets),
        "links": links or [],
        "maxDataPoints": max_points,
    }


def value_map(mapping: dict, colors: dict | None = None) -> list[dict]:
    """Value mappings {"1": "Up"} (with optional colors {"1": "green"}) in Grafana's model."""
    colors = colors or {}
    return [
        {
            "type": "value",
            "options": {
                str(value): {"text": text, "index": index, **({"color": colors[value]} if value in colors else {})}
                for index, (value, text) in enumerate(mapping.items())
            },
        }
    ]


def rename(names: dict[str, str]) -> list[dict]:
    """Field overrides giving series (matched by display name) a friendlier name."""
    return [
        {"matcher": {"id": "byName", "options": name}, "properties": [{"id": "displayName", "value": shown}]}
        for name, shown in names.items()
    ]


# -- panels ------------------------------------------------------------------------------


def stat(
    title: str,
    description: str,
    targets,
    unit: str,
    thresholds=NEUTRAL,
    *,
    text_mode: str = "auto",
    color_mode: str = "value",
    graph: bool = False,
    reduce: str = "lastNotNull",
    decimals: int | None = None,
    mappings: list | None = None,
    overrides: list | None = None,
    orientation: str = "auto",
    no_value: str = "No data",
    links=None,
    interval: str | None = None,
    field_links: list | None = None,
) -> g.Stat:
    extra = _merge(
        _field_config(
            unit,
            thresholds,
            {"decimals": decimals, "noValue": no_value, "color": {"mode": "thresholds"}, "links": field_links},
            overrides,
            mappings,
        ),
        {"options": {"wideLayout": True, "showPercentChange": False}},
    )
    return g.Stat(
        **_common(title, description, targets, links),
        format=unit,
        textMode=text_mode,
        colorMode=color_mode,
        graphMode="area" if graph else "none",
        reduceCalc=reduce,
        decimals=decimals,
        orientation=orientation,
        noValue=no_value,
        mappings=mappings or [],
        overrides=overrides or [],
        thresholds=steps(thresholds),
        interval=interval,
        extraJson=extra,
    )


def timeseries(
    title: str,
    description: str,
    targets,
    unit: str,
    thresholds=NEUTRAL,
    *,
    bars: bool = False,
    stack: bool = False,
    fill: int = 10,
    threshold_style: str | None = None,
    min_value: int | None = 0,
    max_value: int | None = None,
    axis_label: str = "",
    legend_calcs: list[str] | None = None,
    overrides: list | None = None,
    links=None,
    interval: str | None = None,
    log_scale: bool = False,
    max_points: int | None = None,
    no_value: str | None = None,
) -> g.TimeSeries:
    """A time series. Thresholds other than the neutral one are drawn (a dashed line) unless
    ``threshold_style`` says otherwise: a threshold nobody sees is noise in the JSON. Bars are drawn before
    their timestamp (barAlignment -1): an ``increase(...[$__interval])`` is stamped at the end of the interval
    it counts, so a day's bar covers that day, not the midnight that ends it. A panel reading a counter
    (increase, rate) over Grafana's interval needs a minimum ``interval``: else at short ranges the interval
    holds one scrape and the increase is empty."""
    _require_interval(title, targets, interval)
    if threshold_style is None:
        threshold_style = "off" if thresholds == NEUTRAL else "dashed"
    extra = _field_config(unit, thresholds, {"min": min_value, "max": max_value, "noValue": no_value}, overrides)
    return g.TimeSeries(
        **_common(title, description, targets, links, max_points),
        unit=unit,
        thresholds=steps(thresholds),
        drawStyle="bars" if bars else "line",
        barAlignment=-1 if bars else 0,
        fillOpacity=80 if bars else fill,
        stacking={"mode": "normal", "group": "A"} if stack else {"mode": "none", "group": "A"},
        thresholdsStyleMode=threshold_style,
        legendDisplayMode="table" if legend_calcs else "list",
        legendPlacement="right" if legend_calcs else "bottom",
        legendCalcs=legend_calcs or [],
        tooltipMode="multi",
        tooltipSort="desc",
        axisLabel=axis_label,
        overrides=overrides or [],
        scaleDistributionType="log" if log_scale else "linear",
        scaleDistributionLog=10 if log_scale else 2,
        valueMin=min_value,
        valueMax=max_value,
        interval=interval,
        showPoints="never",
        lineWidth=1,
        extraJson=extra,
    )


COUNTER_OVER_INTERVAL = re.compile(r"\b(?:increase|rate|irate|changes|delta|deriv)\([^()]*\[\$__(?:rate_)?interval\]")


def _require_interval(title: str, targets, interval: str | None) -> None:
    for query in _targets(targets):
        if COUNTER_OVER_INTERVAL.search(query.expr) and not (interval or query.interval):
            raise ValueError(f"panel {title!r}: a counter read over $__interval needs a minimum interval")
        if not query.instant and "vector(0)" in query.expr:
            raise ValueError(f"panel {title!r}: no 'or vector(0)' in a range query (it hides an empty interval)")


@attr.s
class BarGauge(g.Panel):
    """A bar gauge in Grafana 10's model (grafanalib's BarGauge writes the Grafana 6 one)."""

    unit = attr.ib(default="short")
    displayMode = attr.ib(default="gradient")
    orientation = attr.ib(default="horizontal")
    minValue = attr.ib(default=0)
    maxValue = attr.ib(default=None)
    reduce = attr.ib(default="lastNotNull")
    showUnfilled = attr.ib(default=True)

    def to_json_data(self):
        return self.panel_json(
            {
                "type": "bargauge",
                "fieldConfig": {
                    "defaults": {
                        "unit": shown_unit(self.unit),
                        "min": self.minValue,
                        "max": self.maxValue,
                        "color": {"mode": "thresholds"},
                    }
                },
                "options": {
                    "displayMode": self.displayMode,
                    "orientation": self.orientation,
                    "showUnfilled": self.showUnfilled,
                    "valueMode": "color",
                    "namePlacement": "auto",
                    "sizing": "auto",
                    "minVizHeight": 16,
                    "minVizWidth": 8,
                    "maxVizHeight": 300,
                    "reduceOptions": {"calcs": [self.reduce], "fields": "", "values": False},
                },
            }
        )


def bargauge(
    title: str,
    description: str,
    targets,
    unit: str,
    thresholds=NEUTRAL,
    *,
    max_value=None,
    orientation: str = "horizontal",
    overrides: list | None = None,
    mappings: list | None = None,
    links=None,
    interval: str | None = None,
    decimals: int | None = None,
    no_value: str | None = None,
    field_links: list | None = None,
) -> BarGauge:
    return BarGauge(  # type: ignore[call-arg]  # (grafanalib's attrs fields are untyped)
        **_common(title, description, targets, links),
        unit=unit,
        maxValue=max_value,
        orientation=orientation,
        thresholds=steps(thresholds),
        interval=interval,
        extraJson=_field_config(
            unit,
            thresholds,
            {"min": 0, "max": max_value, "decimals": decimals, "noValue": no_value, "links": field_links},
            overrides,
            mappings,
        ),
    )


def table(
    title: str,
    description: str,
    targets,
    unit: str,
    thresholds=NEUTRAL,
    *,
    transformations=None,
    overrides: list | None = None,
    cell: str = "auto",
    sort_by: list | None = None,
    mappings=None,
    links=None,
    field_links: list | None = None,
    color_mode: str | None = None,
    no_value: str | None = None,
) -> g.Table:
    """A table. ``color_mode`` (e.g. "continuous-GrYlRd") colours cells on a continuous scale from
    the field's min to its max instead of by thresholds."""
    extra = _merge(
        _field_config(
            unit,
            thresholds,
            {
                "custom": {"align": "auto", "cellOptions": {"type": cell}, "inspect": False, "filterable": False},
                "links": field_links,
                "color": {"mode": color_mode} if color_mode else None,
                "noValue": no_value,
            },
            overrides,
            mappings,
        ),
        {
            "options": {
                "showHeader": True,
                "cellHeight": "sm",
                "footer": {"show": False, "reducer": ["sum"]},
                "sortBy": sort_by or [],
            }
        },
    )
    return g.Table(
        **_common(title, description, targets, links),
        unit=unit,
        thresholds=steps(thresholds),
        transformations=transformations or [],
        overrides=overrides or [],
        extraJson=extra,
    )


def piechart(title: str, description: str, targets, unit: str, thresholds=NEUTRAL, links=None) -> g.PieChartv2:
    return g.PieChartv2(
        **_common(title, description, targets, links),
        unit=unit,
        thresholds=steps(thresholds),
        pieType="donut",
        legendDisplayMode="table",
        legendPlacement="right",
        legendValues=["value", "percent"],
        reduceOptionsCalcs=["lastNotNull"],
        tooltipMode="single",
        extraJson=_merge(
            _field_config(unit, thresholds), {"options": {"displayLabels": ["name"], "legend": {"showLegend": True}}}
        ),
    )


def heatmap(
    title: str,
    description: str,
    targets,
    unit: str,
    *,
    cell_unit: str,
    y_unit: str = "short",
    scheme: str = "Oranges",
    links=None,
    interval: str | None = None,
    thresholds=NEUTRAL,
) -> g.Heatmap:
    """A heatmap of pre-bucketed series (calculate: false): Prometheus histogram buckets with
    ``format: heatmap`` (dataFormat 'tsbuckets'), or one series per row, named by its legend."""
    options = {
        "calculate": False,
        "cellGap": 1,
        "cellValues": {"unit": shown_unit(cell_unit)},
        "color": {
            "mode": "scheme",
            "scheme": scheme,
            "fill": "dark-orange",
            "scale": "exponential",
            "exponent": 0.5,
            "steps": 64,
            "reverse": False,
        },
        "exemplars": {"color": "rgba(255,0,255,0.7)"},
        "filterValues": {"le": 1e-9},
        "legend": {"show": True},
        "rowsFrame": {"layout": "auto"},
        "showValue": "never",
        "tooltip": {"mode": "single", "yHistogram": False, "showColorScale": True},
        "yAxis": {"axisPlacement": "left", "reverse": False, "unit": shown_unit(y_unit)},
    }
    extra = _merge(
        _field_config(
            unit,
            thresholds,
            {
                "custom": {
                    "hideFrom": {"legend": False, "tooltip": False, "viz": False},
                    "scaleDistribution": {"type": "linear"},
                }
            },
        ),
        {"options": options},
    )
    return g.Heatmap(
        **_common(title, description, targets, links),
        dataFormat="tsbuckets",
        yBucketBound="upper",
        hideZeroBuckets=False,
        interval=interval,
        thresholds=steps(thresholds),
        extraJson=extra,
    )


# A state timeline's queries read min_over_time / max_over_time over [$__interval] (an outage shorter than the
# step is drawn, not stepped over); its minimum interval covers two scrapes, so the range is never empty.
STATE_INTERVAL = "1m"


def state_timeline(
    title: str, description: str, targets, unit: str, thresholds=NEUTRAL, *, mappings=None, links=None
) -> g.StateTimeline:
    """A state timeline. Its queries must say how a state is kept over Grafana's interval: each reads
    ``min_over_time`` (up/success: one failure shows) or ``max_over_time`` (alerts: one firing shows)."""
    for query in _targets(targets):
        if "_over_time(" not in query.expr or "[$__interval]" not in query.expr:
            raise ValueError(f"panel {title!r}: a state timeline reads min/max_over_time over [$__interval]")
    return g.StateTimeline(
        **_common(title, description, targets, links),
        interval=STATE_INTERVAL,
        mappings=mappings or [],
        thresholds=steps(thresholds),
        showValue="never",
        mergeValues=True,
        rowHeight=0.8,
        extraJson=_field_config(unit, thresholds, {"color": {"mode": "thresholds"}}, mappings=mappings),
    )


def row(title: str, collapsed: bool = False) -> g.RowPanel:
    """A row; a collapsed one holds the panels that follow it (up to the next row), shown on a click."""
    return g.RowPanel(title=title, description=title, collapsed=collapsed)


def barchart(
    title: str,
    description: str,
    targets,
    unit: str,
    *,
    x_field: str,
    transformations=None,
    thresholds=NEUTRAL,
    links=None,
) -> g.Panel:
    """A bar chart of one instant query formatted as a table, one bar per value of ``x_field``."""
    return BarChart(  # type: ignore[call-arg]  # (grafanalib's attrs fields are untyped)
        **_common(title, description, targets, links),
        xField=x_field,
        transformations=transformations or [],
        thresholds=steps(thresholds),
        extraJson=_field_config(
            unit, thresholds, {"color": {"mode": "continuous-GrYlRd"}, "custom": {"fillOpacity": 80, "lineWidth": 0}}
        ),
    )


@attr.s
class BarChart(g.Panel):
    xField = attr.ib(default="")

    def to_json_data(self):
        return self.panel_json(
            {
                "type": "barchart",
                "options": {
                    "xField": self.xField,
                    "orientation": "vertical",
                    "showValue": "never",
                    "groupWidth": 0.8,
                    "barWidth": 0.9,
                    "stacking": "none",
                    "xTickLabelRotation": 0,
                    "xTickLabelSpacing": 0,
                    "colorByField": "Value",
                    "legend": {"showLegend": False, "displayMode": "list", "placement": "bottom", "calcs": []},
                    "tooltip": {"mode": "single", "sort": "none"},
                },
            }
        )


# -- ratios over several exporters -----------------------------------------------------------------
# A ratio family (additive=False) is never summed nor maxed across exporters (platforms have different people):
# the panels divide the sum of its numerator by the sum of its denominator, from the series the exporter publishes.
# Denominators are counts of people (integers): clamp_min(..., 1) divides by the count itself when there is anyone
# and gives 0 when nobody (numerator 0), the families' own "0 when none".


def activation_ratio(selector: str, by: str = "") -> str:
    """ent_account_activation_ratio's definition (activated accounts ÷ all accounts) over the exporters selected:
    sum of ent_accounts{state="activated"} ÷ sum of ent_accounts, grouped ``by`` (e.g. "profile")."""
    group = f" by ({by})" if by else ""
    return (
        f'sum{group} (ent_accounts{{{selector}, state="activated"}})\n/\n'
        f"clamp_min(sum{group} (ent_accounts{{{selector}}}), 1)"
    )


def visits_per_visitor_pooled(selector: str, by: str = "") -> str:
    """ent_visits_per_visitor (logins of the period ÷ its unique visitors) over the exporters selected: each
    exporter's ratio times its visitors is its logins, so the sum of those ÷ the sum of the visitors is the ratio
    of the exporters together. ``selector`` names the period and profile (the same series of both families)."""
    group = f" by ({by})" if by else ""
    return (
        f"sum{group} (ent_visits_per_visitor{{{selector}}} * ent_unique_visitors{{{selector}}})\n/\n"
        f"clamp_min(sum{group} (ent_unique_visitors{{{selector}}}), 1)"
    )


# -- variables -----------------------------------------------------------------------------


def _query_variable(
    name: str,
    label: str,
    query: str,
    *,
    regex: str = "",
    multi: bool = False,
    include_all: bool = True,
    all_value: str | None = ".*",
    hide: int = g.SHOW,
    sort: int = g.SORT_ALPHA_IGNORE_CASE_ASC,
    description: str = "",
) -> dict:
    # Written out in Grafana 10's model (grafanalib's Template lacks definition/description and
    # writes the query as a bare string).
    return {
        "name": name,
        "label": label,
        "description": description,
        "type": "query",
        "datasource": DS,
        "definition": query,
        "query": query,
        "regex": regex,
        "multi": multi,
        "includeAll": include_all,
        "allValue": all_value if include_all else None,
        "current": {"selected": True, "text": ["All"] if multi else "All", "value": ["$__all"] if multi else "$__all"}
        if include_all
        else {},
        "options": [],
        "refresh": g.REFRESH_ON_TIME_RANGE_CHANGE,
        "sort": sort,
        "hide": hide,
        "skipUrlSync": False,
    }


def datasource_variable() -> dict:
    """$datasource: any Prometheus datasource, by default the provisioned one (config.datasource_uid)."""
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "description": "The Prometheus holding the ENT exporter's metrics.",
        "current": {"selected": True, "text": CONFIG.datasource_uid, "value": CONFIG.datasource_uid},
        "options": [],
        "refresh": 1,
        "regex": "",
        "hide": g.SHOW,
        "includeAll": False,
        "multi": False,
        "skipUrlSync": False,
    }


def instance_variable() -> dict:
    """$instance: the exporters (one per platform) feeding this Prometheus; "All" selects every one."""
    return _query_variable(
        "instance",
        "Exporter",
        f"label_values(ent_exporter_series{{{CONFIG.exporter_selector}}}, instance)",
        multi=True,
        description='The ENT exporter (one per platform) whose figures are shown. "All" adds the '
        "platforms up: they have different users.",
    )


def structure_variable(hide: bool = False) -> dict:
    """Structures by name (from ent_structure_info); "All" is the platform-wide series structure="all"."""
    return _query_variable(
        "structure",
        "Structure",
        "ent_structure_info",
        # query_result-like lines: ent_structure_info{..., kind="...", name="<name>", structure="<code>"}
        regex='/name="(?<text>[^"]*)".*structure="(?<value>[^"]*)"/',
        all_value=CONFIG.all_structures,
        hide=g.HIDE_VARIABLE if hide else g.SHOW,
        description='The establishment (UAI). "All" shows the platform-wide figures (structure="all"), '
        "which are not the sum of the structures: a user attached to two structures counts once.",
    )


def profile_variable(hide: bool = False) -> dict:
    return _query_variable(
        "profile",
        "Profile",
        'label_values(ent_logins_total{structure="$structure", instance=~"$instance"}, profile)',
        multi=True,
        hide=g.HIDE_VARIABLE if hide else g.SHOW,
        description="Profiles as the platform names them (Teacher, Student, Relative, Personnel, Guest, unknown).",
    )


def connector_variable() -> dict:
    return _query_variable(
        "connector",
        "Connector",
        'label_values({__name__=~"ent_connector_requests_total|ent_connector_probe_success", instance=~"$instance"}, '
        "connector)",
        multi=True,
        description="Connectors: authentication (LDAP, CAS, SAML) and integrations (Pronote, the GAR...), "
        "platform-reported or probed by the exporter.",
    )


def app_variable() -> dict:
    return _query_variable(
        "app",
        "Application",
        'label_values(ent_app_accesses_total{structure="$structure", instance=~"$instance"}, app)',
        multi=True,
        description="Applications opened from the ENT.",
    )


# -- dashboard ---------------------------------------------------------------------------------


def layout(items: Iterable) -> list:
    """Places panels left to right on Grafana's 24-column grid. Items are rows (full width)
    or (panel, width, height) tuples; a panel that does not fit on the line starts a new one."""
    placed, x, y, line_height = [], 0, 0, 0
    for item in items:
        if isinstance(item, g.RowPanel):
            y += line_height
            x, line_height = 0, 0
            placed.append(attr.evolve(item, gridPos=g.GridPos(h=1, w=24, x=0, y=y)))
            y += 1
            continue
        panel, width, height = item
        if x + width > 24:
            y += line_height
            x, line_height = 0, 0
        placed.append(attr.evolve(panel, gridPos=g.GridPos(h=height, w=width, x=x, y=y)))
        x += width
        line_height = max(line_height, height)
    return placed


def dashboard_links() -> list[g.DashboardLink]:
    """Links to every ENT dashboard (by tag), carrying the time range and the variables:
    the chosen structure and profiles follow the user from one dashboard to the next."""
    return [
        g.DashboardLink(
            title="ENT dashboards", type="dashboards", tags=["ent"], asDropdown=False, includeVars=True, keepTime=True
        )
    ]


# The operators' dashboards: they show the firing alerts and failed collector runs as annotations, named
# as Prometheus names them (alert names, severities, collectors: identifiers, in English). The others are
# read by heads of establishment and the region, in their language: no such annotations there.
OPS_DASHBOARDS = ("connectors", "exporter")
ALERT_ANNOTATION = 'ALERTS{alertname=~"ENT.+", alertname!="ENTWatchdog", alertstate="firing"}'
FAILURE_ANNOTATION = (
    f"sum by (instance, collector) (changes(ent_exporter_collector_failures_total{{{CONFIG.exporter_selector}, "
    f"{INSTANCE}}}[2m])) > 0"
)


def dashboard_annotations(ops: bool = True) -> list[dict]:
    """Grafana's own annotations; on the operators' dashboards, firing ENT alerts (red) and failed collector
    runs (orange)."""

    def prometheus(name: str, color: str, expr: str, title: str, text: str) -> dict:
        return {
            "name": name,
            "datasource": DS,
            "enable": True,
            "hide": False,
            "iconColor": color,
            "target": {
                "refId": "Anno",
                "expr": expr,
                "step": "1m",
                "titleFormat": title,
                "textFormat": text,
                "useValueForTime": False,
                "tagKeys": "",
            },
        }

    builtin = [
        {
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }
    ]
    if not ops:
        return builtin
    return [
        *builtin,
        prometheus(
            "ENT alerts firing",
            "red",
            ALERT_ANNOTATION,
            "{{alertname}}",
            "{{severity}} {{connector}}{{collector}}{{instance}}",
        ),
        prometheus(
            "Collector failures",
            "orange",
            FAILURE_ANNOTATION,
            "collector {{collector}} failed",
            "{{instance}}: ent_exporter_collector_failures_total moved",
        ),
    ]


def _collapse(panels: list) -> list:
    """Moves the panels that follow a collapsed row into it (Grafana's model of a closed row)."""
    out: list = []
    holder = None
    for panel in panels:
        if isinstance(panel, g.RowPanel):
            holder = panel if panel.collapsed else None
            out.append(panel)
        elif holder is not None:
            holder.panels.append(panel)
        else:
            out.append(panel)
    return out


def dashboard(
    key: str,
    title: str,
    description: str,
    panels: list,
    variables: list[dict],
    time_from: str = CONFIG.default_time_from,
) -> g.Dashboard:
    variables = [datasource_variable(), instance_variable(), *variables]
    return g.Dashboard(
        title=title,
        uid=CONFIG.dashboard_uids[key],
        description=description,
        tags=list(CONFIG.dashboard_tags),
        timezone="browser",
        time=g.Time(time_from, "now"),
        refresh=CONFIG.refresh,
        schemaVersion=SCHEMA_VERSION,
        graphTooltip=g.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
        editable=True,
        links=dashboard_links(),
        panels=_collapse(layout(panels)),
        templating=g.Templating(list=variables),
        annotations=g.Annotations(list=dashboard_annotations(ops=key in OPS_DASHBOARDS)),
        timePicker=g.TimePicker(
            refreshIntervals=list(REFRESH_INTERVALS), timeOptions=["1h", "6h", "24h", "7d", "30d", "90d"]
        ),
    ).auto_panel_ids()


def drill_down(key: str, title: str, variable: str, value: str) -> list[dict]:
    """A data link (on a value) to another ENT dashboard with one variable set from the data, e.g. an
    application to the Applications dashboard: ``value`` is ${__field.labels.app} or ${__data.fields.app}."""
    uid = CONFIG.dashboard_uids[key]
    return [
        {
            "title": title,
            "targetBlank": False,
            "url": f"/d/{uid}?var-{variable}={value}&var-datasource=${{datasource}}&var-instance=${{instance}}"
            "&${__url_time_range}",
        }
    ]


def link(key: str, title: str) -> list[dict]:
    """A panel link to another ENT dashboard, keeping the time range and the variables."""
    return [panel_link(title, f"/d/{CONFIG.dashboard_uids[key]}?${{__url_time_range}}&${{__all_variables}}")]


def panel_link(title: str, url: str) -> dict:
    """A panel link, with every key @grafana/schema's DashboardLink requires."""
    return {
        "title": title,
        "url": url,
        "type": "link",
        "targetBlank": False,
        "asDropdown": False,
        "icon": "dashboard",
        "includeVars": False,
        "keepTime": False,
        "tags": [],
        "tooltip": title,
    }


def growth_in_period(selector: str) -> str:
    """A counter's growth over the time picker's period, per series, read at the period's two ends: the
    same figure as ``increase(selector[$__range])`` on the scrapes at the ends (which is what a count in the
    period is), but two samples per series whatever the range, where increase() reads every sample of it
    (a year of 30-second scrapes: a million per series). A series must exist at both ends (the exporter
    publishes every known structure and profile from 0, and keeps its counters across restarts)."""
    return f"({selector} - {selector} offset $__range)"


REFRESH_INTERVALS = ("5m", "15m", "30m", "1h")  # the auto-refresh choices: never more often than 5 minutes


# -- comparisons ------------------------------------------------------------------------------

PREVIOUS_PERIOD = "$__range"  # the period just before the time picker's, of the same length
# A year earlier, for a rolling window or a stock: 52 weeks (364 days), the same weekdays (a Wednesday
# afternoon without classes beside a Wednesday afternoon), never PromQL's 1y of 365 days. Calendar spans
# (a month to date) are compared through the exporter's own series of that span a year earlier.
A_YEAR = "52w"
A_YEAR_SECONDS = 52 * 7 * 86400
# What Prometheus says about its own storage: the oldest instant it holds (its self-scrape, job
# "prometheus"). A comparison is shown only when it stores everything since its window's start.
LOWEST_STORED = "prometheus_tsdb_lowest_timestamp_seconds"
CHANGE = [(None, "red"), (0, "green")]  # a rise is good (connections, visitors, activations)
CHANGE_WORSE = [(None, "green"), (0, "red")]  # a rise is bad (inactive accounts)
_SELECTOR = re.compile(r"(\b[a-zA-Z_:][\w:]*\{[^}]*\}(?:\[[^\]]*\])?)")


def shifted(expr: str, offset: str) -> str:
    """``expr`` as it was ``offset`` earlier: every selector (with its range) gets ``offset``."""
    return _SELECTOR.sub(lambda m: f"{m.group(1)} offset {offset}", expr)


def stored_since(expr: str, seconds_back: str) -> str:
    """``expr``, or nothing unless Prometheus stores every instant since ``seconds_back`` (PromQL, in seconds)
    before the evaluation: an earlier window partly out of the retention would read as a fall."""
    return f"(\n{expr}\n)\nand on ()\n(time() - ({seconds_back}) > max({LOWEST_STORED}))"


def change(current: str, earlier: str) -> str:
    """The change from ``earlier`` to ``current`` as a fraction (0.1 = +10 %); nothing when ``earlier`` is 0
    or missing (no percent of nothing)."""
    return f"(({current}) - ({earlier}))\n/\n(({earlier}) > 0)"


def comparison(
    title: str,
    description: str,
    expr: str,
    unit: str,
    *,
    decimals: int | None = None,
    previous: str | None = None,
    year: str | None = None,
    labels: tuple[str, ...] = ("This period", "Previous period", "Change", "A year earlier", "Change in a year"),
    links=None,
    higher_is_better: bool = True,
) -> g.Stat:
    """A headline figure beside the previous period and the same period a year earlier, with the change in
    percent. ``expr`` is the figure now (an instant query over [$__range] for counters, a value for gauges):
    the previous period is the same query ``offset $__range``, a year earlier ``offset 52w``, each shown
    only when Prometheus stores its whole window (else "—"). ``previous`` and ``year`` replace them where an
    offset would not compare like with like (a month to date: the closed previous month, the same calendar
    days a year earlier, series the exporter publishes); no change is computed beside ``previous``."""
    span = "$__range_s" if "[$__range]" in expr else "0"  # a count over the period reaches back that far more
    before = (
        previous
        if previous is not None
        else stored_since(shifted(expr, PREVIOUS_PERIOD), "$__range_s" if span == "0" else "2 * $__range_s")
    )
    then = year if year is not None else stored_since(shifted(expr, A_YEAR), f"{A_YEAR_SECONDS} + {span}")
    targets = [target(expr, labels[0], ref="A", instant=True), target(before, labels[1], ref="B", instant=True)]
    if previous is None:
        targets.append(target(change(expr, before), labels[2], ref="C", instant=True))
    targets += [
        target(then, labels[3], ref="D", instant=True),
        target(change(expr, then), labels[4], ref="E", instant=True),
    ]
    percent = [
        {
            "matcher": {"id": "byFrameRefID", "options": ref},
            "properties": [
                {"id": "unit", "value": "percentunit"},
                {"id": "decimals", "value": 1},
                {
                    "id": "thresholds",
                    "value": {"mode": "absolute", "steps": steps(CHANGE if higher_is_better else CHANGE_WORSE)},
                },
            ],
        }
        for ref in ("C", "E")
        if any(t.refId == ref for t in targets)
    ]
    return stat(
        title,
        description,
        targets,
        unit,
        decimals=decimals,
        text_mode="value_and_name",
        orientation="horizontal",
        overrides=percent,
        links=links,
        no_value="–",
    )


def platform_variable() -> dict:
    """$platform: the platforms of a federated setup (the `platform` external label each regional Prometheus
    adds, prometheus/federation/); with one Prometheus and no such label, "All" matches every series."""
    return _query_variable(
        "platform",
        "Platform",
        "label_values(ent_structure_info, platform)",
        multi=True,
        description='The platform (region or academy) in a federated setup; "All" shows every one.',
    )


def kind_variable() -> dict:
    """$kind: the establishment kinds of ent_structure_info (collège, lycée, école...)."""
    return _query_variable(
        "kind",
        "Kind",
        'label_values(ent_structure_info{platform=~"$platform", instance=~"$instance"}, kind)',
        multi=True,
        description="The kind of establishment (as the platform names it): the rankings show only these.",
    )


# -- profile names ------------------------------------------------------------------------------
# Series and columns named by a profile (legend {{profile}}, a column per profile) are shown under
# a plain name (translated like any text); the label values in queries stay the platform's.
PROFILE_NAMES = {
    "Teacher": "Teachers",
    "Student": "Students",
    "Relative": "Parents",
    "Personnel": "Staff",
    "Guest": "Guests",
    "unknown": "Unknown profile",
}


def name_profiles(panel: dict) -> None:
    """Adds display-name overrides for the profiles to a panel (JSON) whose queries group by profile."""
    if not any(
        "profile" in t.get("expr", "") and ("(profile" in t["expr"] or "profile," in t["expr"])
        for t in panel.get("targets", [])
    ):
        return
    panel.setdefault("fieldConfig", {}).setdefault("defaults", {})
    overrides = panel["fieldConfig"].setdefault("overrides", [])
    named = {o["matcher"].get("options") for o in overrides}
    overrides.extend(o for o in rename(PROFILE_NAMES) if o["matcher"]["options"] not in named)
