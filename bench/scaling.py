"""How cost grows: bench.run at several scales of one platform shape, a table, a log-log plot, a sentence each.

    python -m bench.run --scaling [--scales 100,1000,3000] [--output BENCHMARKS.md]

Each scale is a platform of N establishments with the month scale's proportions (``--month``, the default
with ``--scaling``): 500 accounts and 50,000 events a month per establishment (100 → 5 million events,
1,000 → 50 million, 3,000 → 150 million), over 30 days plus whatever makes the previous calendar month
whole (bench.run.seeding_window). Each runs in a database and state of its own (``--workdir``/scale-N).
The comparisons with query-exporter and the per-scrape rendering (Options.compare) run at the month
scale only, which also gives the rest of the report; the other scales measure ent-exporter alone.

The table has, per scale, the figures of issue 27 (the instant cycle for the same new events, each window
collector's regular run, the first start, peak RSS serving and on a first start, series per establishment,
scrape p99 against the one-sample floor, Prometheus' memory), and for each figure its exponent: the slope
of log(cost) against log(events) by least squares, so 1 is "proportional", 0 "flat". The three scales keep
the events per establishment constant, so events and establishments grow together and the exponent is the
same against either; which of the two a figure follows is said by its sentence (``WHY``), from what the
code reads.

The figures of every scale are kept in ``--workdir``/scaling.json, so the section can be written again
(``python -m bench.scaling --from WORKDIR/scaling.json --output BENCHMARKS.md``) without running anything.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from bench import sections

SECTION = "## How cost grows"
PLOT = Path("docs/benchmark-scaling.png")  # relative to BENCHMARKS.md's directory, which shows it
SCALES = (100, 1_000, 3_000)  # establishments; the month scale (bench.run --month) is 1,000


@dataclass
class Point:
    """The figures of one scale (from a bench.run Report)."""

    structures: int
    accounts: int
    events: int
    days: int
    new_events: int
    cycle_db_ms: float
    cycle_wall_ms: float
    cycle_rows_read: int
    floor_db_ms: float
    first_start_s: float
    first_start_db_s: float
    first_start_rss_mb: float
    serve_rss_mb: float
    series: int
    series_per_structure: float
    scrape_p99_ms: float
    floor_p99_ms: float
    floor_sized_p99_ms: float
    prometheus_rss_mb: float
    prometheus_series: int
    windows: dict[str, float] = field(default_factory=dict)  # collector -> seconds of its regular run
    window_cadences: dict[str, str] = field(default_factory=dict)
    schedule: dict[str, float] = field(default_factory=dict)  # the whole schedule in serve (bench/schedule.py)

    @classmethod
    def of(cls, report) -> Point:  # report: bench.run.Report
        s = report.seeding
        return cls(
            structures=s["counts"]["structures"],
            accounts=s["counts"]["accounts"],
            events=s["events"],
            days=s.get("days", report.options["days"]),
            new_events=sum(report.new_events.values()),
            cycle_db_ms=report.instant_ent.db_ms,
            cycle_wall_ms=report.instant_ent.seconds * 1000,
            cycle_rows_read=report.instant_ent.rows_read,
            floor_db_ms=report.instant_floor.db_ms if report.instant_floor else 0.0,
            first_start_s=report.first_start.seconds,
            first_start_db_s=report.first_start.db_ms / 1000,
            first_start_rss_mb=report.first_start_rss_mb,
            serve_rss_mb=report.serve_rss_mb,
            series=report.series,
            series_per_structure=report.per_structure,
            scrape_p99_ms=report.scrape_gzip.p99_ms,
            floor_p99_ms=report.scrape_floor.p99_ms if report.scrape_floor else 0.0,
            floor_sized_p99_ms=report.scrape_floor_sized.p99_ms if report.scrape_floor_sized else 0.0,
            prometheus_rss_mb=report.prometheus_default.peak_rss_mb if report.prometheus_default else 0.0,
            prometheus_series=report.prometheus_default.head_series if report.prometheus_default else 0,
            windows={name: w["phase"].seconds for name, w in report.windows.items()},
            window_cadences={name: w["cadence"] for name, w in report.windows.items()},
            schedule=_schedule(report.schedule_run),
        )


def _schedule(run) -> dict[str, float]:  # run: bench.schedule.ScheduleRun | None
    if run is None:
        return {}
    return {
        "peak RSS": run.peak_rss_mb,
        "idle scrape p99": run.idle.p99_ms,
        **{f"scrape p99 during the {w.cadence} run ÷ idle": run.ratio(w) for w in run.runs},
    }


def options_at(base, structures: int):
    """bench.run's Options for one scale of a scaling run: ``base`` (the command line's, the month scale by
    default) with its accounts and events per establishment, at ``structures`` establishments. The
    comparisons run at the base's own scale, or at the largest if the base's is not among the scales."""
    primary = base.structures if base.structures in base.scales else max(base.scales)
    return replace(
        base,
        structures=structures,
        accounts=base.accounts * structures // base.structures,
        events=base.events * structures // base.structures,
        workdir=base.workdir / f"scale-{structures}",
        compare=structures == primary,
        schedule=base.schedule and (base.schedule_at_every_scale or structures == primary),
        scales=(),
        output=None,
    )


def exponent(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) against log(x): cost ∝ x^slope. NaN with fewer than two usable points."""
    points = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
    if len(points) < 2:
        return float("nan")
    mx = sum(p[0] for p in points) / len(points)
    my = sum(p[1] for p in points) / len(points)
    sxx = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / sxx if sxx else float("nan")


