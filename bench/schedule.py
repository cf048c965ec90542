"""The whole schedule in one serving process: ``ent-exporter serve`` through a compressed day.

    python -m bench.schedule [--workdir bench/.work] [--small | --structures N --accounts N --events N --days N]
                             [--scrapers 4] [--gap-minutes 1] [--output schedule.md]

What a day (and a month) asks of the daemon is driven by its own configuration: ``schedules:`` moves
the hourly, daily, weekly and monthly crons to the coming minutes, one after the other (``--gap-minutes``
apart), as an operator may. So in a few minutes the real ``ent-exporter serve`` process, restored from
the state of a first start, runs an instant cycle every minute, then an hourly run (every hourly
collector at once, as at :05 of each hour), a daily run, a weekly run and a monthly run, each fired by
its scheduler on its cron, never called by the bench. Nothing in the exporter reads another clock: the
runs are as of the machine's time, like production's (the database's events end where the seeding
ended: each window run is a regular run of its per-day state, reading what came since).

Meanwhile ``scrapers`` processes scrape ``/metrics`` back to back (gzip, keep-alive), each scrape's
start and end recorded. A window run is the span from its first collector's start to its last one's
end, as the exporter's own metrics give them (``ent_exporter_collector_last_success_timestamp_seconds``
minus ``ent_exporter_collector_duration_seconds``). The scrapes that overlap a run are its scrapes; the
ones that overlap none are idle (instant cycles included: they are every minute's). It reports the
process's peak RSS (VmHWM) before the first window run and at the end, the idle scrape p99 and each
run's, and their ratio.

The state is the one the configuration's ``state_dir`` holds (copied, left as it is), or, when that is
empty, a first start as of ``end`` (bench.worker, every collector over the whole history).
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from bench.scrape import percentile, wait_ready
from bench.worker import peak_rss_kb
from ent_exporter import indicators

REPO = Path(__file__).resolve().parent.parent
# The window cadences, in the order the compressed day fires them.
WINDOW_CADENCES = ("hourly", "daily", "weekly", "monthly")
TARGETS = {
    "peak_rss_mb": 300.0,  # serve running its whole schedule, at 1,000 establishments
    "scrape_ratio": 2.0,  # a window run's scrape p99 / the idle p99
}
SELF_METRICS = (b"ent_exporter_collector_last_success_timestamp_seconds", b"ent_exporter_collector_duration_seconds")


@dataclass
class Latencies:
    scrapes: int
    p50_ms: float
    p99_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Latencies:
        if not seconds:
            return cls(0, 0.0, 0.0)
        return cls(len(seconds), percentile(seconds, 0.5) * 1000, percentile(seconds, 0.99) * 1000)


@dataclass
class WindowRun:
    """One cadence's run: its collectors, fired together by its cron."""

    cadence: str
    collectors: list[str]
    cron: str
    started: float  # unix time: the first collector's start
    ended: float  # the last collector's end
    seconds_by_collector: dict[str, float]
    scrapes: Latencies
    peak_rss_kb: int  # the process's VmHWM when the run was over

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass
class ScheduleRun:
    scrapers: int
    idle: Latencies
    runs: list[WindowRun]
    start_peak_rss_kb: int  # VmHWM once served and fresh, before the first window run
    peak_rss_kb: int  # VmHWM at the end: the whole schedule's peak
    failed_scrapes: int
    missing: list[str]  # window collectors whose run was not seen
    load: list[float]
    label: str = ""
    series: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def peak_rss_mb(self) -> float:
        return self.peak_rss_kb / 1024

    def ratio(self, run: WindowRun) -> float:
        """A run's scrape p99 over the idle p99."""
        return run.scrapes.p99_ms / self.idle.p99_ms if self.idle.p99_ms else math.nan

    @property
    def worst_ratio(self) -> float:
        return max((self.ratio(run) for run in self.runs), default=math.nan)

    def targets(self) -> list[tuple[str, str, str, bool]]:
        rows = [
            (
                "serve's peak RSS through its whole schedule",
                f"≤ {TARGETS['peak_rss_mb']:.0f} MB",
                f"{self.peak_rss_mb:.0f} MB (before the first window run {self.start_peak_rss_kb / 1024:.0f} MB)",
                self.peak_rss_mb <= TARGETS["peak_rss_mb"],
            )
        ]
        for run in self.runs:
            rows.append(
                (
                    f"scrape p99 during the {run.cadence} run vs idle",
                    f"≤ {TARGETS['scrape_ratio']:.0f}× idle",
                    f"{run.scrapes.p99_ms:.1f} ms vs {self.idle.p99_ms:.1f} ms: {self.ratio(run):.2f}×",
                    self.ratio(run) <= TARGETS["scrape_ratio"],
                )
            )
        return rows


