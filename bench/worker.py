"""Runs ent-exporter's collectors in a process of their own and reports what they took.

``python -m bench.worker --config FILE --now ISO8601 [--all | NAME ...]`` builds the runtime
exactly as the daemon does (ent_exporter.app.make_runtime over the persistent state directory,
restored first), runs the named collectors one after the other as of ``--now``, closes its
connections and prints one JSON line: wall seconds per collector, whether it succeeded, the
series exported per family, the process's peak RSS (VmHWM) and what stays resident (VmRSS) after
each run. A process per measurement keeps the peak RSS the exporter's own and makes PostgreSQL
publish the backends' statistics.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from datetime import datetime
from pathlib import Path

from ent_exporter.app import make_runtime, make_source
from ent_exporter.config import load_config


def _status_kb(pid: int | str, field: str) -> int:
    """A memory figure of /proc/PID/status, in kB (0 when it cannot be read)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_kb(pid: int | str = "self") -> int:
    """VmHWM of a process, in kB (0 when it cannot be read)."""
    return _status_kb(pid, "VmHWM")


def rss_kb(pid: int | str = "self") -> int:
    """VmRSS of a process, in kB (0 when it cannot be read): what it holds now, not its peak."""
    return _status_kb(pid, "VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--now", required=True)
    parser.add_argument("--all", action="store_true", help="run every collector (name order), as a first start does")
    parser.add_argument("names", nargs="*")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = load_config(args.config)
    now = datetime.fromisoformat(args.now)
    source = make_source(config)
    runtime = make_runtime(config, source, persistent=True, origin=str(args.config))
    runtime.restore()
    names = sorted(runtime.collectors) if args.all else args.names
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}  # the process's CPU time (user + system) in each run: its own work, not the waits
    succeeded: dict[str, bool] = {}
    peaks: dict[str, int] = {"restore": peak_rss_kb()}
    resident: dict[str, int] = {"restore": rss_kb()}
    try:
        source.wait_ready()
        for name in names:
            began, began_cpu = time.perf_counter(), time.process_time()
            succeeded[name] = runtime.run(name, now)
            seconds[name] = time.perf_counter() - began
            cpu[name] = time.process_time() - began_cpu
            peaks[name] = peak_rss_kb()
            resident[name] = rss_kb()
    finally:
        source.close()
    peak = peak_rss_kb()  # before anything below allocates for the report
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu,
                "succeeded": succeeded,
                "series": runtime.exposition.series_counts(),
                # Lengths of the chunks the server writes: joining them would add a copy of the body to the peak.
                "body_bytes": runtime.exposition.chunks()[1],
                "gzip_bytes": runtime.exposition.chunks(gzipped=True)[1],
                "peak_rss_kb": peak,
                "peak_rss_kb_after": peaks,  # the peak so far, after the restore and after each collector
                "rss_kb_after": resident,  # resident after the restore and after each collector: what the next starts from
                "cadences": {name: collector.cadence.value for name, collector in runtime.collectors.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
