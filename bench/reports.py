"""Every report of one month: what ``ent-exporter report`` costs at the month scale of the benchmark.

    python -m bench.reports [--month] [--structures N] [--accounts N] [--events N] [--scales 100,300]
                            [--report-month YYYY-MM] [--workdir DIR] [--keep] [--output BENCHMARKS.md]

``--month`` is bench.run's month scale: 1,000 structures, 500,000 accounts, 50 million events a month.
The month reported is the last closed month of Europe/Paris unless ``--report-month``; the history,
seeded by bench.database.seed (ent_exporter.demo.data), is the HISTORY_MONTHS months to its end at that
rate (the 90 days its inactive accounts read) and the same month a year before (its events copied a year
earlier), so that the reports compare with both months and their statements run.
``--scales 100,300`` runs smaller platforms first, with proportionally fewer accounts and events
(500 accounts and 50,000 events per structure at the month scale), each in a database of its own
under ``--workdir`` (``--keep`` reuses them when seeded with the same sizes and month).

At each scale, one process (``python -m bench.reports child``) writes the reports of the month for
every structure and the platform (``all``), every format (PDF, HTML, CSV), through
``ent_exporter.reports.write_reports`` as ``ent-exporter report`` does, on its own connection as
the bench's role ``bench_ent``. It prints one JSON line: the wall time of the statements
(``figures.build_reports``: every query and the figures made of their rows), of the rendering (the
rest of ``write_reports``: words, charts, PDF, HTML, CSV, the files moved into place), the files
and bytes written, and the process's peak RSS (VmHWM). The database time of the statements is
pg_stat_statements' (planning and execution) for that role; rows read are the contract tables'
(bench.database.Meter). The reports written are removed afterwards.

``--output`` replaces (or adds) the section "Every report of a month" of that file (BENCHMARKS.md),
before "A year of history"; bench.run keeps it when it rewrites the file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import psycopg
import yaml
from psycopg import sql

from bench import database as db
from bench import sections

if TYPE_CHECKING:
    from ent_exporter.reports.figures import Month

REPO = Path(__file__).resolve().parent.parent
DEFAULT_WORKDIR = Path(__file__).resolve().parent / ".work" / "reports"
ZONE = "Europe/Paris"
MONTH = {"structures": 1000, "accounts": 500_000, "events": 50_000_000}
PER_STRUCTURE = {"accounts": MONTH["accounts"] // MONTH["structures"], "events": MONTH["events"] // MONTH["structures"]}
TARGETS = {"seconds": 600.0, "peak_rss_mb": 500.0}  # every report of the month at the month scale
SECTION = "## Every report of a month"
# The months seeded up to the month's end: the month, the one before (compared) and the one before that, so
# that the month's inactive accounts read the 90 days a real platform has (the same month a year before is
# seeded too: a_year_before).
HISTORY_MONTHS = 3
# The parts of write_reports timed by the child: (part, module of ent_exporter.reports, function).
PARTS = (
    ("statements", "figures", "build_reports"),
    ("words", "document", "build"),
    ("charts", "plots", "charts"),
    ("PDF", "output", "pdf_bytes"),
    ("HTML", "output", "html_bytes"),
    ("CSV", "output", "csv_bytes"),
)
# Each report rendered in the writing process, whole (the parts above, the files written and the rest).
REPORT_PART = ("report", "rendering", "Rendering.render")


@dataclass
class Scale:
    structures: int
    accounts: int
    events: int
    sample: int | None = None  # reports rendered (the platform's and the first structures'); None: all

    @classmethod
    def proportional(cls, structures: int) -> Scale:
        return cls(structures, structures * PER_STRUCTURE["accounts"], structures * PER_STRUCTURE["events"])


@dataclass
class ScaleRun:
    """One scale: the seeded platform and what writing every report of the month cost."""

    structures: int
    accounts: int
    events: int  # of the month (seeded at the rate asked for, within about 1 %)
    logins: int  # of the month
    app_openings: int  # of the month
    seeded: bool
    seed_seconds: float
    reports: int  # reports written: structures + the platform, or the sample's
    files: int
    bytes: int
    statements_seconds: float  # wall time of figures.build_reports (the queries and the figures of their rows)
    rendering_seconds: float  # the rest of write_reports: words, charts, PDF, HTML, CSV, files moved into place
    total_seconds: float  # write_reports
    process_seconds: float  # the child process, interpreter start and imports included
    db_ms: float  # pg_stat_statements: planning and execution of the role's statements
    statements: int
    rows_read: int
    peak_rss_kb: int
    files_by_format: dict[str, int] = field(default_factory=dict)
    parts_seconds: dict[str, float] = field(default_factory=dict)  # the rendering's parts (PARTS)
    all_reports: int = 0  # structures + the platform: what every report of the month is
    cpu_seconds: float = 0.0  # the writing process's CPU time (user + system), from its start
    rendering_cpu_seconds: float = 0.0  # the CPU time of the rendering (write_reports but the statements)
    processes: int = 1  # processes that rendered (the writing process and its workers)
    rendered_here: int = 0  # reports rendered by the writing process itself (the parts are timed there)
    workers_peak_rss_kb: int = 0  # the worker processes' peak RSS, summed (included in peak_rss_kb)
    history_events: int = 0  # every event seeded: the HISTORY_MONTHS to the month's end and the month a year before
    # pg_stat_statements' time of the statements of each kind (STATEMENT_KINDS), the three months together
    db_ms_by_kind: dict[str, float] = field(default_factory=dict)

    @property
    def sampled(self) -> bool:
        return self.reports < self.all_reports

    @property
    def rendering_per_report(self) -> float:
        return self.rendering_seconds / max(self.reports, 1)

    @property
    def every_report_seconds(self) -> float:
        """Every report of the month: measured, or (a sample rendered) the statements (run for every
        structure whatever the sample) plus the sample's rendering per report times every report."""
        return self.statements_seconds + self.rendering_per_report * self.all_reports

    @property
    def peak_rss_mb(self) -> float:
        return self.peak_rss_kb / 1024


