"""The benchmark (bench/) at a small size: the same code as the regional run, asserting counts and
ratios that hold at any size and on a busy machine, never wall times.

It installs query-exporter from the package index into bench/.venv-query-exporter on first use
(pip, Python >= 3.12), then runs every phase: seeding, first start, window collectors, the
instant cycle of both exporters, scrapes of ``ent-exporter serve`` and of the per-scrape
rendering baseline.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench import run as bench
from bench import scaling
from ent_exporter import indicators

NEW_EVENTS = 2_000


SCALES = (10, bench.SMALL["structures"])


@pytest.fixture(scope="module")
def scales(tmp_path_factory) -> dict:
    """A scaling run (bench/scaling.py) at two small scales; the larger is the small run (the comparisons)."""
    workdir = tmp_path_factory.mktemp("bench")
    options = bench.Options(
        **bench.SMALL,
        days=365,
        new_events=NEW_EVENTS,
        scrapers=20,
        scrapes_each=10,
        baseline_scrapes_each=1,
        workdir=workdir,
        progress=False,
        output=workdir / "BENCHMARKS.md",
        prometheus_seconds=20,
        scales=SCALES,
        schedule_at_every_scale=False,  # the whole schedule (bench/schedule.py) at the larger scale only
        schedule_scrapers=2,
        schedule_lead_seconds=15,
        schedule_idle_tail_seconds=3,
    )
    return bench.run_scaling(options)


@pytest.fixture(scope="module")
def report(scales):
    return scales[bench.SMALL["structures"]]


def test_the_command_line_has_the_sizes_of_the_issue():
    regional = bench.parse_options([])
    assert (regional.structures, regional.accounts, regional.events, regional.days) == (1000, 500_000, 10_000_000, 365)
    assert bench.parse_options(["--events", "50000000"]).events == 50_000_000
    month = bench.parse_options(["--month"])
    assert (month.structures, month.accounts, month.events, month.days) == (1000, 500_000, 50_000_000, 30)
    small = bench.parse_options(["--small", "--keep", "--output", "B.md"])
    assert (small.structures, small.accounts, small.events) == (20, 5_000, 200_000) and small.keep


def test_seeding_produced_the_requested_sizes(report):
    counts = report.seeding["counts"]
    assert counts["structures"] == bench.SMALL["structures"]
    assert counts["accounts"] == bench.SMALL["accounts"]
    assert report.seeding["events"] == pytest.approx(bench.SMALL["events"], rel=0.03)
    assert report.seeding["seeded"] and report.seeding["events_per_second"] > 0


def test_both_exporters_count_the_same(report):
    assert report.counters_agree


def test_the_instant_cycle_reads_the_new_events_and_query_exporter_the_whole_tables(report):
    assert sum(report.new_events.values()) == NEW_EVENTS
    ent, qe = report.instant_ent, report.instant_qe
    # ent-exporter: the new events (index range) plus an accounts look-up per user of them.
    assert 0 < ent.rows_read <= 3 * NEW_EVENTS
    assert ent.event_seq_scans == 0
    # query-exporter: every event of the history, every cycle.
    assert qe.rows_read >= report.seeding["events"]
    assert qe.event_seq_scans >= 3
    assert report.instant_rows_ratio > 10
    assert report.instant_db_ratio > 2  # ~10-20x at this size; it grows with the history


def test_the_instant_cycle_is_measured_against_its_floor(report):
    """The floor reads the new rows once through the event_id index (index entries and their rows) and
    the new users' accounts; the cycle reads no sequential scan, each table's new rows once as the floor
    does, at most half as many rows again in all (the attributions per counter, the activations'
    fingerprints), in a fixed number of statements per collector (not per event, user or day)."""
    floor, cycle = report.instant_floor, report.instant_ent
    assert floor and floor.event_seq_scans == 0 and floor.statements >= 5
    assert sum(report.new_events.values()) <= floor.rows_read <= 3 * NEW_EVENTS
    for table, added in report.new_events.items():
        # One read of the new rows (and the settled target's index entry), not a second pass to find gaps.
        assert floor.rows_read_by_table[table] >= added, (table, floor.rows_read_by_table)
        assert cycle.rows_read_by_table[table] <= floor.rows_read_by_table[table] + 5, (table, cycle.rows_read_by_table)
    assert 1 <= report.instant_floor_rows_ratio <= 1.5, (cycle.rows_read, floor.rows_read)
    assert cycle.statements <= 12 * len(report.instant_ent_collectors), cycle.statements
    assert report.instant_floor_ratio > 0
    assert 0 < report.instant_ent_cpu_seconds <= report.instant_ent.seconds * 1.5  # (one process's CPU: below its wall)


def test_every_window_collector_is_measured_and_uses_indexes(report):
    expected = {
        name for name, cls in indicators.discover().items() if cls.cadence.value != "instant" and not cls.opt_in
    }  # opt-in ones are not configured
    assert set(report.windows) == expected
    for name, window in report.windows.items():
        assert window["phase"].event_seq_scans == 0, f"{name} scans an event table sequentially"


def test_window_collectors_on_per_day_aggregates_read_no_window(report):
    """After the first start, the hourly visitors, daily activity and weekly heatmap read the new
    events, the last late-commit limit again and (activity, heatmap) their partial first day: far
    less than their window (a month, 90 and 28 days), which their first run read."""
    per_day = report.seeding["events"] / 365  # every kind of event: an upper bound for the logins of a day
    for name in ("visitors", "activity", "login_heatmap"):
        logins = report.windows[name]["phase"].rows_read_by_table.get("login_events", 0)
        assert logins <= 2 * per_day, (name, logins, per_day)


def test_the_previous_month_is_combined_from_the_hourly_days(report):
    """The seeded history holds the whole previous month. In the steady state the monthly visitors read no
    login (the hourly visitors combined the closed month from their days); on the first start's state, which
    holds no day of it, they read the month whole."""
    previous = report.previous_month
    assert report.previous_month_logins > 0
    assert previous["steady"].rows_read_by_table.get("login_events", 0) == 0
    assert previous["whole"].rows_read_by_table.get("login_events", 0) >= report.previous_month_logins
    assert report.windows["visitors_previous_month"]["phase"] is previous["steady"]
    for phase in previous.values():
        assert phase.event_seq_scans == 0


def test_the_seeding_window_holds_a_whole_previous_month_whatever_the_date():
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    paris = ZoneInfo("Europe/Paris")
    # 30 days asked: on the 31st of a month, 61 days (October and December), at the same events per day.
    assert bench.seeding_window(30, 50_000_000, datetime(2026, 12, 31, 22, 0, tzinfo=UTC), paris) == (
        61,
        101_666_667,
    )
    # 00:30 on 1 April (Paris): March and the half-hour since, 31 days (and a day for the part of one).
    assert bench.seeding_window(30, 3_000, datetime(2026, 3, 31, 22, 30, tzinfo=UTC), paris) == (31, 3_100)
    # ... 1 March: February fits in the 30 days asked.
    assert bench.seeding_window(30, 3_000, datetime(2026, 2, 28, 23, 30, tzinfo=UTC), paris) == (30, 3_000)
    assert bench.seeding_window(365, 10_000_000, datetime(2026, 12, 31, tzinfo=UTC), paris) == (365, 10_000_000)


def test_the_scrape_floor_the_series_budget_and_a_real_prometheus(report):
    floor = report.scrape_floor
    assert floor and floor.scrapes == 20 * 10 and floor.bytes < 1000 < report.scrape_gzip.bytes
    assert report.scrape_floor_ratio > 0
    # The budget's shape per structure: the heatmap's marginals (24 hours + 7 weekdays), the
    # logins-per-user distribution for profile="all" only (7 buckets, +Inf, _count, _sum), visits per
    # visitor for profile="all" only (day, week, month, previous_month, month_a_year_earlier); visitors per
    # profile, at most 7 profile values (Edifice's five, "unknown", "all") x 5 periods.
    shape = report.series_per_structure
    assert shape["ent_logins_by_hour"] == 31 and shape["ent_user_logins_30d"] == 10, shape
    assert shape["ent_visits_per_visitor"] == 5 and 30 <= shape["ent_unique_visitors"] <= 35, shape
    # The synthetic data has Edifice's five profiles and "unknown": within the budget all the same.
    assert 0 < report.per_structure <= bench.TARGETS["series_per_structure"]
    default, full = report.prometheus_default, report.prometheus_full
    assert default and full and default.peak_rss_mb > 0
    # Prometheus stores what the exporter publishes: fewer series with the budget than with every breakdown.
    assert 0 < default.exporter_series < full.exporter_series
    assert default.head_series < full.head_series
    # The floor at our size: the same server holding as many gzip bytes as ent-exporter served (within 2 %).
    sized = report.scrape_floor_sized
    assert sized.scrapes == report.scrape_floor.scrapes == report.scrape_gzip.scrapes
    assert abs(sized.bytes - report.scrape_gzip.bytes) <= 0.02 * report.scrape_gzip.bytes
    assert report.scrape_floor.bytes < sized.bytes / 10


def test_pre_rendered_scrapes_beat_rendering_at_every_scrape(report):
    assert report.scrape_gzip.scrapes == report.scrape_plain.scrapes == 20 * 10
    assert report.scrape_baseline.scrapes == 20
    assert report.series > 1_000 and report.body_bytes > report.gzip_bytes > 0
    assert report.scrape_p99_ratio > 1
    assert report.scrape_throughput_ratio > 1
    assert report.serve_peak_rss_kb > 0 and report.first_start_peak_rss_kb > 0


def test_the_report_and_the_summary_line(report):
    text = (Path(report.options["workdir"]).parent / "BENCHMARKS.md").read_text()
    for heading in (
        "## Targets",
        "## 1. Instant cycle",
        "## 2. Scrapes",
        "## 3. Hourly, daily, weekly and monthly",
        "## 4. Memory",
        "## 5. First start and seeding",
    ):
        assert heading in text
    assert "query-exporter 5.2.2" in text
    line = report.summary_line()
    assert line.startswith("bench: instant cycle") and "targets met" in line and "\n" not in line


def test_the_scaling_run_measures_each_scale_in_its_own_database(scales, report):
    small, large = scales[SCALES[0]], scales[SCALES[1]]
    assert large is report
    # The base's accounts and events per establishment, at each scale.
    assert small.seeding["counts"]["structures"] == SCALES[0]
    assert small.seeding["counts"]["accounts"] == bench.SMALL["accounts"] * SCALES[0] // SCALES[1]
    assert small.seeding["events"] == pytest.approx(bench.SMALL["events"] * SCALES[0] / SCALES[1], rel=0.03)
    assert Path(small.options["workdir"]).name == f"scale-{SCALES[0]}"
    # The comparisons run at the base's scale only.
    assert small.instant_qe is None and small.scrape_baseline is None and small.prometheus_full is None
    assert small.schedule_run is None and large.schedule_run is not None
    assert large.instant_qe is not None and large.scrape_baseline is not None
    assert small.summary_line().startswith("bench: instant cycle") and "query-exporter" not in small.summary_line()
    # The same new events at each scale: the instant cycle reads them, not the history (which doubled).
    for r in (small, large):
        assert sum(r.new_events.values()) == NEW_EVENTS
        assert r.instant_ent.event_seq_scans == 0
    assert large.instant_ent.rows_read < 1.5 * small.instant_ent.rows_read
    # Both scales ran every window collector and a Prometheus.
    assert set(small.windows) == set(large.windows) and small.prometheus_default is not None


def test_the_scaling_section_its_table_plot_and_sentences(scales, report):
    workdir = Path(report.options["workdir"]).parent
    points = scaling.load(workdir / "scaling.json")
    assert [p.structures for p in points] == list(SCALES)
    assert [p.events for p in points] == [scales[n].seeding["events"] for n in SCALES]
    assert [p.cycle_db_ms for p in points] == [scales[n].instant_ent.db_ms for n in SCALES]
    text = (workdir / "BENCHMARKS.md").read_text()
    assert text.count(scaling.SECTION) == 1 and text.index("## Targets") < text.index(scaling.SECTION)
    section = text[text.index(scaling.SECTION) :].split("\n## ")[0]
    table = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    names = [line.split(" | ")[0][2:] for line in table[1:]]
    assert set(scaling.WHY) <= set(names)
    assert {f"{w['cadence']} collector {n}" for n, w in report.windows.items()} <= set(names)
    # The exponent column is the least-squares slope of log(cost) against log(events), from the points.
    events = [float(p.events) for p in points]
    first_start = next(line for line in table if line.startswith("| first start, wall time |"))
    expected = scaling.exponent(events, [p.first_start_s for p in points])
    assert first_start.rstrip(" |").endswith(f"{expected:.2f}")
    for name, why in scaling.WHY.items():
        assert f"- **{name}**:" in section and f"Expected: {why}." in section
    image = workdir / scaling.PLOT
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({scaling.PLOT.as_posix()})" in section
    # A run at one scale keeps the section; bench.scaling writes it again from the points alone.
    bench.write_output(report, workdir / "again.md")
    assert scaling.SECTION not in (workdir / "again.md").read_text()
    # The hand-written listener section and the lock wait's are kept too.
    from bench import listener, lock_wait

    by_hand = f"{listener.SECTION} (2026-12-07)\n\nbench.listener's, written by hand\n"
    waits = f"\n{lock_wait.SECTION} (2026-12-07)\n\nbench.lock_wait's\n"
    (workdir / "kept.md").write_text(text + "\n" + by_hand + waits)
    bench.write_output(report, workdir / "kept.md")
    kept = (workdir / "kept.md").read_text()
    assert section in kept and by_hand in kept and waits in kept
    (workdir / "kept.md").write_text("# Benchmarks\n")
    assert scaling.main(["--from", str(workdir / "scaling.json"), "--output", str(workdir / "kept.md")]) == 0
    assert section.strip() in (workdir / "kept.md").read_text()


def test_the_scaling_exponent_is_the_least_squares_slope_in_log_log():
    assert scaling.exponent([1, 10, 100], [5, 50, 500]) == pytest.approx(1.0)
    assert scaling.exponent([1, 10, 100], [7, 7, 7]) == pytest.approx(0.0)
    assert scaling.exponent([100, 1000, 3000], [1.0, 100.0, 900.0]) == pytest.approx(2.0)
    # Points off a line: the slope of the least-squares fit, by hand on the logs (base 10).
    # log10 x = 0, 1, 2 (mean 1); log10 y = 0, 2, 2 (mean 4/3): Σdx·dy = 4/3 + 0 + 2/3 = 2, Σdx² = 2.
    assert scaling.exponent([1, 10, 100], [1, 100, 100]) == pytest.approx(1.0)
    assert scaling.exponent([1, 10, 100], [1, 1, 100]) == pytest.approx(1.0)
    assert scaling.exponent([1, 10, 100], [1, 10, 10]) == pytest.approx(0.5)
    assert math.isnan(scaling.exponent([10], [3]))
    assert bench.parse_options(["--scaling"]).scales == scaling.SCALES
    month = bench.parse_options(["--scaling"])
    large = scaling.options_at(month, 3000)
    assert (large.structures, large.accounts, large.events, large.days) == (3000, 1_500_000, 150_000_000, 30)
    assert large.compare is False and scaling.options_at(month, 1000).compare is True


# -- the performance fixes the benchmark led to ---------------------------------------------


def test_the_fast_renderer_writes_what_prometheus_client_writes():
    import random

    from ent_exporter.engine.collector import Family, HistogramValue, Kind
    from ent_exporter.engine.exposition import render_family, render_family_reference
    from ent_exporter.engine.runtime import SELF_FAMILIES

    rng = random.Random(5)
    families = [f for cls in indicators.discover().values() for f in cls.families] + list(SELF_FAMILIES)
    families.append(Family("odd_total", Kind.COUNTER, 'help with \\ and\nnewline "quoted"', ("a", "b")))
    values = ["0750001A", "Student", "", 'quo"te', "back\\slash", "new\nline", "é", "{0}", "a}b{"]
    for family in families:

        def value(family=family):
            if family.kind in (Kind.HISTOGRAM, Kind.GAUGE_HISTOGRAM):
                buckets = sorted(rng.choice([0.0, 1.0, 3.0, 1e7]) for _ in family.buckets)
                return HistogramValue(buckets, buckets[-1] + 1, rng.random() * 1e6)
            return rng.choice([0.0, 1.0, 0.25, 1e-9, 123456789.0, 1e22, float("inf"), -2.0, rng.random()])

        series = {tuple(rng.choice(values) for _ in family.labels): value() for _ in range(100)}
        assert render_family(family, series) == render_family_reference(family, series), family.name


def test_an_unchanged_family_is_not_rendered_again_but_a_changed_histogram_is():
    from ent_exporter.engine.collector import Family, HistogramValue, Kind
    from ent_exporter.engine.exposition import Exposition

    counter = Family("c_total", Kind.COUNTER, "c", ("x",))
    histogram = Family("h_seconds", Kind.HISTOGRAM, "h", ("x",), (1.0,))
    exposition = Exposition([counter, histogram])
    value = HistogramValue([1.0], 2.0, 3.0)
    series = {("a",): value}
    exposition.publish({"p": {"c_total": {("a",): 1.0}, "h_seconds": series}})
    renders = exposition.renders
    exposition.publish({"p": {"c_total": {("a",): 1.0}, "h_seconds": series}})
    assert exposition.renders == renders
    value.add(HistogramValue([1.0], 1.0, 0.5))  # mutated in place, then published again
    exposition.publish({"p": {"h_seconds": series}})
    assert exposition.renders == renders + 1
    assert b'h_seconds_count{x="a"} 3.0' in exposition.body()
    chunks, length = exposition.chunks()
    assert b"".join(chunks) == exposition.body() and length == len(exposition.body())


def test_state_files_round_trip_in_columns_and_old_files_still_load(tmp_path):
    import json

    from ent_exporter.engine.state import StateStore, StoredResult

    store = StateStore(tmp_path)
    samples = {
        "a_total": [[["S1", "Student"], 3.0], [["S2", ""], 1.0]],
        "h_seconds": [[["ldap"], {"buckets": [1.0, 2.0], "count": 2.0, "sum": 0.5}]],
        "g": [[[], 7.0]],
        "empty": [],
    }
    changed_at = {"a_total": [[["S1", "Student"], 100.0]]}
    result = StoredResult(
        samples,
        {"mode": "event_id", "watermark": 5, "totals": samples},
        12.5,
        True,
        {"a_total": [[["S1", "Student"], 100.0]]},
    )
    store.save("c", result)
    # What the runtime keeps after a save is compacted: the same values, as tuples, totals shared.
    assert result.samples["a_total"] == [(("S1", "Student"), 3.0), (("S2", ""), 1.0)]
    assert result.state["totals"] is result.samples
    assert result.changed_at == {"a_total": [(("S1", "Student"), 100.0)]}
    written = json.loads((tmp_path / "collectors" / "c.json").read_text())
    assert written["totals_are_samples"] and "totals" not in written["state"]

    def plain(families):
        return {name: [[list(labels), value] for labels, value in series] for name, series in families.items()}

    loaded = store.load("c")
    assert plain(loaded.samples) == samples and plain(loaded.state["totals"]) == samples
    assert loaded.state["watermark"] == 5 and plain(loaded.changed_at) == changed_at
    version_1 = {
        "version": 1,
        "collector": "old",
        "samples": samples,
        "state": {"totals": samples, "seen": ["a"]},
        "last_success": 1.0,
        "complete": False,
        "changed_at": {},
    }
    (tmp_path / "collectors" / "old.json").write_text(json.dumps(version_1))
    old = store.load("old")
    assert plain(old.samples) == samples and old.state["seen"] == ["a"] and old.complete is False


# -- every report of a month (bench/reports.py) ----------------------------------------------


def test_the_reports_benchmark_writes_every_report_of_the_month(tmp_path):
    """bench.reports at a tiny size: seeded over the month, the two before it and the same month a year
    before, every report of it written in every format by a process of its own, measured, and its
    section put into BENCHMARKS.md before the history disk's, the rest of the file kept."""
    from bench import reports

    output = tmp_path / "BENCHMARKS.md"
    output.write_text("# Benchmarks\n\n## Targets\n\nbench.run's\n\n## A year of history\n\nbench.history_disk's\n")
    scale = reports.Scale(structures=2, accounts=60, events=6_000)
    result = reports.run([scale], "2026-11", tmp_path / "work", progress=False, output=output)
    (run,) = result.runs
    assert (run.structures, run.accounts) == (2, 60) and run.seeded
    assert run.events == pytest.approx(6_000, rel=0.1) and run.logins + run.app_openings < run.events
    # September to November at the month's rate (91 days of 30), and November's logins and openings a year before.
    assert run.history_events == pytest.approx(6_000 * 91 / 30 + run.logins + run.app_openings, rel=0.1)
    assert run.reports == 3  # two structures and the platform
    # Three reports: rendered by the writing process alone (ent_exporter.reports.rendering.MIN_PER_PROCESS).
    assert (run.processes, run.rendered_here, run.workers_peak_rss_kb) == (1, 3, 0)
    by_format = run.files_by_format
    assert by_format["pdf"] == by_format["html"] == 3 and by_format["csv"] % 3 == 0 and by_format["csv"] >= 3
    assert run.files == sum(by_format.values()) and run.bytes > 0
    # The statements read each of the month's logins and openings at least once, and as many of the same month a
    # year before (the compared months are read), as the role bench_ent.
    assert run.rows_read >= 2 * (run.logins + run.app_openings) and run.statements > 0 and run.db_ms > 0
    # Every kind of statement is told apart by its text, and together they are the database time.
    assert sum(run.db_ms_by_kind.values()) == pytest.approx(run.db_ms)
    assert all(run.db_ms_by_kind[kind] > 0 for kind, _ in reports.STATEMENT_KINDS), run.db_ms_by_kind
    assert run.statements_seconds + run.rendering_seconds == pytest.approx(run.total_seconds)
    assert 0 < run.statements_seconds < run.total_seconds < run.process_seconds
    assert run.peak_rss_kb > 0
    assert not (tmp_path / "work" / "structures-2" / "reports").exists()  # the reports written are removed
    text = output.read_text()
    assert text.index("## Targets") < text.index(reports.SECTION) < text.index("## A year of history")
    assert "bench.run's" in text and "bench.history_disk's" in text
    assert "python -m bench.reports --month --report-month 2026-11 --output BENCHMARKS.md" in text
    assert "the month a year before (2025-11: the logins and openings of 2026-11 copied a year earlier)" in text
    assert "those of 2026-10 read 61 of theirs and those of 2025-11 30" in text
    assert result.summary_line().startswith("bench.reports: 3 reports")
    # Written again, the section is replaced, not added; bench.run keeps it when it rewrites the file.
    reports.write_section(output, reports.markdown(result))
    assert output.read_text() == text
    kept = reports.kept_section(output)
    assert kept.startswith("\n" + reports.SECTION) and "## A year of history" not in kept and "## Targets" not in kept


