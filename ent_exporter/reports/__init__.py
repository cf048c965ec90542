"""Monthly reports: per establishment and for the platform, PDF, HTML and CSV, French by default.

``ent-exporter report`` (ent_exporter/cli.py) and the daemon's monthly job (``ent_exporter.reports.job``) both
call ``write_reports``. The figures come from the source with the metrics' definitions
(``ent_exporter.reports.figures``, two statements at once); the words from ``ent_exporter.reports.labels``;
charts from matplotlib (``ent_exporter.reports.plots``); the PDF from fpdf2 (``ent_exporter.reports.output``);
each report rendered by this process or a worker process (``ent_exporter.reports.rendering``).

This module imports nothing heavy: the configuration's ``reports:`` section
(``ent_exporter.reports.settings``) is loaded with every config, matplotlib and fpdf2 only when a report
is written.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ent_exporter.engine import clock as clocks
from ent_exporter.engine.collector import ALL_STRUCTURES
from ent_exporter.reports.settings import FORMATS

if TYPE_CHECKING:
    from ent_exporter.engine.collector import Source
    from ent_exporter.reports.figures import Month
    from ent_exporter.reports.labels import AppNames


class ReportError(Exception):
    """A report that cannot be made as asked (unknown structure, bad month): one line, exit 2."""


def check_month(source: Source, month: Month, now: datetime, partial: bool = False) -> datetime | None:
    """Whether ``month`` can be reported at ``now``: ReportError (one line) for a month that has not
    begun, the current month without ``partial``, or a month that ends before the source's first
    connection. Returns the instant a provisional report is as of (None: the month is closed)."""
    from ent_exporter.reports.figures import first_event

    local = now.astimezone(month.zone)
    if now < month.start:
        raise ReportError(f"month {month} has not begun (it is {local.date().isoformat()} in {_zone(month)})")
    closed = now >= month.end
    if not closed and not partial:
        last = month.days[-1].isoformat()
        raise ReportError(
            f"month {month} is not over (it ends on {last} in {_zone(month)}):"
            " --partial writes a provisional report as of now"
        )
    first = first_event(source)
    if first is None:
        raise ReportError(f"month {month}: the source has no connection at all, nothing to report")
    if first >= (month.end if closed else now):
        raise ReportError(
            f"month {month} is before the source's data, which begins on"
            f" {first.astimezone(month.zone).date().isoformat()}: nothing to report"
        )
    return None if closed else now


def _zone(month: Month) -> str:
    return getattr(month.zone, "key", str(month.zone))


def write_reports(
    source: Source,
    month: Month,
    out: Path,
    *,
    structures: list[str] | None = None,
    formats: tuple[str, ...] = FORMATS,
    language: str = "fr",
    produced: datetime | None = None,
    min_count: int = 0,
    app_names: AppNames | None = None,
    partial: bool = False,
    processes: int | None = None,
) -> list[Path]:
    """Writes the reports of ``month`` for ``structures`` (None: every structure and ``all``); returns the files.
    ``produced``: now (default: the default clock's). A closed month only, or the current one with
    ``partial`` (a provisional report as of now). All or nothing: every file is written into a staging
    directory inside ``out`` and moved into place once all are (ent_exporter.reports.staging); on any
    error nothing new is left and existing reports are untouched.
    People counts below ``min_count`` are withheld, as the metrics withhold them (privacy.min_count).
    ``app_names``: the configuration's names of applications (reports.applications).
    ``processes``: how many processes render the reports at once, this one included (None: the
    machine's cores, at most ent_exporter.reports.rendering.MAX_PROCESSES); the month's statements
    run on as many connections at once as the source's pool holds."""
    from ent_exporter.reports import output
    from ent_exporter.reports.figures import build_reports, known_structure_ids
    from ent_exporter.reports.figures import structures as source_structures
    from ent_exporter.reports.rendering import Rendering, render_all
    from ent_exporter.reports.staging import Staging

    if ALL_STRUCTURES in source_structures(source):
        # Its figures and the platform's cannot be told apart, and its files would replace the platform's.
        raise ReportError(
            f"a structure of the source is coded {ALL_STRUCTURES!r}, the platform's own code: its reports would"
            " replace the platform's; give it another code (check-config --connect says so too)"
        )
    known = known_structure_ids(source)
    if structures is not None:
        unknown = [s for s in structures if s not in known]
        if unknown:
            raise ReportError(
                f"--structure: unknown structure {', '.join(unknown)} (not in the structures or accounts of the source)"
            )
    produced = produced or clocks.default().now()
    as_of = check_month(source, month, produced, partial)
    ids = sorted(known - {ALL_STRUCTURES}) + [ALL_STRUCTURES] if structures is None else structures
    with Staging(out, str(month)) as staging:
        staging.check([output.directory_name(structure) for structure in ids])  # before the work, and again after
        connections = getattr(source, "connections", 1)  # (a PostgresSource's pool)
        reports = build_reports(source, month, structures, min_count, as_of, connections)
        rendering = Rendering(language, produced, min_count, app_names, formats, staging.path, str(month))
        return staging.publish(render_all(rendering, reports, processes))
