"""Classes (issue 16; opt-in): per class of the chosen establishment, visitors (day, week, month to date),
accounts by state and inactive accounts. Published only where the source has classes (user_classes)
and the configuration enables the class collectors; small counts may read 0 (privacy.min_count)."""

from ent_exporter.mixin.panels import (
    INSTANCE,
    _query_variable,
    bargauge,
    dashboard,
    profile_variable,
    row,
    stat,
    structure_variable,
    target,
    timeseries,
)

C = f'structure="$structure", class=~"$class", {INSTANCE}'
RATIO = [(None, "red"), (0.5, "orange"), (0.8, "green")]


def instant(expr: str, legend: str = "", ref: str = "A"):
    return target(expr, legend, ref=ref, instant=True)


def class_variable() -> dict:
    return _query_variable(
        "class",
        "Class",
        'label_values(ent_class_accounts{structure="$structure", instance=~"$instance"}, class)',
        multi=True,
        description="The establishment's classes (from the directory: Edifice's export, Moodle's cohorts). "
        "Empty where the source has no classes or the class collectors are not enabled.",
    )


ACTIVATED = f'sum by (class) (ent_class_accounts{{{C}, state="activated"}})'
ALL_ACCOUNTS = f"sum by (class) (ent_class_accounts{{{C}}})"

panels = [
    row("Now"),
    (
        stat(
            "Classes",
            "Classes of the establishment with members (ent_class_accounts).",
            instant(f'count(count by (instance, class) (ent_class_accounts{{structure="$structure", {INSTANCE}}}))'),
            "short",
            decimals=0,
        ),
        6,
        4,
    ),
    (
        stat(
            "Members who logged in today",
            'Members of the selected classes with a login today (ent_class_unique_visitors, period="day"); a '
            "person in two classes counts in each.",
            instant(f'sum(ent_class_unique_visitors{{{C}, period="day"}})'),
            "short",
            decimals=0,
        ),
        6,
        4,
    ),
    (
        stat(
            "Activated accounts",
            "Members of the selected classes whose account in the establishment is activated, over all members.",
            instant(f"sum({ACTIVATED}) / clamp_min(sum({ALL_ACCOUNTS}), 1)"),
            "percentunit",
            RATIO,
            decimals=1,
        ),
        6,
        4,
    ),
    (
        stat(
            "Inactive for 30 days",
            "Activated members of the selected classes without a login in the last 30 days.",
            instant(f'sum(ent_class_inactive_accounts{{{C}, days="30"}})'),
            "short",
            decimals=0,
        ),
        6,
        4,
    ),
    row("Per class"),
    (
        bargauge(
            "Visitors this month, per class",
            "Members of each class with a login since the start of the month (month to date).",
            instant(f'sort_desc(sum by (class) (ent_class_unique_visitors{{{C}, period="month"}}))', "{{class}}"),
            "short",
        ),
        12,
        10,
    ),
    (
        bargauge(
            "Activated accounts, per class",
            "Share of each class's members whose account is activated (lowest first).",
            instant(f"sort({ACTIVATED} / clamp_min({ALL_ACCOUNTS}, 1))", "{{class}}"),
            "percentunit",
            RATIO,
            max_value=1,
        ),
        12,
        10,
    ),
    (
        timeseries(
            "Visitors today, per class",
            "Members of each class with a login today, through the day (the count starts again at midnight).",
            target(f'sum by (class) (ent_class_unique_visitors{{{C}, period="day"}})', "{{class}}"),
            "short",
        ),
        12,
        8,
    ),
    (
        bargauge(
            "Inactive for 30 days, per class",
            "Activated members of each class without a login in the last 30 days.",
            instant(f'sort_desc(sum by (class) (ent_class_inactive_accounts{{{C}, days="30"}}))', "{{class}}"),
            "short",
        ),
        12,
        8,
    ),
]

dashboard = dashboard(
    "classes",
    "ENT classes",
    "Per class of an establishment (opt-in: the class collectors): visitors, activated and inactive accounts. "
    "Small counts may be published as 0 (privacy.min_count).",
    # profile travels along the links between the ENT dashboards only: the class figures have none.
    panels,
    [structure_variable(), class_variable(), profile_variable(hide=True)],
)