def _growth(b: float) -> str:
    if math.isnan(b):
        return "not measured"
    if b < 0.2:
        return "about flat"
    if b < 0.8:
        return "grows slower than the platform"
    if b <= 1.2:
        return "grows in proportion"
    return "grows faster than the platform"


# What each figure should grow with, from what the code does (the table says whether it did).
WHY = {
    "instant cycle, database time": "it reads the same new events at every scale through the `event_id`"
    " index; only the index depth grows, with the logarithm of the history",
    "instant cycle, wall time": "its database time plus the re-rendering of the counter families that moved,"
    " which grows with those families' series (the establishments)",
    "instant cycle ÷ its floor": "flat, as both do the same kind of work for the same new events",
    "first start, wall time": "every collector reads the whole history once: it follows the events",
    "first start, peak RSS": "it holds the per-day aggregates and the series while the history is read, so it"
    " follows the distinct users and the establishments more than the events",
    "serving, peak RSS": "the restored state and the pre-rendered exposition: the series, that is the establishments",
    "series per establishment": "flat, as the catalogue's families per establishment do not depend on the"
    " platform's size",
    "exposition series": "proportional to the establishments (series per establishment × establishments)",
    "scrape p99 (gzip)": "it writes pre-rendered, pre-compressed bytes, so it follows the series served",
    "scrape p99 ÷ the one-sample floor": "it grows with the bytes served, as the floor's cost is fixed",
    "scrape p99 ÷ the same-size floor": "flat: with the body's size set aside, what is left is the exporter's"
    " own work while it serves",
    "Prometheus, peak RSS": "it follows its head series (the exporter's series) and their samples",
}


def figures(point: Point) -> dict[str, float]:
    """Figure name -> value for one scale (units in the names of the table)."""
    out = {
        "instant cycle, database time": point.cycle_db_ms,
        "instant cycle, wall time": point.cycle_wall_ms,
        "instant cycle ÷ its floor": point.cycle_db_ms / point.floor_db_ms if point.floor_db_ms else 0.0,
        "first start, wall time": point.first_start_s,
        "first start, peak RSS": point.first_start_rss_mb,
        "serving, peak RSS": point.serve_rss_mb,
        "series per establishment": point.series_per_structure,
        "exposition series": float(point.series),
        "scrape p99 (gzip)": point.scrape_p99_ms,
        "scrape p99 ÷ the one-sample floor": point.scrape_p99_ms / point.floor_p99_ms if point.floor_p99_ms else 0.0,
        "scrape p99 ÷ the same-size floor": (
            point.scrape_p99_ms / point.floor_sized_p99_ms if point.floor_sized_p99_ms else 0.0
        ),
        "Prometheus, peak RSS": point.prometheus_rss_mb,
    }
    for name, seconds in sorted(point.windows.items()):
        out[f"{point.window_cadences.get(name, 'window')} collector {name}"] = seconds
    for name, value in sorted(point.schedule.items()):
        out[f"whole schedule in serve: {name}"] = value
    return out


UNITS = {
    "whole schedule in serve: peak RSS": "MB",
    "whole schedule in serve: idle scrape p99": "ms",
    "instant cycle, database time": "ms",
    "instant cycle, wall time": "ms",
    "first start, wall time": "s",
    "first start, peak RSS": "MB",
    "serving, peak RSS": "MB",
    "scrape p99 (gzip)": "ms",
    "Prometheus, peak RSS": "MB",
}


def _value(value: float, unit: str) -> str:
    if unit == "":
        return f"{value:,.0f}" if value >= 100 else f"{value:,.2f}"
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.2f} {unit}" if value < 10 else f"{value:,.1f} {unit}"


def _unit(name: str) -> str:
    if name in UNITS:
        return UNITS[name]
    return "s" if "collector" in name else ""