# -- scrapers --------------------------------------------------------------------------------------


def _scraper(port: int, stop, results) -> None:
    """Scrapes back to back on one keep-alive connection until ``stop``: (start, end) unix times of each."""
    spans: list[tuple[float, float]] = []
    failed = 0
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    headers = {"Accept-Encoding": "gzip"}
    while not stop.is_set():
        began = time.time()
        try:
            connection.request("GET", "/metrics", headers=headers)
            response = connection.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            ok = False
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        if ok:
            spans.append((began, time.time()))
        else:
            failed += 1
    connection.close()
    results.put((spans, failed))


class Scrapers:
    def __init__(self, port: int, count: int) -> None:
        context = multiprocessing.get_context("fork")
        self.stop = context.Event()
        self.results = context.Queue()
        self.processes = [
            context.Process(target=_scraper, args=(port, self.stop, self.results), daemon=True) for _ in range(count)
        ]
        for process in self.processes:
            process.start()

    def finish(self) -> tuple[list[tuple[float, float]], int]:
        self.stop.set()
        outcomes = [self.results.get(timeout=600) for _ in self.processes]
        for process in self.processes:
            process.join(timeout=30)
        return [span for spans, _ in outcomes for span in spans], sum(failed for _, failed in outcomes)


# -- the exporter's own view of its runs -------------------------------------------------------------


