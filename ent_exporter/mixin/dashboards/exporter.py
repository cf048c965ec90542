"""Exporter health: collector last success age, durations, failures, source up, series counts."""

from ent_exporter.mixin.config import CONFIG
from ent_exporter.mixin.panels import (
    INSTANCE,
    UP_DOWN,
    bargauge,
    dashboard,
    profile_variable,
    row,
    stat,
    state_timeline,
    structure_variable,
    table,
    target,
    timeseries,
    value_map,
)
from ent_exporter.mixin.rules import (
    ACCOUNT_FEED_FAILED,
    ACCOUNT_FEED_OVERDUE,
    ACCOUNT_FEED_REJECTING,
    COLLECTOR_STALE,
    EXPORTER_DOWN,
    SOURCE_DATABASE_DOWN,
    alerting_rules,
    num,
)

J = f"{CONFIG.exporter_selector}, {INSTANCE}"
AGE = f"time() - ent_exporter_collector_last_success_timestamp_seconds{{{J}}}"
AGE_IN_CADENCES = (
    f"({AGE})\n/ on (job, instance, collector) group_left (cadence)\nent_exporter_collector_cadence_seconds{{{J}}}"
)
# Both expressions of the stale alert (overdue, never succeeded), as the alert evaluates them.
STALE_EXPRS = [
    rule["expr"].strip()
    for group in alerting_rules()
    for rule in group["rules"]
    if rule.get("alert") == COLLECTOR_STALE
]
STALE_COLLECTORS = " or\n".join(f"({expr})" for expr in STALE_EXPRS).replace(CONFIG.exporter_selector + "}", J + "}")
UP_MAPPINGS = value_map({"0": "Down", "1": "Up"}, {"0": "red", "1": "green"})


def instant(expr: str, legend: str = "", ref: str = "A", fmt: str = "time_series"):
    return target(expr, legend, ref=ref, instant=True, fmt=fmt)