def test_the_reports_benchmark_command_line_and_its_growth_sentence():
    from bench import reports

    month = reports.scales_of(reports.parse(["--month", "--scales", "100,300"]))
    assert [(s.structures, s.accounts, s.events) for s in month] == [
        (100, 50_000, 5_000_000),
        (300, 150_000, 15_000_000),
        (1000, 500_000, 50_000_000),
    ]

    def scale_run(n: int, rendered: int) -> reports.ScaleRun:
        # n structures: statements n / 10 s; rendering 0.5 s per report, of `rendered` reports of n + 1.
        return reports.ScaleRun(
            structures=n, accounts=n * 500, events=n * 50_000, logins=n, app_openings=n, seeded=True,
            seed_seconds=0.0, reports=rendered, files=8 * rendered, bytes=1, statements_seconds=n / 10,
            rendering_seconds=rendered / 2, total_seconds=n / 10 + rendered / 2, process_seconds=n, db_ms=n,
            statements=1, rows_read=n, peak_rss_kb=n * 1024, all_reports=n + 1,
        )  # fmt: skip

    runs = [scale_run(100, 101), scale_run(1000, 101)]
    result = reports.Result("2026-11", {}, {}, runs, "", "", [])
    assert result.largest.structures == 1000 and runs[1].sampled and not runs[0].sampled
    assert runs[1].every_report_seconds == pytest.approx(100 + 1001 / 2)
    assert reports.growth(result) == (
        "From 100 to 1,000 structures (10× the structures, accounts and events), the statements took 10.0× as long"
        " (they read the month's events: they grow with the events), the rendering 9.9× (it grows with the number"
        " of reports), the peak RSS 10.0×."
    )
    text = reports.markdown(result)
    assert "--month --scales 100 --sample 101 --report-month 2026-11" in text
    assert "**missed**: 10.0 minutes, the rendering of every report extrapolated" in text
    assert reports.load_note(result) == ""  # no machine facts: nothing said
    loaded = reports.Result("2026-11", {"cores": 2, "load_before": [4.5, 3.0, 2.0]}, {}, runs, "", "", [1.0, 1.5, 2.0])
    assert reports.load_note(loaded) == (
        " The machine was loaded beyond its 2 cores during this run (load average up to 4.5): its wall times are"
        " not representative of an idle machine, its CPU times are."
    )
    idle = reports.Result("2026-11", {"cores": 2, "load_before": [0.5, 0.4, 0.3]}, {}, runs, "", "", [1.0, 0.9, 0.8])
    assert reports.load_note(idle) == "" and reports.load_note(loaded) in reports.markdown(loaded)


