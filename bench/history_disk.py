"""How much disk a year of history (400 days) takes in Prometheus at 1,000 structures: measured, then extrapolated.

1. The series: the exporter's real exposition (``ent-exporter once`` on the demo's data, given as
   ``--exposition``), split into per-structure series and platform-wide ones. A sample of
   ``--structures`` structures is backfilled as they are; the per-structure average gives the
   series count at ``--target-structures``.
2. The samples: each series scraped every 30 s for ``--hours`` (with a few milliseconds of jitter on
   the scrape timestamps, as a real scrape has), its value moving as the exporter moves it:
   counters every minute (Poisson increments at the series' own long-run rate), visitors hourly,
   accounts and activity daily, the hour × weekday grid weekly, self-metrics every minute.
3. Backfill with ``promtool tsdb create-blocks-from openmetrics`` (one block a day, as Prometheus'
   compaction makes larger ones) and measure the blocks: chunk bytes per sample, index bytes per series.
4. Extrapolate: samples of ``--days`` at the target series count, plus the recording rules' own series
   (prometheus/rules/), plus one index per compacted block (blocks of at most 31 days).

Usage (see docs/history.md; the counters' long-run rates assume the demo's 400 days)::

    ent-exporter demo --state-dir /tmp/demo --days 400 --now 2026-11-02T09:00 &
    ent-exporter once --config /tmp/demo/example.yml --now 2026-11-02T09:00 > /tmp/exposition.txt
    python -m bench.history_disk --exposition /tmp/exposition.txt --structures 4 --hours 24 --output BENCHMARKS.md

Prints a Markdown table; ``--output`` writes it as the last section of BENCHMARKS.md. Needs promtool (Debian package prometheus) and numpy.
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from bench import sections

SCRAPE_SECONDS = 30
RULE_EVALUATION_SECONDS = 15
# How often each family's values change (the collectors' cadences); counters and self-metrics: every minute.
CHANGES_EVERY = {
    "ent_unique_visitors": 3600,
    "ent_visits_per_visitor": 3600,
    "ent_accounts": 86400,
    "ent_account_activation_ratio": 86400,
    "ent_inactive_accounts": 86400,
    "ent_user_logins_30d": 86400,
    "ent_structure_info": 10**9,
    "ent_logins_by_hour": 7 * 86400,
}
RATIOS = {"ent_visits_per_visitor", "ent_account_activation_ratio"}
HISTORY_DAYS_IN_EXPOSITION = 400  # the demo's history behind the counters' totals (demo --days)


@dataclass
class Series:
    family: str
    name: str
    labels: dict[str, str]
    value: float
    counter: bool


def read_exposition(text: str) -> list[Series]:
    found = []
    for family in text_string_to_metric_families(text):
        counter = family.type in ("counter", "histogram")
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            found.append(Series(family.name, sample.name, dict(sample.labels), float(sample.value), counter))
    return found


def split(series: list[Series]) -> tuple[dict[str, list[Series]], list[Series]]:
    """Per-structure series (by structure, "all" and "unknown" excluded) and the rest."""
    per_structure: dict[str, list[Series]] = {}
    rest = []
    for one in series:
        structure = one.labels.get("structure")
        if structure and structure not in ("all", "unknown"):
            per_structure.setdefault(structure, []).append(one)
        else:
            rest.append(one)
    return per_structure, rest


def values(one: Series, scrapes: int, rng: np.random.Generator) -> np.ndarray:
    seconds = np.arange(scrapes) * SCRAPE_SECONDS
    if one.counter or one.family.startswith("ent_exporter_"):
        minutes = seconds // 60
        if one.counter:
            rate = max(one.value, 1.0) / (HISTORY_DAYS_IN_EXPOSITION * 1440)
            steps = rng.poisson(rate, int(minutes[-1]) + 1)
            return one.value + np.cumsum(steps)[minutes]
        if "timestamp" in one.name:
            return 1.7e9 + minutes * 60.0
        if "duration" in one.name:
            return np.round(rng.gamma(2.0, 0.02, int(minutes[-1]) + 1), 6)[minutes]
        return np.full(scrapes, one.value)
    period = CHANGES_EVERY.get(one.family, 3600)
    index = seconds // period
    levels = int(index[-1]) + 1
    if one.family in RATIOS:
        walk = one.value * (1 + rng.normal(0, 0.03, levels))
        return np.round(walk, 6)[index]
    walk = np.maximum(0, np.round(one.value * (1 + rng.normal(0, 0.05, levels))))
    return walk[index]


def label_text(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{key}="{value}"' for key, value in sorted(labels.items())) + "}" if labels else ""


def write_openmetrics(
    path: Path, series: list[Series], hours: float, start: float, seed: int = 15, jitter_ms: int = 0
) -> int:
    """All samples, family by family and series by series in time order; returns the sample count."""
    rng = np.random.default_rng(seed)
    scrapes = int(hours * 3600 / SCRAPE_SECONDS)
    # Scrape timestamps every 30 s exactly: Prometheus (>= 2.31) snaps a scrape's timestamp to the
    # ideal interval when it is within --scrape.timestamp-tolerance (2 ms), so jitter mostly vanishes.
    timestamps = start + np.arange(scrapes) * SCRAPE_SECONDS + jitter_ms * rng.integers(0, 2, scrapes) / 1000
    stamps = [f"{t:.3f}" for t in timestamps]
    by_family: dict[str, list[Series]] = {}
    for one in series:
        by_family.setdefault(one.family, []).append(one)
    count = 0
    with path.open("w") as out:
        for family, members in by_family.items():
            out.write(f"# TYPE {family} unknown\n")
            for one in members:
                name = one.name if one.name != one.family else family
                prefix = f"{name}{label_text(one.labels)} "
                numbers = values(one, scrapes, rng)
                out.writelines(f"{prefix}{value:g} {stamp}\n" for value, stamp in zip(numbers.tolist(), stamps))
                count += scrapes
        out.write("# EOF\n")
    return count


def write_rule_series(path: Path, count: int, hours: float, start: float, seed: int = 16) -> int:
    """Series like the 5-minute recording rules' (sum by structure of rate(ent_logins_total[5m])),
    evaluated every 15 s over counters that move every minute: a new float at nearly every evaluation."""
    rng = np.random.default_rng(seed)
    evaluations = int(hours * 3600 / RULE_EVALUATION_SECONDS)
    timestamps = [f"{start + n * RULE_EVALUATION_SECONDS:.3f}" for n in range(evaluations)]
    minutes = np.arange(evaluations) * RULE_EVALUATION_SECONDS // 60
    with path.open("w") as out:
        out.write("# TYPE structure_profile:ent_logins:rate5m unknown\n")
        for number in range(count):
            per_minute = rng.poisson(rng.gamma(1.0, 3.0), int(minutes[-1]) + 6)
            window = np.convolve(per_minute, np.ones(5), "full")[: len(per_minute)]  # logins of the last 5 min
            rates = window[minutes + 5] / 300.0
            prefix = f'structure_profile:ent_logins:rate5m{{structure="S{number}"}} '
            out.writelines(f"{prefix}{value!r} {stamp}\n" for value, stamp in zip(rates.tolist(), timestamps))
        out.write("# EOF\n")
    return count * evaluations


def backfill(promtool: str, source: Path, blocks: Path) -> tuple[int, int, int]:
    shutil.rmtree(blocks, ignore_errors=True)
    result = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=24h", str(source), str(blocks)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"promtool failed: {result.stdout[-2000:]} {result.stderr[-2000:]}")
    return measure(blocks)


def rule_series(per_structure: float, structures: int) -> dict[str, tuple[int, float]]:
    """Recording rules' series at the target size: {rule file: (series, samples per day per series)}."""
    profiles = 6
    apps = 15
    return {
        # sum by (structure[, profile]) of logins every 15 s, plus connectors (a handful).
        "ent-exporter.rules.yml": ((structures + 2) * (1 + profiles) + 40, 86400 / RULE_EVALUATION_SECONDS),
        # daily figures recorded hourly: logins by structure (+profile), app openings, activations.
        "ent-exporter.history.yml": ((structures + 2) * (1 + 2 * profiles + apps), 24),
    }