panels = [
    row("Now"),
    (
        stat(
            "Exporter scraped",
            f"Whether Prometheus' last scrape of the exporter succeeded (up{{{J}}}). Alert: {EXPORTER_DOWN}.",
            instant(f"up{{{J}}}", "{{instance}}"),
            "none",
            UP_DOWN,
            color_mode="background",
            mappings=UP_MAPPINGS,
        ),
        4,
        4,
    ),
    (
        stat(
            "Source database",
            "Whether the exporter's last attempt to reach the platform's PostgreSQL succeeded "
            f"(ent_exporter_source_up). Alert: {SOURCE_DATABASE_DOWN}.",
            instant(f"ent_exporter_source_up{{{J}}}", "{{instance}}"),
            "none",
            UP_DOWN,
            color_mode="background",
            mappings=UP_MAPPINGS,
        ),
        4,
        4,
    ),
    (
        stat(
            "Stale collectors",
            "Collectors whose last success is older than their cadence plus a tenth of it (1 min to 1 h), or that "
            f"failed and never succeeded: what {COLLECTOR_STALE} alerts on, before its delay.",
            instant(f"count({STALE_COLLECTORS}) or vector(0)"),
            "short",
            [(None, "green"), (1, "red")],
        ),
        4,
        4,
    ),
    (
        stat(
            "Collector failures",
            "Failed collector runs during the period of the time picker (database unreachable, query error or "
            "timeout).",
            instant(f"sum(increase(ent_exporter_collector_failures_total{{{J}}}[$__range]))"),
            "short",
            [(None, "green"), (1, "orange")],
            decimals=0,
        ),
        4,
        4,
    ),
    (
        stat(
            "Series exported",
            "Series currently exported by the exporter, all metric families together (ent_exporter_series).",
            instant(f"sum(ent_exporter_series{{{J}}})"),
            "short",
        ),
        4,
        4,
    ),
    (
        stat(
            "Folded series",
            'Series folded into label value "other" by the cardinality guard during the period '
            "(ent_exporter_folded_series_total): anything above 0 means a family hit limits.max_series_per_family.",
            instant(f"sum(increase(ent_exporter_folded_series_total{{{J}}}[$__range])) or vector(0)"),
            "short",
            [(None, "green"), (1, "orange")],
            decimals=0,
        ),
        4,
        4,
    ),
    row("Collectors"),
    (
        bargauge(
            "Last success age, in cadences",
            "Per collector: time since its last success divided by its cadence (1 minute, 1 hour, 1 day, 1 week "
            "or 31 days). Below 1 is on time; yellow from 1 (the next run is due), red from 1.1 (a tenth late: "
            f"about where {COLLECTOR_STALE} fires; the margin is clamped to 1 min to 1 h).",
            instant(AGE_IN_CADENCES, "{{collector}} ({{cadence}})"),
            "suffix: × cadence",
            [(None, "green"), (1, "yellow"), (1.1, "red")],
            max_value=2,
        ),
        12,
        10,
    ),
    (
        timeseries(
            "Time since last success",
            "Per collector: hours since its last complete run (log scale: cadences go from a minute to a month).",
            target(f"({AGE}) / 3600", "{{collector}}"),
            "suffix:h",
            min_value=None,
            log_scale=True,
        ),
        12,
        10,
    ),
    (
        timeseries(
            "Run duration",
            "Per collector: duration of its last run, successful or not (ent_exporter_collector_duration_seconds).",
            target(f"ent_exporter_collector_duration_seconds{{{J}}}", "{{collector}}"),
            "s",
            [(None, "green"), (30, "yellow"), (300, "red")],
            legend_calcs=["lastNotNull", "max"],
            interval="1m",
            max_points=500,
        ),
        12,
        8,
    ),
    (
        timeseries(
            "Collector failures",
            "Per collector: failed runs in each interval (increase of ent_exporter_collector_failures_total over "
            "the interval, at least a minute): the bars add up to the failures of the period.",
            target(
                f"sum by (collector) (increase(ent_exporter_collector_failures_total{{{J}}}[$__interval]))",
                "{{collector}}",
            ),
            "short",
            [(None, "green"), (1, "red")],
            bars=True,
            interval="1m",
            max_points=300,
            axis_label="failed runs per interval",
        ),
        12,
        8,
    ),
    row("The exporter's process"),
    (
        timeseries(
            "CPU",
            "CPU time the exporter's process uses per second (1 = one core), from prometheus-client's "
            "process collector (process_cpu_seconds_total). Collector runs show as short peaks.",
            target(f"rate(process_cpu_seconds_total{{{J}}}[$__rate_interval])", "{{instance}}"),
            "percentunit",
            [(None, "green"), (0.8, "red")],
            interval="1m",
            max_points=500,
        ),
        8,
        7,
    ),
    (
        timeseries(
            "Memory",
            "Resident memory of the exporter's process (process_resident_memory_bytes): it holds the last "
            "result of every collector and their rendered text.",
            target(f"process_resident_memory_bytes{{{J}}}", "{{instance}}"),
            "bytes",
            interval="1m",
            max_points=500,
        ),
        8,
        7,
    ),
    (
        timeseries(
            "Open file descriptors",
            "File descriptors the process has open (process_open_fds) against its limit (process_max_fds, "
            "right): database connections, scrapes and the state files.",
            [
                target(f"process_open_fds{{{J}}}", "open {{instance}}", ref="A"),
                target(f"process_max_fds{{{J}}}", "limit {{instance}}", ref="B"),
            ],
            "short",
            overrides=[
                {
                    "matcher": {"id": "byFrameRefID", "options": "B"},
                    "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}],
                }
            ],
            interval="1m",
            max_points=500,
        ),
        8,
        7,
    ),
    (
        stat(
            "Uptime",
            "Time since the exporter's process started (process_start_time_seconds): a recent restart explains "
            "counters starting over in the probes (in memory) and collectors running at start-up.",
            instant(f"(time() - process_start_time_seconds{{{J}}}) / 86400", "{{instance}}"),
            "suffix:d",
            decimals=1,
        ),
        24,
        3,
    ),
    row("Source, scrapes and series", collapsed=True),
    (
        state_timeline(
            "Source database and scrape",
            "Up (green) or down (red) over time: the exporter's access to its database "
            "(ent_exporter_source_up) and Prometheus' scrape of the exporter (up).",
            [
                target(
                    f"min_over_time(ent_exporter_source_up{{{J}}}[$__interval])",
                    "source database {{instance}}",
                    ref="A",
                ),
                target(f"min_over_time(up{{{J}}}[$__interval])", "scrape {{instance}}", ref="B"),
            ],
            "none",
            UP_DOWN,
            mappings=UP_MAPPINGS,
        ),
        12,
        6,
    ),
    (
        timeseries(
            "Scrape duration",
            "How long Prometheus takes to scrape the exporter (scrape_duration_seconds): a scrape only copies "
            "a pre-rendered body, so this stays small whatever the database size.",
            target(f"scrape_duration_seconds{{{J}}}", "{{instance}}"),
            "s",
            [(None, "green"), (1, "yellow"), (10, "red")],
        ),
        12,
        6,
    ),
    (
        bargauge(
            "Series per family",
            "Series currently exported per metric family (ent_exporter_series): where the cardinality is.",
            instant(f"sort_desc(ent_exporter_series{{{J}}})", "{{family}}"),
            "short",
        ),
        12,
        10,
    ),
    (
        timeseries(
            "Samples per scrape and folded series",
            "Samples in each scrape of the exporter (scrape_samples_scraped), and series folded by the "
            "cardinality guard per interval (right axis: should stay at 0).",
            [
                target(f"scrape_samples_scraped{{{J}}}", "samples per scrape", ref="A"),
                target(
                    f"sum(increase(ent_exporter_folded_series_total{{{J}}}[$__interval]))",
                    "folded series",
                    ref="B",
                ),
            ],
            "short",
            interval="2m",  # the exporter is scraped every 30 s: an interval holds at least four scrapes
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "folded series"},
                    "properties": [
                        {"id": "custom.axisPlacement", "value": "right"},
                        {"id": "color", "value": {"mode": "fixed", "fixedColor": "orange"}},
                    ],
                }
            ],
        ),
        12,
        10,
    ),
]

