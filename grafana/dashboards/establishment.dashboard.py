"""Establishment: one structure in depth (logins per hour, the hour × weekday heatmap, the
activation funnel, inactive accounts, login frequency, application usage by profile)."""
from grafana.dashboards.panels import (
    ACTIVATION_RATIO, bargauge, dashboard, heatmap, link, profile_variable, rename, row, stat, structure_variable,
    table, target, timeseries, value_map,
)
from grafana.dashboards.rules import STRUCTURE_PROFILE_LOGINS_RATE

S = 'structure="$structure", profile=~"$profile"'
WEEKDAYS = {"1": "Monday", "2": "Tuesday", "3": "Wednesday", "4": "Thursday", "5": "Friday", "6": "Saturday",
            "7": "Sunday"}
HOURS = [str(hour) for hour in range(24)]
# Upper bounds of ent_user_logins_30d as exposed, and what each bucket holds once de-accumulated.
LOGIN_BUCKETS = {"0.0": "no login", "1.0": "1 login", "2.0": "2 logins", "5.0": "3 to 5", "10.0": "6 to 10",
                 "20.0": "11 to 20", "50.0": "21 to 50", "+Inf": "more than 50"}


def instant(expr: str, legend: str = "", fmt: str = "time_series", ref: str = "A"):
    return target(expr, legend, ref=ref, instant=True, fmt=fmt)


def first_column(name: str, shown: str, extra: list | None = None) -> dict:
    """Override for the row-label column a groupingToMatrix transformation creates."""
    return {"matcher": {"id": "byName", "options": name},
            "properties": [{"id": "displayName", "value": shown},
                           {"id": "custom.cellOptions", "value": {"type": "auto"}},
                           {"id": "custom.width", "value": 110}] + (extra or [])}


