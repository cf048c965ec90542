"""One report as sections (title, sentence, chart, table, CSV rows), whatever the output format.

The PDF, the HTML page and the CSV files are written from the same sections, so they always
say the same numbers; the CSVs carry the raw values (``.`` decimals, stable column names),
the tables the language's formatting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ent_exporter.aggregation.periods import zone_name
from ent_exporter.engine.collector import UNKNOWN
from ent_exporter.reports import labels
from ent_exporter.reports.figures import INACTIVE_DAYS, TOTAL, AccountFigures, ProfileFigures, Report, StructureMonth

RATES = {"activation_ratio"}
# The opening sentences name a profile's change of visitors only when it had this many both months:
# from 3 to 6 people is "+100 %", which says nothing.
LEAD_MIN_VISITORS = 10
# Figures of a span of time (not of an instant): a provisional month's are not compared with whole months.
FLOWS = {"connections", "visitors", "visits_per_visitor", "app_openings"}
DECIMALS = {"visits_per_visitor": 2, "activation_ratio": 3}


@dataclass
class Section:
    key: str  # labels.INDICATORS key; the CSV file is <month>-<key>.csv
    title: str
    description: str
    header: list[str]  # displayed
    rows: list[list[str]]  # displayed
    csv_header: list[str]
    csv_rows: list[list[object]]
    chart: str | None = None  # plots.CHARTS key
    compact: bool = False  # a table the PDF may leave to the CSV (168 cells of the grid)
    note: str = ""  # a sentence under the table (what a row means)


@dataclass
class Document:
    language: str
    title: str
    subtitle: str
    period: str
    sections: list[Section] = field(default_factory=list)
    lead: str = ""  # the month in two or three sentences, at the top of page 1
    app_names: dict[str, str] = field(default_factory=dict)  # identifier -> name shown (tables and charts)
    footnote: str = ""
    # What the reader must know about the figures (the source's coverage, a provisional month).
    notes: list[str] = field(default_factory=list)
    provisional: str = ""  # "provisoire, au 6 décembre 2026" on a current month's report (every page)


def _display(language: str, key: str, value: float | None) -> str:
    if value is None:  # withheld (privacy.min_count)
        return labels.text(language, "withheld")
    if key in RATES:
        return labels.percent(language, value)
    return labels.number(language, value, 2 if key == "visits_per_visitor" else 0)


def _csv_value(key: str, value: float | None) -> object:
    if value is None:  # withheld: an empty cell, never a 0 that is not one
        return ""
    if key in DECIMALS:
        return round(value, 6)
    return int(value)


def _rate_change(current: float | None, before: float | None) -> float | None:
    """The change of a rate in points (None when either is withheld)."""
    return None if current is None or before is None else (current - before) * 100


def build(
    report: Report,
    language: str,
    produced: datetime,
    min_count: int = 0,
    app_names: labels.AppNames | None = None,
) -> Document:
    """``app_names``: the configuration's names of applications (reports.applications)."""
    t = lambda key, **kw: labels.text(language, key, **kw)  # noqa: E731
    month = report.month
    platform = report.structure.structure_id == "all"
    subtitle = t("platform") if platform else f"{report.structure.name} ({report.structure.structure_id})"
    last_day = month.days[-1]
    provisional, notes = "", []
    if report.as_of is not None:
        as_of = labels.long_date(language, report.as_of.astimezone(month.zone).date())
        provisional = t("provisional", date=as_of)
        subtitle = f"{subtitle} — {provisional}"  # the subtitle is in every page's footer
        notes.append(t("partial", date=as_of))
    if report.data_since is not None and set(report.coverage.values()) != {"whole"}:
        notes.append(t("data_since", date=labels.long_date(language, report.data_since)))
    document = Document(
        language=language,
        title=f"{t('report_title')} — {labels.month_name(language, month.year, month.month)}",
        subtitle=subtitle,
        period=t(
            "generated",
            when=labels.long_date(language, produced.astimezone(month.zone).date()),
            start=labels.long_date(language, month.first_day),
            end=labels.long_date(language, last_day),
            zone=labels.zone_words(language, zone_name(month.zone)),
        ),
        footnote=t("footnote") + (" " + t("privacy", min_count=min_count) if min_count > 0 else ""),
        notes=notes,
        provisional=provisional,
    )
    current, previous, year_before = report.current, report.previous, report.year_before
    names = document.app_names = labels.app_names(language, report.apps, app_names)

    # Key figures, with the previous month and the same month a year before: "—" (an empty CSV cell), never
    # a 0, for a month the source does not wholly cover; no change for a provisional month's flows.
    now = current.headline()
    compared = {which: report.compared(which) for which in ("previous", "year_before")}
    others = {"previous": previous.headline(), "year_before": year_before.headline()}
    dash = t("not_available")
    rows, csv_rows = [], []
    for key, value in now.items():
        rate = key in RATES
        row, csv_row = (
            [labels.indicator(language, key)[0], _display(language, key, value)],
            [key, _csv_value(key, value)],
        )
        for which, other in others.items():
            if not compared[which]:
                row += [dash, dash]
                csv_row += ["", ""]
                continue
            changed = not (report.as_of is not None and key in FLOWS)
            difference = _rate_change(value, other[key]) if rate else labels.percent_change(value, other[key])
            row += [
                _display(language, key, other[key]),
                labels.change(language, value, other[key], rate=rate) if changed else dash,
            ]
            csv_row += [
                _csv_value(key, other[key]),
                "" if difference is None or not changed else round(difference, 2),
            ]
        rows.append(row)
        csv_rows.append(csv_row)
    # The opening sentences compare with the previous month only where the summary does.
    comparable = {
        key: others["previous"][key]
        if compared["previous"] and not (report.as_of is not None and key in FLOWS)
        else None
        for key in now
    }
    document.lead = _lead(report, language, now, comparable, names)
    document.sections.append(
        Section(
            "summary",
            t("summary"),
            "",
            [t("indicator"), t("value"), t("previous_month"), t("change"), t("year_before"), t("change")],
            rows,
            [
                "indicator",
                "value",
                "previous_month",
                "change_previous_month",
                "same_month_last_year",
                "change_same_month_last_year",
            ],
            csv_rows,
        )
    )

    # Connections per day.
    title, description = labels.indicator(language, "connections_per_day")
    document.sections.append(
        Section(
            "connections_per_day",
            title,
            description,
            [t("day"), t("connections")],
            [[labels.day_text(language, day), labels.number(language, n)] for day, n in current.per_day.items()],
            ["date", "connections"],
            [[day.isoformat(), n] for day, n in current.per_day.items()],
            chart="connections_per_day",
            compact=True,
        )
    )

    # Visitors by profile, and the distinct people over every profile.
    title, description = labels.indicator(language, "visitors_by_profile")
    profiles = sorted((p for p in current.profiles if p != TOTAL), key=lambda p: (-current.profiles[p].visitors, p)) + [
        TOTAL
    ]
    rows, csv_rows = [], []
    for profile in profiles:
        figures = current.profiles.get(profile) or ProfileFigures()
        name = t("total") if profile == TOTAL else labels.profile_name(language, profile)
        visitors = None if figures.visitors_withheld else figures.visitors
        rows.append(
            [
                name,
                _display(language, "visitors", visitors),
                labels.number(language, figures.connections),
                _display(language, "visits_per_visitor", figures.visits_per_visitor),
            ]
        )
        csv_rows.append(
            [
                "all" if profile == TOTAL else profile,
                _csv_value("visitors", visitors),
                figures.connections,
                _csv_value("visits_per_visitor", figures.visits_per_visitor),
            ]
        )
    document.sections.append(
        Section(
            "visitors_by_profile",
            title,
            description,
            [t("profile"), t("visitors"), t("connections"), t("visits_per_visitor")],
            rows,
            ["profile", "visitors", "connections", "visits_per_visitor"],
            csv_rows,
            chart="visitors_by_profile",
            note=t("unknown_profile_note") if UNKNOWN in profiles else "",
        )
    )

    # Applications: the catalogue of the three months, 0 when not opened this month.
    title, description = labels.indicator(language, "applications")

    def app_people(app: str) -> int | None:
        return None if app in current.apps_withheld else current.apps.get(app, (0, 0))[1]

    def openings(figures: StructureMonth, which: str, app: str) -> int | None:  # None: a month not compared
        return figures.apps.get(app, (0, 0))[0] if report.compared(which) else None

    rows, csv_rows = [], []
    for app in report.apps:
        before, last_year = openings(previous, "previous", app), openings(year_before, "year_before", app)
        rows.append(
            [
                names[app],
                labels.number(language, current.apps.get(app, (0, 0))[0]),
                _display(language, "people", app_people(app)),
                dash if before is None else labels.number(language, before),
            ]
        )
        csv_rows.append(
            [
                app,
                current.apps.get(app, (0, 0))[0],
                _csv_value("people", app_people(app)),
                "" if before is None else before,
                "" if last_year is None else last_year,
            ]
        )
    document.sections.append(
        Section(
            "applications",
            title,
            description,
            [t("application"), t("openings"), t("users"), t("previous_month")],
            rows,
            ["app", "openings", "people", "openings_previous_month", "openings_same_month_last_year"],
            csv_rows,
            chart="applications",
        )
    )

    # The weekday x hour grid.
    title, description = labels.indicator(language, "logins_by_hour")
    cells = sorted(current.by_hour.items())
    document.sections.append(
        Section(
            "logins_by_hour",
            title,
            description,
            [t("weekday"), t("hour"), t("connections")],
            [[labels.WEEKDAYS[language][w - 1], str(h), labels.number(language, n)] for (w, h), n in cells],
            ["weekday", "hour", "connections"],
            [[w, h, n] for (w, h), n in cells],
            chart="logins_by_hour",
            compact=True,
        )
    )

    # Accounts and activation by profile, at the month's end.
    title, description = labels.indicator(language, "accounts_by_profile")
    profiles = sorted(
        (p for p in current.accounts if p != TOTAL),
        key=lambda p: (-(current.accounts[p].activated + current.accounts[p].pending), p),
    ) + [TOTAL]
    rows, csv_rows = [], []
    for profile in profiles:
        account = current.accounts.get(profile) or AccountFigures()
        name = t("total") if profile == TOTAL else labels.profile_name(language, profile)
        shown = {
            key: None if key in account.withheld else value
            for key, value in (
                ("activated", account.activated),
                ("pending", account.pending),
                *((d, account.inactive[d]) for d in INACTIVE_DAYS),
            )
        }
        rows.append(
            [
                name,
                _display(language, "activated", shown["activated"]),
                _display(language, "pending", shown["pending"]),
                _display(language, "activation_ratio", account.ratio),
                *(_display(language, "inactive", shown[d]) for d in INACTIVE_DAYS),
            ]
        )
        csv_rows.append(
            [
                "all" if profile == TOTAL else profile,
                _csv_value("activated", shown["activated"]),
                _csv_value("pending", shown["pending"]),
                _csv_value("activation_ratio", account.ratio),
                *(_csv_value("inactive", shown[d]) for d in INACTIVE_DAYS),
            ]
        )
    document.sections.append(
        Section(
            "accounts_by_profile",
            title,
            description,
            [t("profile"), t("activated"), t("pending"), t("activation_ratio"), t("inactive_30d"), t("inactive_90d")],
            rows,
            ["profile", "activated", "pending", "activation_ratio", *(f"inactive_{d}d" for d in INACTIVE_DAYS)],
            csv_rows,
            chart="accounts_by_profile",
            note=t("unknown_profile_note") if UNKNOWN in profiles else "",
        )
    )
    return document


