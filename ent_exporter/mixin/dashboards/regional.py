"""Regional: which establishments lag, and which applications are under-used.

Establishments ranked (highest and lowest) by activation ratio, connections per activated
account, share of inactive accounts and visitors of the month to date, each person once
(profile="all"), filtered by establishment kind (ent_structure_info's kind label); applications
ranked by use over the whole platform, with the ones opened rarely (under-used) or not at all in
the period: the catalogue of applications is every application seen over the retention, so one
nobody opened in the period shows 0 rather than nothing. A `platform` variable selects the
platforms of a federated setup (prometheus/federation/)."""

from ent_exporter.mixin.config import CONFIG
from ent_exporter.mixin.panels import (
    ACTIVATION_RATIO,
    INSTANCE,
    bargauge,
    dashboard,
    drill_down,
    growth_in_period,
    kind_variable,
    platform_variable,
    row,
    stat,
    table,
    target,
)

R = f'platform=~"$platform", {INSTANCE}'
KEY = "platform, instance, structure"  # a structure code is unique within one platform (one exporter)
STRUCTURES = f'structure!="all", profile="all", {R}'
INFO = f'max by ({KEY}, name, kind) (ent_structure_info{{kind=~"$kind", {R}}})'
ACTIVATED = f'max by ({KEY}) (ent_accounts{{{STRUCTURES}, state="activated"}})'
# Counts in the period read at its two ends (growth_in_period): two samples per series at any range.
LOGINS = f'ent_logins_total{{structure!="all", {R}}}'
ACCESSES = f'ent_app_accesses_total{{structure="all", {R}}}'
INDICATORS = {
    "activation": f"max by ({KEY}) (ent_account_activation_ratio{{{STRUCTURES}}})",
    "per_account": f"sum by ({KEY}) {growth_in_period(LOGINS)}\n/\n({ACTIVATED} > 0)",
    "inactive": f'max by ({KEY}) (ent_inactive_accounts{{{STRUCTURES}, days="30"}})\n/\n({ACTIVATED} > 0)',
    "visitors": f'max by ({KEY}) (ent_unique_visitors{{{STRUCTURES}, period="month"}})',
}


def of_kind(expr: str) -> str:
    """The indicator for the establishments of the chosen kinds, with their name and kind."""
    return f"(\n{expr}\n)\n* on ({KEY}) group_left (name, kind)\n{INFO}"


N = CONFIG.ranking_size
# Applications: openings in the period over the whole platform (structure="all": an opening counts once),
# and the catalogue, every application with a series now or in the retention (one look a day: an application's
# counter, once published, stays; 400 looks per series rather than 9,600 at each refresh).
OPENINGS = f"sum by (app) {growth_in_period(ACCESSES)}"
CATALOGUE = (
    f'group by (app) (ent_app_accesses_total{{structure="all", {R}}})\n'
    f'or group by (app) (max_over_time((group by (app) (ent_app_accesses_total{{structure="all", {R}}}))'
    f"[{CONFIG.catalogue_lookback}:1d]))"
)
USE = f"{OPENINGS}\nor on (app)\n0 * ({CATALOGUE})"
# Share of all openings (0 for every application when nobody opened any: no 0/0).
SHARE = f"({USE})\n/ on () group_left ()\nclamp_min(sum({OPENINGS}), 1)"
UNDER = CONFIG.under_used_share
STRUCTURE_LINK = drill_down(
    "establishment", "Open ${__field.labels.name} in ENT establishment", "structure", "${__field.labels.structure}"
)
STRUCTURE_ROW_LINK = drill_down(
    "establishment", "Open ${__data.fields.structure} in ENT establishment", "structure", "${__data.fields.structure}"
)
APP_LINK = drill_down("applications", "Applications: ${__field.labels.app}", "app", "${__field.labels.app}")


def instant(expr: str, legend: str = "", fmt: str = "time_series", ref: str = "A"):
    return target(expr, legend, ref=ref, instant=True, fmt=fmt)


def ranking(
    title: str, what: str, key: str, unit: str, thresholds, highest: bool, decimals: int | None = None, max_value=None
):
    which = "topk" if highest else "bottomk"
    order = "highest" if highest else "lowest"
    return (
        bargauge(
            title,
            f"The {N} establishments with the {order} {what}.",
            instant(f"sort{'_desc' if highest else ''}({which}({N}, {of_kind(INDICATORS[key])}))", "{{name}}"),
            unit,
            thresholds,
            max_value=max_value,
            decimals=decimals,
            field_links=STRUCTURE_LINK,
        ),
        12,
        9,
    )


NEUTRAL_BLUE = [(None, "blue")]
INACTIVE_SHARE = [(None, "green"), (0.3, "yellow"), (0.5, "red")]
USE_SHARE = [(None, "red"), (0.000001, "orange"), (UNDER, "green")]