@dataclass
class Result:
    month: str
    machine: dict
    versions: dict
    runs: list[ScaleRun]
    started: str
    finished: str
    load_after: list[float]

    @property
    def largest(self) -> ScaleRun:
        return max(self.runs, key=lambda r: r.structures)

    def summary_line(self) -> str:
        r = self.largest
        return (
            f"bench.reports: {r.reports:,} reports ({r.files:,} files) of {self.month} at {r.structures:,} structures,"
            f" {r.events:,} events: {r.total_seconds:.0f} s (statements {r.statements_seconds:.0f} s,"
            f" database {r.db_ms / 1000:.0f} s; rendering {r.rendering_seconds:.0f} s), peak RSS {r.peak_rss_mb:.0f} MB"
        )


def say(message: str) -> None:
    print(f"bench.reports: {message}", file=sys.stderr, flush=True)


def last_closed_month() -> str:
    from ent_exporter.engine import clock as clocks
    from ent_exporter.reports.figures import Month

    local = clocks.SYSTEM.local(ZoneInfo(ZONE))
    return str(Month(local.year, local.month, ZoneInfo(ZONE)).shift(-1))


def write_config(path: Path, dsn: str) -> Path:
    path.write_text(yaml.safe_dump({"source": {"dsn": dsn}, "timezone": ZONE, "state_dir": str(path.parent / "state")}))
    return path


