"""The benchmark: ent-exporter against a generic SQL exporter (query-exporter) on one database.

    python -m bench.run [--events 10000000] [--structures 1000] [--accounts 500000] [--days 365]
                        [--month] [--small] [--keep] [--prometheus-seconds 180] [--output BENCHMARKS.md]

``--month`` is the design's scale: 50 million events in one month (30 days), 1,000 structures,
500,000 accounts.

In one run, on one embedded PostgreSQL holding a synthetic regional ENT (seeded by COPY):

1. first start over the whole history (every collector, in a process of its own);
2. each hourly / daily / weekly / monthly collector on its own: time, rows read, sequential scans;
3. the instant cycle after ``--new-events`` new events: ent-exporter's incremental collectors
   versus query-exporter (a real process, PyPI package in its own virtualenv) recounting the
   same counters; database time (pg_stat_statements) and rows read (table statistics);
4. scrapes of ``ent-exporter serve`` by 20 concurrent scrapers versus rendering with
   prometheus-client at every scrape (bench/per_scrape.py), over the same persisted samples;
5. peak RSS of the exporter's processes, seeding throughput;
6. the scrape floor: the same scrapers against ent-exporter's server holding one sample
   (bench/floor.py), in turn with ent-exporter over the same minutes, our p99 as a ratio to it;
7. a real Prometheus scraping ``ent-exporter serve`` for ``--prometheus-seconds``: its head series
   and resident memory, with the default configuration (series budget) and with every heavy
   breakdown enabled (the series of earlier versions; the per-scrape baseline serves the default shape).

It writes a Markdown report (``--output``) and prints one summary line with the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from bench import database as db
from bench import instant_floor, prom, schedule, scrape
from bench import query_exporter as qe
from bench.worker import peak_rss_kb
from ent_exporter.aggregation.periods import previous_month
from ent_exporter.config import load_config
from ent_exporter.engine.clock import SYSTEM
from ent_exporter.engine.collector import Cadence

REPO = Path(__file__).resolve().parent.parent
# ent-exporter and the one-sample floor are scraped in turn, this many times (see scrape.interleaved).
SCRAPE_ROUNDS = 5
DEFAULT_WORKDIR = Path(__file__).resolve().parent / ".work"

REGIONAL = {"structures": 1000, "accounts": 500_000, "events": 10_000_000}
SMALL = {"structures": 20, "accounts": 5_000, "events": 200_000}
MONTH = {"structures": 1000, "accounts": 500_000, "events": 50_000_000, "days": 30}

# Targets at regional scale (see BENCHMARKS.md); ratios are meant to hold on any machine.
TARGETS = {
    "instant_db_ratio": 300.0,  # query-exporter's database time per cycle (a full recount) / ent-exporter's
    "instant_ms": 100.0,  # ent-exporter's instant cycle, database time
    "instant_wall_over_db": 2.0,  # ent-exporter's instant cycle: wall time / database time
    "instant_floor_ratio": 1.5,  # ent-exporter's instant cycle, database time / its floor's (bench/instant_floor.py)
    "scrape_floor_ratio": 1.2,  # ent-exporter's p99 (gzip, 20 scrapers) / the one-sample floor's
    "scrape_ratio": 10.0,  # per-scrape rendering p99 / ent-exporter p99
    "hourly_visitors_seconds": 2.0,  # the hourly visitors collector
    "window_seconds": 10.0,  # every other hourly, daily, weekly, monthly collector
    "series_per_structure": 150.0,  # active series per structure, default configuration
    "peak_rss_mb": 300.0,
    "seed_events_per_second": 200_000.0,
}


@dataclass
class Options:
    structures: int = REGIONAL["structures"]
    accounts: int = REGIONAL["accounts"]
    events: int = REGIONAL["events"]
    days: int = 365
    new_events: int = 10_000
    scrapers: int = 20
    scrapes_each: int = 50
    baseline_scrapes_each: int = 1
    workdir: Path = DEFAULT_WORKDIR
    keep: bool = False
    venv: Path = qe.DEFAULT_VENV
    progress: bool = True
    output: Path | None = None
    prometheus_seconds: float = 180.0
    # query-exporter's recount, the per-scrape rendering baseline and Prometheus with every breakdown: the
    # comparisons of the main report, run at one scale of a scaling run (bench/scaling.py), not at the others.
    compare: bool = True
    # A scaling run (bench/scaling.py): these numbers of establishments, one run each; empty: one run.
    scales: tuple[int, ...] = ()
    # The whole schedule in one serving process (bench/schedule.py): serve through a compressed day.
    schedule: bool = True
    schedule_at_every_scale: bool = True  # in a scaling run; else at the comparisons' scale only
    schedule_scrapers: int = 4
    schedule_lead_seconds: float = 45.0  # from writing the crons to the first one: the process starts and restores
    schedule_idle_tail_seconds: float = 10.0

    @property
    def size(self) -> str:
        return (
            f"{self.structures:,} structures, {self.accounts:,} accounts, {self.events:,} events over {self.days} days"
        )


@dataclass
class Phase:
    """One measured run: wall time, database time and rows read (see bench.database.Cost)."""

    seconds: float
    db_ms: float
    statements: int
    rows_read: int
    event_seq_scans: int
    rows_read_by_table: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, cost: db.Cost, seconds: float | None = None) -> Phase:
        return cls(
            cost.wall_seconds if seconds is None else seconds,
            cost.db_ms,
            cost.statements,
            cost.rows_read,
            cost.event_seq_scans,
            cost.rows_read_by_table,
        )


@dataclass
class Report:
    options: dict
    machine: dict
    versions: dict
    seeding: dict
    first_start: Phase
    first_start_collectors: dict[str, float]
    first_start_peak_rss_kb: int
    first_start_rss_after: dict[str, int]  # peak RSS so far after the restore and after each collector
    windows: dict[str, dict]  # name -> {"cadence", "phase"}
    new_events: dict[str, int]
    instant_ent: Phase
    instant_ent_collectors: dict[str, float]
    series: int
    series_by_family: dict[str, int]
    body_bytes: int
    gzip_bytes: int
    scrape_gzip: scrape.ScrapeStats
    scrape_plain: scrape.ScrapeStats
    serve_peak_rss_kb: int
    finished: str
    load_after: list[float]
    scrape_floor: scrape.ScrapeStats | None = None
    # The same server holding as many gzip bytes as ent-exporter serves (bench/floor.py --gzip-bytes).
    scrape_floor_sized: scrape.ScrapeStats | None = None
    # serve through its whole schedule (bench/schedule.py).
    schedule_run: schedule.ScheduleRun | None = None
    series_per_structure: dict[str, float] = field(default_factory=dict)  # family -> series per structure
    prometheus_default: prom.PrometheusCost | None = None
    prometheus_full: prom.PrometheusCost | None = None
    # visitors_previous_month read whole (its fallback), in the steady state, and the hourly visitors' run
    # that combines the closed month: "whole", "steady", "closing".
    previous_month: dict[str, Phase] = field(default_factory=dict)
    previous_month_logins: int = 0  # the logins of that closed month
    # The instant cycle's floor (bench/instant_floor.py): the least work for the same new events.
    instant_floor: Phase | None = None
    # The comparisons (Options.compare): None at the scales of a scaling run that skip them.
    instant_qe: Phase | None = None
    qe_warmup_seconds: float = 0.0
    counters_agree: bool = False
    scrape_baseline: scrape.ScrapeStats | None = None
    baseline_peak_rss_kb: int = 0
    # The exporter process's CPU time in the instant cycle's runs (its own work: what wall time adds to the database's).
    instant_ent_cpu_seconds: float = 0.0
    load_at_instant: list[float] = field(default_factory=list)  # the machine's load averages after the cycle

    # -- ratios ---------------------------------------------------------------------------
    @property
    def instant_db_ratio(self) -> float:
        return self.instant_qe.db_ms / max(self.instant_ent.db_ms, 1e-6) if self.instant_qe else float("nan")

    @property
    def instant_floor_ratio(self) -> float:
        """The instant cycle's database time ÷ its floor's."""
        return self.instant_ent.db_ms / max(self.instant_floor.db_ms, 1e-6) if self.instant_floor else 0.0

    @property
    def instant_floor_rows_ratio(self) -> float:
        """Rows the instant cycle read ÷ rows its floor read."""
        return self.instant_ent.rows_read / max(self.instant_floor.rows_read, 1) if self.instant_floor else 0.0

    @property
    def instant_rows_ratio(self) -> float:
        return self.instant_qe.rows_read / max(self.instant_ent.rows_read, 1) if self.instant_qe else float("nan")

    @property
    def instant_wall_ratio(self) -> float:
        return self.instant_qe.seconds / max(self.instant_ent.seconds, 1e-6) if self.instant_qe else float("nan")

    @property
    def scrape_p99_ratio(self) -> float:
        """Per-scrape rendering against ent-exporter, the same bytes (plain text) both sides."""
        return (
            self.scrape_baseline.p99_ms / max(self.scrape_plain.p99_ms, 1e-6) if self.scrape_baseline else float("nan")
        )

    @property
    def scrape_throughput_ratio(self) -> float:
        if not self.scrape_baseline:
            return float("nan")
        return self.scrape_plain.per_second / max(self.scrape_baseline.per_second, 1e-9)

    @property
    def scrape_floor_ratio(self) -> float:
        """ent-exporter's p99 (gzip) over the floor's (a one-sample server, same scrapers)."""
        return self.scrape_gzip.p99_ms / max(self.scrape_floor.p99_ms, 1e-6) if self.scrape_floor else float("nan")

    @property
    def scrape_sized_floor_ratio(self) -> float:
        """ent-exporter's p99 (gzip) over the same server's holding as many gzip bytes."""
        if not self.scrape_floor_sized:
            return float("nan")
        return self.scrape_gzip.p99_ms / max(self.scrape_floor_sized.p99_ms, 1e-6)

    @property
    def instant_wall_over_db(self) -> float:
        return self.instant_ent.seconds * 1000 / max(self.instant_ent.db_ms, 1e-6)

    @property
    def per_structure(self) -> float:
        return sum(self.series_per_structure.values())

    @property
    def peak_rss_mb(self) -> float:
        return max(self.serve_peak_rss_kb, self.first_start_peak_rss_kb) / 1024

    @property
    def serve_rss_mb(self) -> float:
        return self.serve_peak_rss_kb / 1024

    @property
    def first_start_rss_mb(self) -> float:
        return self.first_start_peak_rss_kb / 1024

    @property
    def slowest_window(self) -> tuple[str, float]:
        if not self.windows:
            return ("-", 0.0)
        name = max(self.windows, key=lambda n: self.windows[n]["phase"].seconds)
        return name, self.windows[name]["phase"].seconds

    def targets(self) -> list[tuple[str, str, str, bool]]:
        """(what, target, measured, met) for each target."""
        others = {n: w for n, w in self.windows.items() if n != "visitors"}
        slowest = max(others, key=lambda n: others[n]["phase"].seconds) if others else "-"
        seconds = others[slowest]["phase"].seconds if others else 0.0
        visitors = self.windows.get("visitors", {}).get("phase")
        floor = self.scrape_floor
        return [
            (
                "instant cycle: database time vs a full recount (query-exporter)",
                f"≥ {TARGETS['instant_db_ratio']:.0f}× less",
                f"{self.instant_db_ratio:,.0f}× less",
                self.instant_db_ratio >= TARGETS["instant_db_ratio"],
            ),
            (
                "instant cycle: ent-exporter's database time",
                f"< {TARGETS['instant_ms']:.0f} ms",
                f"{self.instant_ent.db_ms:.1f} ms",
                self.instant_ent.db_ms < TARGETS["instant_ms"],
            ),
            (
                "instant cycle: database time vs its floor (the least work for the same new events)",
                f"≤ {TARGETS['instant_floor_ratio']:.1f}× the floor",
                f"{self.instant_ent.db_ms:.1f} ms vs {self.instant_floor.db_ms:.1f} ms: {self.instant_floor_ratio:.2f}×"
                f" ({self.instant_ent.rows_read:,} rows read vs {self.instant_floor.rows_read:,})"
                if self.instant_floor
                else "not measured",
                bool(self.instant_floor) and self.instant_floor_ratio <= TARGETS["instant_floor_ratio"],
            ),
            (
                "instant cycle: wall time / database time",
                f"≤ {TARGETS['instant_wall_over_db']:.0f}×",
                f"{self.instant_wall_over_db:.1f}× (wall {self.instant_ent.seconds * 1000:.0f} ms)",
                self.instant_wall_over_db <= TARGETS["instant_wall_over_db"],
            ),
            (
                f"scrape p99, {self.scrape_gzip.scrapers} concurrent scrapers (gzip), vs the one-sample floor",
                f"≤ {TARGETS['scrape_floor_ratio']:.1f}× the floor",
                f"{self.scrape_gzip.p99_ms:.1f} ms vs {floor.p99_ms:.1f} ms: {self.scrape_floor_ratio:.2f}×"
                if floor
                else "not measured",
                bool(floor) and self.scrape_floor_ratio <= TARGETS["scrape_floor_ratio"],
            ),
            (
                "scrape p99 vs per-scrape rendering (plain text both)",
                f"≥ {TARGETS['scrape_ratio']:.0f}× faster",
                f"{self.scrape_p99_ratio:,.0f}× faster",
                self.scrape_p99_ratio >= TARGETS["scrape_ratio"],
            ),
            (
                "hourly visitors collector",
                f"< {TARGETS['hourly_visitors_seconds']:.0f} s",
                f"{visitors.seconds:.2f} s" if visitors else "-",
                bool(visitors) and visitors.seconds < TARGETS["hourly_visitors_seconds"],
            ),
            (
                "every other hourly/daily/weekly/monthly collector",
                f"< {TARGETS['window_seconds']:.0f} s",
                f"slowest {slowest}: {seconds:.2f} s",
                seconds < TARGETS["window_seconds"],
            ),
            (
                "active series per structure (default configuration)",
                f"≤ {TARGETS['series_per_structure']:.0f}",
                f"{self.per_structure:.0f}",
                self.per_structure <= TARGETS["series_per_structure"],
            ),
            (
                "Prometheus scraping ent-exporter: head series, resident memory",
                "reported",
                f"{self.prometheus_default.head_series:,} series, {self.prometheus_default.peak_rss_mb:,.0f} MB"
                if self.prometheus_default
                else "not measured",
                bool(self.prometheus_default),
            ),
            (
                "exporter peak RSS at the full series count: serving (restored state, a cycle with new events,"
                " the scrapes)",
                f"< {TARGETS['peak_rss_mb']:.0f} MB",
                f"{self.serve_rss_mb:.0f} MB",
                self.serve_rss_mb < TARGETS["peak_rss_mb"],
            ),
            (
                "exporter peak RSS, first start (every collector over the whole history, per-day aggregates included)",
                f"< {TARGETS['peak_rss_mb']:.0f} MB",
                f"{self.first_start_rss_mb:.0f} MB",
                self.first_start_rss_mb < TARGETS["peak_rss_mb"],
            ),
            (
                "seeding throughput (generation + COPY)",
                f"≥ {TARGETS['seed_events_per_second']:,.0f} events/s",
                f"{self.seeding['events_per_second']:,.0f} events/s" if self.seeding["seeded"] else "reused (--keep)",
                (not self.seeding["seeded"]) or self.seeding["events_per_second"] >= TARGETS["seed_events_per_second"],
            ),
        ] + (self.schedule_run.targets() if self.schedule_run else [])

    def summary_line(self) -> str:
        met = sum(1 for *_, ok in self.targets() if ok)
        parts = ["bench:"]
        if self.instant_qe:
            parts.append(
                f"instant cycle {self.instant_db_ratio:,.0f}x less database time than query-exporter"
                f" ({self.instant_ent.db_ms:.1f} ms vs {self.instant_qe.db_ms:,.0f} ms),"
                f" {self.instant_rows_ratio:,.0f}x fewer rows read;"
            )
        else:
            parts.append(f"instant cycle {self.instant_ent.db_ms:.1f} ms of database time;")
        parts.append(
            f"scrape p99 {self.scrape_gzip.p99_ms:.1f} ms gzip / {self.scrape_plain.p99_ms:.1f} ms plain,"
            f" {self.scrape_floor_ratio:.2f}x the one-sample floor"
            + (f", {self.scrape_p99_ratio:,.0f}x faster than per-scrape rendering;" if self.scrape_baseline else ";")
        )
        parts.append(
            f"slowest window collector {self.slowest_window[1]:.2f} s; peak RSS {self.serve_rss_mb:.0f} MB serving,"
            f" {self.first_start_rss_mb:.0f} MB first start;"
            f" seeding {self.seeding['events_per_second']:,.0f} events/s; targets met {met}/{len(self.targets())}"
        )
        return " ".join(parts)


# -- helpers ----------------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def machine() -> dict:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory": memory,
        "system": f"{platform.system()} {platform.release()}",
        "load_before": list(os.getloadavg()),
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def versions(admin_dsn: str, qe_executable: Path | None) -> dict:
    from importlib.metadata import version

    from ent_exporter import __version__

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return {
        "ent-exporter": __version__ + (f" ({commit.stdout.strip()})" if commit.returncode == 0 else ""),
        **({"query-exporter": qe.version(qe_executable)} if qe_executable else {}),
        "PostgreSQL": db.server_version(admin_dsn),
        "Python": platform.python_version(),
        "prometheus-client": version("prometheus-client"),
        "psycopg": version("psycopg"),
    }


def seeding_window(days: int, events: int, now: datetime, zone: ZoneInfo) -> tuple[int, int]:
    """(days, events) of the history to seed before ``now``: at least ``days``, and enough to hold the whole
    previous calendar month of ``zone``; a longer history keeps the asked events per day."""
    start, _ = previous_month(now, zone)
    needed = (now - start).days + 1
    if needed <= days:
        return days, events
    return needed, round(events * needed / days)


def write_exporter_config(
    path: Path, source_dsn: str, state_dir: Path, port: int = 9877, full_breakdowns: bool = False
) -> Path:
    config = {
        "source": {"dsn": source_dsn, "settle_seconds": 0, "statement_timeout_seconds": 3600},
        "listen": {"address": "127.0.0.1", "port": port},
        "state_dir": str(state_dir),
    }
    if full_breakdowns:
        from ent_exporter.config import BreakdownsConfig

        config["breakdowns"] = {name: True for name in BreakdownsConfig.model_fields}
    path.write_text(yaml.safe_dump(config))
    return path


def run_worker(config: Path, now: datetime, names: list[str] | None = None, body: Path | None = None) -> dict:
    """Runs collectors in bench.worker (a process of their own); ``names=None`` runs them all."""
    command = [sys.executable, "-m", "bench.worker", "--config", str(config), "--now", now.isoformat()]
    command += ["--all"] if names is None else names
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"bench.worker failed ({result.returncode}):\n{result.stderr[-4000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    failed = [name for name, ok in report["succeeded"].items() if not ok]
    if failed:
        raise RuntimeError(f"collectors failed: {', '.join(failed)}\n{result.stderr[-4000:]}")
    return report


def counter_lines(text: str, names: tuple[str, ...]) -> dict[tuple, float]:
    """{(sample name, labels but query-exporter's database label): value} of the samples named ``names``,
    zeros left out: ent-exporter's counters are born at 0 for every known structure and profile (and
    both outcomes of a connector), query-exporter's GROUP BY has a row only for what it counted."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = "\n".join(line for line in text.splitlines() if line.startswith(tuple(n + "{" for n in names)))
    values: dict[tuple, float] = {}
    for family in text_string_to_metric_families(wanted + "\n"):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "database"))
            if sample.value:
                values[(sample.name, labels)] = sample.value
    return values


