"""How many samples one refresh of the regional dashboard reads at a year, at 1,000 structures.

1. The series the regional dashboard reads, in the exporter's shape: per structure its logins counter per
   profile (``ent_logins_total``), its accounts, activation ratio, inactive accounts and month-to-date
   visitors (``profile="all"``) and ``ent_structure_info``; over the platform, the application openings
   per application and profile (``structure="all"``); and Prometheus' own
   ``prometheus_tsdb_lowest_timestamp_seconds``.
2. The samples the queries can reach: every series scraped every 30 s during the 10 minutes before each instant
   a query reads (now, and a year before: a count in the period is read at its two ends), and the
   openings counters once an hour over the catalogue's 400 days (the catalogue looks once a day). A query
   reading a raw series over a range would find the year mostly empty here and be undercounted: the
   benchmark refuses one (``raw_ranges``), so the figure is what a full history gives.
3. Backfill with ``promtool tsdb create-blocks-from openmetrics``, serve it with a real Prometheus and
   evaluate every query of every panel of the regional dashboard as Grafana sends it over "the last
   year" (instant queries at now; range queries at Grafana's step), with ``stats=all``: the sum of
   ``totalQueryableSamples`` is the samples one refresh reads. Target: at most 5 million.

Usage (see docs/dashboards.md)::

    python -m bench.refresh --structures 1000 --output BENCHMARKS.md

Prints a Markdown section; ``--output`` writes it into BENCHMARKS.md (before "A year of history").
Needs promtool and prometheus (Debian package prometheus). Files go to a temporary directory, removed after.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench import sections
from ent_exporter.engine import clock as clocks

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "grafana" / "dashboards" / "en" / "regional.json"
NOW = int(datetime(2026, 11, 18, 10, 0, tzinfo=UTC).timestamp())  # pinned: a Wednesday morning
YEAR = 365 * 86400  # Grafana's "Last 1 year"
SCRAPE = 30
CATALOGUE_DAYS = 400
TARGET = 5_000_000
PROFILES = ("Teacher", "Student", "Relative", "Personnel", "Guest", "unknown")
JOB = 'job="ent-exporter",instance="exporter:9877"'
SECTION = "## Samples per refresh at a year"
# Families the exporter publishes (the raw series): a query over a range of them would be undercounted here.
RAW = re.compile(r"\b(ent_[a-z0-9_]+)\{[^}]*\}\[")


@dataclass
class Result:
    structures: int
    apps: int
    series: int
    samples_backfilled: int
    per_panel: dict[str, int] = field(default_factory=dict)
    measured_at: str = ""  # the date of the run (the only wall-clock reading: a label, not a figure)

    @property
    def total(self) -> int:
        return sum(self.per_panel.values())


def panels() -> list[dict]:
    def walk(items: list[dict]):
        for panel in items:
            yield panel
            yield from walk(panel.get("panels", []))

    return [p for p in walk(json.loads(DASHBOARD.read_text())["panels"]) if p.get("targets")]


def raw_ranges(expr: str) -> list[str]:
    """Raw exporter series read over a range (other than the catalogue's subquery look)."""
    return RAW.findall(expr)


def grafana(expr: str, step: int) -> str:
    values = {
        "platform": ".*",
        "instance": ".*",
        "kind": ".*",
        "datasource": "prometheus",
        "__range": f"{YEAR}s",
        "__range_s": str(YEAR),
        "__interval": f"{step}s",
        "__rate_interval": f"{max(step + SCRAPE, 4 * SCRAPE)}s",
    }
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", lambda m: values[m.group(1) or m.group(2)], expr)


def openmetrics(path: Path, structures: int, apps: int) -> tuple[int, int]:
    """Writes the history; returns (series, samples)."""
    dense = [t for end in (NOW - YEAR, NOW) for t in range(end - 600, end + 1, SCRAPE)]  # lookback: 5 minutes
    hourly = sorted(set(range(NOW - CATALOGUE_DAYS * 86400, NOW + 1, 3600)) | set(dense))
    series = samples = 0
    with path.open("w") as out:

        def family(name: str, rows: list[tuple[str, list[int], float, float]]) -> None:
            """rows: (labels, timestamps, value at the first, growth per second)."""
            nonlocal series, samples
            out.write(f"# TYPE {name} unknown\n")
            for labels, times, value, growth in rows:
                series += 1
                samples += len(times)
                first = times[0]
                out.writelines(f"{name}{{{JOB},{labels}}} {value + growth * (t - first):.6g} {t}\n" for t in times)

        codes = [f"S{n:04d}" for n in range(structures)]
        family(
            "ent_logins_total",
            [(f'structure="{c}",profile="{p}"', dense, 1000.0, 0.002) for c in codes for p in PROFILES],
        )
        family(
            "ent_accounts",
            [
                (f'structure="{c}",profile="all",state="{s}"', dense, 400.0, 0.0)
                for c in codes
                for s in ("activated", "pending")
            ],
        )
        family("ent_account_activation_ratio", [(f'structure="{c}",profile="all"', dense, 0.8, 0.0) for c in codes])
        family(
            "ent_inactive_accounts",
            [(f'structure="{c}",profile="all",days="{d}"', dense, 40.0, 0.0) for c in codes for d in ("30", "90")],
        )
        family(
            "ent_unique_visitors",
            [(f'structure="{c}",profile="all",period="month"', dense, 300.0, 0.0) for c in codes],
        )
        family(
            "ent_structure_info",
            [
                (f'structure="{c}",name="Établissement {c}",kind="{("college", "lycee")[n % 2]}"', dense, 1.0, 0.0)
                for n, c in enumerate(codes)
            ],
        )
        family(
            "ent_app_accesses_total",
            [
                (f'structure="all",app="app{a:02d}",profile="{p}"', hourly, 5000.0, 0.01)
                for a in range(apps)
                for p in PROFILES
            ],
        )
        out.write("# TYPE prometheus_tsdb_lowest_timestamp_seconds unknown\n")
        for t in dense:
            out.write(f'prometheus_tsdb_lowest_timestamp_seconds{{job="prometheus"}} {hourly[0]} {t}\n')
        series += 1
        samples += len(dense)
        out.write("# EOF\n")
    return series, samples


def get(port: int, path: str, **params) -> dict:
    url = f"http://127.0.0.1:{port}{path}?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=600) as response:
        return json.loads(response.read())


def samples_read(port: int, panel: dict) -> int:
    """The samples one refresh of the panel reads: each target as Grafana sends it over the last year."""
    total = 0
    step = max(YEAR // (panel.get("maxDataPoints") or 1000), 60)
    for target in panel["targets"]:
        expr = grafana(target["expr"], step)
        if target.get("instant"):
            answer = get(port, "/api/v1/query", query=expr, time=NOW, stats="all")
        else:
            answer = get(port, "/api/v1/query_range", query=expr, start=NOW - YEAR, end=NOW, step=step, stats="all")
        total += int(answer["data"]["stats"]["samples"]["totalQueryableSamples"])
    return total


def measure(structures: int, apps: int, work: Path) -> Result:
    promtool, prometheus = shutil.which("promtool"), shutil.which("prometheus")
    if not promtool or not prometheus:
        raise SystemExit("bench.refresh: promtool and prometheus are needed (Debian package prometheus)")
    refused = [f"{p['title']}: {name}" for p in panels() for t in p["targets"] for name in raw_ranges(t["expr"])]
    if refused:
        raise SystemExit("bench.refresh: raw series read over a range (undercounted here): " + "; ".join(refused))
    history = work / "history.om"
    series, samples = openmetrics(history, structures, apps)
    created = subprocess.run(
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=8760h",
            str(history),
            str(work / "tsdb"),
        ],
        capture_output=True,
        text=True,
    )
    if created.returncode:
        raise SystemExit(f"bench.refresh: promtool failed: {created.stderr.strip()}")
    history.unlink()
    (work / "prometheus.yml").write_text("global: {}\n")
    with socket_port() as port:
        process = subprocess.Popen(
            [
                prometheus,
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'tsdb'}",
                "--storage.tsdb.retention.time=100y",
                f"--web.listen-address=127.0.0.1:{port}",
                "--query.max-samples=500000000",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if get(port, "/api/v1/query", query="ent_structure_info", time=NOW)["data"]["result"]:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("bench.refresh: Prometheus did not serve the blocks")
            time.sleep(0.5)
        result = Result(structures, apps, series, samples, measured_at=today())
        for panel in panels():
            result.per_panel[panel["title"]] = samples_read(port, panel)
        return result
    finally:
        process.terminate()
        process.wait(timeout=60)


def today() -> str:
    return clocks.SYSTEM.now().strftime("%Y-%m-%d")


class socket_port:
    """A free local port (the socket is closed before Prometheus binds it)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def __exit__(self, *exc) -> None:
        return None


def markdown(r: Result, command: str) -> str:
    rows = "\n".join(f"| {title} | {n:,} |" for title, n in sorted(r.per_panel.items(), key=lambda kv: -kv[1]))
    verdict = "yes" if r.total <= TARGET else "**no**"
    version = subprocess.run(["prometheus", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return f"""{SECTION}

Measured {r.measured_at} with {version.strip() or "prometheus"}.
One refresh of the regional dashboard over "the last year" at {r.structures:,} structures and {r.apps} applications
reads **{r.total:,} samples** (target ≤ {TARGET:,}: {verdict}), Prometheus' own count (`stats=all`,
`totalQueryableSamples`) over every query of every panel as Grafana sends it. The counts in the period are
read at the period's two ends (two samples per series whatever the range) and the catalogue of applications
looks once a day over its 400 days; with `increase(...[$__range])` the logins alone would be every 30-second
scrape of the year, {r.structures * len(PROFILES) * YEAR // SCRAPE:,} samples. The history backfilled
({r.series:,} series, {r.samples_backfilled:,} samples: scrapes in the 10 minutes before each instant read,
hourly openings over 400 days) holds every sample these queries reach; the benchmark refuses a query
reading a raw series over a range, which a sparse history would undercount. The dashboards refresh at
most every 5 minutes.

```sh
{command}
```

| panel | samples read |
| --- | --- |
{rows}
"""


def kept_section(path: Path) -> str:
    """This benchmark's section of an existing BENCHMARKS.md (bench.run rewrites the rest of the file)."""
    return sections.kept(path, SECTION)


def write_section(path: Path, body: str) -> None:
    """Replaces (or adds) this benchmark's section of BENCHMARKS.md."""
    sections.write(path, SECTION, body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.refresh", description=__doc__.split("\n\n")[0])
    parser.add_argument("--structures", type=int, default=1000)
    parser.add_argument("--apps", type=int, default=30)
    parser.add_argument("--output", type=Path, help="BENCHMARKS.md to write the section into")
    options = parser.parse_args(argv)
    command = f"python -m bench.refresh --structures {options.structures} --apps {options.apps}"
    if options.output:
        command += " --output BENCHMARKS.md"
    with tempfile.TemporaryDirectory(prefix="ent-refresh-") as work:
        result = measure(options.structures, options.apps, Path(work))
    body = markdown(result, command)
    print(body)
    if options.output:
        write_section(options.output, body)
    return 0 if result.total <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
