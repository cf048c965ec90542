"""Establishment: one structure in depth (logins per hour, the hour × weekday heatmap, the
activation funnel, inactive accounts, login frequency, application usage by profile)."""

from ent_exporter.mixin.panels import (
    ACTIVATION_RATIO,
    INSTANCE,
    activation_ratio,
    barchart,
    bargauge,
    comparison,
    dashboard,
    drill_down,
    link,
    profile_variable,
    rename,
    row,
    stat,
    structure_variable,
    table,
    target,
    timeseries,
    value_map,
)

S = f'structure="$structure", profile=~"$profile", {INSTANCE}'
SP = f'{S}, profile!="all"'  # people per profile: never summed over profiles
EVERYONE = f'structure="$structure", profile="all", {INSTANCE}'  # each person once over every profile
HOURLY = f'structure="$structure", {INSTANCE}'
# ent_app_accesses_total per structure is profile="all" (the sum over profiles) unless
# breakdowns.app_accesses_by_profile_per_structure publishes every profile: the profile filter keeps it.
APP = S.replace('profile=~"$profile"', 'profile=~"$profile|all"')
# The weekday x hour grid where published whole (structure="all"; every structure with
# breakdowns.logins_by_hour_per_structure); otherwise a structure has its marginals (weekday="all", hour="all").
GRID = f'{HOURLY}, weekday!="all", hour!="all"'
GRID_NOT_PUBLISHED = "This establishment's grid is not published: its hours are in the bar chart beside"
BY_HOUR = (
    f"sum by (hour) (ent_logins_by_hour{{{GRID}}}) or sum by (hour) "
    f'(ent_logins_by_hour{{{HOURLY}, weekday="all", hour!="all"}})'
)
APP_ROW_LINK = drill_down(
    "applications", "Applications: ${__data.fields.Application}", "app", "${__data.fields.Application}"
)
WEEKDAYS = {
    "1": "Monday",
    "2": "Tuesday",
    "3": "Wednesday",
    "4": "Thursday",
    "5": "Friday",
    "6": "Saturday",
    "7": "Sunday",
}
HOURS = [str(hour) for hour in range(24)]
# Upper bounds of ent_user_logins_30d as exposed, and what each bucket holds once de-accumulated.
LOGIN_BUCKETS = {
    "0.0": "no login",
    "1.0": "1 login",
    "2.0": "2 logins",
    "5.0": "3 to 5",
    "10.0": "6 to 10",
    "20.0": "11 to 20",
    "50.0": "21 to 50",
    "+Inf": "more than 50",
}


def instant(expr: str, legend: str = "", fmt: str = "time_series", ref: str = "A"):
    return target(expr, legend, ref=ref, instant=True, fmt=fmt)


def first_column(name: str, shown: str, extra: list | None = None) -> dict:
    """Override for the row-label column a groupingToMatrix transformation creates."""
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [
            {"id": "displayName", "value": shown},
            {"id": "custom.cellOptions", "value": {"type": "auto"}},
            {"id": "custom.width", "value": 110},
        ]
        + (extra or []),
    }


