"""ENT overview: the seven indicators of the ODE statistics application for the period of
the time picker, each also broken down by profile."""
from grafana.dashboards.panels import (
    ACTIVATION_RATIO, bargauge, dashboard, link, profile_variable, rename, row, stat,
    structure_variable, table, target, timeseries,
)

S = 'structure="$structure", profile=~"$profile"'
WEEKDAYS = {"1": "Monday", "2": "Tuesday", "3": "Wednesday", "4": "Thursday", "5": "Friday", "6": "Saturday",
            "7": "Sunday"}
LOGINS_IN_PERIOD = f"increase(ent_logins_total{{{S}}}[$__range])"
APPS_IN_PERIOD = f"increase(ent_app_accesses_total{{{S}}}[$__range])"


def visitors(period: str) -> str:
    return f'ent_unique_visitors{{{S}, period="{period}"}}'


def visits_per_visitor(period: str) -> str:
    # Logins / visitors over the selected profiles: the per-profile ratios weighted by their visitors.
    # clamp_min: no visitor gives 0, as the exporter's own ratio does.
    return (f'sum(ent_visits_per_visitor{{{S}, period="{period}"}} * {visitors(period)})'
            f' / clamp_min(sum({visitors(period)}), 1)')


def instant(expr: str, legend: str = "", fmt: str = "time_series", ref: str = "A"):
    return target(expr, legend, ref=ref, instant=True, fmt=fmt)


PEAK_NOTE = (" ent_logins_by_hour has no profile label, so this indicator follows the structure only"
             " (the profile filter does not apply).")

