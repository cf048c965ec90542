"""Monthly reports: per establishment and for the platform, PDF, HTML and CSV, French by default.

``ent-exporter report`` (ent_exporter/cli.py) and the daemon's monthly job (``ent_exporter.reports.job``) both
call ``write_reports``. The figures come from the source with the metrics' definitions
(``ent_exporter.reports.figures``); the words from ``ent_exporter.reports.labels``; charts from matplotlib
(``ent_exporter.reports.plots``); the PDF from fpdf2 (``ent_exporter.reports.output``).

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
) -> list[Path]:
    """Writes the reports of ``month`` for ``structures`` (None: every structure and ``all``); returns the files.
    People counts below ``min_count`` are written as 0, as the metrics publish them (privacy.min_count).
    ``app_names``: the configuration's names of applications (reports.applications)."""
    from ent_exporter.reports import document, output, plots
    from ent_exporter.reports.figures import build_reports, known_structure_ids
    from ent_exporter.reports.figures import structures as source_structures

    if ALL_STRUCTURES in source_structures(source):
        # Its figures and the platform's cannot be told apart, and its files would replace the platform's.
        raise ReportError(
            f"a structure of the source is coded {ALL_STRUCTURES!r}, the platform's own code: its reports would"
            " replace the platform's; give it another code (check-config --connect says so too)"
        )
    if structures is not None:
        known = known_structure_ids(source)
        unknown = [s for s in structures if s not in known]
        if unknown:
            raise ReportError(
                f"--structure: unknown structure {', '.join(unknown)} (not in the structures or accounts of the source)"
            )
    produced = produced or clocks.default().now()
    written: list[Path] = []
    for report in build_reports(source, month, structures, min_count):
        doc = document.build(report, language, produced, min_count, app_names)
        charts = plots.charts(report, language, doc.app_names) if {"pdf", "html"} & set(formats) else {}
        written += output.write(doc, charts, out, report.structure.structure_id, str(month), formats)
    return written