def _lead(
    report: Report,
    language: str,
    now: Mapping[str, float | None],
    before: Mapping[str, float | None],
    names: Mapping[str, str],
) -> str:
    """The month in two or three sentences (labels.lead) from the summary's figures; a withheld or
    not comparable figure (None) is left unsaid."""
    month, previous = report.month, report.month.shift(-1)
    previous_name = labels.MONTHS[language][previous.month - 1]
    if previous.year != month.year:
        previous_name = labels.month_name(language, previous.year, previous.month)
    changes: dict[str, float] = {}
    if before.get("visitors") is not None:  # the previous month is comparable
        for profile, figures in sorted(report.current.profiles.items()):  # equals: the first code
            earlier = report.previous.profiles.get(profile)
            if profile in (TOTAL, UNKNOWN) or earlier is None or figures.visitors_withheld or earlier.visitors_withheld:
                continue
            if min(figures.visitors, earlier.visitors) >= LEAD_MIN_VISITORS:
                name = labels.profile_name(language, profile)
                changes[name] = (figures.visitors - earlier.visitors) / earlier.visitors
    top = None
    if report.apps and report.current.app_openings:
        first = report.apps[0]
        top = (names[first], report.current.apps.get(first, (0, 0))[0], report.current.app_openings)
    return labels.lead(
        language,
        labels.month_name(language, month.year, month.month),
        previous_name,
        now,
        before,
        changes,
        top,
    )
