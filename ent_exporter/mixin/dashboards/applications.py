"""Applications: accesses per application over time, top applications by profile, share of each."""

from ent_exporter.mixin.panels import (
    INSTANCE,
    app_variable,
    comparison,
    dashboard,
    link,
    piechart,
    profile_variable,
    row,
    stat,
    structure_variable,
    table,
    target,
    timeseries,
)
from ent_exporter.mixin.rules import STRUCTURE_APP_PROFILE_ACCESSES_1D, daily

S = f'structure="$structure", profile=~"$profile", {INSTANCE}'
# ent_app_accesses_total per structure is profile="all" (the sum over profiles) unless
# breakdowns.app_accesses_by_profile_per_structure publishes every profile: the profile filter keeps it.
APP = S.replace('profile=~"$profile"', 'profile=~"$profile|all"')
SA = f'{APP}, app=~"$app"'
IN_PERIOD = f"increase(ent_app_accesses_total{{{SA}}}[$__range])"
# Openings ÷ logins of the same profiles: the openings' profile values (each profile picked, or "all"
# where a structure's openings are published summed over profiles) pick the logins they are divided
# by ("all": every profile's logins, under profile="all" by label_replace).
_OPENINGS = f"sum by (profile) (increase(ent_app_accesses_total{{{APP}}}[$__range]))"
_LOGINS = (
    f"(sum by (profile) (increase(ent_logins_total{{{S}}}[$__range])) or label_replace(sum(increase("
    f'ent_logins_total{{structure="$structure", {INSTANCE}}}[$__range])), "profile", "all", "", ""))'
)
OPENINGS_PER_CONNECTION = f"sum({_OPENINGS}) / clamp_min(sum({_LOGINS} and on (profile) {_OPENINGS}), 1)"


def instant(expr: str, legend: str = "", fmt: str = "time_series", ref: str = "A"):
    return target(expr, legend, ref=ref, instant=True, fmt=fmt)


panels = [
    row("The period (time picker)"),
    (
        stat(
            "Application openings",
            "Applications opened during the period, for the selected structure, profiles and applications.",
            instant(f"sum({IN_PERIOD})"),
            "short",
            decimals=0,
        ),
        6,
        4,
    ),
    (
        stat(
            "Applications used",
            "Number of distinct applications opened at least once during the period.",
            instant(f"count(sum by (app) ({IN_PERIOD}) > 0) or vector(0)"),
            "short",
        ),
        6,
        4,
    ),
    (
        stat(
            "Openings per connection",
            "Application openings divided by logins during the period (all applications): how many applications "
            "a connection opens on average, for the selected profiles where openings are published per profile. "
            "For an establishment whose openings are published over every profile (the default series budget; "
            "breakdowns.app_accesses_by_profile_per_structure publishes them per profile), the ratio is over "
            "every profile: openings and logins always cover the same people.",
            instant(OPENINGS_PER_CONNECTION),
            "short",
            decimals=2,
            links=link("overview", "ENT overview"),
        ),
        6,
        4,
    ),
    (
        stat(
            "Most used application",
            "The application opened most often during the period, with its openings.",
            instant(f"topk(1, sum by (app) ({IN_PERIOD}))", "{{app}}"),
            "short",
            text_mode="value_and_name",
            decimals=0,
        ),
        6,
        4,
    ),
    (
        comparison(
            "Application openings compared",
            "Application openings in the period beside the period just before it (same length) and the same "
            "period a year earlier, with the change in percent.",
            f"sum({IN_PERIOD})",
            "short",
            decimals=0,
        ),
        24,
        4,
    ),
    row("Over time"),
    (
        timeseries(
            "Openings per application",
            "Application openings per hour (the raw counter's rate over Grafana's interval × 3600: every "
            "opening counts at any range), per application.",
            target(f"sum by (app) (rate(ent_app_accesses_total{{{SA}}}[$__rate_interval])) * 3600", "{{app}}"),
            "suffix: openings/h",
            legend_calcs=["mean", "max"],
            axis_label="openings per hour",
            interval="1m",
            max_points=500,
        ),
        24,
        10,
    ),
    (
        timeseries(
            "Openings per day by profile",
            "Application openings per day (each bar: the 24 hours before the daily history rule's last hourly value "
            "at its time, midnight UTC), per profile (selected applications), stacked.",
            target(f"sum by (profile) ({daily(STRUCTURE_APP_PROFILE_ACCESSES_1D, SA)})", "{{profile}}"),
            "short",
            bars=True,
            stack=True,
            axis_label="openings per day",
            interval="1d",
            max_points=400,
        ),
        24,
        8,
    ),
    row("Ranking and share", collapsed=True),
    (
        table(
            "Top applications by profile",
            "For each profile, its five most opened applications during the period.",
            instant(f"topk by (profile) (5, sum by (profile, app) ({IN_PERIOD}))", fmt="table"),
            "short",
            transformations=[
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "indexByName": {"profile": 0, "app": 1, "Value": 2},
                        "renameByName": {"profile": "Profile", "app": "Application", "Value": "Openings"},
                    },
                },
                {"id": "sortBy", "options": {"fields": {}, "sort": [{"field": "Openings", "desc": True}]}},
            ],
        ),
        12,
        12,
    ),
    (
        piechart(
            "Share of each application",
            "Each application's share of the openings during the period.",
            instant(f"sum by (app) ({IN_PERIOD})", "{{app}}"),
            "short",
        ),
        12,
        12,
    ),
]

dashboard = dashboard(
    "applications",
    "ENT applications",
    "Application usage: openings per application over time, the top applications of each profile and each "
    "application's share.",
    panels,
    [structure_variable(), profile_variable(), app_variable()],
)
