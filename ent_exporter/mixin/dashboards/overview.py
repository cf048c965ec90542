"""ENT overview: the seven indicators of the ODE statistics application for the period of
the time picker, each also broken down by profile."""

from ent_exporter.mixin.panels import (
    ACTIVATION_RATIO,
    INSTANCE,
    activation_ratio,
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
    visits_per_visitor_pooled,
)
from ent_exporter.mixin.rules import (
    STRUCTURE_APP_PROFILE_ACCESSES_1D,
    STRUCTURE_PROFILE_ACTIVATIONS_1D,
    STRUCTURE_PROFILE_LOGINS_1D,
    daily,
)

S = f'structure="$structure", profile=~"$profile", {INSTANCE}'
# People counts: per profile, the profiles picked ("all", each person once over every profile, is
# its own series and never summed with them)...
SP = f'{S}, profile!="all"'
# ...and everyone of the structure, each person once: the headline figures.
EVERYONE = f'structure="$structure", profile="all", {INSTANCE}'
APP_LINK = drill_down("applications", "Applications: ${__field.labels.app}", "app", "${__field.labels.app}")
APP_ROW_LINK = drill_down("applications", "Applications: ${__data.fields.app}", "app", "${__data.fields.app}")
WEEKDAYS = {
    "1": "Monday",
    "2": "Tuesday",
    "3": "Wednesday",
    "4": "Thursday",
    "5": "Friday",
    "6": "Saturday",
    "7": "Sunday",
}
LOGINS_IN_PERIOD = f"increase(ent_logins_total{{{S}}}[$__range])"
# ent_app_accesses_total per structure is profile="all" (the sum over profiles) unless
# breakdowns.app_accesses_by_profile_per_structure publishes every profile: the profile filter keeps it.
APP = S.replace('profile=~"$profile"', 'profile=~"$profile|all"')
APPS_IN_PERIOD = f"increase(ent_app_accesses_total{{{APP}}}[$__range])"


def visitors(period: str, who: str = SP) -> str:
    return f'ent_unique_visitors{{{who}, period="{period}"}}'


def everyone(period: str) -> str:
    """Distinct people of the structure over every profile (profile="all"), summed only over instances."""
    return f"sum({visitors(period, EVERYONE)})"


def visits_per_visitor(period: str) -> str:
    """The exporters' ratio over every profile, pooled (logins of everyone ÷ distinct people, from sums)."""
    return visits_per_visitor_pooled(f'{EVERYONE}, period="{period}"')


# The month-to-date comparisons: the previous month is whole (no change against it), a year earlier at the same date.
MONTH_COMPARED = ("Month to date", "Previous month (whole)", "", "Same date a year earlier", "Change in a year")


def instant(expr: str, legend: str = "", fmt: str = "time_series", ref: str = "A"):
    return target(expr, legend, ref=ref, instant=True, fmt=fmt)


# ent_logins_by_hour: the weekday x hour grid where it is published whole (structure="all", or every structure
# with breakdowns.logins_by_hour_per_structure), else the structure's marginals (weekday="all" / hour="all").
_GRID = f'structure="$structure", weekday!="all", hour!="all", {INSTANCE}'
BY_HOUR = (
    f"(sum by (hour) (ent_logins_by_hour{{{_GRID}}}) or sum by (hour) "
    f'(ent_logins_by_hour{{structure="$structure", weekday="all", hour!="all", {INSTANCE}}}))'
)
BY_WEEKDAY = (
    f"(sum by (weekday) (ent_logins_by_hour{{{_GRID}}}) or sum by (weekday) "
    f'(ent_logins_by_hour{{structure="$structure", hour="all", weekday!="all", {INSTANCE}}}))'
)
PEAK_NOTE = (
    " ent_logins_by_hour has no profile label, so this indicator follows the structure only"
    " (the profile filter does not apply)."
)