def self_metrics(port: int) -> dict[str, dict[str, float]]:
    """{collector: {"last_success": unix time, "duration": seconds}} from /metrics."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        connection.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
        response = connection.getresponse()
        body = response.read()
        if response.getheader("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
    finally:
        connection.close()
    found: dict[str, dict[str, float]] = {}
    for line in body.splitlines():
        if not line.startswith(SELF_METRICS):
            continue
        name, _, rest = line.partition(b'{collector="')
        collector, _, value = rest.partition(b'"}')
        key = "last_success" if name == SELF_METRICS[0] else "duration"
        found.setdefault(collector.decode(), {})[key] = float(value)
    return found


def compressed_crons(start: datetime, gap_minutes: int) -> dict[str, tuple[datetime, str]]:
    """{cadence: (local fire time, cron)}: each window cadence fired once, ``gap_minutes`` apart, from the
    first whole minute at or after ``start`` (an aware local time)."""
    first = start.replace(second=0, microsecond=0)
    if first < start:
        first += timedelta(minutes=1)
    fired = {}
    for number, cadence in enumerate(WINDOW_CADENCES):
        at = first + timedelta(minutes=number * gap_minutes)
        fired[cadence] = (at, f"{at.minute} {at.hour} {at.day} {at.month} *")
    return fired


def window_collectors(config: dict) -> dict[str, list[str]]:
    """{cadence: the configuration's collectors of that cadence} (opt-in ones only when enabled)."""
    disabled = set((config.get("collectors") or {}).get("disabled", []))
    enabled = set((config.get("collectors") or {}).get("enabled", []))
    found: dict[str, list[str]] = {cadence: [] for cadence in WINDOW_CADENCES}
    for name, cls in sorted(indicators.discover().items()):
        if name in disabled or (cls.opt_in and name not in enabled):
            continue
        if cls.cadence.value in found:
            found[cls.cadence.value].append(name)
    return found


def _has_state(state_dir: Path) -> bool:
    return any((state_dir / "collectors").glob("*.json")) if (state_dir / "collectors").is_dir() else False


def measure(
    config: Path,
    end: datetime,
    workdir: Path,
    *,
    scrapers: int = 4,
    gap_minutes: int = 1,
    lead_seconds: float = 45.0,
    idle_tail_seconds: float = 10.0,
    timeout_seconds: float = 3600.0,
) -> ScheduleRun:
    """Runs ``ent-exporter serve`` on a copy of ``config``'s state (or a first start as of ``end``) through a
    compressed day, scraped all along (see the module docstring)."""
    from bench.run import free_port, run_worker, wait_fresh

    settings = yaml.safe_load(config.read_text())
    base = config.parent
    state_dir = Path(settings["state_dir"])
    state_dir = state_dir if state_dir.is_absolute() else base / state_dir
    mine = workdir / "schedule-state"
    shutil.rmtree(mine, ignore_errors=True)
    if _has_state(state_dir):
        shutil.copytree(state_dir, mine, ignore=shutil.ignore_patterns("*.lock", ".*.tmp"))
    port = free_port()
    settings.update(state_dir=str(mine), listen={**settings.get("listen", {}), "port": port})
    settings.pop("reports", None)
    path = workdir / "ent-exporter-schedule.yml"
    path.write_text(yaml.safe_dump(settings))
    if not _has_state(mine):
        run_worker(path, end)  # the first start, as of the seeding's end

    zone = ZoneInfo(settings.get("timezone", "Europe/Paris"))
    # The crons are fixed before the process starts (it reads them once): far enough ahead for its start.
    fired = compressed_crons(datetime.now(zone) + timedelta(seconds=lead_seconds), gap_minutes)
    settings["schedules"] = {cadence: {"cron": cron, "jitter_seconds": 0} for cadence, (_, cron) in fired.items()}
    path.write_text(yaml.safe_dump(settings))
    collectors = window_collectors(settings)
    log_path = workdir / "schedule-serve.log"
    with log_path.open("wb") as log_file:
        serve = subprocess.Popen(
            [sys.executable, "-m", "ent_exporter.cli", "--log-level", "INFO", "serve", "--config", str(path)],
            cwd=REPO,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    notes: list[str] = []
    try:
        wait_ready(port, timeout=600)
        wait_fresh(port, timeout=600)
        first_fire = min(at for at, _ in fired.values())
        if datetime.now(zone) >= first_fire:
            notes.append("the process was not fresh before the first window cron: raise lead_seconds")
        start_peak = peak_rss_kb(serve.pid)
        began = time.time()
        crowd = Scrapers(port, scrapers)
        expected = {name: fired[cadence][0].timestamp() for cadence, names in collectors.items() for name in names}
        deadline = time.monotonic() + timeout_seconds
        peaks: dict[str, int] = {}
        seen: dict[str, dict[str, float]] = {}
        try:
            while time.monotonic() < deadline:
                time.sleep(2)
                seen = self_metrics(port)
                for cadence, names in collectors.items():
                    done = all(seen.get(name, {}).get("last_success", 0) >= expected[name] for name in names)
                    if done and cadence not in peaks:
                        peaks[cadence] = peak_rss_kb(serve.pid)
                if len(peaks) == len(collectors):
                    break
            time.sleep(idle_tail_seconds)
        finally:
            spans, failed = crowd.finish()
        peak = peak_rss_kb(serve.pid)
        series = _series(port)
    finally:
        serve.terminate()
        serve.wait(timeout=60)
    runs: list[WindowRun] = []
    missing: list[str] = []
    for cadence, names in collectors.items():
        ran = [name for name in names if seen.get(name, {}).get("last_success", 0) >= expected[name]]
        missing += sorted(set(names) - set(ran))
        if not ran:
            continue
        starts = {name: seen[name]["last_success"] - seen[name].get("duration", 0.0) for name in ran}
        started, ended = min(starts.values()), max(seen[name]["last_success"] for name in ran)
        during = [end_ - start for start, end_ in spans if start < ended and end_ > started]
        runs.append(
            WindowRun(
                cadence,
                ran,
                fired[cadence][1],
                started,
                ended,
                {name: seen[name].get("duration", 0.0) for name in ran},
                Latencies.of(during),
                peaks.get(cadence, 0),
            )
        )
    idle = [
        end_ - start
        for start, end_ in spans
        if start >= began and not any(start < run.ended and end_ > run.started for run in runs)
    ]
    return ScheduleRun(
        scrapers=scrapers,
        idle=Latencies.of(idle),
        runs=runs,
        start_peak_rss_kb=start_peak,
        peak_rss_kb=peak,
        failed_scrapes=failed,
        missing=missing,
        load=list(os.getloadavg()),
        series=series,
        notes=notes,
    )


def _series(port: int) -> int:
    """Samples served (lines that are not comments), from one scrape."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        connection.request("GET", "/metrics")
        body = connection.getresponse().read()
    finally:
        connection.close()
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


# -- the report ------------------------------------------------------------------------------------


def markdown(runs: list[ScheduleRun]) -> str:
    """A section of BENCHMARKS.md: one table per scale."""
    out = [
        "## The whole schedule in one serving process",
        "",
        "`python -m bench.schedule`: the real `ent-exporter serve`, restored from a first start's state, through a"
        " compressed day: its own scheduler fires an instant cycle every minute and the hourly, daily, weekly and"
        " monthly runs on crons moved to the coming minutes (`schedules:`), while scrapers scrape `/metrics` back"
        " to back (gzip). A run's span is from its first collector's start to its last one's end (the exporter's own"
        " metrics); the scrapes overlapping it are its scrapes, those overlapping no window run are idle.",
        "",
    ]
    for run in runs:
        out += [
            f"### {run.label or 'one run'}",
            "",
            f"{run.scrapers} scrapers; {run.series:,} samples served; peak RSS {run.peak_rss_mb:.0f} MB"
            f" ({run.start_peak_rss_kb / 1024:.0f} MB before the first window run); idle scrape p99"
            f" {run.idle.p99_ms:.1f} ms ({run.idle.scrapes:,} scrapes, p50 {run.idle.p50_ms:.1f} ms);"
            f" load after {', '.join(f'{x:.2f}' for x in run.load)}.",
            "",
            "| run | collectors | span | scrapes | p50 | p99 | p99 ÷ idle | peak RSS after |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for window in run.runs:
            slowest = max(window.seconds_by_collector, key=window.seconds_by_collector.__getitem__)
            out.append(
                f"| {window.cadence} (`{window.cron}`) | {', '.join(window.collectors)} (slowest {slowest}"
                f" {window.seconds_by_collector[slowest]:.2f} s) | {window.seconds:.2f} s | {window.scrapes.scrapes:,}"
                f" | {window.scrapes.p50_ms:.1f} ms | {window.scrapes.p99_ms:.1f} ms | {run.ratio(window):.2f}×"
                f" | {window.peak_rss_kb / 1024:.0f} MB |"
            )
        out += ["", "| target | wanted | measured | met |", "|---|---|---|---|"]
        out += [f"| {what} | {wanted} | {got} | {'yes' if met else 'no'} |" for what, wanted, got, met in run.targets()]
        if run.failed_scrapes or run.missing or run.notes:
            out += [
                "",
                f"Failed scrapes: {run.failed_scrapes}; runs not seen: {', '.join(run.missing) or 'none'}."
                + "".join(f" {note}." for note in run.notes),
            ]
        out.append("")
    return "\n".join(out)


# -- the command line --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from bench import database as db
    from bench.run import DEFAULT_WORKDIR, SMALL, free_port, seeding_window, write_exporter_config

    parser = argparse.ArgumentParser(prog="python -m bench.schedule", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="where bench.run seeded (its pgdata)")
    parser.add_argument("--small", action="store_true", help="bench.run --small's sizes")
    parser.add_argument("--structures", type=int, default=1000)
    parser.add_argument("--accounts", type=int, default=500_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--scrapers", type=int, default=4)
    parser.add_argument("--gap-minutes", type=int, default=1, help="minutes between the window runs' crons")
    parser.add_argument("--output", type=Path, help="write the Markdown section there")
    parser.add_argument("--json", type=Path, help="write the figures there as JSON")
    args = parser.parse_args(argv)
    if args.small:
        args.structures, args.accounts, args.events = SMALL["structures"], SMALL["accounts"], SMALL["events"]
        args.days = 365  # bench.run --small's
    workdir = args.workdir.resolve()
    server = db.start_server(workdir)
    try:
        admin_dsn = db.prepare_database(server)
        # Seeded by bench.run (or here): reused when the sizes match (--keep), the history stretched as
        # bench.run stretches it to hold the whole previous month.
        days, events = seeding_window(args.days, args.events, datetime.now(UTC), ZoneInfo("Europe/Paris"))
        seeding = db.seed(
            admin_dsn, structures=args.structures, accounts=args.accounts, events=events, days=days, keep=True
        )
        state = workdir / "schedule-first-start"
        shutil.rmtree(state, ignore_errors=True)
        config = write_exporter_config(
            workdir / "ent-exporter-schedule-base.yml", db.dsn(server, db.ENT_ROLE), state, free_port()
        )
        result = measure(config, seeding.end, workdir, scrapers=args.scrapers, gap_minutes=args.gap_minutes)
        result.label = (
            f"{args.structures:,} structures, {args.accounts:,} accounts, {seeding.events:,} events"
            f" over {args.days} days"
        )
    finally:
        server.cleanup()
    text = markdown([result])
    print(text)
    if args.output:
        args.output.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