def run_scale(scale: Scale, month_text: str, workdir: Path, keep: bool, progress: bool) -> ScaleRun:
    """Seeds (or reuses) the platform of ``scale`` over ``month_text`` and writes every report of it."""
    from ent_exporter.reports.figures import Month

    month = Month.parse(month_text, ZoneInfo(ZONE))
    directory = workdir / f"structures-{scale.structures}"
    server = db.start_server(directory)
    try:
        admin_dsn = db.prepare_database(server)
        # The month and the HISTORY_MONTHS - 1 before it at the month's rate, then the same month a year before.
        days = sum(len(month.shift(-back).days) for back in range(HISTORY_MONTHS))
        events = round(scale.events * days / len(month.days))
        say(
            f"{scale.structures:,} structures: seeding {events:,} events over the {days} days to the end of {month},"
            f" and {month} a year before" + (" (or reusing)" * keep)
        )
        seeding = db.seed(
            admin_dsn,
            structures=scale.structures,
            accounts=scale.accounts,
            events=events,
            days=days,
            end=month.end,
            keep=keep,
            progress=progress,
            extra=a_year_before(month),
        )
        of_month = db.rows_between(admin_dsn, month.start, month.end)
        config = write_config(directory / "ent-exporter.yml", db.dsn(server, db.ENT_ROLE))
        out = directory / "reports"
        shutil.rmtree(out, ignore_errors=True)
        say(f"{scale.structures:,} structures: writing every report of {month}")
        meter = db.Meter(admin_dsn)
        cost, child = meter.measure(db.ENT_ROLE, lambda: run_child(config, month_text, out, scale.sample))
        by_kind = statements_by_kind(meter.statement_times(db.ENT_ROLE))
        shutil.rmtree(out, ignore_errors=True)
    finally:
        server.cleanup()
    run = ScaleRun(
        structures=scale.structures,
        accounts=seeding.counts["accounts"],
        events=sum(of_month.values()),
        logins=of_month["login_events"],
        app_openings=of_month["app_access_events"],
        history_events=seeding.events,
        db_ms_by_kind=by_kind,
        seeded=seeding.seeded,
        seed_seconds=seeding.copy_seconds + seeding.index_seconds + seeding.analyze_seconds,
        reports=child["reports"],
        files=child["files"],
        bytes=child["bytes"],
        statements_seconds=child["statements_seconds"],
        rendering_seconds=child["total_seconds"] - child["statements_seconds"],
        total_seconds=child["total_seconds"],
        process_seconds=cost.wall_seconds,
        db_ms=cost.db_ms,
        statements=cost.statements,
        rows_read=cost.rows_read,
        peak_rss_kb=child["peak_rss_kb"],
        files_by_format=child["files_by_format"],
        parts_seconds=child["parts_seconds"],
        all_reports=child["all_reports"],
        cpu_seconds=child["cpu_seconds"],
        rendering_cpu_seconds=child["rendering_cpu_seconds"],
        processes=child["processes"],
        rendered_here=child["rendered_here"],
        workers_peak_rss_kb=child["workers_peak_rss_kb"],
    )
    say(
        f"{run.structures:,} structures: {run.reports:,} reports, {run.files:,} files in {run.total_seconds:.1f} s"
        f" (statements {run.statements_seconds:.1f} s, database {run.db_ms / 1000:.1f} s;"
        f" rendering {run.rendering_seconds:.1f} s), peak RSS {run.peak_rss_mb:.0f} MB"
    )
    return run


def a_year_before(month: Month) -> tuple[str, Callable[[psycopg.Connection], dict[str, int]]]:
    """The seed's extra rows (bench.database.seed): the month's logins and openings again, a year earlier
    (the same local times), so that the same month a year before is a whole month of the same size.
    Connector calls are not copied: no report reads them."""

    def copy(conn: psycopg.Connection) -> dict[str, int]:
        added = {}
        for table, columns in (
            ("login_events", ("user_id", "profile")),
            ("app_access_events", ("user_id", "profile", "app")),
        ):
            names = sql.SQL(", ").join(map(sql.Identifier, columns))
            cursor = conn.execute(
                sql.SQL(
                    "INSERT INTO {table} (occurred_at, {names})"
                    " SELECT ((occurred_at AT TIME ZONE %(zone)s) - interval '1 year') AT TIME ZONE %(zone)s, {names}"
                    " FROM {table} WHERE occurred_at >= %(start)s AND occurred_at < %(end)s ORDER BY occurred_at"
                ).format(table=sql.Identifier(db.SCHEMA, table), names=names),
                {"zone": ZONE, "start": month.start, "end": month.end},
            )
            added[table] = cursor.rowcount
        return added

    return f"{month} copied to {month.shift(-12)}", copy