panels = [
    row("The seven indicators (period: the time picker; visitors: calendar month)"),
    (
        stat(
            "Connections",
            "Successful logins (connections) during the period of the time picker, for the selected structure and "
            "profiles. Source: ent_logins_total (counted every minute).",
            instant(f"sum({LOGINS_IN_PERIOD})"),
            "short",
            decimals=0,
            links=link("establishment", "Establishment details"),
        ),
        3,
        5,
    ),
    (
        stat(
            "Unique visitors",
            "Distinct users with at least one login in the current calendar month (to date), with the previous "
            "closed month beside it, over every profile: a user who logged in under two profiles is one visitor "
            '(profile="all"; the profile filter does not apply, see "Visitors by profile"). Calendar periods, '
            "not the time picker: refreshed every hour (previous month: monthly).",
            [
                instant(everyone("month"), "Month to date", ref="A"),
                instant(everyone("previous_month"), "Previous month", ref="B"),
            ],
            "short",
            text_mode="value_and_name",
            orientation="horizontal",
        ),
        4,
        5,
    ),
    (
        stat(
            "Visits per visitor",
            "Logins divided by unique visitors in the current calendar month (to date), and in the previous closed "
            "month, over every profile (each person once; the profile filter does not apply).",
            [
                instant(visits_per_visitor_pooled(f'{EVERYONE}, period="month"'), "Month to date", ref="A"),
                instant(visits_per_visitor_pooled(f'{EVERYONE}, period="previous_month"'), "Previous month", ref="B"),
            ],
            "short",
            text_mode="value_and_name",
            orientation="horizontal",
            decimals=2,
        ),
        4,
        5,
    ),
    (
        stat(
            "Most used application",
            "The application opened most often during the period, with its number of openings. "
            "Source: ent_app_accesses_total.",
            instant(f"topk(1, sum by (app) ({APPS_IN_PERIOD}))", "{{app}}"),
            "short",
            text_mode="value_and_name",
            decimals=0,
            links=link("applications", "Applications"),
            field_links=APP_LINK,
        ),
        4,
        5,
    ),
    (
        stat(
            "Daily peak hour",
            "The hour of the day (platform timezone) with the most logins over the last 28 days (recomputed "
            "weekly). The value is the number of logins in that hour over the 28 days." + PEAK_NOTE,
            instant(f"topk(1, {BY_HOUR})", "{{hour}}:00"),
            "short",
            text_mode="name",
            links=link("establishment", "Hour × weekday heatmap"),
        ),
        3,
        5,
    ),
    (
        stat(
            "Weekly peak day",
            "The day of the week with the most logins over the last 28 days (recomputed weekly)." + PEAK_NOTE,
            instant(f"topk(1, {BY_WEEKDAY})", "{{weekday}}"),
            "short",
            text_mode="name",
            overrides=rename(WEEKDAYS),
        ),
        3,
        5,
    ),
    (
        stat(
            "Activated accounts",
            "People whose account has passed its activation date (computed daily), over every profile: each person "
            'once (profile="all"; over "All" structures too). The profile filter does not apply.',
            instant(f'sum(ent_accounts{{{EVERYONE}, state="activated"}})'),
            "short",
            links=link("establishment", "Activation funnel"),
        ),
        3,
        5,
    ),
    row("Compared with the previous period and a year earlier"),
    (
        comparison(
            "Connections compared",
            "Connections in the period beside the period just before it (same length) and the same period a "
            "year earlier, with the change in percent.",
            f"sum({LOGINS_IN_PERIOD})",
            "short",
            decimals=0,
        ),
        6,
        6,
    ),
    (
        comparison(
            "Unique visitors compared",
            "Visitors of the month to date beside the whole previous month and the month to date a year "
            "earlier (same date), with the change over the year; each person once.",
            everyone("month"),
            "short",
            decimals=0,
            previous=everyone("previous_month"),
            year=everyone("month_a_year_earlier"),
            labels=MONTH_COMPARED,
        ),
        6,
        6,
    ),
    (
        comparison(
            "Visits per visitor compared",
            "Logins per visitor in the month to date beside the whole previous month and the month to date a "
            "year earlier (same date), with the change over the year.",
            visits_per_visitor("month"),
            "short",
            decimals=2,
            previous=visits_per_visitor("previous_month"),
            year=visits_per_visitor("month_a_year_earlier"),
            labels=MONTH_COMPARED,
        ),
        6,
        6,
    ),
    (
        comparison(
            "Activated accounts compared",
            "Activated people now beside their number at the start of the period and a year ago, with the "
            "change in percent; each person once.",
            f'sum(ent_accounts{{{EVERYONE}, state="activated"}})',
            "short",
            decimals=0,
            labels=("Now", "At the start of the period", "Change", "A year ago", "Change in a year"),
        ),
        6,
        6,
    ),
    row("By profile"),
    (
        bargauge(
            "Connections by profile",
            "Successful logins during the period of the time picker, per profile.",
            instant(f"sum by (profile) ({LOGINS_IN_PERIOD})", "{{profile}}"),
            "short",
            decimals=0,
        ),
        8,
        8,
    ),
    (
        table(
            "Visitors by profile",
            "Per profile: unique visitors of the current month (to date) and of the previous closed month, and "
            "visits per visitor this month. Per establishment, visits per visitor by profile are opt-in (series "
            "budget: breakdowns.visits_per_visitor_by_profile_per_structure): without it that column is empty for "
            'an establishment ("All" always has it), and its visits per visitor over every profile are the '
            '"Visits per visitor" figure above.',
            [
                instant(f"sum by (profile) ({visitors('month')})", fmt="table", ref="A"),
                instant(f"sum by (profile) ({visitors('previous_month')})", fmt="table", ref="B"),
                # Per profile only where published (structure="all", or every structure with the breakdown):
                # never the structure's profile="all" ratio in a profile's row, nor a sum of ratios.
                instant(visits_per_visitor_pooled(f'{SP}, period="month"', "profile"), fmt="table", ref="C"),
            ],
            "short",
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "renameByName": {
                            "profile": "Profile",
                            "Value #A": "Month to date",
                            "Value #B": "Previous month",
                            "Value #C": "Visits per visitor",
                        },
                    },
                },
            ],
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "Visits per visitor"},
                    "properties": [{"id": "decimals", "value": 2}],
                }
            ],
            sort_by=[{"displayName": "Month to date", "desc": True}],
        ),
        8,
        8,
    ),
    (
        table(
            "Most used application by profile",
            "For each profile, the application opened most often during the period and its openings.",
            instant(f"topk by (profile) (1, sum by (profile, app) ({APPS_IN_PERIOD}))", fmt="table"),
            "short",
            field_links=APP_ROW_LINK,
            transformations=[
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "renameByName": {"profile": "Profile", "app": "Application", "Value": "Openings"},
                    },
                }
            ],
            sort_by=[{"displayName": "Openings", "desc": True}],
        ),
        8,
        8,
    ),
    (
        bargauge(
            "Activated accounts by profile",
            "Accounts whose activation date has passed, per profile (daily).",
            instant(f'sum by (profile) (ent_accounts{{{SP}, state="activated"}})', "{{profile}}"),
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
        bargauge(
            "Unique visitors today and this week by profile",
            "Distinct users with a login today and in the current ISO week (to date), per profile (hourly).",
            [
                instant(f"sum by (profile) ({visitors('day')})", "{{profile}} today", ref="A"),
                instant(f"sum by (profile) ({visitors('week')})", "{{profile}} this week", ref="B"),
            ],
            "short",
        ),
        8,
        8,
    ),
    row("Establishments"),
    (
        table(
            "Establishments",
            "Each structure (code and name) with its unique visitors of the current month to date over every profile "
            "(each person once) and its activated people (daily). Click a row to open it in the Establishment "
            "dashboard. Structures do not add up to the platform: a user attached to two counts in both.",
            [
                instant(
                    f'max by (structure) (ent_unique_visitors{{structure!="all", profile="all", period="month", '
                    f"{INSTANCE}}}) * on (structure) group_left (name) max by (structure, name) "
                    f"(ent_structure_info{{{INSTANCE}}})",
                    fmt="table",
                    ref="A",
                ),
                instant(
                    f'max by (structure) (ent_accounts{{structure!="all", profile="all", state="activated", '
                    f"{INSTANCE}}})",
                    fmt="table",
                    ref="B",
                ),
            ],
            "short",
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "indexByName": {"structure": 0, "name": 1, "Value #A": 2, "Value #B": 3},
                        "renameByName": {
                            "structure": "Code",
                            "name": "Name",
                            "Value #A": "Visitors this month",
                            "Value #B": "Activated people",
                        },
                    },
                },
            ],
            field_links=drill_down(
                "establishment",
                "Open ${__data.fields.structure} in ENT establishment",
                "structure",
                "${__data.fields.structure}",
            ),
            sort_by=[{"displayName": "Visitors this month", "desc": True}],
        ),
        24,
        8,
    ),
    row("Over the period"),
    (
        timeseries(
            "Connections per day by profile",
            "Successful logins per day (each bar: the 24 hours before the daily history rule's last hourly "
            "value at its time, midnight UTC), stacked by profile: one sample per series a day, so a year stays "
            "cheap. At ranges under a day, one bar.",
            target(f"sum by (profile) ({daily(STRUCTURE_PROFILE_LOGINS_1D, S)})", "{{profile}}"),
            "short",
            bars=True,
            stack=True,
            interval="1d",
            max_points=400,
            axis_label="logins per day",
        ),
        12,
        9,
    ),
    (
        timeseries(
            "Unique visitors: day, week and month to date",
            "Distinct users (over every profile, each person once) with a login in the current day, ISO week "
            "and month (to date), refreshed hourly: each line climbs through its period and drops when the "
            "next one starts. The profile filter does not apply.",
            target(f'sum by (period) (ent_unique_visitors{{{EVERYONE}, period=~"day|week|month"}})', "{{period}}"),
            "short",
            axis_label="visitors",
            interval="5m",
            overrides=rename({"day": "Today", "week": "This week", "month": "This month"}),
        ),
        12,
        9,
    ),
    (
        timeseries(
            "Account activations per day by profile",
            "Accounts activated per day (each bar: the 24 hours before the daily history rule's last hourly value at "
            "its time, midnight UTC), stacked by profile.",
            target(f"sum by (profile) ({daily(STRUCTURE_PROFILE_ACTIVATIONS_1D, S)})", "{{profile}}"),
            "short",
            bars=True,
            stack=True,
            interval="1d",
            max_points=400,
            axis_label="activations per day",
        ),
        12,
        8,
    ),
    (
        timeseries(
            "Application openings per day by profile",
            "Application openings per day (each bar: the 24 hours before the daily history rule's last hourly value "
            "at its time, midnight UTC), stacked by profile.",
            target(f"sum by (profile) ({daily(STRUCTURE_APP_PROFILE_ACCESSES_1D, APP)})", "{{profile}}"),
            "short",
            bars=True,
            stack=True,
            interval="1d",
            max_points=400,
            axis_label="openings per day",
            links=link("applications", "Applications"),
        ),
        12,
        8,
    ),
]

dashboard = dashboard(
    "overview",
    "ENT overview",
    "The seven indicators of the ODE statistics application (connections, unique visitors, visits per visitor, "
    "most used application, daily peak hour, weekly peak day, activated accounts) for a structure or the whole "
    "platform, and by profile.",
    panels,
    [structure_variable(), profile_variable()],
)