panels = [
    row("Structure and accounts"),
    (
        stat(
            "Structure",
            'Name of the selected structure (from ent_structure_info), or the whole platform when "All" is selected.',
            instant(
                f'max by (name) (ent_structure_info{{structure="$structure", {INSTANCE}}})'
                ' or on() label_replace(vector(1), "name", "Whole platform", "", "")',
                "{{name}}",
            ),
            "none",
            text_mode="name",
        ),
        8,
        4,
    ),
    (
        stat(
            "Activated accounts",
            "People whose account has passed its activation date (daily), over every profile: each person once "
            '(profile="all"); the profile filter does not apply (per profile: the bar gauges below).',
            instant(f'sum(ent_accounts{{{EVERYONE}, state="activated"}})'),
            "short",
        ),
        4,
        4,
    ),
    (
        stat(
            "Pending accounts",
            "People with no activated account yet (no activation date, or one in the future), each person once "
            "over every profile (daily).",
            instant(f'sum(ent_accounts{{{EVERYONE}, state="pending"}})'),
            "short",
        ),
        4,
        4,
    ),
    (
        stat(
            "Activation ratio",
            "Activated people divided by all people with an account, each person once over every profile (daily). "
            "Red below 50 %, yellow below 80 %.",
            instant(
                f'sum(ent_accounts{{{EVERYONE}, state="activated"}}) / clamp_min(sum(ent_accounts{{{EVERYONE}}}), 1)'
            ),
            "percentunit",
            ACTIVATION_RATIO,
            decimals=1,
        ),
        4,
        4,
    ),
    (
        stat(
            "Inactive accounts (30 days)",
            "Activated people who have not logged in for 30 days, each person once over every profile (daily).",
            instant(f'sum(ent_inactive_accounts{{{EVERYONE}, days="30"}})'),
            "short",
        ),
        4,
        4,
    ),
    (
        comparison(
            "Activation ratio compared",
            "Activated people divided by all people with an account, now beside the start of the period and a "
            "year ago, with the change in percent.",
            f'sum(ent_accounts{{{EVERYONE}, state="activated"}}) / clamp_min(sum(ent_accounts{{{EVERYONE}}}), 1)',
            "percentunit",
            decimals=1,
            labels=("Now", "At the start of the period", "Change", "A year ago", "Change in a year"),
        ),
        12,
        6,
    ),
    (
        comparison(
            "Inactive accounts compared",
            "Activated people without a login for 30 days, now beside the start of the period and a year ago, "
            "with the change in percent.",
            f'sum(ent_inactive_accounts{{{EVERYONE}, days="30"}})',
            "short",
            decimals=0,
            labels=("Now", "At the start of the period", "Change", "A year ago", "Change in a year"),
            higher_is_better=False,  # more inactive accounts is worse: a rise is red
        ),
        12,
        6,
    ),
    row("Logins"),
    (
        timeseries(
            "Logins per hour",
            "Successful logins per hour by profile: the raw counter's rate over Grafana's interval × 3600, so "
            "every login counts at any time range (a 5-minute recording rule would skip most of them at 7 "
            "days).",
            target(f"sum by (profile) (rate(ent_logins_total{{{S}}}[$__rate_interval])) * 3600", "{{profile}}"),
            "suffix: logins/h",
            stack=True,
            fill=30,
            axis_label="logins per hour",
            interval="1m",
            max_points=500,
            links=link("overview", "ENT overview"),
        ),
        12,
        9,
    ),
    (
        barchart(
            "Logins by hour of day (last 28 days)",
            "Logins of the last 28 days (platform timezone) per hour of the day, all weekdays together "
            "(ent_logins_by_hour, recomputed weekly): one instant query, the daily profile of the structure. The "
            "profile filter does not apply: the metric has no profile label.",
            instant(BY_HOUR, fmt="table"),
            "short",
            x_field="hour",
            transformations=[
                {
                    "id": "convertFieldType",
                    "options": {"conversions": [{"targetField": "hour", "destinationType": "number"}], "fields": {}},
                },
                {"id": "sortBy", "options": {"fields": {}, "sort": [{"field": "hour", "desc": False}]}},
                {"id": "organize", "options": {"excludeByName": {"Time": True}}},
            ],
        ),
        12,
        9,
    ),
    (
        table(
            "Logins by weekday and hour (last 28 days)",
            "The hour × weekday heatmap: logins of the last 28 days (platform timezone) per ISO weekday and hour "
            "of day, coloured on a continuous scale from the quietest cell (green) to the busiest (red) "
            "(ent_logins_by_hour, recomputed weekly). The profile filter does not apply: the metric has no "
            "profile label. Always the selected structure's own grid: per structure it is opt-in (series budget: "
            "breakdowns.logins_by_hour_per_structure); without it the panel says so and the structure's own "
            "hour-of-day profile is the bar chart beside (never the platform's grid under the structure's name).",
            instant(f"sum by (weekday, hour) (ent_logins_by_hour{{{GRID}}})", fmt="table"),
            "short",
            [(None, "green")],
            cell="color-background",
            color_mode="continuous-GrYlRd",
            no_value=GRID_NOT_PUBLISHED,
            transformations=[
                {
                    "id": "groupingToMatrix",
                    "options": {
                        "columnField": "hour",
                        "rowField": "weekday",
                        "valueField": "Value",
                        "emptyValue": "zero",
                    },
                },
                {"id": "sortBy", "options": {"fields": {}, "sort": [{"field": "weekday\\hour", "desc": False}]}},
                {
                    "id": "organize",
                    "options": {"indexByName": {"weekday\\hour": 0, **{h: i + 1 for i, h in enumerate(HOURS)}}},
                },
            ],
            overrides=[first_column("weekday\\hour", "Day", [{"id": "mappings", "value": value_map(WEEKDAYS)}])]
            + [
                {
                    "matcher": {"id": "byName", "options": hour},
                    "properties": [{"id": "displayName", "value": f"{hour}h"}],
                }
                for hour in HOURS
            ],
        ),
        24,
        8,
    ),
    row("Activation and activity"),
    (
        bargauge(
            "Activation funnel",
            "From all accounts to the users who actually log in: activated accounts, then those that logged in "
            "within 90 and 30 days (activated minus inactive). Each person once over every profile; daily.",
            [
                instant(f"sum(ent_accounts{{{EVERYONE}}})", "All accounts", ref="A"),
                instant(f'sum(ent_accounts{{{EVERYONE}, state="activated"}})', "Activated", ref="B"),
                instant(
                    f'sum(ent_accounts{{{EVERYONE}, state="activated"}})'
                    f' - sum(ent_inactive_accounts{{{EVERYONE}, days="90"}})',
                    "Logged in within 90 days",
                    ref="C",
                ),
                instant(
                    f'sum(ent_accounts{{{EVERYONE}, state="activated"}})'
                    f' - sum(ent_inactive_accounts{{{EVERYONE}, days="30"}})',
                    "Logged in within 30 days",
                    ref="D",
                ),
            ],
            "short",
        ),
        8,
        8,
    ),
    (
        bargauge(
            "Activation ratio by profile",
            "Activated accounts divided by all accounts, per profile (daily). Red below 50 %, yellow below 80 %.",
            instant(activation_ratio(SP, "profile"), "{{profile}}"),
            "percentunit",
            ACTIVATION_RATIO,
            max_value=1,
        ),
        8,
        8,
    ),
    (
        timeseries(
            "Accounts by state",
            "Activated and pending people over time, each person once over every profile (daily).",
            target(f"sum by (state) (ent_accounts{{{EVERYONE}}})", "{{state}}"),
            "short",
            stack=True,
            fill=30,
            interval="1h",
            max_points=400,
            overrides=rename({"activated": "Activated", "pending": "Pending"}),
        ),
        8,
        8,
    ),
    (
        bargauge(
            "Inactive accounts by profile",
            "Activated accounts whose user has not logged in for 30 or 90 days, per profile (daily).",
            [
                instant(
                    f'sum by (profile) (ent_inactive_accounts{{{SP}, days="30"}})', "{{profile}}, 30 days", ref="A"
                ),
                instant(
                    f'sum by (profile) (ent_inactive_accounts{{{SP}, days="90"}})', "{{profile}}, 90 days", ref="B"
                ),
            ],
            "short",
        ),
        8,
        9,
    ),
    (
        bargauge(
            "Login frequency (last 30 days)",
            "How many activated users logged in how often over the last 30 days: users per number of logins, "
            "each person once over every profile (ent_user_logins_30d, a gauge histogram, daily; its cumulative "
            "buckets are de-accumulated by the heatmap format).",
            instant(f"sum by (le) (ent_user_logins_30d_bucket{{{EVERYONE}}})", "{{le}}", fmt="heatmap"),
            "short",
            orientation="vertical",
            overrides=rename(LOGIN_BUCKETS),
        ),
        8,
        9,
    ),
    (
        stat(
            "Logins per activated user (30 days)",
            "Average number of logins over the last 30 days per activated user, each person once over every "
            "profile (sum ÷ count of ent_user_logins_30d).",
            instant(
                f"sum(ent_user_logins_30d_sum{{{EVERYONE}}}) / clamp_min(sum(ent_user_logins_30d_count{{{EVERYONE}}}), 1)"
            ),
            "short",
            decimals=1,
            graph=False,
        ),
        8,
        9,
    ),
    row("Applications", collapsed=True),
    (
        table(
            "Application usage by profile",
            "Application openings during the period of the time picker, one row per application and one column "
            "per profile, sorted by total.",
            instant(f"sum by (app, profile) (increase(ent_app_accesses_total{{{APP}}}[$__range]))", fmt="table"),
            "short",
            [(None, "text")],
            transformations=[
                {
                    "id": "groupingToMatrix",
                    "options": {
                        "columnField": "profile",
                        "rowField": "app",
                        "valueField": "Value",
                        "emptyValue": "zero",
                    },
                },
                {
                    "id": "calculateField",
                    "options": {
                        "mode": "reduceRow",
                        "reduce": {"reducer": "sum"},
                        "alias": "Total",
                        "replaceFields": False,
                    },
                },
                {"id": "sortBy", "options": {"fields": {}, "sort": [{"field": "Total", "desc": True}]}},
            ],
            overrides=[first_column("app\\profile", "Application")],
            field_links=APP_ROW_LINK,
            links=link("applications", "Applications"),
        ),
        24,
        10,
    ),
]

dashboard = dashboard(
    "establishment",
    "ENT establishment",
    "One structure in depth: logins per hour, the hour × weekday heatmap, the activation funnel, inactive "
    "accounts, the login frequency distribution and application usage by profile.",
    panels,
    [structure_variable(), profile_variable()],
)