panels = [
    row("Establishments that lead and lag (kind: the filter above)"),
    ranking(
        "Lowest activation ratio",
        "activation ratio (activated people ÷ people with an account, daily)",
        "activation",
        "percentunit",
        ACTIVATION_RATIO,
        False,
        1,
        1,
    ),
    ranking(
        "Highest activation ratio",
        "activation ratio (activated people ÷ people with an account, daily)",
        "activation",
        "percentunit",
        ACTIVATION_RATIO,
        True,
        1,
        1,
    ),
    ranking(
        "Fewest connections per activated account",
        "connections in the period per activated person (logins ÷ activated people)",
        "per_account",
        "short",
        NEUTRAL_BLUE,
        False,
        1,
    ),
    ranking(
        "Most connections per activated account",
        "connections in the period per activated person (logins ÷ activated people)",
        "per_account",
        "short",
        NEUTRAL_BLUE,
        True,
        1,
    ),
    ranking(
        "Highest share of inactive accounts",
        "share of activated people without a login for 30 days",
        "inactive",
        "percentunit",
        INACTIVE_SHARE,
        True,
        1,
        1,
    ),
    ranking(
        "Lowest share of inactive accounts",
        "share of activated people without a login for 30 days",
        "inactive",
        "percentunit",
        INACTIVE_SHARE,
        False,
        1,
        1,
    ),
    ranking(
        "Fewest visitors this month",
        "visitors in the month to date (each person once)",
        "visitors",
        "short",
        NEUTRAL_BLUE,
        False,
        0,
    ),
    ranking(
        "Most visitors this month",
        "visitors in the month to date (each person once)",
        "visitors",
        "short",
        NEUTRAL_BLUE,
        True,
        0,
    ),
    row("Every establishment", collapsed=True),
    (
        table(
            "Establishments",
            "Every establishment of the chosen kinds with its four indicators; click a column to sort, a row to "
            "open the establishment.",
            [
                instant(of_kind(INDICATORS[key]), fmt="table", ref=ref)
                for key, ref in (("activation", "A"), ("per_account", "B"), ("inactive", "C"), ("visitors", "D"))
            ],
            "short",
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True, "instance": True, "platform": True},
                        "indexByName": {
                            "structure": 0,
                            "name": 1,
                            "kind": 2,
                            "Value #A": 3,
                            "Value #B": 4,
                            "Value #C": 5,
                            "Value #D": 6,
                        },
                        "renameByName": {
                            "structure": "Code",
                            "name": "Name",
                            "kind": "Kind",
                            "Value #A": "Activation ratio",
                            "Value #B": "Connections per activated account",
                            "Value #C": "Share of inactive accounts",
                            "Value #D": "Visitors this month",
                        },
                    },
                },
            ],
            overrides=[
                {
                    "matcher": {"id": "byName", "options": name},
                    "properties": [{"id": "unit", "value": "percentunit"}, {"id": "decimals", "value": 1}],
                }
                for name in ("Activation ratio", "Share of inactive accounts")
            ],
            field_links=STRUCTURE_ROW_LINK,
            sort_by=[{"displayName": "Activation ratio", "desc": False}],
        ),
        24,
        12,
    ),
    row("Applications (the whole platform)"),
    (
        stat(
            "Applications never opened in the period",
            "Applications seen over the retention that nobody opened during the period.",
            instant(f"count(({USE}) == 0) or vector(0)"),
            "short",
            [(None, "green"), (1, "orange")],
        ),
        6,
        5,
    ),
    (
        stat(
            "Under-used applications",
            f"Applications opened in the period but for less than {UNDER * 100:g} % of all openings.",
            instant(f"count(({SHARE}) > 0 < {UNDER}) or vector(0)"),
            "short",
            [(None, "green"), (1, "orange")],
        ),
        6,
        5,
    ),
    (
        stat(
            "Applications in the catalogue",
            "Applications seen at least once over the retention.",
            instant(f"count({CATALOGUE}) or vector(0)"),
            "short",
        ),
        6,
        5,
    ),
    (
        stat(
            "Application openings",
            "Application openings in the period over the whole platform.",
            instant(f"sum({OPENINGS}) or vector(0)"),
            "short",
            decimals=0,
        ),
        6,
        5,
    ),
    (
        table(
            "Applications by use",
            f"Every application of the catalogue with its openings in the period and its share of all openings, "
            f"least used first: red when nobody opened it, orange under {UNDER * 100:g} % (under-used).",
            [instant(f"sort({USE})", fmt="table", ref="A"), instant(SHARE, fmt="table", ref="B")],
            "short",
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "indexByName": {"app": 0, "Value #A": 1, "Value #B": 2},
                        "renameByName": {"app": "Application", "Value #A": "Openings", "Value #B": "Share of openings"},
                    },
                },
            ],
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "Share of openings"},
                    "properties": [
                        {"id": "unit", "value": "percentunit"},
                        {"id": "decimals", "value": 1},
                        {
                            "id": "thresholds",
                            "value": {
                                "mode": "absolute",
                                "steps": [{"color": color, "value": value} for value, color in USE_SHARE],
                            },
                        },
                        {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                    ],
                }
            ],
            sort_by=[{"displayName": "Openings", "desc": False}],
        ),
        12,
        12,
    ),
    (
        bargauge(
            "Most used applications",
            f"The {N} applications opened most often in the period.",
            instant(f"sort_desc(topk({N}, {OPENINGS}))", "{{app}}"),
            "short",
            decimals=0,
            field_links=APP_LINK,
        ),
        12,
        12,
    ),
]

dashboard = dashboard(
    "regional",
    "ENT regional",
    "For regional authorities: establishments ranked by activation, activity per account, inactive accounts and "
    "visitors, filtered by kind; applications ranked by use with the under-used and unused ones.",
    panels,
    [platform_variable(), kind_variable()],
)