# -- the phases -------------------------------------------------------------------------------


def run(options: Options) -> Report:
    from ent_exporter import indicators

    options.workdir.mkdir(parents=True, exist_ok=True)
    host = machine()
    say(f"{options.size}; work directory {options.workdir}")
    qe_executable = qe.ensure_installed(options.venv) if options.compare else None
    server = db.start_server(options.workdir)
    try:
        admin_dsn = db.prepare_database(server)
        ent_dsn, qe_dsn = db.dsn(server, db.ENT_ROLE), db.dsn(server, db.QE_ROLE)
        meter = db.Meter(admin_dsn)

        state_dir = options.workdir / "exporter-state"
        shutil.rmtree(state_dir, ignore_errors=True)
        config = write_exporter_config(options.workdir / "ent-exporter.yml", ent_dsn, state_dir, free_port())
        exporter = load_config(config)
        zone = ZoneInfo(exporter.timezone)

        # 5. seeding ---------------------------------------------------------------------
        # The history holds the whole previous calendar month, whatever the date (the monthly collector's
        # steady state): longer than asked when needed, at the asked events per day.
        days, events = seeding_window(options.days, options.events, SYSTEM.now(), zone)
        say("seeding (COPY, event indexes built afterwards)" if not options.keep else "seeding (or reusing, --keep)")
        seeding = db.seed(
            admin_dsn,
            structures=options.structures,
            accounts=options.accounts,
            events=events,
            days=days,
            keep=options.keep,
            progress=options.progress,
        )
        seeding_info = {
            **asdict(seeding),
            "events_per_second": seeding.events_per_second,
            "events_per_second_with_indexes": seeding.events_per_second_with_indexes,
            "start": seeding.start.isoformat(),
            "end": seeding.end.isoformat(),
            "days": days,
        }
        say(
            f"{'seeded' if seeding.seeded else 'reused'} {seeding.events:,} events, {seeding.counts['accounts']:,}"
            f" accounts: {seeding.events_per_second:,.0f} events/s, indexes {seeding.index_seconds:.1f} s"
        )
        end = seeding.end
        closed_start, closed_end = previous_month(end, zone)
        assert seeding.start <= closed_start, (seeding.start, closed_start)  # the previous month is whole
        # Opt-in collectors (per course, per class) run only when configured: not in this bench.
        cadences = {name: cls.cadence.value for name, cls in indicators.discover().items() if not cls.opt_in}
        instant = sorted(name for name, cadence in cadences.items() if cadence == "instant")
        windows = sorted(
            (name for name, cadence in cadences.items() if cadence != "instant"),
            key=lambda n: (["hourly", "daily", "weekly", "monthly"].index(cadences[n]), n),
        )

        # 1. first start over the long history --------------------------------------------
        say(f"first start: every collector over {seeding.events:,} events")
        cost, first = meter.measure(db.ENT_ROLE, lambda: run_worker(config, end))
        first_start = Phase.of(cost, sum(first["seconds"].values()))
        say(f"first start: {first_start.seconds:.1f} s, database {first_start.db_ms / 1000:.1f} s")

        # 3. window collectors, each on its own -------------------------------------------
        window_results: dict[str, dict] = {}
        for name in windows:
            cost, result = meter.measure(db.ENT_ROLE, lambda name=name: run_worker(config, end, [name]))
            window_results[name] = {"cadence": cadences[name], "phase": Phase.of(cost, result["seconds"][name])}
            say(
                f"{cadences[name]} collector {name}: {result['seconds'][name]:.2f} s, {cost.rows_read:,} rows read,"
                f" {cost.event_seq_scans} sequential scans of event tables"
            )

        # The monthly collector in the steady state. Above, the hourly visitors' state (a first start at the
        # end of the history) held no day of the closed month: the monthly run read it whole (its fallback).
        # Here the hourly visitors ran through the closed month (one run late on its last day, counting the
        # month whole as its first run does, not measured), then after its last day closed (the late-commit
        # limit after midnight): that run combines the month once; the monthly run, at its schedule, reads
        # no login.
        whole_month = window_results["visitors_previous_month"]["phase"]
        month_state = options.workdir / "exporter-state-month"
        shutil.rmtree(month_state, ignore_errors=True)
        month_config = write_exporter_config(
            options.workdir / "ent-exporter-month.yml", ent_dsn, month_state, free_port()
        )
        run_worker(month_config, closed_end - timedelta(minutes=55), ["visitors"])
        closing_at = closed_end + timedelta(seconds=exporter.source.late_commit_limit_seconds, minutes=5)
        cost, result = meter.measure(db.ENT_ROLE, lambda: run_worker(month_config, closing_at, ["visitors"]))
        closing = Phase.of(cost, result["seconds"]["visitors"])
        minute, hour = (int(field) for field in Cadence.MONTHLY.default_schedule.split()[:2])
        monthly_at = max(closed_end.astimezone(zone).replace(hour=hour, minute=minute).astimezone(UTC), closing_at)
        cost, result = meter.measure(
            db.ENT_ROLE, lambda: run_worker(month_config, monthly_at, ["visitors_previous_month"])
        )
        steady = Phase.of(cost, result["seconds"]["visitors_previous_month"])
        window_results["visitors_previous_month"]["phase"] = steady
        previous_month_runs = {"whole": whole_month, "closing": closing, "steady": steady}
        month_logins = db.rows_between(admin_dsn, closed_start, closed_end, ("login_events",))["login_events"]
        say(
            f"visitors_previous_month, steady state: {steady.seconds:.2f} s, {steady.rows_read:,} rows read"
            f" (read whole: {whole_month.seconds:.2f} s, {whole_month.rows_read:,} rows; the hourly run that"
            f" combines the closed month: {closing.seconds:.2f} s, {closing.rows_read:,} rows)"
        )

        # 2. instant cycle after new events ---------------------------------------------
        new_at = end + timedelta(seconds=30)
        cycle_now = end + timedelta(minutes=1)
        since = instant_floor.watermarks(admin_dsn)
        new_counts = db.add_new_events(admin_dsn, options.new_events, new_at, seeding)
        # The floor once, unmeasured, first: the new rows and their users' accounts are in the cache for the
        # cycle as they are for the floor's measured run after it (the same warmth for both).
        instant_floor.run(ent_dsn, since, cycle_now)
        cost, cycle = meter.measure(db.ENT_ROLE, lambda: run_worker(config, cycle_now, instant))
        instant_ent = Phase.of(cost, sum(cycle["seconds"].values()))
        instant_cpu = sum(cycle["cpu_seconds"].values())
        load_at_instant = list(os.getloadavg())
        say(
            f"instant cycle (ent-exporter): {instant_ent.seconds * 1000:.0f} ms, database {instant_ent.db_ms:.1f} ms,"
            f" {instant_ent.rows_read:,} rows read, {instant_ent.statements} statements, process CPU"
            f" {instant_cpu * 1000:.0f} ms (load {load_at_instant[0]:.1f})"
        )
        # Its floor, the least work for the same new events, through the same role.
        cost, _ = meter.measure(db.ENT_ROLE, lambda: instant_floor.run(ent_dsn, since, cycle_now))
        floor_phase = Phase.of(cost)
        say(
            f"instant floor: database {floor_phase.db_ms:.1f} ms, {floor_phase.rows_read:,} rows read,"
            f" {floor_phase.statements} statements;"
            f" the cycle is {instant_ent.db_ms / max(floor_phase.db_ms, 1e-6):.1f}x it"
        )

        instant_qe, warmup, counters_agree = None, 0.0, False
        if options.compare:
            qe_config = qe.write_config(options.workdir / "query-exporter.yml", qe_dsn)

            def qe_cycle() -> tuple[float, str]:
                port = free_port()
                process = qe.start(qe_executable, qe_config, port)
                try:
                    qe.wait_ready(process, port)
                    return qe.cycle(port)
                finally:
                    qe.stop(process)

            warmup, _ = qe_cycle()  # caches as warm as for ent-exporter, which just read the same tables
            cost, (qe_seconds, qe_body) = meter.measure(db.QE_ROLE, qe_cycle)
            instant_qe = Phase.of(cost, qe_seconds)
            say(
                f"instant cycle (query-exporter): {qe_seconds:.1f} s, database {instant_qe.db_ms:,.0f} ms,"
                f" {instant_qe.rows_read:,} rows read"
            )

            # Same queries, same numbers: the counters of both exporters agree. query-exporter has every
            # breakdown; ent-exporter's default counts the series budget's shape (app accesses per structure
            # summed over profiles), so a copy of its state is run with every breakdown enabled: the app-access
            # counter then counts its whole history again, by profile (what enabling the breakdown does).
            full_state = options.workdir / "exporter-state-full"
            shutil.rmtree(full_state, ignore_errors=True)
            shutil.copytree(state_dir, full_state)
            full_config = write_exporter_config(
                options.workdir / "ent-exporter-full.yml", ent_dsn, full_state, free_port(), full_breakdowns=True
            )
            run_worker(full_config, cycle_now, instant)
            ent_text = subprocess_body(full_config, cycle_now)
            families = (
                "ent_logins_total",
                "ent_app_accesses_total",
                "ent_connector_requests_total",
                "ent_connector_request_duration_seconds_bucket",
            )
            counters_agree = counter_lines(ent_text, families) == counter_lines(qe_body, families)
            say(f"counters of both exporters agree: {counters_agree}")

        # 4. scrapes --------------------------------------------------------------------
        serve_port = yaml.safe_load(config.read_text())["listen"]["port"]
        # New events for the daemon's own instant cycle: its peak RSS includes a cycle that counts
        # something and re-renders the counters, as every minute in production.
        db.add_new_events(admin_dsn, options.new_events, datetime.now(UTC) - timedelta(seconds=1), seeding, seed=2)
        counted = [state_dir / "collectors" / f"app_accesses.{suffix}" for suffix in ("json", "journal")]

        def written() -> float:  # the state file's or its journal's last write
            return max(path.stat().st_mtime for path in counted if path.exists())

        before = written()
        serve = subprocess.Popen(
            [sys.executable, "-m", "ent_exporter.cli", "--log-level", "WARNING", "serve", "--config", str(config)],
            cwd=REPO,
            stderr=subprocess.DEVNULL,
        )
        try:
            scrape.wait_ready(serve_port)
            wait_fresh(serve_port)
            wait_until(lambda: written() > before, timeout=90)  # the daemon's cycle is over
            say(
                f"scraping ent-exporter serve and the floor in turn: {options.scrapers} scrapers x"
                f" {options.scrapes_each} scrapes each, in {SCRAPE_ROUNDS} rounds"
            )
            # The floors: the same server holding one sample, and holding as many gzip bytes as ent-exporter serves.
            sized = len(scrape.body(serve_port, gzip=True))
            floor_ports = {"floor": free_port(), "floor_sized": free_port()}
            floors = [
                subprocess.Popen(
                    [sys.executable, "-m", "bench.floor", "--port", str(port)]
                    + (["--gzip-bytes", str(sized)] if name == "floor_sized" else []),
                    cwd=REPO,
                )
                for name, port in floor_ports.items()
            ]
            try:
                for port in (serve_port, *floor_ports.values()):
                    scrape.wait_ready(port)
                    scrape.measure(port, options.scrapers, 2)  # connections and caches warm
                # The floors in the same minutes as ent-exporter, round after round.
                both = scrape.interleaved(
                    {"ent": serve_port, **floor_ports},
                    options.scrapers,
                    options.scrapes_each,
                    SCRAPE_ROUNDS,
                    gzip=True,
                )
            finally:
                for server_process in floors:
                    server_process.terminate()
                    server_process.wait(timeout=30)
            gzipped, floor, floor_sized = both["ent"], both["floor"], both["floor_sized"]
            say(
                f"scrape floors: p99 {floor.p99_ms:.1f} ms (one sample), {floor_sized.p99_ms:.1f} ms ({sized:,} gzip bytes)"
            )
            plain = scrape.measure(serve_port, options.scrapers, options.scrapes_each, gzip=False)
            series_per_structure = per_structure(serve_port, seeding.counts["structures"])
            prometheus_default = (
                prom.measure(serve_port, options.workdir, free_port(), options.prometheus_seconds)
                if options.prometheus_seconds > 0
                else None
            )
            serve_rss = peak_rss_kb(serve.pid)
        finally:
            serve.terminate()
            serve.wait(timeout=30)
        if prometheus_default:
            say(
                f"Prometheus scraping ent-exporter (default): {prometheus_default.head_series:,} head series,"
                f" {prometheus_default.peak_rss_mb:,.0f} MB"
            )

        prometheus_full = None
        if options.compare and options.prometheus_seconds > 0:
            # Every heavy breakdown on (the series of earlier versions): the state counted whole above.
            full_port = free_port()
            full_serve_config = write_exporter_config(
                options.workdir / "ent-exporter-full-serve.yml", ent_dsn, full_state, full_port, full_breakdowns=True
            )
            full = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ent_exporter.cli",
                    "--log-level",
                    "WARNING",
                    "serve",
                    "--config",
                    str(full_serve_config),
                ],
                cwd=REPO,
                stderr=subprocess.DEVNULL,
            )
            try:
                scrape.wait_ready(full_port)
                prometheus_full = prom.measure(full_port, options.workdir, free_port(), options.prometheus_seconds)
            finally:
                full.terminate()
                full.wait(timeout=30)
            say(
                f"Prometheus scraping ent-exporter (every breakdown): {prometheus_full.head_series:,} head series,"
                f" {prometheus_full.peak_rss_mb:,.0f} MB"
            )
        say(
            f"ent-exporter: p99 {gzipped.p99_ms:.1f} ms gzip, {plain.p99_ms:.1f} ms plain;"
            f" peak RSS {serve_rss / 1024:.0f} MB"
        )

        # 8. the whole schedule in one serving process, on a copy of the state the scrapes were served from.
        schedule_run = None
        if options.schedule:
            say("serve through a compressed day: instant cycles and an hourly, daily, weekly and monthly run")
            schedule_run = schedule.measure(
                config,
                end,
                options.workdir,
                scrapers=options.schedule_scrapers,
                lead_seconds=options.schedule_lead_seconds,
                idle_tail_seconds=options.schedule_idle_tail_seconds,
            )
            schedule_run.label = f"{seeding.counts['structures']:,} establishments"
            say(
                f"whole schedule: peak RSS {schedule_run.peak_rss_mb:.0f} MB, idle scrape p99"
                f" {schedule_run.idle.p99_ms:.1f} ms, worst window run {schedule_run.worst_ratio:.2f}x it"
            )

        per_scrape, baseline_rss = None, 0
        if options.compare:
            baseline_port = free_port()
            baseline = subprocess.Popen(
                [sys.executable, "-m", "bench.per_scrape", "--state-dir", str(state_dir), "--port", str(baseline_port)],
                cwd=REPO,
            )
            try:
                scrape.wait_ready(baseline_port, timeout=600)
                say(
                    f"scraping the per-scrape rendering baseline: {options.scrapers} scrapers x"
                    f" {options.baseline_scrapes_each} scrapes"
                )
                per_scrape = scrape.measure(
                    baseline_port, options.scrapers, options.baseline_scrapes_each, gzip=False, timeout=3600
                )
                baseline_rss = peak_rss_kb(baseline.pid)
            finally:
                baseline.terminate()
                baseline.wait(timeout=30)
            say(f"per-scrape rendering: p99 {per_scrape.p99_ms:,.0f} ms")

        report = Report(
            options={k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
            machine=host,
            versions=versions(admin_dsn, qe_executable),
            seeding=seeding_info,
            first_start=first_start,
            first_start_collectors=first["seconds"],
            first_start_peak_rss_kb=first["peak_rss_kb"],
            first_start_rss_after=first["peak_rss_kb_after"],
            windows=window_results,
            previous_month=previous_month_runs,
            previous_month_logins=month_logins,
            new_events=new_counts,
            instant_ent=instant_ent,
            instant_ent_collectors=cycle["seconds"],
            instant_floor=floor_phase,
            instant_ent_cpu_seconds=instant_cpu,
            load_at_instant=load_at_instant,
            instant_qe=instant_qe,
            qe_warmup_seconds=warmup,
            counters_agree=counters_agree,
            series=sum(cycle["series"].values()),
            series_by_family=cycle["series"],
            body_bytes=cycle["body_bytes"],
            gzip_bytes=cycle["gzip_bytes"],
            scrape_gzip=gzipped,
            scrape_plain=plain,
            scrape_baseline=per_scrape,
            serve_peak_rss_kb=serve_rss,
            baseline_peak_rss_kb=baseline_rss,
            finished=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            load_after=list(os.getloadavg()),
            scrape_floor=floor,
            scrape_floor_sized=floor_sized,
            schedule_run=schedule_run,
            series_per_structure=series_per_structure,
            prometheus_default=prometheus_default,
            prometheus_full=prometheus_full,
        )
    finally:
        server.cleanup()
    if options.output:
        write_output(report, options.output)
    return report


def write_output(report: Report, output: Path) -> None:
    """The main part of ``output`` (BENCHMARKS.md) from ``report``, the other benchmarks' sections kept."""
    from bench import listener, lock_wait, probes, refresh, reports, scaling, sections
    from bench.history_disk import kept_section
    from bench.report import markdown

    # The scaling section is bench/scaling.py's (a --scaling run); the reports', the probes', the refresh samples'
    # and the history disk's sections are bench/reports.py's, bench/probes.py's, bench/refresh.py's and
    # bench/history_disk.py's (other runs), the listener's is written by hand from bench/listener.py's
    # output, the lock wait's is bench/lock_wait.py's: kept as they are.
    kept = (
        sections.kept(output, listener.SECTION)
        + sections.kept(output, lock_wait.SECTION)
        + scaling.kept_section(output)
        + reports.kept_section(output)
        + probes.kept_section(output)
        + refresh.kept_section(output)
        + kept_section(output)
    )
    output.write_text(markdown(report) + kept)
    say(f"wrote {output}")


def run_scaling(options: Options) -> dict[int, Report]:
    """bench.run at each of ``options.scales`` (bench/scaling.py), then the main report from the scale that ran
    the comparisons and the scaling section with its plot."""
    from bench import scaling

    reports: dict[int, Report] = {}
    points: list[scaling.Point] = []
    for structures in options.scales:
        scale = scaling.options_at(options, structures)
        say(f"scale {structures:,}: {scale.size}")
        reports[structures] = run(scale)
        points.append(scaling.Point.of(reports[structures]))
        scaling.save(points, options.workdir / "scaling.json")  # what ran so far, if a later scale fails
    if options.output:
        primary = next(r for n, r in reports.items() if scaling.options_at(options, n).compare)
        primary.options["scaling"] = list(options.scales)
        write_output(primary, options.output)
        scaling.write(points, options.output)
    return reports


def per_structure(port: int, structures: int) -> dict[str, float]:
    """Series of the structure that has the most, per family, from the served exposition (histograms:
    every bucket, _count and _sum, as Prometheus stores them); structure "all" and the "unknown"
    pseudo-structure (users without an account) are not structures."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=600) as response:
        text = response.read().decode()
    counts: dict[str, dict[str, int]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            structure = sample.labels.get("structure", "all")
            if structure not in ("all", "unknown"):
                per_family = counts.setdefault(structure, {})
                per_family[family.name] = per_family.get(family.name, 0) + 1
    if not counts:
        return {}
    largest = max(counts, key=lambda s: sum(counts[s].values()))
    return {name: float(count) for name, count in sorted(counts[largest].items())}


def subprocess_body(config: Path, now: datetime) -> str:
    """The exposition ent-exporter serves from its persisted state (restored, no query run)."""
    code = (
        "import sys; from ent_exporter.app import make_runtime, make_source; from ent_exporter.config import load_config;"
        f" c = load_config({str(config)!r}); r = make_runtime(c, make_source(c), persistent=True); r.restore();"
        " sys.stdout.buffer.write(r.exposition.body())"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, check=True)
    return result.stdout.decode()


def wait_until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for the daemon's instant cycle")
        time.sleep(0.2)
    time.sleep(1)


def wait_fresh(port: int, timeout: float = 120) -> None:
    """Waits until the daemon has no stale collector (its start-up runs are over)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as response:
            health = json.load(response)
        if not any(c["stale"] for c in health["collectors"].values()):
            time.sleep(1)
            return
        time.sleep(0.5)


def parse_options(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events",
        type=int,
        help=f"events in the history (default {REGIONAL['events']:,}; 50000000 for a regional month of 50 million)",
    )
    parser.add_argument("--structures", type=int, help=f"default {REGIONAL['structures']:,}")
    parser.add_argument("--accounts", type=int, help=f"default {REGIONAL['accounts']:,}")
    parser.add_argument("--days", type=int, default=365, help="days of history (default 365)")
    parser.add_argument(
        "--month",
        action="store_true",
        help=f"the design's scale: {MONTH['events']:,} events in {MONTH['days']} days,"
        f" {MONTH['structures']:,} structures, {MONTH['accounts']:,} accounts",
    )
    parser.add_argument(
        "--prometheus-seconds",
        type=float,
        default=180.0,
        help="how long a real Prometheus scrapes the exporter (0: skip)",
    )
    parser.add_argument(
        "--small",
        action="store_true",
        help=f"the test suite's size: {SMALL['structures']} structures, {SMALL['accounts']:,}"
        f" accounts, {SMALL['events']:,} events",
    )
    parser.add_argument("--new-events", type=int, default=10_000, help="events added before the instant cycle")
    parser.add_argument("--scrapers", type=int, default=20)
    parser.add_argument("--scrapes", type=int, default=50, help="scrapes per scraper of ent-exporter")
    parser.add_argument("--baseline-scrapes", type=int, default=1, help="scrapes per scraper of the baseline")
    parser.add_argument(
        "--workdir", type=Path, default=DEFAULT_WORKDIR, help="database and state (default bench/.work)"
    )
    parser.add_argument("--keep", action="store_true", help="reuse the database seeded by an earlier run of this size")
    parser.add_argument("--output", type=Path, help="write the Markdown report there (e.g. BENCHMARKS.md)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="run at several scales (bench/scaling.py): 500 accounts and 50,000 events a month per establishment",
    )
    parser.add_argument(
        "--scales",
        type=lambda text: tuple(int(n) for n in text.split(",")),
        help="establishments of each scale of --scaling (default 100,1000,3000)",
    )
    args = parser.parse_args(argv)
    month = args.month or ((args.scaling or bool(args.scales)) and not args.small)  # --scaling: the month scale's shape
    sizes = SMALL if args.small else MONTH if month else REGIONAL
    options = Options(
        structures=args.structures or sizes["structures"],
        accounts=args.accounts or sizes["accounts"],
        events=args.events if args.events is not None else sizes["events"],
        days=sizes["days"] if month and args.days == 365 else args.days,
        prometheus_seconds=args.prometheus_seconds,
        new_events=args.new_events,
        scrapers=args.scrapers,
        scrapes_each=args.scrapes,
        baseline_scrapes_each=args.baseline_scrapes,
        workdir=args.workdir.resolve(),
        keep=args.keep,
        progress=not args.no_progress,
        output=args.output,
    )
    if args.scaling or args.scales:
        from bench import scaling

        options.scales = args.scales or scaling.SCALES
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    if options.scales:
        for structures, report in run_scaling(options).items():
            print(f"scale {structures:,}: {report.summary_line()}", flush=True)
        return 0
    report = run(options)
    print(report.summary_line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
