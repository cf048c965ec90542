"""BENCHMARKS.md: the figures of one run of bench.run, as Markdown."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.run import Report


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def _mb(kb: int | float) -> str:
    return f"{kb / 1024:,.0f} MB"


def _bytes(n: int) -> str:
    return f"{n / 1024 / 1024:,.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:,.0f} kB"


# Whether each window collector reads its whole window (or table) at every run, and why (kept by hand,
# from each collector's statement; the rows read next to it are measured).
WINDOW_READS: dict[str, tuple[bool, str]] = {
    "account_feeds": (True, "the feeds' runs up to now, an optional relation of a few rows per feed"),
    "accounts": (
        True,
        "every account: the figures are the accounts as they are now (created, activated), not a window of events",
    ),
    "course_progress": (True, "every enrolment of the optional course relation: completions move, not append"),
    "structure_info": (True, "every structure: its info series are the structures table as it is now"),
    "visitors": (False, "per-day aggregates: the new events, the late-commit limit again; accounts for attribution"),
    "activity": (False, "per-day aggregates, plus the partial first day of its 30 and 90-day windows"),
    "login_heatmap": (False, "per-day aggregates, plus the partial first day of its 28-day window"),
    "visitors_previous_month": (
        False,
        "combined by the hourly visitors from their days; the month read whole only when those do not cover it",
    ),
}


def markdown(r: Report) -> str:
    o, m, s = r.options, r.machine, r.seeding
    command = "python -m bench.run --output BENCHMARKS.md"
    size_flags = []
    month = (o["structures"], o["accounts"], o["events"], o["days"]) == (1000, 500_000, 50_000_000, 30)
    for key, default in (("structures", 1000), ("accounts", 500_000), ("events", 10_000_000), ("days", 365)):
        if o[key] != default and not month:
            size_flags.append(f"--{key} {o[key]}")
    if month:
        size_flags.append("--month")
    if size_flags:
        command = "python -m bench.run " + " ".join(size_flags) + " --output BENCHMARKS.md"
    if o.get("scaling"):  # the comparisons' scale of a scaling run (bench/scaling.py)
        scales = ",".join(str(n) for n in o["scaling"])
        command = f"python -m bench.run --scaling --scales {scales} --output BENCHMARKS.md"
    out: list[str] = []
    add = out.append
    add("# Benchmarks")
    add("")
    add(
        "ent-exporter against a generic SQL exporter ([query-exporter](https://github.com/albertodonato/query-exporter),"
        " run as a real process from its PyPI package) on the same PostgreSQL database, in one run of:"
    )
    add("")
    add("```sh")
    add(command)
    add("```")
    add("")
    add(
        f"Data: a synthetic regional ENT — **{s['counts']['structures']:,} structures, {s['counts']['accounts']:,}"
        f" accounts, {s['events']:,} events over {s.get('days', o['days'])} days** ({s['counts']['login_events']:,} logins,"
        f" {s['counts']['app_access_events']:,} application openings, {s['counts']['connector_events']:,} connector"
        f" calls), seeded by COPY (`ent_exporter/demo/data.py`). The figures below all come from that one run;"
        f" `bench/` holds the code. Ratios are what carries over to another machine; wall times are this one's."
    )
    add("")
    add("| | |")
    add("| --- | --- |")
    add(f"| date | {m['started']} → {r.finished} |")
    add(f"| machine | {m['cpu']}, {m['cores']} cores, {m['memory']} RAM, {m['system']} |")
    add(
        f"| load average (1, 5, 15 min) | before {', '.join(f'{x:.2f}' for x in m['load_before'])};"
        f" after {', '.join(f'{x:.2f}' for x in r.load_after)} (other work shares the 2 cores: wall times are"
        f" upper bounds) |"
    )
    add("| versions | " + ", ".join(f"{k} {v}" for k, v in r.versions.items()) + " |")
    add("")
    add("## Targets")
    add("")
    add("| what | target | measured | met |")
    add("| --- | --- | --- | --- |")
    for what, target, measured, met in r.targets():
        add(f"| {what} | {target} | {measured} | {'yes' if met else '**no**'} |")
    add("")

    add(f"## 1. Instant cycle after {sum(r.new_events.values()):,} new events")
    add("")
    add(
        f"{', '.join(f'{n:,} {t}' for t, n in r.new_events.items())} were added after ent-exporter's first start"
        " had caught up. ent-exporter's cycle is one run of each instant collector"
        f" ({', '.join(sorted(r.instant_ent_collectors))}): each reads only the ids above its watermark."
        " query-exporter runs the queries that give the same counters (same attribution to structures, same"
        " `unknown` folding: `bench/query_exporter.py`), recounting the whole tables, as a generic exporter must."
        " Database time is pg_stat_statements' planning and execution time of each exporter's role; rows read are the"
        " sequential-scan rows plus index entries read on the contract's tables (cumulative statistics, read"
        " after the exporter's connections closed)."
    )
    add("")
    e, q = r.instant_ent, r.instant_qe
    add("| per cycle | ent-exporter | query-exporter | ratio |")
    add("| --- | ---: | ---: | ---: |")
    add(f"| database time | {e.db_ms:,.1f} ms | {q.db_ms:,.0f} ms | **{r.instant_db_ratio:,.0f}×** |")
    add(f"| rows read | {e.rows_read:,} | {q.rows_read:,} | **{r.instant_rows_ratio:,.0f}×** |")
    add(f"| wall time of the cycle | {_ms(e.seconds)} | {_ms(q.seconds)} | {r.instant_wall_ratio:,.0f}× |")
    add(f"| statements | {e.statements:,} | {q.statements:,} | |")
    add(f"| sequential scans of event tables | {e.event_seq_scans} | {q.event_seq_scans} | |")
    add("")
    f = r.instant_floor
    if f:
        add(
            "The cycle against its floor, measured in the same run through the same role (`bench/instant_floor.py`):"
            " the least work any incremental cycle must do for the same new events — their rows read through the"
            " `event_id` index, grouped as the counters need them, one look-up of the new users' attachments, and"
            " the last minute's activations. One unmeasured run of the floor before the cycle puts the new rows and"
            " their users' accounts in the cache for both."
        )
        add("")
        add("| per cycle | ent-exporter | floor | ratio |")
        add("| --- | ---: | ---: | ---: |")
        add(f"| database time | {e.db_ms:,.1f} ms | {f.db_ms:,.1f} ms | **{r.instant_floor_ratio:,.2f}×** |")
        add(f"| rows read | {e.rows_read:,} | {f.rows_read:,} | {r.instant_floor_rows_ratio:,.2f}× |")
        add(f"| statements | {e.statements:,} | {f.statements:,} | |")
        add("")
    add(
        f"The counters of both exporters {'agree exactly' if r.counters_agree else '**differ**'}"
        " (`ent_logins_total`, `ent_app_accesses_total`, `ent_connector_requests_total` and the duration buckets,"
        " every series). ent-exporter's wall time per collector: "
        + ", ".join(f"{n} {_ms(t)}" for n, t in sorted(r.instant_ent_collectors.items()))
        + " (query, then what moved appended to the state's journal with fsync and the changed families re-rendered)."
        f" query-exporter's first (warm-up) cycle took {_ms(r.qe_warmup_seconds)}."
    )
    add("")

    add("## 2. Scrapes")
    add("")
    add(
        f"`ent-exporter serve` over the state of the run above: **{r.series:,} series** in"
        f" {len(r.series_by_family)} families, {_bytes(r.body_bytes)} of text, {_bytes(r.gzip_bytes)} gzipped."
        f" {r.scrape_gzip.scrapers} scrapers on keep-alive connections, back to back; latency until the last byte."
        " The baseline (`bench/per_scrape.py`) serves the same samples but renders them with prometheus-client at"
        " every scrape, as query-exporter and most exporters do."
    )
    add("")
    add("| | scrapes | p50 | p99 | scrapes/s | body |")
    add("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, st in (
        ("ent-exporter, gzip (what Prometheus asks for)", r.scrape_gzip),
        ("ent-exporter, plain text", r.scrape_plain),
        ("per-scrape rendering, plain text", r.scrape_baseline),
    ):
        add(
            f"| {label} | {st.scrapes:,} | {st.p50_ms:,.1f} ms | {st.p99_ms:,.1f} ms | {st.per_second:,.1f} |"
            f" {_bytes(st.bytes)} |"
        )
    add("")
    add(
        f"Same bytes both sides (plain text): ent-exporter's p99 is **{r.scrape_p99_ratio:,.0f}× lower**, its"
        f" throughput **{r.scrape_throughput_ratio:,.0f}× higher**."
    )
    add("")
    add(
        "Series per family: "
        + ", ".join(f"`{k}` {v:,}" for k, v in sorted(r.series_by_family.items(), key=lambda kv: -kv[1]))
        + "."
    )
    add("")
    if r.scrape_floor:
        fl = r.scrape_floor
        add(
            f"**The floor.** The same {fl.scrapers} scrapers against ent-exporter's own server holding one sample"
            f" (`bench/floor.py`), scraped in turn with ent-exporter (round after round, latencies pooled, so that"
            f" other work on the machine weighs on both alike): p50 {fl.p50_ms:.1f} ms, p99 {fl.p99_ms:.1f} ms,"
            f" {fl.per_second:,.0f} scrapes/s."
            f" That is what this machine's scheduling, Python and loopback cost with nothing to serve; ent-exporter's"
            f" gzip p99 is **{r.scrape_floor_ratio:.2f}×** it."
        )
        add("")
    if r.scrape_floor and r.scrape_floor_sized:
        fs = r.scrape_floor_sized
        add(
            f"**The floor at our size.** The same server holding one family of {_bytes(fs.bytes)} gzipped"
            f" (`bench/floor.py --gzip-bytes`), in the same rounds: p50 {fs.p50_ms:.1f} ms, p99 {fs.p99_ms:.1f} ms."
            f" Serving that many bytes with nothing else to do costs {fs.p99_ms / max(r.scrape_floor.p99_ms, 1e-6):.2f}×"
            f" the one-sample floor; ent-exporter's p99 is **{r.scrape_sized_floor_ratio:.2f}×** this one"
            + (
                ": its gap to the one-sample floor is the body's size."
                if r.scrape_sized_floor_ratio <= 1.2
                else ": the rest of its gap is its own work (collectors, scheduler and state, running while it serves)."
            )
        )
        add("")
    if r.series_per_structure:
        add(
            f"**Series budget.** Active series of the structure that has the most, with the default configuration"
            f" (histograms counted as Prometheus stores them: every bucket, _count and _sum; the synthetic data has"
            f" Edifice's five profiles and `unknown`): **{r.per_structure:.0f}** — "
            + ", ".join(f"`{k}` {v:.0f}" for k, v in sorted(r.series_per_structure.items(), key=lambda kv: -kv[1]))
            + "."
        )
        add("")
    for label, pc in (
        ("the default configuration", r.prometheus_default),
        (
            "every heavy breakdown enabled (the series of earlier versions and of the per-scrape baseline)",
            r.prometheus_full,
        ),
    ):
        if pc:
            add(
                f"**A real Prometheus scraping ent-exporter, {label}:** {pc.seconds:.0f} s at a {pc.scrape_interval:.0f} s"
                f" interval: {pc.exporter_series:,} samples per scrape, {pc.head_series:,} head series,"
                f" resident memory {pc.peak_rss_mb:,.0f} MB at its peak ({pc.last_rss_mb:,.0f} MB at the end),"
                f" last scrape {pc.scrape_duration_s * 1000:,.0f} ms."
            )
            add("")

    add("## 3. Hourly, daily, weekly and monthly collectors")
    add("")
    add(
        "Each run on its own, as of the end of the history, in a process of its own (the daemon's runtime),"
        " after the first start: the hourly visitors, daily activity and weekly heatmap then combine the per-day"
        " aggregates in their state (`ent_exporter/aggregation/days.py`) and read only the new events, the last late-commit"
        " limit again, and (activity, heatmap) the partial first day of their window. Their first run from an empty"
        " state, a full recount one statement per day, is in the first start (section 5)."
        " Rows read as above; a sequential scan of an event table would mean a missing index."
    )
    add("")
    add("| collector | cadence | wall time | database time | rows read | sequential scans of event tables |")
    add("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, w in r.windows.items():
        p = w["phase"]
        add(
            f"| {name} | {w['cadence']} | {_ms(p.seconds)} | {_ms(p.db_ms / 1000)} | {p.rows_read:,} |"
            f" {p.event_seq_scans} |"
        )
    add("")
    pm = r.previous_month
    if pm:
        whole, steady, closing = pm["whole"], pm["steady"], pm["closing"]
        add(
            "visitors_previous_month above is its steady state: the hourly visitors kept the closed month's days"
            " as it went (their month to date), and their first run after its last day closed (the late-commit"
            " limit after midnight) combined them once and kept the result; the monthly run, at its schedule,"
            " publishes it. When the hourly visitors' days do not cover the month (a first start, a lost state),"
            " the monthly run reads the month whole, as measured here on the first start's state"
            f" ({r.previous_month_logins:,} logins that month):"
        )
        add("")
        add("| visitors_previous_month | wall time | database time | rows read | login rows read |")
        add("| --- | ---: | ---: | ---: | ---: |")
        for what, p in (
            ("steady state: combined by the hourly visitors", steady),
            ("the hourly visitors' run that combines the closed month", closing),
            ("fallback: the month read whole", whole),
        ):
            add(
                f"| {what} | {_ms(p.seconds)} | {_ms(p.db_ms / 1000)} | {p.rows_read:,} |"
                f" {p.rows_read_by_table.get('login_events', 0):,} |"
            )
        add("")
    add("Which collectors read their whole window (or table) at every run, and why:")
    add("")
    add("| collector | cadence | rows read by a regular run | reads its whole window each run | why |")
    add("| --- | --- | ---: | --- | --- |")
    for name, w in r.windows.items():
        whole_window, why = WINDOW_READS.get(name, (False, "—"))
        add(f"| {name} | {w['cadence']} | {w['phase'].rows_read:,} | {'yes' if whole_window else 'no'} | {why} |")
    add("")

    add("## 4. Memory")
    add("")
    add("| process | peak RSS (VmHWM) |")
    add("| --- | ---: |")
    add(
        f"| `ent-exporter serve` at the full series count: restored state, an instant cycle over"
        f" {o['new_events']:,} new events, then the scrapes | {_mb(r.serve_peak_rss_kb)} |"
    )
    add(f"| ent-exporter's first start (every collector over the whole history) | {_mb(r.first_start_peak_rss_kb)} |")
    add(f"| per-scrape rendering baseline, same series | {_mb(r.baseline_peak_rss_kb)} |")
    add("")
    add(
        "Peak RSS of the first start so far, after each collector (in the order it runs them): "
        + ", ".join(f"{name} {_mb(kb)}" for name, kb in r.first_start_rss_after.items())
        + "."
    )
    add("")

    if r.schedule_run:
        from bench import schedule

        add(schedule.markdown([r.schedule_run]).rstrip("\n"))
        add("")

    add("## 5. First start and seeding")
    add("")
    f = r.first_start
    add(
        f"First start over the whole history (every collector once, counters from the first event):"
        f" **{_ms(f.seconds)}**, database time {_ms(f.db_ms / 1000)}, {f.rows_read:,} rows read"
        f" ({s['events'] / max(f.seconds, 1e-9):,.0f} events/s over the whole start). Per collector: "
        + ", ".join(f"{n} {_ms(t)}" for n, t in sorted(r.first_start_collectors.items(), key=lambda kv: -kv[1]))
        + "."
    )
    add("")
    if s["seeded"]:
        add(
            f"Seeding: **{s['events_per_second']:,.0f} events/s** ({s['events']:,} events and"
            f" {s['counts']['accounts']:,} accounts generated and COPYed in {s['copy_seconds']:.1f} s, event indexes"
            f" dropped), then the six event indexes built in {s['index_seconds']:.1f} s and VACUUM ANALYZE in"
            f" {s['analyze_seconds']:.1f} s: {s['events_per_second_with_indexes']:,.0f} events/s with the indexes."
        )
    else:
        add("Seeding: reused from an earlier run (`--keep`); no seeding figure in this run.")
    add("")
    missed = [what for what, _, _, met in r.targets() if not met]
    add("## Targets missed: the measured limit and its cause" if missed else "## Every target is met")
    add("")
    if not missed:
        add("Nothing to explain here in this run; the notes below say what bounds each figure.")
        add("")
    for what in missed:
        add(f"- **{what}.** " + _cause(r, what))
    if missed:
        add("")
    add(NOTES.strip())
    add("")
    return "\n".join(out)


def _cause(r: Report, what: str) -> str:
    """Why a target was missed in this run, from its figures."""
    if what.startswith("scrape p99, ") and "floor" in what:
        fl, st = r.scrape_floor, r.scrape_gzip
        return (
            f"measured {st.p99_ms:.1f} ms against a floor of {fl.p99_ms:.1f} ms ({r.scrape_floor_ratio:.2f}×),"
            f" both scraped in turn over the same minutes (p50 {st.p50_ms:.1f} ms against {fl.p50_ms:.1f} ms)."
            f" The difference is what a scrape carries: ent-exporter writes the {_bytes(st.bytes)} gzipped"
            " body, pre-rendered and pre-compressed (no query, no render, no compression on a scrape), where"
            " the floor writes a few bytes; on the same 2 cores, the 20 scraper processes then read and copy"
            " it through the loopback. With Prometheus on another machine, as in production, the copies and"
            " the scrapers' CPU leave the exporter's cores."
            + (
                f" Measured: the same server holding as many gzip bytes has a p99 of {r.scrape_floor_sized.p99_ms:.1f} ms"
                f" ({r.scrape_floor_sized.p99_ms / max(fl.p99_ms, 1e-6):.2f}× the one-sample floor), and ent-exporter's"
                f" is {r.scrape_sized_floor_ratio:.2f}× that: "
                + (
                    "the body's size is the limit, not the exporter's work."
                    if r.scrape_sized_floor_ratio <= 1.2  # bench.run.TARGETS["scrape_floor_ratio"]
                    else "beyond the body's size, the exporter's own work (collectors and scheduler sharing its"
                    " cores) adds the rest."
                )
                if r.scrape_floor_sized
                else ""
            )
            if fl
            else "the floor was not measured."
        )
    if what.startswith("scrape p99") and "gzip" in what:
        st = r.scrape_gzip
        return (
            f"measured p99 {st.p99_ms:.1f} ms, p50 {st.p50_ms:.1f} ms, {st.per_second:,.0f} scrapes/s of"
            f" {_bytes(st.bytes)}. The limit is CPU, not the exporter's work per scrape (a write of"
            " pre-rendered bytes, no query, no render): the 20 scrapers are processes on the same 2 cores as"
            " the exporter, so with 20 requests always outstanding the mean latency is 20 / throughput"
            f" ≈ {20 / max(st.per_second, 1e-9) * 1000:.1f} ms (Little's law) and the tail is the scheduler's"
            f" time slices among ~40 runnable threads. Each scrape moves the {_bytes(st.bytes)} body through the"
            " loopback twice (server copy, client copy). With Prometheus servers on other machines, as in"
            " production, the exporter's side is the p50 or less."
        )
    if what.startswith("scrape p99 vs"):
        return f"measured {r.scrape_p99_ratio:.1f}×."
    if "serving" in what:
        return (
            f"measured {_mb(r.serve_peak_rss_kb)}. About 60 MB of it is the interpreter and its libraries"
            f" (numpy, psycopg, prometheus-client), {_bytes(r.body_bytes)} the rendered text beside its gzipped"
            f" copy; the rest is the {r.series:,} published series kept for the exposition (their values and"
            " their formatted lines, so that a change re-formats only what moved) and the counters' states"
            " (totals in the series budget's shape). The window collectors' per-day aggregates are not in it:"
            " they are read from the state directory when those collectors run."
        )
    if "first start" in what:
        steps = list(r.first_start_rss_after.items())
        jumps = [(name, kb - (steps[i - 1][1] if i else 0)) for i, (name, kb) in enumerate(steps) if i]
        name, jump = max(jumps, key=lambda item: item[1]) if jumps else ("-", 0)
        return (
            f"measured {_mb(r.first_start_peak_rss_kb)}; the largest step is the first run of `{name}`"
            f" (+{_mb(jump)}). A window collector's first run recounts each day of its window (one statement a"
            " day, its rows fetched as arrays, accounts read in 8 parts) and encodes it; the runtime trims the"
            " C library's heap after each run (ent_exporter/engine/memory.py), yet each first run leaves its aggregates'"
            " encoded days and Python's own free lists behind it, so the later first runs start higher."
            " A one-off at a first start or after a state loss: the serving process stays at the serving"
            " figure, a window collector's state in memory only while it runs."
        )
    if what.startswith("instant cycle: database time vs its floor"):
        return (
            f"measured {r.instant_floor_ratio:.2f}× ({r.instant_ent.rows_read:,} rows read against"
            f" {r.instant_floor.rows_read if r.instant_floor else 0:,}). Beyond the floor's reads, the logins and"
            " app-access counters each look their own new users up in accounts (the floor looks the users of both"
            " up once), the activations counter reads the current day's fingerprint (an index-only range of its"
            " activations; every 10 minutes, the last 7 days'), and every counter asks for its settled target and probes the gaps of its"
            " first cycle; each statement is planned afresh in the worker's new connection, as the floor's are."
        )
    if what.startswith("instant cycle: database time vs"):
        return (
            f"measured {r.instant_db_ratio:.0f}×: query-exporter's cost grows with the history, ent-exporter's"
            " with the new events, so the ratio grows with --events and shrinks with --new-events."
        )
    if what.startswith("instant cycle: ent-exporter"):
        return f"measured {r.instant_ent.db_ms:.1f} ms of database time."
    if what.startswith("hourly visitors") and "visitors" in r.windows:
        from ent_exporter.aggregation.days import PART_USERS

        phase = r.windows["visitors"]["phase"]
        accounts = phase.rows_read_by_table.get("accounts", 0)
        seeded = int(r.seeding.get("accounts", 0))
        return (
            f"measured {phase.seconds:.2f} s, {phase.rows_read:,} rows read, {accounts:,} of them accounts' rows"
            f" ({accounts / max(seeded, 1):.1f} times the {seeded:,} accounts). Besides the new logins, a"
            " regular run looks every visitor's structures up in accounts: in parts of the users (a part holds"
            f" about {PART_USERS:,} of them; each part is a scan of accounts), so that no more than a part's"
            " attachments are in memory at once, for the serving process's peak (the whole schedule's target);"
            " read at once, accounts are one scan, the run's memory a few times more."
        )
    if what.startswith("every other hourly") or what.startswith("hourly visitors"):
        timings = ", ".join(
            f"{n} {w['phase'].seconds:.2f} s ({w['phase'].rows_read:,} rows)" for n, w in r.windows.items()
        )
        return (
            f"measured: {timings}. The collectors still reading their whole window each run are listed in"
            " section 3; see a plan with EXPLAIN (ANALYZE, BUFFERS)."
        )
    if what.startswith("instant cycle: wall time"):
        return (
            f"measured {r.instant_wall_over_db:.1f}× (wall {_ms(r.instant_ent.seconds)}; the exporter process's CPU"
            f" time {_ms(r.instant_ent_cpu_seconds)}, {r.instant_ent_cpu_seconds * 1000 / max(r.instant_ent.db_ms, 1e-6):.1f}×"
            " the database time; load average"
            f" {r.load_at_instant[0] if r.load_at_instant else float('nan'):.1f} on {r.machine.get('cores', '?')} cores):"
            " per collector "
            + ", ".join(f"{n} {_ms(t)}" for n, t in sorted(r.instant_ent_collectors.items()))
            + ". The database part is proportional to the new events, and so is most of the Python: the"
            " series that moved are formatted, added to the budget's marginals and appended to the state's"
            " journal (with fsync). What is still proportional to each counter's series is C-level work (dict"
            " copies, one comparison per series to find what moved, the family's lines joined and gzipped"
            f" again: app accesses {r.series_by_family.get('ent_app_accesses_total', 0):,} series), and each"
            " statement's round trip (a pool check, a snapshot's BEGIN and ROLLBACK). This is the first cycle"
            " of a freshly started process, as the bench measures it; a daemon's later cycles also have"
            " their statements prepared (psycopg prepares a statement run five times on a connection)."
        )
    if what.startswith("scrape p99 during the ") and r.schedule_run:
        run = r.schedule_run
        window = next(w for w in run.runs if what.startswith(f"scrape p99 during the {w.cadence} run"))
        return (
            f"measured {window.scrapes.p99_ms:.1f} ms over {window.scrapes.scrapes:,} scrapes during the"
            f" {window.cadence} run ({window.seconds:.1f} s) against an idle p99 of {run.idle.p99_ms:.1f} ms. A scrape"
            " is a write of pre-rendered bytes, but it needs the interpreter lock, which the run's Python work"
            " (per-day state decoded and combined, the new samples published and their families re-rendered)"
            " holds in stretches, handing it over only once the switch interval (5 ms) has passed: measured apart"
            " in “Scrapes while Python works” (`bench/lock_wait.py`). The smaller the body, the smaller the idle"
            " p99 and the larger the same wait weighs."
        )
    if what.startswith("serve's peak RSS") and r.schedule_run:
        run = r.schedule_run
        return (
            f"measured {run.peak_rss_mb:.0f} MB, {run.start_peak_rss_kb / 1024:.0f} MB before the first window run: "
            + ", ".join(f"{w.cadence} {w.peak_rss_kb / 1024:.0f} MB" for w in run.runs)
            + " after each run (one at a time, each reading its state in pieces)."
        )
    if what.startswith("active series"):
        return f"measured {r.per_structure:.0f} per structure."
    if what.startswith("Prometheus"):
        return "the Prometheus step was skipped (--prometheus-seconds 0) or prometheus is not installed."
    if what.startswith("seeding"):
        return (
            f"measured {r.seeding['events_per_second']:,.0f} events/s: Python generates the rows on one core"
            " while PostgreSQL parses the COPY on the other; a loaded machine slows both."
        )
    return "see the figures above."


NOTES = """
## How it is measured, and what limits it