def section(points: list[Point], plot: Path | None = PLOT) -> str:
    """The Markdown section: the table, the plot, a sentence per figure."""
    points = sorted(points, key=lambda p: p.events)
    events = [float(p.events) for p in points]
    rows = [figures(p) for p in points]
    names = [name for name in rows[-1] if all(name in row for row in rows)]
    lines = [SECTION, ""]
    lines.append(
        f"`python -m bench.run --scaling`: {len(points)} scales of one platform shape, each in a database of its own"
        f" ({points[-1].accounts // points[-1].structures:,} accounts and"
        f" {points[-1].events // points[-1].structures:,} events over {points[-1].days} days per establishment;"
        f" {points[-1].new_events:,} new events for the instant cycle at every scale)."
        " The exponent is the least-squares slope of log(cost) against log(events): 1 is proportional, 0 flat."
        " Events and establishments grow together here, so the exponent is the same against either; the"
        " sentences below say which one each figure follows, from what the code reads."
    )
    lines.append("")
    header = "| figure | " + " | ".join(f"{p.structures:,} est., {p.events / 1e6:,.1f}M events" for p in points)
    lines.append(header + " | exponent |")
    lines.append("| --- |" + " ---: |" * (len(points) + 1))
    slopes: dict[str, float] = {}
    for name in names:
        values = [row[name] for row in rows]
        slopes[name] = exponent(events, values)
        unit = _unit(name)
        cells = " | ".join(_value(v, unit) for v in values)
        slope = "–" if math.isnan(slopes[name]) else f"{slopes[name]:.2f}"
        lines.append(f"| {name} | {cells} | {slope} |")
    lines.append("")
    if plot is not None:
        lines.append(f"![Each cost against events and establishments, log-log]({plot.as_posix()})")
        lines.append("")
    for name in names:
        if name not in WHY:
            continue
        first, last = rows[0][name], rows[-1][name]
        change = f"×{last / first:,.2f}" if first else "–"
        lines.append(
            f"- **{name}**: {change} from {points[0].structures:,} to {points[-1].structures:,} establishments,"
            f" exponent {slopes[name]:.2f}: {_growth(slopes[name])}. Expected: {WHY[name]}."
        )
    windows = [n for n in names if "collector" in n and n not in WHY]
    if windows:
        lines.append(
            "- **Window collectors**: "
            + "; ".join(f"{n.split(' collector ')[1]} {slopes[n]:.2f}" for n in windows)
            + ". Expected: those on per-day aggregates read one day of rows a run, so they follow the events of a"
            " day; those that read their whole window (section 3 says which and why) follow the window's events."
        )
    lines.append("")
    return "\n".join(lines) + "\n"


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")


def plot(points: list[Point], path: Path) -> None:
    """Each cost relative to its value at the smallest scale, against events and against establishments."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    points = sorted(points, key=lambda p: p.events)
    rows = [figures(p) for p in points]
    shown = [n for n in WHY if all(row.get(n, 0) > 0 for row in rows)]
    figure = Figure(figsize=(11, 4.8), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    for ax, xs, label in (
        (axes[0], [p.events for p in points], "events in the history"),
        (axes[1], [p.structures for p in points], "establishments"),
    ):
        for number, name in enumerate(shown):
            base = rows[0][name]
            # A colour of its own for each figure (tab20: up to 20), and a marker too, so no two lines look alike.
            ax.plot(
                xs,
                [row[name] / base for row in rows],
                color=matplotlib.colormaps["tab20"](number % 20),
                marker=MARKERS[number % len(MARKERS)],
                label=name,
            )
        ax.plot(xs, [x / xs[0] for x in xs], color="black", linestyle=":", label="proportional")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("cost ÷ its value at the smallest scale")
    axes[1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1))
    figure.suptitle("How each cost grows with the platform (log-log)")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)


def save(points: list[Point], path: Path) -> None:
    path.write_text(json.dumps([asdict(p) for p in points], indent=1))


def load(path: Path) -> list[Point]:
    return [Point(**item) for item in json.loads(path.read_text())]


def kept_section(path: Path) -> str:
    """This section of an existing BENCHMARKS.md, for a bench.run at one scale to keep."""
    return sections.kept(path, SECTION)


def write(points: list[Point], output: Path) -> None:
    """Writes the plot beside ``output`` (``PLOT``, relative to its directory) and replaces its section."""
    plot(points, output.parent / PLOT)
    sections.write(output, SECTION, section(points))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", type=Path, required=True, help="a scaling.json of bench.run --scaling")
    parser.add_argument("--output", type=Path, required=True, help="the file whose section is written (BENCHMARKS.md)")
    args = parser.parse_args(argv)
    write(load(args.source), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
