"""Scrapes while Python works: how long a scrape waits for the interpreter lock.

    python -m bench.lock_wait [--samples 127000] [--seconds 10] [--scrapers 4]
                              [--intervals 5,1] [--output BENCHMARKS.md]

The whole schedule in one serving process (bench/schedule.py) measures scrapes slower during a window
run than when idle. A scrape is a write of pre-rendered bytes, but the listener's thread needs the
interpreter lock (GIL) to take each step (accept, read the request, write the answer); a thread doing
Python work holds the lock and gives it up only when the switch interval (``sys.setswitchinterval``,
5 ms by default) has passed since another thread asked for it. This benchmark isolates that cause:
ent-exporter's own listener (ent_exporter.web.server.MetricsServer) serves an exposition of
``--samples`` samples in a process of its own, scraped back to back (gzip, keep-alive) by ``--scrapers``
processes for ``--seconds``, first idle and then while a thread of the same process does pure Python
work (dicts, strings and a sort, the kind of work a window run's combining does), at each switch
interval of ``--intervals`` (milliseconds). It prints one JSON line per phase and, with ``--output``,
writes the section "Scrapes while Python works" of that file (bench.run keeps it).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import sections
from bench.schedule import Latencies, Scrapers

SECTION = "## Scrapes while Python works"
APPS = 30  # the exposition's second label: samples = structures x APPS


@dataclass
class Phase:
    interval_ms: float
    busy: bool  # a thread of the server's process did Python work during the scrapes
    latencies: Latencies
    work_rounds: int  # rounds of the Python work done while the scrapes ran (its throughput)


def _serve(samples: int, interval: float, busy: bool, ready, stop, rounds) -> None:
    """The server's process: the listener over ``samples`` samples, and the Python work if ``busy``."""
    sys.setswitchinterval(interval)
    from ent_exporter.engine.collector import Family, Kind
    from ent_exporter.engine.exposition import Exposition
    from ent_exporter.web.server import MetricsServer

    family = Family("bench_openings_total", Kind.COUNTER, "openings", ("structure", "app"))
    exposition = Exposition([family])
    structures = max(1, samples // APPS)
    values = {(f"S{i:05d}", f"app{j:02d}"): float(i * j) for i in range(structures) for j in range(APPS)}
    exposition.publish({"bench": {family.name: values}})
    server = MetricsServer("127.0.0.1", 0, exposition, lambda: {"status": "ok"})
    server.start()
    done = threading.Event()
    counted = [0]

    def work() -> None:
        while not done.is_set():
            table = {number: str(number) * 3 for number in range(50_000)}
            sorted(table.values(), reverse=True)
            counted[0] += 1

    worker = threading.Thread(target=work, name="python-work", daemon=True)
    if busy:
        worker.start()
    ready.put(server.port)
    stop.wait()
    done.set()
    if busy:
        worker.join()
    rounds.put(counted[0])
    server.stop()


def measure(samples: int, interval_ms: float, busy: bool, seconds: float, scrapers: int) -> Phase:
    """One phase: the server's process started, scraped by the whole schedule's scrapers (bench.schedule:
    back to back on keep-alive connections, gzip) for ``seconds``."""
    context = multiprocessing.get_context("spawn")
    ready, rounds = context.Queue(), context.Queue()
    stop = context.Event()
    server = context.Process(target=_serve, args=(samples, interval_ms / 1000, busy, ready, stop, rounds))
    server.start()
    try:
        scraping = Scrapers(ready.get(timeout=300), scrapers)
        time.sleep(seconds)
        spans, failed = scraping.finish()
        if failed:
            raise RuntimeError(f"{failed} scrapes failed")
        stop.set()
        done = rounds.get(timeout=60)
    finally:
        stop.set()
        server.join(timeout=60)
        if server.is_alive():
            server.kill()
    return Phase(interval_ms, busy, Latencies.of([end - start for start, end in spans]), int(done))


def run(samples: int, seconds: float, scrapers: int, intervals: list[float]) -> list[Phase]:
    phases = []
    for interval in intervals:
        for busy in (False, True):
            phase = measure(samples, interval, busy, seconds, scrapers)
            print(json.dumps(asdict(phase)), flush=True)
            phases.append(phase)
    return phases


def markdown(phases: list[Phase], samples: int, seconds: float, scrapers: int, host: dict, load: list[float]) -> str:
    idle = {p.interval_ms: p for p in phases if not p.busy}
    rows = []
    for phase in phases:
        if not phase.busy:
            continue
        quiet = idle[phase.interval_ms]
        rows.append(
            f"| {phase.interval_ms:g} ms{' (default)' if phase.interval_ms == 5 else ''} |"
            f" {quiet.latencies.p50_ms:.1f} ms | {quiet.latencies.p99_ms:.1f} ms | {phase.latencies.p50_ms:.1f} ms |"
            f" {phase.latencies.p99_ms:.1f} ms | {phase.latencies.p99_ms / max(quiet.latencies.p99_ms, 1e-9):.2f}× |"
            f" {phase.work_rounds:,} |"
        )
    intervals = ",".join(f"{p.interval_ms:g}" for p in phases if not p.busy)
    loads = ", ".join(f"{x:.2f}" for x in [*host.get("load_before", []), *load])
    return f"""{SECTION} ({host.get("started", "?")[:10]})

Why scrapes are slower while a window run works in the serving process (the whole schedule above): \
ent-exporter's listener serving {samples:,} samples in a process of its own, scraped back to back by \
{scrapers} processes (gzip, keep-alive) for {seconds:g} s, idle and then while a thread of the same \
process does pure Python work, at each switch interval of the interpreter lock (`sys.setswitchinterval`):

```sh
python -m bench.lock_wait --samples {samples} --seconds {seconds:g} --scrapers {scrapers} --intervals {intervals} --output BENCHMARKS.md
```

| switch interval | idle p50 | idle p99 | working p50 | working p99 | working p99 ÷ idle | rounds of the work |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
{chr(10).join(rows)}

A scrape takes the lock at each step; while another thread works, each step waits until the switch \
interval has passed, so the wait scales with the interval, not with the bytes served. *Rounds of the work*: \
what the working thread did meanwhile (a shorter interval hands the lock over more often). \
{host.get("cpu", "?")}, {host.get("cores", "?")} cores; load average before and after {loads}.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lock_wait", description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=127_000, help="samples served (default: the month scale's)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of scraping per phase")
    parser.add_argument("--scrapers", type=int, default=4, help="scraper processes (the whole schedule's 4)")
    parser.add_argument("--intervals", default="5,1", help="switch intervals to measure, in ms")
    parser.add_argument("--output", type=Path, help="write the section of this file (BENCHMARKS.md)")
    args = parser.parse_args(argv)
    from bench.run import machine

    host = machine()
    intervals = [float(x) for x in args.intervals.split(",") if x.strip()]
    phases = run(args.samples, args.seconds, args.scrapers, intervals)
    if args.output:
        sections.write(
            args.output,
            SECTION,
            markdown(phases, args.samples, args.seconds, args.scrapers, host, list(os.getloadavg())),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