# -- the whole schedule in one serving process (bench/schedule.py) -------------------------------------


def test_the_compressed_day_fires_each_window_cadence_once_a_minute_apart():
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from bench import schedule

    paris = ZoneInfo("Europe/Paris")
    fired = schedule.compressed_crons(datetime(2026, 12, 31, 23, 58, 20, tzinfo=paris), 1)
    assert list(fired) == ["hourly", "daily", "weekly", "monthly"]
    # From the next whole minute, across midnight and the year's end (a cron names its day and month).
    assert [cron for _, cron in fired.values()] == ["59 23 31 12 *", "0 0 1 1 *", "1 0 1 1 *", "2 0 1 1 *"]
    assert schedule.compressed_crons(datetime(2026, 12, 7, 10, 0, tzinfo=paris), 2)["daily"][1] == "2 10 7 12 *"


def test_serve_runs_its_whole_schedule_scraped_all_along(report):
    """The real serve's own scheduler fired an hourly, a daily, a weekly and a monthly run (every collector
    of each cadence) while scrapers scraped: every scrape answered, some during each run, and the window
    runs (one at a time) took the process's peak RSS little above what serving took before them."""
    from bench import schedule

    run = report.schedule_run
    expected = {
        cadence: sorted(
            name for name, cls in indicators.discover().items() if cls.cadence.value == cadence and not cls.opt_in
        )
        for cadence in schedule.WINDOW_CADENCES
    }
    assert {window.cadence: sorted(window.collectors) for window in run.runs} == expected
    assert not run.missing and run.failed_scrapes == 0
    assert run.idle.scrapes > 0
    for window in run.runs:
        assert window.scrapes.scrapes >= 1, window.cadence
        assert window.peak_rss_kb > 0
    # Memory, not time: the whole schedule's peak within a quarter of the peak before the first window run.
    assert run.start_peak_rss_kb > 0
    assert run.peak_rss_kb <= 1.25 * run.start_peak_rss_kb, (run.peak_rss_kb, run.start_peak_rss_kb)
    text = schedule.markdown([run])
    assert "## The whole schedule in one serving process" in text and "| weekly (`" in text
    # In the run's report, and its targets in the table of targets.
    written = (Path(report.options["workdir"]).parent / "BENCHMARKS.md").read_text()
    assert text.rstrip() in written
    assert all(row in report.targets() for row in run.targets())