# -- account feeds (issue 16): the directory import, Moodle's synchronisation tasks ---------------
FEED_AGE = f"time() - ent_account_feed_last_success_timestamp_seconds{{{J}}}"
FEED_MAX_AGE_HOURS = CONFIG.account_feed_max_age_hours
# The row counts of a feed's last run (ent_account_feed_last_run_rows{outcome}), as its table's columns.
FEED_ROWS = {"read": "Read", "imported": "Imported", "rejected": "Rejected", "skipped": "Skipped"}
panels += [
    row("Account feeds"),
    (
        bargauge(
            "Time since each feed's last success",
            "Per account feed (the directory import; Moodle's user and enrolment synchronisation tasks): time "
            f"since its last successful run. Red from {num(CONFIG.account_feed_max_age_hours)} hours, where "
            f"{ACCOUNT_FEED_OVERDUE} fires.",
            instant(f"({FEED_AGE}) / 3600", "{{feed}}"),
            "suffix:h",
            [(None, "green"), (FEED_MAX_AGE_HOURS * 0.9, "yellow"), (FEED_MAX_AGE_HOURS, "red")],
            decimals=1,
        ),
        8,
        8,
    ),
    (
        state_timeline(
            "Last run succeeded",
            f"Per feed: whether its last run succeeded (ent_account_feed_last_run_success). Alert: "
            f"{ACCOUNT_FEED_FAILED}.",
            target(f"min_over_time(ent_account_feed_last_run_success{{{J}}}[$__interval])", "{{feed}}"),
            "none",
            UP_DOWN,
            mappings=value_map({"0": "Failed", "1": "Succeeded"}, {"0": "red", "1": "green"}),
        ),
        8,
        8,
    ),
    (
        table(
            "Last run of each feed",
            "Per feed, its last run: when it ended, its duration, and its rows: read, imported, rejected (invalid) "
            f"and skipped (repeated). Alert {ACCOUNT_FEED_REJECTING} above "
            f"{num(CONFIG.account_feed_rejected_ratio * 100)} % rejected.",
            # One row per feed (and exporter): every query a table keyed by (instance, feed), merged into one
            # frame; the end of the run a time field (a date, not an epoch), each row count a column of its own.
            [
                instant(
                    f"max by (instance, feed) (ent_account_feed_last_run_timestamp_seconds{{{J}}}) * 1000",
                    fmt="table",
                    ref="A",
                ),
                instant(
                    f"max by (instance, feed) (ent_account_feed_last_run_duration_seconds{{{J}}})", fmt="table", ref="B"
                ),
                *(
                    instant(
                        f'max by (instance, feed) (ent_account_feed_last_run_rows{{{J}, outcome="{outcome}"}})',
                        fmt="table",
                        ref=ref,
                    )
                    for ref, outcome in zip("CDEF", FEED_ROWS)
                ),
            ],
            "short",
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "indexByName": {"feed": 0, "Value #A": 1, "Value #B": 2, "instance": 7},
                        "renameByName": {
                            "feed": "Feed",
                            "instance": "Exporter",
                            "Value #A": "Last run ended",
                            "Value #B": "Duration",
                            **{f"Value #{ref}": FEED_ROWS[outcome] for ref, outcome in zip("CDEF", FEED_ROWS)},
                        },
                    },
                },
                {
                    "id": "convertFieldType",
                    "options": {"conversions": [{"targetField": "Last run ended", "destinationType": "time"}]},
                },
            ],
            overrides=[
                {"matcher": {"id": "byName", "options": "Duration"}, "properties": [{"id": "unit", "value": "s"}]},
                {
                    "matcher": {"id": "byName", "options": "Last run ended"},
                    "properties": [{"id": "unit", "value": "dateTimeAsLocal"}],
                },
            ],
            sort_by=[{"displayName": "Feed", "desc": False}],
        ),
        8,
        8,
    ),
]

dashboard = dashboard(
    "exporter",
    "ENT exporter health",
    "Is the exporter working: collectors' last success age against their cadence, run durations, failures, "
    "access to the source database, scrapes and series counts.",
    # structure and profile are hidden: they only travel along the links between the ENT dashboards.
    panels,
    [structure_variable(hide=True), profile_variable(hide=True)],
    time_from="now-24h",
)