- **One database, two roles.** ent-exporter connects as `bench_ent`, query-exporter as `bench_qe`;
  pg_stat_statements (preloaded in the embedded server, with `track_planning` on: database time is
  planning plus execution) is reset before each measured phase and read per role afterwards. Table statistics are read once every backend of the phase has exited,
  so they are complete.
- **Instant cycle.** ent-exporter's cost is proportional to the new events: an index range scan on
  `event_id` above the watermark, grouped per user, and one index look-up in `accounts` per user
  of the new events. query-exporter's is proportional to the history: every cycle scans the three
  event tables and joins them to all accounts. The ratio therefore grows with the history (with
  `--events 50000000` expect it about five times larger: query-exporter's side grows linearly with
  the tables, ent-exporter's does not) and shrinks with the number of new events per cycle.
- **Scrapes** hand out bytes rendered when a collector published, so a scrape costs the socket
  writes; what limits p99 is the number of scrapers sharing the 2 cores with the exporter (each
  scraper is a process of its own, on a keep-alive connection, as independent Prometheus servers
  are). The per-scrape baseline renders all series through prometheus-client at each request:
  its cost grows with the series count, and concurrent scrapes queue behind one another on its
  interpreter lock.
- **The bench's PostgreSQL** is the embedded server with pg_stat_statements preloaded and, for
  the bulk load, `wal_level = minimal` (the seed truncates and COPYs in one transaction, so the
  rows are not WAL-logged); the exporters' read-only statements are unaffected by it.
- **Window collectors.** Hourly visitors, daily activity and the weekly heatmap keep exact per-day
  aggregates in their state (per local day: login counts per dense user number, and profile or
  hour of day, as numpy arrays) and combine days: a run reads the new events, the last late-commit
  limit again (late commits), each closed day once more (its final recount) and, for windows that
  start mid-day (28, 30, 90 days), that one partial day. They read `accounts` once per run for
  attribution. The previous-month visitors (monthly) combine the days the hourly visitors kept;
  accounts (daily) and structure info still read their whole table (section 3 says why).
- **Memory** is dominated by the samples kept for the exposition (one Python tuple per series) and
  by the rendered text and its gzipped copy; it grows with the series count, not with events.
- **Seeding** is Python generating the rows (one core) while PostgreSQL parses the COPY (the other);
  indexes are built once afterwards.
"""