def measure(blocks: Path) -> tuple[int, int, int]:
    """(chunk bytes, index bytes, block count) of the backfilled blocks."""
    chunks = index = count = 0
    for block in blocks.iterdir():
        if not (block / "meta.json").exists():
            continue
        count += 1
        chunks += sum(p.stat().st_size for p in (block / "chunks").iterdir())
        index += (block / "index").stat().st_size
    return chunks, index, count


SECTION = "## A year of history"


def kept_section(path: Path) -> str:
    """This benchmark's section of an existing BENCHMARKS.md (bench.run rewrites the rest of the file)."""
    return sections.kept(path, SECTION)


def write_section(path: Path, body: str) -> None:
    """Replaces (or adds) this benchmark's section of BENCHMARKS.md."""
    sections.write(path, SECTION, body)


def promtool_version(promtool: str) -> str:
    result = subprocess.run([promtool, "--version"], capture_output=True, text=True)
    match = re.search(r"version (\S+)", result.stdout + result.stderr)
    return match.group(1) if match else "(unknown version)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exposition", type=Path, required=True, help="output of `ent-exporter once` on the demo")
    parser.add_argument("--structures", type=int, default=4, help="structures backfilled (default 4)")
    parser.add_argument("--hours", type=float, default=24, help="span backfilled (default 24)")
    parser.add_argument("--target-structures", type=int, default=1000)
    parser.add_argument("--days", type=int, default=400, help="retention to extrapolate to (default 400)")
    parser.add_argument(
        "--jitter-ms",
        type=int,
        default=0,
        help="add this many ms to every other scrape's timestamp (default 0: aligned scrapes)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help='write the section "A year of history" of this file (BENCHMARKS.md); the table is printed either way',
    )
    parser.add_argument("--keep", type=Path, help="keep the OpenMetrics file and the blocks here")
    args = parser.parse_args(argv)
    promtool = shutil.which("promtool")
    if promtool is None:
        print("promtool not found (Debian package prometheus)", file=sys.stderr)
        return 2
    series = read_exposition(args.exposition.read_text())
    per_structure, rest = split(series)
    if len(per_structure) < args.structures:
        print(f"the exposition has {len(per_structure)} structures, fewer than --structures", file=sys.stderr)
        return 2
    average = sum(len(s) for s in per_structure.values()) / len(per_structure)
    chosen = sorted(per_structure)[: args.structures]
    sample = [one for structure in chosen for one in per_structure[structure]] + rest
    work = args.keep or Path(tempfile.mkdtemp(prefix="history-disk-"))
    work.mkdir(parents=True, exist_ok=True)
    source, blocks = work / "series.om", work / "blocks"
    start = math.floor(time.time() / 86400 - 30) * 86400.0  # inside the default "recent" window, day-aligned
    began = time.perf_counter()
    samples = write_openmetrics(source, sample, args.hours, start, jitter_ms=args.jitter_ms)
    written = time.perf_counter() - began
    chunks, index, block_count = backfill(promtool, source, blocks)
    bytes_per_sample = chunks / samples
    rule_count = 7 * (len(chosen) + 1)
    rule_measured = write_rule_series(work / "rules.om", rule_count, args.hours, start)
    rule_chunks, _index, _blocks = backfill(promtool, work / "rules.om", work / "rule-blocks")
    bytes_per_rule_sample = rule_chunks / rule_measured
    index_per_series_block = index / (len(sample) * block_count)

    target_series = round(len(rest) + average * args.target_structures)
    raw_samples = target_series * args.days * 86400 / SCRAPE_SECONDS
    rules = rule_series(average, args.target_structures)
    rule_samples = sum(n * per_day * args.days for n, per_day in rules.values())
    # The hourly history rules' values are floats that change at every evaluation, like the 5-minute ones.
    compacted_blocks = math.ceil(args.days / 31) + 3  # blocks of at most 31 days (10 % of the retention) + recent ones
    index_bytes = index_per_series_block * (target_series + sum(n for n, _ in rules.values())) * compacted_blocks
    total = raw_samples * bytes_per_sample + rule_samples * bytes_per_rule_sample + index_bytes
    lines = ["| | |", "| --- | --- |"]
    lines.append(
        f"| measured on | {len(chosen)} structures + platform-wide series = {len(sample):,} series, "
        f"{args.hours:g} h at {SCRAPE_SECONDS} s ({samples:,} samples; OpenMetrics written in {written:.0f} s) |"
    )
    lines.append(f"| chunk bytes per sample | {bytes_per_sample:.3f} |")
    lines.append(
        f"| chunk bytes per recorded sample (5-minute rates every {RULE_EVALUATION_SECONDS} s, "
        f"{rule_count} series) | {bytes_per_rule_sample:.3f} |"
    )
    lines.append(f"| index bytes per series per block | {index_per_series_block:.0f} |")
    lines.append(f"| series per structure (demo exposition, {len(per_structure)} structures) | {average:.0f} |")
    lines.append(
        f"| series at {args.target_structures:,} structures | {target_series:,} exported + "
        f"{sum(n for n, _ in rules.values()):,} recorded by rules |"
    )
    lines.append(f"| samples over {args.days} days | {raw_samples:.3g} scraped + {rule_samples:.3g} recorded |")
    lines.append(
        f"| disk over {args.days} days | {total / 1e9:.0f} GB: scraped {raw_samples * bytes_per_sample / 1e9:.0f} GB, "
        f"recorded {rule_samples * bytes_per_rule_sample / 1e9:.0f} GB, indexes {index_bytes / 1e9:.1f} GB "
        f"(plus the WAL: a few hours of samples) |"
    )
    lines.append(
        f"| per structure and year (365 days) | {total / args.target_structures / args.days * 365 / 1e6:.0f} MB |"
    )
    table = "\n".join(lines)
    print(table)
    if args.output:
        write_section(
            args.output,
            f"""{SECTION}

Prometheus' disk for {args.days} days of the exporter's series at {args.target_structures:,} structures, measured by
backfilling the exporter's real series (`ent-exporter once` on the demo) with `promtool tsdb
create-blocks-from openmetrics` and extrapolating (see the docstring of `bench/history_disk.py`):

```sh
ent-exporter demo --state-dir /tmp/demo --days 400 --now 2026-11-02T09:00 &   # 400 days behind the counters
ent-exporter once --config /tmp/demo/example.yml --now 2026-11-02T09:00 > /tmp/exposition.txt
python -m bench.history_disk --exposition /tmp/exposition.txt --structures {args.structures} --hours {args.hours:g} --output BENCHMARKS.md
```

{table}

Prometheus {promtool_version(promtool)}; scrape every {SCRAPE_SECONDS} s, rules every {RULE_EVALUATION_SECONDS} s. The
dominant term is the scraped samples: halve it by scraping the exporter every 60 s (its values change
at most every minute). Blocks are compacted up to 31 days (10 % of the retention), so the indexes are
counted once per such block.
""",
        )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
