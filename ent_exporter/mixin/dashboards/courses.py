"""Learning progress (issue 16): enrolments, course completions, activity completions and badges, per
structure (Moodle: the top-level course category) and, when the opt-in per-course collector runs, per
course. The figures are read daily from the source's course_progress (Moodle)."""

from ent_exporter.mixin.panels import (
    INSTANCE,
    bargauge,
    dashboard,
    profile_variable,
    row,
    stat,
    structure_variable,
    table,
    target,
    timeseries,
)

S = f'structure="$structure", course="all", {INSTANCE}'
PER_STRUCTURE = f'structure!="all", course="all", {INSTANCE}'
PER_COURSE = f'structure="$structure", course!="all", {INSTANCE}'
# A course's completion ratio from its sums: completed ÷ enrolled people of the course (in one course a person
# is one enrolment), so rows merged across exporters add their numerators and denominators, never their ratios;
# 0 when nobody is enrolled, as the family says.
COURSE_RATIO = (
    f"sum by (course) (ent_course_completed_users{{{PER_COURSE}}})\n/\n"
    f"clamp_min(sum by (course) (ent_course_enrolled_users{{{PER_COURSE}}}), 1)"
)
RATIO = [(None, "red"), (0.25, "orange"), (0.5, "yellow"), (0.75, "green")]


def instant(expr: str, legend: str = "", fmt: str = "time_series", ref: str = "A"):
    return target(expr, legend, ref=ref, instant=True, fmt=fmt)


panels = [
    row("Now (read daily)"),
    (
        stat(
            "Enrolled people",
            'People enrolled in at least one course of the selected structure ("All": of the platform, each '
            "person once), ent_course_enrolled_users.",
            instant(f"sum(ent_course_enrolled_users{{{S}}})"),
            "short",
            decimals=0,
        ),
        5,
        4,
    ),
    (
        stat(
            "People who completed a course",
            "Enrolled people who completed at least one course (ent_course_completed_users).",
            instant(f"sum(ent_course_completed_users{{{S}}})"),
            "short",
            decimals=0,
        ),
        5,
        4,
    ),
    (
        stat(
            "Completion ratio",
            "Completed enrolments divided by enrolments (a person in a course is one enrolment), per exporter "
            "(platform): ratios of two platforms are not added.",
            instant(f"max by (instance) (ent_course_completion_ratio{{{S}}})", "{{instance}}"),
            "percentunit",
            RATIO,
            decimals=1,
        ),
        5,
        4,
    ),
    (
        stat(
            "Activity completions",
            "Activity completion records of the enrolled people, every state (complete, passed, failed).",
            instant(f"sum(ent_course_activity_completions{{{S}}})"),
            "short",
            decimals=0,
        ),
        5,
        4,
    ),
    (
        stat(
            "Badges issued",
            "Course badges held by the enrolled people (ent_course_badges_issued).",
            instant(f"sum(ent_course_badges_issued{{{S}}})"),
            "short",
            decimals=0,
        ),
        4,
        4,
    ),
    row("Over time"),
    (
        timeseries(
            "Enrolled and completed",
            "Enrolled people and people who completed a course, day after day.",
            [
                target(f"sum(ent_course_enrolled_users{{{S}}})", "enrolled", ref="A"),
                target(f"sum(ent_course_completed_users{{{S}}})", "completed", ref="B"),
            ],
            "short",
            axis_label="people",
        ),
        12,
        8,
    ),
    (
        timeseries(
            "Activity completions by state",
            "Activity completions by state: complete, passed (pass grade), failed (fail grade).",
            target(f"sum by (state) (ent_course_activity_completions{{{S}}})", "{{state}}"),
            "short",
            stack=True,
            fill=30,
        ),
        12,
        8,
    ),
    row("Structures and courses"),
    (
        bargauge(
            "Completion ratio per structure",
            "Each structure's completion ratio (completed enrolments ÷ enrolments), lowest first.",
            instant(f"sort(ent_course_completion_ratio{{{PER_STRUCTURE}}})", "{{structure}}"),
            "percentunit",
            RATIO,
            max_value=1,
        ),
        12,
        10,
    ),
    (
        table(
            "Courses of the structure",
            "Per course (only with the opt-in collector course_progress_by_course in collectors.enabled; the "
            'cardinality guard may fold rare courses into "other"): enrolled people, people who completed it, '
            "its completion ratio.",
            [
                instant(f"sum by (course) (ent_course_enrolled_users{{{PER_COURSE}}})", fmt="table", ref="A"),
                instant(f"sum by (course) (ent_course_completed_users{{{PER_COURSE}}})", fmt="table", ref="B"),
                instant(COURSE_RATIO, fmt="table", ref="C"),
                instant(f"sum by (course) (ent_course_badges_issued{{{PER_COURSE}}})", fmt="table", ref="D"),
            ],
            "short",
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "renameByName": {
                            "course": "Course",
                            "Value #A": "Enrolled",
                            "Value #B": "Completed",
                            "Value #C": "Completion ratio",
                            "Value #D": "Badges",
                        },
                    },
                },
                {"id": "sortBy", "options": {"fields": {}, "sort": [{"field": "Enrolled", "desc": True}]}},
            ],
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "Completion ratio"},
                    "properties": [{"id": "unit", "value": "percentunit"}, {"id": "decimals", "value": 1}],
                }
            ],
        ),
        12,
        10,
    ),
]

dashboard = dashboard(
    "courses",
    "ENT learning progress",
    "Learning progress (Moodle): enrolled people, course completions, the completion ratio, activity "
    "completions and badges, per establishment and per course.",
    # profile travels along the links between the ENT dashboards only: the course figures have none.
    panels,
    [structure_variable(), profile_variable(hide=True)],
    time_from="now-90d",
)
