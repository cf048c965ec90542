"""Monthly reports: per establishment and for the platform, PDF, HTML and CSV, French by default.

``ent-exporter report`` (exporter/cli.py) and the daemon's monthly job (``reports.job``) both
call ``write_reports``. The figures come from the source with the metrics' definitions
(``reports.figures``); the words from ``reports.labels``; charts from matplotlib
(``reports.plots``); the PDF from fpdf2 (``reports.output``).

This module imports nothing heavy: the configuration's ``reports:`` section
(``reports.settings``) is loaded with every config, matplotlib and fpdf2 only when a report
is written.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from exporter import clock as clocks

if TYPE_CHECKING:
    from collectors.base import Source

    from .figures import Month


def report_source(config):
    """A pool of its own for reports (one connection), with the reports' statement timeout
    (``reports.statement_timeout_seconds``, default 900 s) instead of the collectors'."""
    from exporter.source import PostgresSource

    from .settings import REPORT_STATEMENT_TIMEOUT_SECONDS

    timeout = config.reports.statement_timeout_seconds if config.reports else REPORT_STATEMENT_TIMEOUT_SECONDS
    return PostgresSource(config.source.dsn or "", config.source.schema_name, statement_timeout_seconds=timeout,
                          connect_timeout_seconds=config.source.connect_timeout_seconds, max_connections=1)


class ReportError(Exception):
    """A report that cannot be made as asked (unknown structure, bad month): one line, exit 2."""


def write_reports(source: "Source", month: "Month", out: Path, *, structures: list[str] | None = None,
                  formats: tuple[str, ...] = ("pdf", "html", "csv"), language: str = "fr",
                  produced: datetime | None = None, min_count: int = 0) -> list[Path]:
    """Writes the reports of ``month`` for ``structures`` (None: every structure and ``all``); returns the files.
    People counts below ``min_count`` are written as 0, as the metrics publish them (privacy.min_count)."""
    from . import document, output, plots
    from .figures import build_reports, known_structure_ids

    if structures is not None:
        known = known_structure_ids(source)
        unknown = [s for s in structures if s not in known]
        if unknown:
            raise ReportError(f"--structure: unknown structure {', '.join(unknown)} "
                              f"(not in the structures or accounts of the source)")
    produced = produced or clocks.default().now()
    written: list[Path] = []
    for report in build_reports(source, month, structures, min_count):
        doc = document.build(report, language, produced, min_count)
        charts = plots.charts(report, language) if {"pdf", "html"} & set(formats) else {}
        written += output.write(doc, charts, out, report.structure.structure_id, str(month), formats)
    return written