def test_a_missed_hourly_visitors_target_says_what_it_read():
    """The cause of a slow hourly visitors run: its accounts' rows, read once per part of the users."""
    from types import SimpleNamespace

    from bench.report import _cause
    from ent_exporter.aggregation.days import PART_USERS

    phase = bench.Phase(2.18, 1900.0, 12, 3_042_472, 0, {"accounts": 2_500_000, "login_events": 542_472})
    run = SimpleNamespace(windows={"visitors": {"cadence": "hourly", "phase": phase}}, seeding={"accounts": 500_000})
    text = _cause(run, "hourly visitors collector")  # type: ignore[arg-type]
    assert text.startswith("measured 2.18 s, 3,042,472 rows read, 2,500,000 of them accounts' rows (5.0 times the")
    assert f"about {PART_USERS:,} of them" in text


def test_the_lock_wait_benchmark_scrapes_idle_and_while_python_works(tmp_path):
    """bench.lock_wait at a tiny size: each switch interval scraped idle and while a thread works (which
    did work), its section written; no assertion on latencies (a benchmark measures them)."""
    from bench import lock_wait

    output = tmp_path / "BENCHMARKS.md"
    output.write_text("# Benchmarks\n\n## A year of history\n\nbench.history_disk's\n")
    assert lock_wait.main(["--samples", "300", "--seconds", "0.3", "--scrapers", "1", "--intervals", "5,1",
                           "--output", str(output)]) == 0  # fmt: skip
    text = output.read_text()
    assert text.index(lock_wait.SECTION) < text.index("## A year of history")
    rows = [line for line in text.splitlines() if line.startswith("| 5 ms (default) |") or line.startswith("| 1 ms |")]
    assert len(rows) == 2
    phases = [lock_wait.measure(300, 5, busy, 0.3, 1) for busy in (False, True)]
    assert all(phase.latencies.scrapes > 0 for phase in phases)
    assert (phases[0].work_rounds, phases[1].work_rounds > 0) == (0, True)
