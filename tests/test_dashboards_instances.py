"""Dashboards over several exporters (one per platform, told apart by ``instance``).

Every query of every dashboard filters ``$instance``, and no ratio family (``additive=False`` in the
catalogue, a ratio of the exporter) is summed, maxed or averaged across exporters: a panel showing a
ratio for several exporters divides the sum of its numerator by the sum of its denominator, or shows
one value per exporter.

On a real Prometheus holding two exporters' series (two platforms of different people, written as
the exporter publishes them from raw rows, backfilled with ``promtool tsdb create-blocks-from
openmetrics``), the ratio panels with "All" exporters show the ratio of the two platforms together,
computed here from the raw rows: logins ÷ visitors of both, activated ÷ all accounts of both,
completed ÷ enrolled people of a course of both.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.support import backfilled_prometheus
from tests.test_dashboards import iter_panels, load_dashboards, substitute
from tests.test_panels_history import NOW, evaluate


def ratio_families() -> set[str]:
    from ent_exporter.catalogue import families

    return {f.name for f in families() if not f.additive and f.unit in ("ratio", "")} - {"ent_structure_info"}


def test_every_query_filters_the_exporter():
    """Every selector of every panel query and of every variable's query (but the exporter variable's own)
    reads the selected exporters only."""
    missing = []
    for name, dashboard in load_dashboards("en").items():
        for panel in iter_panels(dashboard):
            for target in panel.get("targets", []):
                for metric, matchers in re.findall(r"([a-zA-Z_:][\w:]*)?\{([^}]*)\}", target.get("expr", "")):
                    if 'instance=~"$instance"' not in matchers:
                        missing.append(f"{name} / {panel['title']}: {metric}{{{matchers}}}")
        for variable in dashboard["templating"]["list"]:
            query_text = variable.get("query", "")
            if variable["name"] in ("instance", "datasource") or not isinstance(query_text, str):
                continue
            for metric, matchers in re.findall(r"([a-zA-Z_:][\w:]*)?\{([^}]*)\}", query_text):
                if "$instance" not in matchers:
                    missing.append(f"{name} / variable {variable['name']}: {metric}{{{matchers}}}")
    assert not missing, "\n".join(missing)


def test_no_ratio_is_added_or_maxed_across_exporters():
    """A ratio family aggregated (sum, max, min, avg) without keeping ``instance`` would add or pick platforms'
    ratios; the pooled forms multiply the ratio by its denominator first (ratio × visitors = logins)."""
    ratios = ratio_families()
    assert {"ent_visits_per_visitor", "ent_account_activation_ratio", "ent_course_completion_ratio"} <= ratios
    wrong = []
    for name, dashboard in load_dashboards("en").items():
        for panel in iter_panels(dashboard):
            for target in panel.get("targets", []):
                expr = target.get("expr", "")
                for match in re.finditer(
                    r"\b(sum|max|min|avg)\s*(?:by\s*\(([^)]*)\))?\s*\(\s*(\w+)\{[^}]*\}(\s*\*)?", expr
                ):
                    function, by, metric, times = match.groups()
                    if metric in ratios and "instance" not in (by or "") and not times:
                        wrong.append(f"{name} / {panel['title']}: {match.group(0)}")
    assert not wrong, "\n".join(wrong)


# -- two platforms, from raw rows ---------------------------------------------------------------

# (user, profile, activated, logins this month, logins in the previous month) per platform.
PLATFORMS = {
    "exporter-a:9877": [
        ("a1", "Teacher", True, 30, 12),
        ("a2", "Student", True, 2, 0),
        ("a3", "Student", False, 0, 0),
        ("a4", "Student", True, 7, 3),
    ],
    "exporter-b:9877": [
        ("b1", "Teacher", True, 1, 5),
        ("b2", "Teacher", False, 0, 1),
        ("b3", "Student", True, 4, 4),
        ("b4", "Student", True, 9, 0),
        ("b5", "Relative", False, 0, 0),
    ],
}
# (user, course, completed) enrolments per platform; a course named alike on both platforms is merged by name.
ENROLMENTS = {
    "exporter-a:9877": [("a1", "maths", True), ("a2", "maths", False), ("a4", "maths", True), ("a2", "art", True)],
    "exporter-b:9877": [("b3", "maths", False), ("b4", "maths", True), ("b1", "art", False)],
}
STRUCTURE = "all"


def published(rows: list[tuple], enrolments: list[tuple]) -> dict[tuple, float]:
    """The series one exporter publishes for its rows (structure="all"), as its collectors define them."""
    series: dict[tuple, float] = {}
    profiles = sorted({row[1] for row in rows})
    for profile in [*profiles, "all"]:
        mine = [row for row in rows if profile in ("all", row[1])]
        for period, column in (("month", 3), ("previous_month", 4)):
            visitors = sum(1 for row in mine if row[column] > 0)
            logins = sum(row[column] for row in mine)
            labels = (("structure", STRUCTURE), ("profile", profile), ("period", period))
            series[("ent_unique_visitors", labels)] = visitors
            series[("ent_visits_per_visitor", labels)] = logins / visitors if visitors else 0.0
        activated = sum(1 for row in mine if row[2])
        for state, count in (("activated", activated), ("pending", len(mine) - activated)):
            series[("ent_accounts", (("structure", STRUCTURE), ("profile", profile), ("state", state)))] = count
        series[("ent_account_activation_ratio", (("structure", STRUCTURE), ("profile", profile)))] = (
            activated / len(mine) if mine else 0.0
        )
    for course in sorted({e[1] for e in enrolments}):
        enrolled = [e for e in enrolments if e[1] == course]
        labels = (("structure", STRUCTURE), ("course", course))
        series[("ent_course_enrolled_users", labels)] = len({e[0] for e in enrolled})
        series[("ent_course_completed_users", labels)] = len({e[0] for e in enrolled if e[2]})
        series[("ent_course_completion_ratio", labels)] = sum(e[2] for e in enrolled) / len(enrolled)
    everyone = (("structure", STRUCTURE), ("course", "all"))
    series[("ent_course_enrolled_users", everyone)] = len({e[0] for e in enrolments})
    series[("ent_course_completed_users", everyone)] = len({e[0] for e in enrolments if e[2]})
    series[("ent_course_completion_ratio", everyone)] = (
        sum(e[2] for e in enrolments) / len(enrolments) if enrolments else 0.0
    )
    return series


def openmetrics() -> str:
    by_family: dict[str, list[str]] = {}
    times = [int((NOW - timedelta(minutes=m)).timestamp()) for m in range(10, -1, -1)]
    for instance in PLATFORMS:
        for (name, labels), value in published(PLATFORMS[instance], ENROLMENTS[instance]).items():
            text = ",".join(f'{k}="{v}"' for k, v in (("job", "ent-exporter"), ("instance", instance), *labels))
            by_family.setdefault(name, []).extend(f"{name}{{{text}}} {value!r} {t}" for t in times)
    lines = []
    for name in sorted(by_family):
        lines += [f"# TYPE {name} gauge", *sorted(by_family[name], key=lambda line: int(line.rsplit(" ", 1)[1]))]
    return "\n".join([*lines, "# EOF"]) + "\n"


@pytest.fixture(scope="module")
def two_exporters(tmp_path_factory):
    work = tmp_path_factory.mktemp("instances")
    (work / "series.om").write_text(openmetrics())
    with backfilled_prometheus(work / "series.om", work, "ent_accounts", NOW.timestamp()) as port:
        yield port


def panel(dashboard: str, title: str) -> dict:
    return next(p for p in iter_panels(load_dashboards("en")[dashboard]) if p["title"] == title)


def values(port: int, dashboard: str, title: str, **chosen: str) -> dict[str, dict[str, float]]:
    """{refId: {legend or label values: value}} of a panel with every exporter selected ("All")."""
    out: dict[str, dict[str, float]] = {}
    for target, result in evaluate(port, panel(dashboard, title), 86400, STRUCTURE, **chosen):
        for series in result:
            key = ",".join(f"{k}={v}" for k, v in sorted(series["metric"].items())) or "-"
            out.setdefault(target["refId"], {})[key] = float(series["value"][1])
    return out


def everyone(column: int, profile: str = "all") -> tuple[int, int]:
    """(logins, visitors) of both platforms together in a period (column 3: month, 4: previous month)."""
    rows = [row for rows in PLATFORMS.values() for row in rows if profile in ("all", row[1])]
    return sum(row[column] for row in rows), sum(1 for row in rows if row[column] > 0)


def test_visits_per_visitor_of_two_platforms_is_their_logins_over_their_visitors(two_exporters):
    shown = values(two_exporters, "overview", "Visits per visitor")
    for ref, column in (("A", 3), ("B", 4)):
        logins, visitors = everyone(column)
        assert shown[ref] == {"-": pytest.approx(logins / visitors)}, ref
    # Neither platform's own ratio, nor their sum: what the panel showed with max() / sum().
    ratios = [
        published(rows, [])[("ent_visits_per_visitor", (("structure", "all"), ("profile", "all"), ("period", "month")))]
        for rows in PLATFORMS.values()
    ]
    assert shown["A"]["-"] not in (pytest.approx(max(ratios)), pytest.approx(sum(ratios)))


def test_visits_per_visitor_by_profile_of_two_platforms(two_exporters):
    shown = values(two_exporters, "overview", "Visitors by profile")["C"]
    for profile in ("Teacher", "Student"):
        logins, visitors = everyone(3, profile)
        assert shown[f"profile={profile}"] == pytest.approx(logins / visitors), profile
    assert shown["profile=Relative"] == 0  # no visitor this month: 0, the family's own "0 when none"


@pytest.mark.parametrize("dashboard", ["overview", "establishment"])
def test_activation_ratio_by_profile_of_two_platforms(two_exporters, dashboard):
    shown = values(two_exporters, dashboard, "Activation ratio by profile")["A"]
    rows = [row for rows in PLATFORMS.values() for row in rows]
    for profile in ("Teacher", "Student", "Relative"):
        mine = [row for row in rows if row[1] == profile]
        assert shown[f"profile={profile}"] == pytest.approx(sum(row[2] for row in mine) / len(mine)), profile


def test_course_completion_of_two_platforms(two_exporters):
    shown = values(two_exporters, "courses", "Courses of the structure")["C"]
    everything = [e for rows in ENROLMENTS.values() for e in rows]
    for course in ("maths", "art"):
        enrolled = [e for e in everything if e[1] == course]
        assert shown[f"course={course}"] == pytest.approx(sum(e[2] for e in enrolled) / len(enrolled)), course
    # The structure's ratio counts enrolments, which the exporter does not publish: one value per exporter.
    per_exporter = values(two_exporters, "courses", "Completion ratio")["A"]
    assert per_exporter == {
        f"instance={instance}": pytest.approx(sum(e[2] for e in rows) / len(rows))
        for instance, rows in ENROLMENTS.items()
    }


def test_one_exporter_selected_shows_its_own_figures(two_exporters):
    instance = "exporter-b:9877"
    shown = values(two_exporters, "overview", "Visits per visitor", instance=instance)
    rows = PLATFORMS[instance]
    assert shown["A"] == {"-": pytest.approx(sum(r[3] for r in rows) / sum(1 for r in rows if r[3] > 0))}
    assert substitute('x{instance=~"$instance"}', {"instance": "a"}) == 'x{instance=~"a"}'
