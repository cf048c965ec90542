"""Rendering reports into files: words, charts, PDF, HTML, CSV; in this process and in worker processes.

A report's rendering is Python work (matplotlib, fpdf2) that needs nothing but its figures, and one
process uses one core. With more than one core, ``render_all`` starts worker processes (``spawn``:
a fresh interpreter, nothing inherited from this process's threads, pool or locks) and renders
beside them: the reports are cut into chunks of CHUNK, the workers take them from the first, this
process from the last, until none is left. Each process writes its reports' files into the staging
directory (ent_exporter.reports.staging); the files are returned in the order of the reports, so
they are moved into place in that order (the platform's last). Any error, in any process, stops
the rest (chunks not begun are dropped, running ones awaited) and is raised here: the staging
directory is then removed with whatever was written in it.

A worker holds matplotlib and fpdf2 (about 150 MB): MAX_PROCESSES bounds the processes whatever
the number of cores, and a run of few reports (fewer than MIN_PER_PROCESS per process) starts fewer
workers, or none (starting one costs about a second of imports).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ent_exporter.reports.figures import Report
from ent_exporter.reports.labels import AppNames

CHUNK = 4  # reports per task: small enough to share the end of a run evenly, large enough to cost nothing
MIN_PER_PROCESS = 16
MAX_PROCESSES = 4


def default_processes() -> int:
    """The cores this process may run on, at most MAX_PROCESSES."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_PROCESSES))


@dataclass(frozen=True)
class Rendering:
    """How each report is rendered and where its files go (the same in every process)."""

    language: str
    produced: datetime
    min_count: int
    app_names: AppNames | None
    formats: tuple[str, ...]
    directory: Path
    month: str

    def render(self, report: Report) -> list[Path]:
        from ent_exporter.reports import document, output, plots

        doc = document.build(report, self.language, self.produced, self.min_count, self.app_names)
        charts = plots.charts(report, self.language, doc.app_names) if {"pdf", "html"} & set(self.formats) else {}
        return output.write(doc, charts, self.directory, report.structure.structure_id, self.month, self.formats)


def _render_chunk(rendering: Rendering, reports: list[Report]) -> list[Path]:
    return [path for report in reports for path in rendering.render(report)]


def render_all(rendering: Rendering, reports: list[Report], processes: int | None = None) -> list[Path]:
    """Every report's files, in the order of ``reports``; ``processes``: at most this many at once,
    this one included (None: default_processes())."""
    processes = default_processes() if processes is None else max(1, processes)
    workers = min(processes, len(reports) // MIN_PER_PROCESS) - 1
    if workers <= 0:
        return _render_chunk(rendering, reports)
    chunks = [reports[i : i + CHUNK] for i in range(0, len(reports), CHUNK)]
    done: list[list[Path] | None] = [None] * len(chunks)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures: list[Future[list[Path]]] = [pool.submit(_render_chunk, rendering, chunk) for chunk in chunks]
        for index in reversed(range(len(chunks))):  # this process: the chunks no worker has taken yet
            if futures[index].cancel():
                done[index] = _render_chunk(rendering, chunks[index])
        for index, future in enumerate(futures):
            if done[index] is None:
                done[index] = future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [path for paths in done if paths is not None for path in paths]