panels = [
    row("The seven indicators (period: the time picker; visitors: calendar month)"),
    (stat("Connections",
          "Successful logins (connections) during the period of the time picker, for the selected structure and "
          "profiles. Source: ent_logins_total (counted every minute).",
          instant(f"sum({LOGINS_IN_PERIOD})"), "short", decimals=0,
          links=link("establishment", "Establishment details")),
     3, 5),
    (stat("Unique visitors",
          "Distinct users with at least one login in the current calendar month (to date), with the previous "
          "closed month beside it. Calendar periods, not the time picker: refreshed every hour (previous month: "
          "monthly). With several profiles selected, a user who logged in under two profiles counts in each.",
          [instant(f"sum({visitors('month')})", "Month to date", ref="A"),
           instant(f"sum({visitors('previous_month')})", "Previous month", ref="B")],
          "short", text_mode="value_and_name", orientation="horizontal"), 4, 5),
    (stat("Visits per visitor",
          "Logins divided by unique visitors in the current calendar month (to date), and in the previous closed "
          "month. Over several profiles, the profiles' ratios weighted by their visitors.",
          [instant(visits_per_visitor("month"), "Month to date", ref="A"),
           instant(visits_per_visitor("previous_month"), "Previous month", ref="B")],
          "short", text_mode="value_and_name", orientation="horizontal", decimals=2), 4, 5),
    (stat("Most used application",
          "The application opened most often during the period, with its number of openings. "
          "Source: ent_app_accesses_total.",
          instant(f"topk(1, sum by (app) ({APPS_IN_PERIOD}))", "{{app}}"), "short",
          text_mode="value_and_name", decimals=0, links=link("applications", "Applications")), 4, 5),
    (stat("Daily peak hour",
          "The hour of the day (platform timezone) with the most logins over the last 28 days (recomputed "
          "weekly). The value is the number of logins in that hour over the 28 days." + PEAK_NOTE,
          instant('topk(1, sum by (hour) (ent_logins_by_hour{structure="$structure"}))', "{{hour}}:00"), "short",
          text_mode="name", links=link("establishment", "Hour × weekday heatmap")), 3, 5),
    (stat("Weekly peak day",
          "The day of the week with the most logins over the last 28 days (recomputed weekly)." + PEAK_NOTE,
          instant('topk(1, sum by (weekday) (ent_logins_by_hour{structure="$structure"}))', "{{weekday}}"),
          "short", text_mode="name", overrides=rename(WEEKDAYS)), 3, 5),
    (stat("Activated accounts",
          "Accounts whose activation date has passed (computed daily). Over \"All\", each user counts once.",
          instant(f'sum(ent_accounts{{{S}, state="activated"}})'), "short",
          links=link("establishment", "Activation funnel")), 3, 5),

    row("By profile"),
    (bargauge("Connections by profile",
              "Successful logins during the period of the time picker, per profile.",
              instant(f"sum by (profile) ({LOGINS_IN_PERIOD})", "{{profile}}"), "short", decimals=0), 8, 8),
    (table("Visitors by profile",
           "Per profile: unique visitors of the current month (to date) and of the previous closed month, and "
           "visits per visitor this month.",
           [instant(f"sum by (profile) ({visitors('month')})", fmt="table", ref="A"),
            instant(f"sum by (profile) ({visitors('previous_month')})", fmt="table", ref="B"),
            instant(f'sum by (profile) (ent_visits_per_visitor{{{S}, period="month"}})', fmt="table", ref="C")],
           "short",
           transformations=[
               {"id": "merge", "options": {}},
               {"id": "organize", "options": {
                   "excludeByName": {"Time": True},
                   "renameByName": {"profile": "Profile", "Value #A": "Month to date", "Value #B": "Previous month",
                                    "Value #C": "Visits per visitor"}}},
           ],
           overrides=[{"matcher": {"id": "byName", "options": "Visits per visitor"},
                       "properties": [{"id": "decimals", "value": 2}]}],
           sort_by=[{"displayName": "Month to date", "desc": True}]), 8, 8),
    (table("Most used application by profile",
           "For each profile, the application opened most often during the period and its openings.",
           instant(f"topk by (profile) (1, sum by (profile, app) ({APPS_IN_PERIOD}))", fmt="table"),
           "short",
           transformations=[{"id": "organize", "options": {
               "excludeByName": {"Time": True},
               "renameByName": {"profile": "Profile", "app": "Application", "Value": "Openings"}}}],
           sort_by=[{"displayName": "Openings", "desc": True}]), 8, 8),
    (bargauge("Activated accounts by profile",
              "Accounts whose activation date has passed, per profile (daily).",
              instant(f'sum by (profile) (ent_accounts{{{S}, state="activated"}})', "{{profile}}"), "short"), 8, 8),
    (bargauge("Activation ratio by profile",
              "Activated accounts divided by all accounts, per profile (daily). Red below 50 %, yellow below 80 %.",
              instant(f"ent_account_activation_ratio{{{S}}}", "{{profile}}"), "percentunit", ACTIVATION_RATIO,
              max_value=1), 8, 8),
    (bargauge("Unique visitors today and this week by profile",
              "Distinct users with a login today and in the current ISO week (to date), per profile (hourly).",
              [instant(f"sum by (profile) ({visitors('day')})", "{{profile}} today", ref="A"),
               instant(f"sum by (profile) ({visitors('week')})", "{{profile}} this week", ref="B")],
              "short"), 8, 8),

    row("Over the period"),
    (timeseries("Connections by profile",
                "Successful logins per interval (at least one hour; the interval grows with the time range), "
                "stacked by profile.",
                target(f"sum by (profile) (increase(ent_logins_total{{{S}}}[$__interval]))", "{{profile}}"),
                "short", bars=True, stack=True, interval="1h", axis_label="logins per interval"), 12, 9),
    (timeseries("Unique visitors: day, week and month to date",
                "Distinct users with a login in the current day, ISO week and month (to date), refreshed hourly: "
                "each line climbs through its period and drops when the next one starts.",
                target(f'sum by (period) (ent_unique_visitors{{{S}, period=~"day|week|month"}})', "{{period}}"),
                "short", axis_label="visitors"), 12, 9),
    (timeseries("Account activations by profile",
                "Accounts activated per interval (at least one hour), stacked by profile.",
                target(f"sum by (profile) (increase(ent_account_activations_total{{{S}}}[$__interval]))",
                       "{{profile}}"), "short", bars=True, stack=True, interval="1h",
                axis_label="activations per interval"), 12, 8),
    (timeseries("Application openings by profile",
                "Application openings per interval (at least one hour), stacked by profile.",
                target(f"sum by (profile) (increase(ent_app_accesses_total{{{S}}}[$__interval]))", "{{profile}}"),
                "short", bars=True, stack=True, interval="1h", axis_label="openings per interval",
                links=link("applications", "Applications")), 12, 8),
]

dashboard = dashboard(
    "overview", "ENT overview",
    "The seven indicators of the ODE statistics application (connections, unique visitors, visits per visitor, "
    "most used application, daily peak hour, weekly peak day, activated accounts) for a structure or the whole "
    "platform, and by profile.",
    panels, [structure_variable(), profile_variable()],
)