panels = [
    row("Structure and accounts"),
    (stat("Structure",
          "Name of the selected structure (from ent_structure_info), or the whole platform when \"All\" is "
          "selected.",
          instant('ent_structure_info{structure="$structure"}'
                  ' or on() label_replace(vector(1), "name", "Whole platform", "", "")', "{{name}}"),
          "none", text_mode="name"), 8, 4),
    (stat("Activated accounts",
          "Accounts whose activation date has passed, for the selected profiles (daily).",
          instant(f'sum(ent_accounts{{{S}, state="activated"}})'), "short"), 4, 4),
    (stat("Pending accounts",
          "Accounts not activated yet (no activation date, or one in the future), for the selected profiles "
          "(daily).",
          instant(f'sum(ent_accounts{{{S}, state="pending"}})'), "short"), 4, 4),
    (stat("Activation ratio",
          "Activated accounts divided by all accounts, for the selected profiles (daily). Red below 50 %, "
          "yellow below 80 %.",
          instant(f'sum(ent_accounts{{{S}, state="activated"}}) / clamp_min(sum(ent_accounts{{{S}}}), 1)'),
          "percentunit",
          ACTIVATION_RATIO, decimals=1), 4, 4),
    (stat("Inactive accounts (30 days)",
          "Activated accounts whose user has not logged in for 30 days, for the selected profiles (daily).",
          instant(f'sum(ent_inactive_accounts{{{S}, days="30"}})'), "short"), 4, 4),

    row("Logins"),
    (timeseries("Logins per hour",
                "Successful logins per hour by profile, from the 5-minute rate recorded by Prometheus "
                f"({STRUCTURE_PROFILE_LOGINS_RATE}).",
                target(f"sum by (profile) ({STRUCTURE_PROFILE_LOGINS_RATE}{{{S}}}) * 3600", "{{profile}}"),
                "suffix: logins/h", stack=True, fill=30, axis_label="logins per hour",
                links=link("overview", "ENT overview")), 12, 9),
    (heatmap("Logins by hour of day (28-day window)",
             "Each row is an hour of the day (platform timezone); each cell, the logins in that hour over the 28 "
             "days before that moment (ent_logins_by_hour, recomputed weekly, summed over the weekdays). Bright "
             "rows are the daily peak hours; the weekday detail is in the table below." ,
             # One query per hour, in order: the rows of the heatmap are its series, top to bottom.
             [target(f'sum(ent_logins_by_hour{{structure="$structure", hour="{hour}"}})', f"{int(hour):02d}:00",
                     ref=f"H{int(hour):02d}") for hour in HOURS],
             "short", cell_unit="short", y_unit="short", interval="1h"), 12, 9),
    (table("Logins by weekday and hour (last 28 days)",
           "The hour × weekday heatmap: logins of the last 28 days (platform timezone) per ISO weekday and hour "
           "of day, the darker the more (ent_logins_by_hour, recomputed weekly). The profile filter does not "
           "apply: the metric has no profile label.",
           instant('sum by (weekday, hour) (ent_logins_by_hour{structure="$structure"})', fmt="table"),
           "short", [(None, "green")], cell="color-background",
           transformations=[
               {"id": "groupingToMatrix", "options": {"columnField": "hour", "rowField": "weekday",
                                                      "valueField": "Value", "emptyValue": "null"}},
               {"id": "sortBy", "options": {"fields": {}, "sort": [{"field": "weekday\\hour", "desc": False}]}},
               {"id": "organize", "options": {"indexByName": {"weekday\\hour": 0,
                                                              **{h: i + 1 for i, h in enumerate(HOURS)}}}},
           ],
           overrides=[first_column("weekday\\hour", "Day", [{"id": "mappings", "value": value_map(WEEKDAYS)}])]
           + [{"matcher": {"id": "byName", "options": hour},
               "properties": [{"id": "displayName", "value": f"{hour}h"}]} for hour in HOURS]), 24, 8),

    row("Activation and activity"),
    (bargauge("Activation funnel",
              "From all accounts to the users who actually log in: activated accounts, then those that logged in "
              "within 90 and 30 days (activated minus inactive). Selected profiles; daily.",
              [instant(f"sum(ent_accounts{{{S}}})", "All accounts", ref="A"),
               instant(f'sum(ent_accounts{{{S}, state="activated"}})', "Activated", ref="B"),
               instant(f'sum(ent_accounts{{{S}, state="activated"}}) - sum(ent_inactive_accounts{{{S}, days="90"}})',
                       "Logged in within 90 days", ref="C"),
               instant(f'sum(ent_accounts{{{S}, state="activated"}}) - sum(ent_inactive_accounts{{{S}, days="30"}})',
                       "Logged in within 30 days", ref="D")],
              "short"), 8, 8),
    (bargauge("Activation ratio by profile",
              "Activated accounts divided by all accounts, per profile (daily). Red below 50 %, yellow below 80 %.",
              instant(f"ent_account_activation_ratio{{{S}}}", "{{profile}}"), "percentunit", ACTIVATION_RATIO,
              max_value=1), 8, 8),
    (timeseries("Accounts by state",
                "Activated and pending accounts over time, for the selected profiles (daily).",
                target(f"sum by (state) (ent_accounts{{{S}}})", "{{state}}"), "short", stack=True, fill=30), 8, 8),
    (bargauge("Inactive accounts by profile",
              "Activated accounts whose user has not logged in for 30 or 90 days, per profile (daily).",
              [instant(f'sum by (profile) (ent_inactive_accounts{{{S}, days="30"}})', "{{profile}}, 30 days",
                       ref="A"),
               instant(f'sum by (profile) (ent_inactive_accounts{{{S}, days="90"}})', "{{profile}}, 90 days",
                       ref="B")],
              "short"), 8, 9),
    (bargauge("Login frequency (last 30 days)",
              "How many activated users logged in how often over the last 30 days: users per number of logins "
              "(ent_user_logins_30d, a gauge histogram, daily; its cumulative buckets are de-accumulated by the "
              "heatmap format).",
              target(f"sum by (le) (ent_user_logins_30d_bucket{{{S}}})", "{{le}}", fmt="heatmap"), "short",
              orientation="vertical", overrides=rename(LOGIN_BUCKETS)), 8, 9),
    (stat("Logins per activated user (30 days)",
          "Average number of logins over the last 30 days per activated user (sum ÷ count of ent_user_logins_30d).",
          instant(f"sum(ent_user_logins_30d_sum{{{S}}}) / clamp_min(sum(ent_user_logins_30d_count{{{S}}}), 1)"),
          "short",
          decimals=1, graph=False), 8, 9),

    row("Applications"),
    (table("Application usage by profile",
           "Application openings during the period of the time picker, one row per application and one column "
           "per profile, sorted by total.",
           instant(f"sum by (app, profile) (increase(ent_app_accesses_total{{{S}}}[$__range]))", fmt="table"),
           "short", [(None, "text")],
           transformations=[
               {"id": "groupingToMatrix", "options": {"columnField": "profile", "rowField": "app",
                                                      "valueField": "Value", "emptyValue": "zero"}},
               {"id": "calculateField", "options": {"mode": "reduceRow", "reduce": {"reducer": "sum"},
                                                    "alias": "Total", "replaceFields": False}},
               {"id": "sortBy", "options": {"fields": {}, "sort": [{"field": "Total", "desc": True}]}},
           ],
           overrides=[first_column("app\\profile", "Application")],
           links=link("applications", "Applications")), 24, 10),
]

dashboard = dashboard(
    "establishment", "ENT establishment",
    "One structure in depth: logins per hour, the hour × weekday heatmap, the activation funnel, inactive "
    "accounts, the login frequency distribution and application usage by profile.",
    panels, [structure_variable(), profile_variable()],
)