# What each statement of the reports is, by a phrase of its text (ent_exporter.reports.figures and the
# indicators it runs), the first that matches; the rest (the accounts, the structures, the first event) last.
STATEMENT_KINDS = (
    ("inactive accounts", "logins_30d"),
    ("connections", "PARTITION BY user_id ORDER BY structure"),
    ("visitors", "p(period, starts, ends)"),
    ("applications", "app_access_events"),
)
OTHER_STATEMENTS = "accounts and the rest"


def statements_by_kind(times: list[tuple[str, float]]) -> dict[str, float]:
    """The database time (ms) of the statements of ``times`` (bench.database.Meter.statement_times) per
    STATEMENT_KINDS."""
    spent = {kind: 0.0 for kind, _ in STATEMENT_KINDS} | {OTHER_STATEMENTS: 0.0}
    for query, ms in times:
        kind = next((kind for kind, phrase in STATEMENT_KINDS if phrase in query), OTHER_STATEMENTS)
        spent[kind] += ms
    return spent


def run_child(config: Path, month: str, out: Path, sample: int | None = None) -> dict:
    command = [sys.executable, "-m", "bench.reports", "child", "--config", str(config), "--report-month", month]
    command += ["--sample", str(sample)] if sample else []
    result = subprocess.run([*command, "--out", str(out)], cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"bench.reports child failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def child(config_path: Path, month_text: str, out: Path, sample: int | None = None) -> dict:
    """Writes every report of the month as ``ent-exporter report`` does (every format, French, the
    default number of processes) and says what it took. The parts are timed around the functions
    write_reports calls (it looks them up in their modules when it runs), in this process: the
    statements (figures.build_reports), and for each report this process renders, the words
    (document.build), the charts (plots.charts), each format's bytes and the whole report
    (rendering.Rendering.render); the worker processes render the others (ent_exporter.reports.rendering).
    CPU time and peak RSS count the workers too: the CPU time of all (their resource usage once they
    have ended), and the peak RSS of each (its VmHWM, read every PEAK_POLL_SECONDS while it runs: a
    child's ru_maxrss would count the pages of this process it was forked from) added to this process's. ``sample``: only the platform's
    report and the first structures' (by code), as ``ent-exporter report --structure`` writes them: the
    statements are the same (every structure at once), the rendering is that many reports'."""
    import resource

    from bench.worker import peak_rss_kb
    from ent_exporter.app import report_source
    from ent_exporter.config import load_config
    from ent_exporter.engine.collector import ALL_STRUCTURES
    from ent_exporter.reports import document, figures, output, plots, rendering, write_reports
    from ent_exporter.reports.figures import Month
    from ent_exporter.reports.settings import FORMATS

    config = load_config(config_path)
    month = Month.parse(month_text, config.zone)
    spent: dict[str, float] = {}
    cpu: dict[str, float] = {}
    calls: dict[str, int] = {}
    built: list[int] = []

    def timed(part: str, owner: object, name: str) -> None:
        function = getattr(owner, name)

        def measured(*args, **kwargs):
            began, began_cpu = time.perf_counter(), time.process_time()
            result = function(*args, **kwargs)
            spent[part] = spent.get(part, 0.0) + time.perf_counter() - began
            cpu[part] = cpu.get(part, 0.0) + time.process_time() - began_cpu
            calls[part] = calls.get(part, 0) + 1
            if part == "statements":
                built.append(len(result))
            return result

        setattr(owner, name, measured)

    modules = {"figures": figures, "document": document, "plots": plots, "output": output, "rendering": rendering}
    for part, module, name in (*PARTS, REPORT_PART):
        owner, _, attribute = f"{module}.{name}".rpartition(".")
        target: object = modules[owner.split(".")[0]]
        for step in owner.split(".")[1:]:
            target = getattr(target, step)
        timed(part, target, attribute)

    def children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    source = report_source(config)
    try:
        source.wait_ready()
        every = sorted(figures.known_structure_ids(source) - {ALL_STRUCTURES}) + [ALL_STRUCTURES]
        wanted = None if not sample or sample >= len(every) else every[: sample - 1] + [ALL_STRUCTURES]
        processes = min(rendering.default_processes(), max(1, len(wanted or every) // rendering.MIN_PER_PROCESS))
        began, began_cpu, began_children = time.perf_counter(), time.process_time(), children()
        with WorkerPeaks() as peaks:
            written = write_reports(
                source, month, out, structures=wanted, formats=FORMATS, min_count=config.privacy.min_count
            )
        total, total_cpu = time.perf_counter() - began, time.process_time() - began_cpu
        workers_cpu, workers_rss = children() - began_children, sum(peaks.peaks.values())
    finally:
        source.close()
    by_format: dict[str, int] = {}
    for path in written:
        kind = path.suffix.lstrip(".")
        by_format[kind] = by_format.get(kind, 0) + 1
    here = calls.get("report", 0)
    parts = {part: spent.get(part, 0.0) for part, _, _ in PARTS if part != "statements"}
    parts["files"] = max(0.0, spent.get("report", 0.0) - sum(parts.values()))
    return {
        "reports": sum(built),
        "files": len(written),
        "files_by_format": dict(sorted(by_format.items())),
        "bytes": sum(path.stat().st_size for path in written),
        "statements_seconds": spent.get("statements", 0.0),
        "parts_seconds": parts,
        "total_seconds": total,
        "all_reports": len(every),
        "cpu_seconds": time.process_time() + children(),
        "rendering_cpu_seconds": total_cpu - cpu.get("statements", 0.0) + workers_cpu,
        "peak_rss_kb": peak_rss_kb() + workers_rss,
        "processes": processes,
        "rendered_here": here,
        "workers_peak_rss_kb": workers_rss,
    }


PEAK_POLL_SECONDS = 0.2


class WorkerPeaks:
    """``with WorkerPeaks() as peaks``: the peak RSS (VmHWM, kB) of each child process of this one
    while the block runs, by pid (read every PEAK_POLL_SECONDS, and once more at the end)."""

    def __init__(self) -> None:
        import threading

        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="worker-peaks", daemon=True)

    def __enter__(self) -> WorkerPeaks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        import psutil

        from bench.worker import peak_rss_kb

        me = psutil.Process()
        while True:
            for child in me.children(recursive=True):
                peak = peak_rss_kb(child.pid)
                if peak:
                    self.peaks[child.pid] = max(self.peaks.get(child.pid, 0), peak)
            if self._stop.wait(PEAK_POLL_SECONDS):
                return


def run(
    scales: list[Scale],
    month: str,
    workdir: Path,
    keep: bool = False,
    progress: bool = True,
    output: Path | None = None,
) -> Result:
    from bench.run import machine

    workdir.mkdir(parents=True, exist_ok=True)
    host = machine()
    runs = [run_scale(scale, month, workdir, keep, progress) for scale in sorted(scales, key=lambda s: s.structures)]
    from ent_exporter.engine import clock as clocks

    result = Result(
        month=month,
        machine=host,
        versions=versions(),
        runs=runs,
        started=host["started"],
        finished=clocks.SYSTEM.now().strftime("%Y-%m-%d %H:%M UTC"),
        load_after=list(os.getloadavg()),
    )
    if output:
        write_section(output, markdown(result))
        say(f"wrote the section {SECTION[3:]!r} of {output}")
    return result


def versions() -> dict:
    from importlib.metadata import version

    from ent_exporter import __version__

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    found = {"ent-exporter": __version__ + (f" ({commit.stdout.strip()})" if commit.returncode == 0 else "")}
    for package in ("matplotlib", "fpdf2", "psycopg"):
        found[package] = version(package)
    return found


# -- BENCHMARKS.md ------------------------------------------------------------------------------


def markdown(r: Result) -> str:
    big = r.largest
    met_time = big.every_report_seconds <= TARGETS["seconds"]
    met_rss = big.peak_rss_mb <= TARGETS["peak_rss_mb"]
    scales = ",".join(str(run.structures) for run in r.runs if run is not big)
    command = "python -m bench.reports --month" + (f" --scales {scales}" if scales else "")
    command += f" --sample {big.reports}" if big.sampled else ""
    command += f" --report-month {r.month} --output BENCHMARKS.md"
    rows = "\n".join(
        f"| {run.structures:,} | {run.accounts:,} | {run.events:,} ({run.logins:,} logins, {run.app_openings:,}"
        f" openings) | {run.reports:,}{f' of {run.all_reports:,}' if run.sampled else ''} ({run.files:,} files,"
        f" {run.bytes / 1e6:,.0f} MB) | {run.statements_seconds:,.1f} s ({run.db_ms / 1000:,.1f} s) |"
        f" {run.rendering_seconds:,.1f} s ({run.rendering_cpu_seconds:,.1f} s) |"
        f" {run.rendering_per_report * 1000:,.0f} ms ({run.rendering_cpu_seconds / max(run.reports, 1) * 1000:,.0f} ms) |"
        f" {run.total_seconds:,.1f} s{f' (every report: {run.every_report_seconds:,.0f} s)' if run.sampled else ''} |"
        f" {run.peak_rss_mb:,.0f} MB |"
        for run in r.runs
    )
    formats = big.files_by_format
    here = big.rendered_here or big.reports
    per_report = ", ".join(f"{part} {seconds / here * 1000:,.0f} ms" for part, seconds in big.parts_seconds.items())
    machine = r.machine
    load = ", ".join(f"{x:.2f}" for x in machine.get("load_before", []))
    load_after = ", ".join(f"{x:.2f}" for x in r.load_after)
    versions = ", ".join(f"{k} {v}" for k, v in r.versions.items())
    extrapolated = ", the rendering of every report extrapolated" if big.sampled else ""
    return f"""{SECTION} ({r.started[:10]})

Every report of one month in every format ({formats.get("pdf", 0):,} PDF, {formats.get("html", 0):,} HTML and \
{formats.get("csv", 0):,} CSV files at {big.structures:,} structures), written by \
`ent_exporter.reports.write_reports` (what `ent-exporter report` runs, with its default number of \
processes: {processes_words(big.processes)}), at bench.run's month scale and at smaller ones, in one run:

```sh
{command}
```

Each platform is the synthetic ENT of `bench.run --month` (`ent_exporter/demo/data.py`, seeded by COPY; \
500 accounts and 50,000 events per structure and month). {history_words(r, big)} *Statements*: \
the wall time of `figures.build_reports` (every query, and the figures made of their rows), in brackets \
the database's time (pg_stat_statements, planning and execution). *Rendering*: the rest (words, \
charts, PDF, HTML, CSV, files written and moved into place), in brackets the CPU time for it of the \
writing process and its workers (what other work on the machine does not lengthen). *Peak RSS*: the \
writing process's VmHWM plus its workers' (at {big.structures:,} structures \
{big.workers_peak_rss_kb / 1024:,.0f} MB of the {big.peak_rss_mb:,.0f} MB).{sample_note(big)}

| structures | accounts | events of the month | reports | statements (database) | rendering (CPU) | rendering per report (CPU) | total | peak RSS |
| ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |
{rows}

Target at {big.structures:,} structures: every report in ≤ {TARGETS["seconds"] / 60:.0f} minutes \
({"met" if met_time else "**missed**"}: {big.every_report_seconds / 60:.1f} minutes{extrapolated}), \
peak RSS ≤ \
{TARGETS["peak_rss_mb"]:.0f} MB ({"met" if met_rss else "**missed**"}: {big.peak_rss_mb:.0f} MB). \
{growth(r)}{kinds_words(big)} The rendering at {big.structures:,} structures, per report in the writing process \
({here:,} of the {big.reports:,} reports, wall time, the workers rendering beside it): {per_report}.

{machine.get("cpu", "?")}, {machine.get("cores", "?")} cores, {machine.get("memory", "?")}; \
{r.started} → {r.finished}; load average before {load}, after {load_after} (other work shares the \
2 cores: wall times are upper bounds); {versions}.{load_note(r)}
"""


def history_words(r: Result, big: ScaleRun) -> str:
    """What the platforms' history is, and what of it the compared months read."""
    from ent_exporter.reports.figures import INACTIVE_DAYS, Month

    month = Month.parse(r.month, ZoneInfo(ZONE))
    first, previous, year_before = month.shift(1 - HISTORY_MONTHS), month.shift(-1), month.shift(-12)
    window = timedelta(days=max(INACTIVE_DAYS))
    read = (previous.end - max(previous.end - window, first.start)).days
    return (
        f"Its history: the {HISTORY_MONTHS} months to the end of {month} in {ZONE} ({first} to {month}), at the"
        f" month's rate, and the month a year before ({year_before}: the logins and openings of {month} copied a"
        f" year earlier); {big.history_events:,} events at {big.structures:,} structures. Every report compares"
        f" with {previous} and {year_before}: their statements run too, for the totals a report compares (no"
        f" local days and hours, no people per application). The month's inactive accounts read its"
        f" {window.days} days, as on a platform with a longer history; those of {previous} read {read} of theirs"
        f" and those of {year_before} {len(year_before.days)} (a longer history would make them read up to"
        f" {window.days})."
    )


def kinds_words(run: ScaleRun) -> str:
    """One sentence: the database time of each kind of statement (the three months together)."""
    if not run.db_ms_by_kind:
        return ""
    parts = sorted(run.db_ms_by_kind.items(), key=lambda item: -item[1])
    return (
        f" The statements' database time at {run.structures:,} structures, the three months together: "
        + ", ".join(f"{kind} {ms / 1000:,.1f} s" for kind, ms in parts)
        + "."
    )


def processes_words(processes: int) -> str:
    if processes <= 1:
        return "one process here"
    workers = processes - 1
    return f"{processes} processes here, the writing one and {workers} worker{'s' * (workers > 1)} rendering beside it"


def load_note(r: Result) -> str:
    """One sentence when the machine ran more than its cores could (a load average above them, before
    or after): the wall times are then not representative, the CPU times are."""
    cores = r.machine.get("cores") or 0
    loads = [*r.machine.get("load_before", []), *r.load_after]
    if not cores or not loads or max(loads) <= cores:
        return ""
    return (
        f" The machine was loaded beyond its {cores} cores during this run (load average up to {max(loads):.1f}):"
        " its wall times are not representative of an idle machine, its CPU times are."
    )


def sample_note(run: ScaleRun) -> str:
    if not run.sampled:
        return ""
    return (
        f" At {run.structures:,} structures, {run.reports:,} of the {run.all_reports:,} reports were rendered (the"
        " platform's and the first structures' by code, as `ent-exporter report --structure` writes them): the"
        " statements are those of every report (every structure at once, whatever is rendered), the rendering of"
        " every report is the sample's per report times all of them (rendering a report does not depend on the"
        " others or on the size of the platform)."
    )


def growth(r: Result) -> str:
    """One sentence: how each part grows with the number of structures (from the smallest to the largest run)."""
    if len(r.runs) < 2:
        return ""
    small, big = min(r.runs, key=lambda x: x.structures), r.largest
    factor = big.structures / small.structures

    def times(a: float, b: float) -> str:
        return f"{b / a:.1f}×" if a > 0 else "-"

    return (
        f"From {small.structures:,} to {big.structures:,} structures ({factor:.0f}× the structures, accounts and"
        f" events), the statements took {times(small.statements_seconds, big.statements_seconds)} as long"
        f" (they read the month's events: they grow with the events), the rendering"
        f" {times(small.rendering_per_report * small.all_reports, big.rendering_per_report * big.all_reports)}"
        " (it grows with the number of reports), the"
        f" peak RSS {times(small.peak_rss_kb, big.peak_rss_kb)}."
    )


def write_section(path: Path, body: str) -> None:
    """Replaces (or adds) this benchmark's section of BENCHMARKS.md."""
    sections.write(path, SECTION, body)


def kept_section(path: Path) -> str:
    """This benchmark's section of an existing BENCHMARKS.md (bench.run rewrites the rest of the file)."""
    return sections.kept(path, SECTION)


# -- command line -------------------------------------------------------------------------------


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.reports", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--month",
        action="store_true",
        help=f"bench.run's month scale: {MONTH['structures']:,} structures, {MONTH['accounts']:,} accounts,"
        f" {MONTH['events']:,} events",
    )
    parser.add_argument("--structures", type=int, help="structures (default: the month scale's, or 20)")
    parser.add_argument("--accounts", type=int, help=f"accounts (default {PER_STRUCTURE['accounts']} per structure)")
    parser.add_argument("--events", type=int, help=f"events (default {PER_STRUCTURE['events']:,} per structure)")
    parser.add_argument(
        "--scales",
        default="",
        help="smaller numbers of structures run first, accounts and events in proportion (e.g. 100,300)",
    )
    parser.add_argument(
        "--sample",
        type=int,
        help="at the largest scale, render only this many reports (the platform's and the first structures'):"
        " the statements run in full, the rendering of every report is this one's per report times all of them",
    )
    parser.add_argument("--report-month", help="the month reported and seeded, YYYY-MM (default: the last closed one)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="databases (default bench/.work/reports)")
    parser.add_argument(
        "--keep", action="store_true", help="reuse the databases seeded by an earlier run of these sizes"
    )
    parser.add_argument("--output", type=Path, help="write the section of this file (BENCHMARKS.md)")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def scales_of(args: argparse.Namespace) -> list[Scale]:
    structures = args.structures or (MONTH["structures"] if args.month else 20)
    main = Scale.proportional(structures)
    main = Scale(structures, args.accounts or main.accounts, args.events or main.events, args.sample)
    smaller = [Scale.proportional(int(n)) for n in args.scales.split(",") if n.strip()]
    return [s for s in smaller if s.structures != structures] + [main]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["child"]:
        inner = argparse.ArgumentParser(prog="python -m bench.reports child")
        inner.add_argument("--config", type=Path, required=True)
        inner.add_argument("--report-month", required=True)
        inner.add_argument("--out", type=Path, required=True)
        inner.add_argument("--sample", type=int)
        args = inner.parse_args(argv[1:])
        print(json.dumps(child(args.config, args.report_month, args.out, args.sample)), flush=True)
        return 0
    args = parse(argv)
    result = run(
        scales_of(args),
        args.report_month or last_closed_month(),
        args.workdir.resolve(),
        keep=args.keep,
        progress=not args.no_progress,
        output=args.output,
    )
    print(json.dumps([asdict(run) for run in result.runs]), flush=True)
    print(result.summary_line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
