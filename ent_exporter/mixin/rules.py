"""Prometheus recording and alerting rules of the mixin, built from config.py.

Written to prometheus/rules/ by ``python -m ent_exporter.mixin.generate``; the files there
are generated, edit this module (or config.py) instead. Naming follows the
monitoring-mixin conventions: recording rules ``level:metric:operations``, alerts
CamelCase with the ``ENT`` prefix, every alert with a ``severity`` label and
``summary`` / ``description`` / ``runbook_url`` annotations.
"""

from __future__ import annotations

from typing import Any

from ent_exporter.mixin.config import CONFIG, Config
from ent_exporter.probes.base import REASONS

# Recording rules: what the dashboards and alerts compute again and again.
CONNECTOR_OUTCOME_RATE = "connector_outcome:ent_connector_requests:rate5m"
CONNECTOR_RATE = "connector:ent_connector_requests:rate5m"
CONNECTOR_FAILURE_RATIO = "connector:ent_connector_requests:failure_ratio_rate5m"
CONNECTOR_SUCCESS_RATIO = "connector:ent_connector_requests:success_ratio_rate5m"
CONNECTOR_BUCKET_RATE = "connector_le:ent_connector_request_duration_seconds_bucket:rate5m"
CONNECTOR_LATENCY_QUANTILE = "connector_quantile:ent_connector_request_duration_seconds:histogram_quantile_rate5m"
STRUCTURE_LOGINS_RATE = "structure:ent_logins:rate5m"
STRUCTURE_PROFILE_LOGINS_RATE = "structure_profile:ent_logins:rate5m"
LATENCY_QUANTILES = ("0.5", "0.95", "0.99")
# The counter of a connector's calls at the last moment it was busy, carried forward while no call
# comes: what ENTConnectorSilent remembers (see silent_memory_rule).
CONNECTOR_LAST_BUSY_TOTAL = "connector:ent_connector_requests:total_last_busy"
# The labels every connector rule keeps: one exporter's connector is never merged with another's.
BY_CONNECTOR = "job, instance, connector"
BY_STRUCTURE = "job, instance, structure"  # a structure code is unique within one platform (exporter) only

# The alerts (names are part of the interface: Alertmanager routes, the runbook's anchors).
CONNECTOR_FAILURE_RATIO_HIGH = "ENTConnectorFailureRatioHigh"
CONNECTOR_FAILURE_RATIO_HIGH_LOW_TRAFFIC = "ENTConnectorFailureRatioHighLowTraffic"
CONNECTOR_SILENT = "ENTConnectorSilent"
CONNECTOR_LATENCY_HIGH = "ENTConnectorLatencyHigh"
EXPORTER_DOWN = "ENTExporterDown"
COLLECTOR_STALE = "ENTCollectorStale"
SOURCE_DATABASE_DOWN = "ENTSourceDatabaseDown"
WATCHDOG = "ENTWatchdog"
CONNECTOR_ALERTS = (
    CONNECTOR_FAILURE_RATIO_HIGH,
    CONNECTOR_FAILURE_RATIO_HIGH_LOW_TRAFFIC,
    CONNECTOR_SILENT,
    CONNECTOR_LATENCY_HIGH,
)
CONNECTOR_PROBE_FAILING = "ENTConnectorProbeFailing"
CONNECTOR_PROBES_UNRELIABLE = "ENTConnectorProbesUnreliable"
CERTIFICATE_EXPIRING = "ENTConnectorCertificateExpiring"
CERTIFICATE_EXPIRY_IMMINENT = "ENTConnectorCertificateExpiryImminent"
PROBE_ALERTS = (CONNECTOR_PROBE_FAILING, CONNECTOR_PROBES_UNRELIABLE, CERTIFICATE_EXPIRING, CERTIFICATE_EXPIRY_IMMINENT)


def num(value: float) -> str:
    """A threshold as PromQL and humans write it: 0.1, 2.5, 2 (not 2.0)."""
    return f"{value:g}"


def _week_window(c: Config) -> tuple[str, str]:
    """A week earlier around the same instant, [now - 1w - margin - window, now - 1w + margin]:
    (range, offset) for rate(...[range] offset offset)."""
    margin = c.connector_silent_week_margin_hours
    return f"{2 * margin * 60 + seconds(c.connector_silent_window) // 60}m", f"{7 * 24 - margin}h"


def silent_memory_rule(c: Config = CONFIG) -> dict:
    """Per connector, the calls counter as it was the last time the connector was busy, as long as
    no call came since; absent otherwise.

    Busy: at least connector_silent_usual_per_minute calls a minute over the last
    connector_silent_before, and as many a week earlier around this time. While busy the rule records
    the counter; once calls stop it carries its own last value forward for as long as the counter has
    not moved past it (counts are whole numbers: "less than one call more" is "no call"). Calls coming
    back end it; a gap in the data (Prometheus or the exporter down) of up to
    connector_silent_memory_gap does not. ENTConnectorSilent fires while this exists and the last
    connector_silent_window had no call: from the start of the silence until calls come back, however
    long, where a comparison with "the hour before" would stop an hour after the calls did.
    """
    per = BY_CONNECTOR
    usual = num(c.connector_silent_usual_per_minute)
    week_range, week_offset = _week_window(c)
    gap = c.connector_silent_memory_gap
    calls = f"sum by ({per}) (ent_connector_requests_total)"
    return {
        "record": CONNECTOR_LAST_BUSY_TOTAL,
        "expr": (
            f"(\n  {calls}\n"
            f"  and on ({per})\n"
            f"  sum by ({per}) (rate(ent_connector_requests_total[{c.connector_silent_before}])) * 60 >= {usual}\n"
            f"  and on ({per})\n"
            f"  sum by ({per}) (rate(ent_connector_requests_total[{week_range}] offset {week_offset})) * 60"
            f" >= {usual}\n)\n"
            "or\n"
            f"(\n  last_over_time({CONNECTOR_LAST_BUSY_TOTAL}[{gap}])\n"
            f"  and on ({per})\n"
            f"  ({calls} - on ({per}) last_over_time({CONNECTOR_LAST_BUSY_TOTAL}[{gap}])) < 1\n)\n"
        ),
    }


def recording_rules(c: Config = CONFIG) -> list[dict]:
    rules: list[dict[str, Any]] = [
        {
            "record": CONNECTOR_OUTCOME_RATE,
            "expr": f"sum by ({BY_CONNECTOR}, outcome) (rate(ent_connector_requests_total[5m]))",
        },
        {"record": CONNECTOR_RATE, "expr": f"sum by ({BY_CONNECTOR}) (rate(ent_connector_requests_total[5m]))"},
        # A connector without any failure has no outcome="failure" series: it counts as 0, not as absent.
        {
            "record": CONNECTOR_FAILURE_RATIO,
            "expr": (
                f'(\n  sum by ({BY_CONNECTOR}) ({CONNECTOR_OUTCOME_RATE}{{outcome="failure"}})\n'
                f"  or\n  0 * {CONNECTOR_RATE}\n)\n/\n{CONNECTOR_RATE}\n"
            ),
        },
        {"record": CONNECTOR_SUCCESS_RATIO, "expr": f"1 - {CONNECTOR_FAILURE_RATIO}"},
        {
            "record": CONNECTOR_BUCKET_RATE,
            "expr": f"sum by ({BY_CONNECTOR}, le) (rate(ent_connector_request_duration_seconds_bucket[5m]))",
        },
    ]
    for quantile in LATENCY_QUANTILES:
        rules.append(
            {
                "record": CONNECTOR_LATENCY_QUANTILE,
                "expr": f"histogram_quantile({quantile}, {CONNECTOR_BUCKET_RATE})",
                "labels": {"quantile": quantile},
            }
        )
    rules += [
        {"record": STRUCTURE_LOGINS_RATE, "expr": f"sum by ({BY_STRUCTURE}) (rate(ent_logins_total[5m]))"},
        {
            "record": STRUCTURE_PROFILE_LOGINS_RATE,
            "expr": f"sum by ({BY_STRUCTURE}, profile) (rate(ent_logins_total[5m]))",
        },
        silent_memory_rule(c),
    ]
    return [{"name": "ent-exporter.rules", "rules": rules}]


def _alert(
    c: Config,
    name: str,
    expr: str,
    duration: str,
    severity: str,
    summary: str,
    description: str,
    keep_firing_for: str | None = None,
    labels: dict | None = None,
) -> dict:
    rule: dict[str, Any] = {"alert": name, "expr": expr, "for": duration}
    if keep_firing_for:
        rule["keep_firing_for"] = keep_firing_for
    rule.update(
        {
            "labels": {"severity": severity, **(labels or {})},
            "annotations": {"summary": summary, "description": description, "runbook_url": c.runbook_url(name)},
        }
    )
    return rule


def seconds(duration: str) -> int:
    """A Prometheus duration of one unit (15m, 1h, 2d) in seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    return int(duration[:-1]) * units[duration[-1]]


def alerting_rules(c: Config = CONFIG) -> list[dict]:
    sel = c.exporter_selector
    min_rate = c.connector_min_requests_5m
    slow = c.connector_failure_slow_window
    silent = c.connector_silent_window
    margin = c.connector_silent_week_margin_hours
    connectors = [
        _alert(
            c,
            CONNECTOR_FAILURE_RATIO_HIGH,
            f"{CONNECTOR_FAILURE_RATIO} > {num(c.connector_failure_ratio)}\n"
            f"and on ({BY_CONNECTOR})\n{CONNECTOR_RATE} * 300 >= {min_rate}\n",
            c.connector_failure_for,
            "critical",
            "Connector {{ $labels.connector }} fails {{ $value | humanizePercentage }} of its calls.",
            "Over the last 5 minutes {{ $value | humanizePercentage }} of the calls through connector "
            f"{{{{ $labels.connector }}}} failed (alert above {num(c.connector_failure_ratio * 100)}% with at least "
            f"{min_rate} calls in 5 minutes). Users who go through it (logins, Pronote, the GAR...) are affected.",
            keep_firing_for=c.connector_failure_keep_firing_for,
        ),
        _alert(
            c,
            CONNECTOR_FAILURE_RATIO_HIGH_LOW_TRAFFIC,
            f'sum by ({BY_CONNECTOR}) (increase(ent_connector_requests_total{{outcome="failure"}}[{slow}]))\n'
            f"/\nsum by ({BY_CONNECTOR}) (increase(ent_connector_requests_total[{slow}]))\n"
            f"> {num(c.connector_failure_ratio)}\n"
            f"and on ({BY_CONNECTOR})\nsum by ({BY_CONNECTOR}) (increase(ent_connector_requests_total[{slow}]))"
            f" >= {c.connector_min_requests_slow_window}\n"
            f"unless on ({BY_CONNECTOR})\n{CONNECTOR_RATE} * 300 >= {min_rate}\n",
            c.connector_failure_slow_for,
            "warning",
            "Connector {{ $labels.connector }} fails {{ $value | humanizePercentage }} of its few calls.",
            f"Over the last {slow} {{{{ $value | humanizePercentage }}}} of the calls through connector "
            f"{{{{ $labels.connector }}}} failed (alert above {num(c.connector_failure_ratio * 100)}% with at least "
            f"{c.connector_min_requests_slow_window} calls in {slow}), while it has too little traffic for "
            f"{CONNECTOR_FAILURE_RATIO_HIGH} (fewer than {min_rate} calls in 5 minutes): at night, or once users "
            "gave up retrying.",
        ),
        _alert(
            c,
            CONNECTOR_SILENT,
            f"sum by ({BY_CONNECTOR}) (increase(ent_connector_requests_total[{silent}])) == 0\n"
            f"and on ({BY_CONNECTOR})\n"
            f"{CONNECTOR_LAST_BUSY_TOTAL}\n",
            c.connector_silent_for,
            "warning",
            "Connector {{ $labels.connector }} receives no call (none for " + silent + " at least).",
            f"Connector {{{{ $labels.connector }}}} has had no call at all for {silent} or more, although it had "
            f"at least {num(c.connector_silent_usual_per_minute)} call(s) per minute in the {c.connector_silent_before}"
            f" before its calls stopped, and as many a week earlier around that time (within {margin} h either side: "
            "the same local hour across a DST change). It keeps firing until calls come back. The integration may be "
            "disconnected, or the platform no longer logs its calls.",
        ),
        _alert(
            c,
            CONNECTOR_LATENCY_HIGH,
            f'{CONNECTOR_LATENCY_QUANTILE}{{quantile="0.95"}} > {num(c.connector_latency_p95_seconds)}\n'
            f"and on ({BY_CONNECTOR})\n{CONNECTOR_RATE} * 300 >= {min_rate}\n",
            c.connector_latency_for,
            "warning",
            "Connector {{ $labels.connector }} is slow: p95 latency {{ $value | humanizeDuration }}.",
            "The 95th percentile of the call duration of connector {{ $labels.connector }} over 5 minutes is "
            f"{{{{ $value | humanizeDuration }}}} (alert above {num(c.connector_latency_p95_seconds)} s "
            f"with at least {min_rate} calls in 5 minutes, for {c.connector_latency_for}).",
        ),
    ]
    per_probe = "job, instance, connector, kind"
    window = c.connector_probe_ratio_window
    probes = [
        _alert(
            c,
            CONNECTOR_PROBE_FAILING,
            # The last value seen within the window, not the instant one: an exporter restart (its series go
            # stale for a scrape or two) is not a false "resolved"; a success resolves at once.
            f"last_over_time(ent_connector_probe_success{{{sel}}}[{c.connector_probe_restart_gap}]) == 0\n",
            c.connector_probe_failing_for,
            "critical",
            "Connector {{ $labels.connector }} fails its {{ $labels.kind }} probe.",
            "The exporter's {{ $labels.kind }} probe of connector {{ $labels.connector }} has failed every time for "
            f"{c.connector_probe_failing_for} (about 3 probes in a row at the default 30 s interval). "
            f"ent_connector_probe_failures_total says why ({', '.join(REASONS)}); "
            "the exporter's log has the detail.",
        ),
        _alert(
            c,
            CONNECTOR_PROBES_UNRELIABLE,
            f'sum by ({per_probe}) (increase(ent_connector_probes_total{{{sel}, outcome="failure"}}[{window}]))\n'
            f"/\nsum by ({per_probe}) (increase(ent_connector_probes_total{{{sel}}}[{window}]))\n"
            f"> {num(c.connector_probe_failure_ratio)}\n",
            c.connector_probe_ratio_for,
            "warning",
            "Connector {{ $labels.connector }} fails {{ $value | humanizePercentage }} of its {{ $labels.kind }} "
            "probes.",
            f"Over the last {window} {{{{ $value | humanizePercentage }}}} of the exporter's {{{{ $labels.kind }}}} "
            f"probes of connector {{{{ $labels.connector }}}} failed (alert above "
            f"{num(c.connector_probe_failure_ratio * 100)}%): it works only intermittently.",
        ),
        _alert(
            c,
            CERTIFICATE_EXPIRING,
            f"ent_connector_certificate_expiry_timestamp_seconds{{{sel}}} - time()\n"
            f"< {num(c.certificate_expiry_warning_days)} * 86400\n",
            c.certificate_expiry_for,
            "warning",
            "The certificate of connector {{ $labels.connector }} expires in {{ $value | humanizeDuration }}.",
            "The TLS certificate the exporter's probes of connector {{ $labels.connector }} see expires in "
            f"{{{{ $value | humanizeDuration }}}} (alert under {num(c.certificate_expiry_warning_days)} days). "
            "Renew it before the connector stops working.",
            keep_firing_for=c.connector_probe_restart_gap,
        ),
        _alert(
            c,
            CERTIFICATE_EXPIRY_IMMINENT,
            f"ent_connector_certificate_expiry_timestamp_seconds{{{sel}}} - time()\n"
            f"< {num(c.certificate_expiry_critical_days)} * 86400\n",
            c.certificate_expiry_for,
            "critical",
            "The certificate of connector {{ $labels.connector }} expires in {{ $value | humanizeDuration }}.",
            "The TLS certificate the exporter's probes of connector {{ $labels.connector }} see expires in "
            f"{{{{ $value | humanizeDuration }}}} (alert under {num(c.certificate_expiry_critical_days)} days; "
            "negative: already expired). Clients that verify it will refuse the connector.",
            keep_firing_for=c.connector_probe_restart_gap,
        ),
    ]
    exporter = [
        _alert(
            c,
            EXPORTER_DOWN,
            f"up{{{sel}}} == 0\nor\nabsent(up{{{sel}}})\n",
            c.exporter_down_for,
            "critical",
            "ent-exporter{{ with $labels.instance }} {{ . }}{{ end }} is down or not scraped.",
            f"Prometheus has not scraped the ENT exporter (job {c.exporter_job}) for {c.exporter_down_for}: "
            "no usage statistics are collected and the connector alerts are blind.",
        ),
        _alert(
            c,
            COLLECTOR_STALE,
            f"time() - ent_exporter_collector_last_success_timestamp_seconds{{{sel}}}\n"
            f"  > on (job, instance, collector) group_left (cadence)\n"
            f"{collector_bound(c)}\n",
            c.collector_stale_for,
            "warning",
            "Collector {{ $labels.collector }} has not succeeded for {{ $value | humanizeDuration }}.",
            "The {{ $labels.cadence }} collector {{ $labels.collector }} of {{ $labels.instance }} last succeeded "
            "{{ $value | humanizeDuration }} ago, more than its cadence plus a tenth of it (at least "
            f"{c.collector_stale_margin_min_seconds // 60} min, at most {c.collector_stale_margin_max_seconds // 3600} h): "
            "its metrics are stale (the last values are still served).",
            labels={"reason": "overdue"},
        ),
        # A collector that failed and never succeeded has no last-success sample at all: the rule
        # above cannot see it. The failures counter exists from the start; a first run still in
        # progress has not failed.
        _alert(
            c,
            COLLECTOR_STALE,
            f"ent_exporter_collector_failures_total{{{sel}}} > 0\n"
            f"unless on (job, instance, collector)\n"
            f"ent_exporter_collector_last_success_timestamp_seconds{{{sel}}}\n",
            c.collector_stale_for,
            "warning",
            "Collector {{ $labels.collector }} has never succeeded.",
            "Collector {{ $labels.collector }} of {{ $labels.instance }} has failed {{ $value }} run(s) since the "
            "exporter started and has never succeeded (no last success, even persisted): its metrics are missing. "
            "The exporter's log says why each run failed.",
            labels={"reason": "never_succeeded"},
        ),
        _alert(
            c,
            SOURCE_DATABASE_DOWN,
            f"ent_exporter_source_up{{{sel}}} == 0\n",
            c.source_down_for,
            "critical",
            "ent-exporter {{ $labels.instance }} cannot reach its source database.",
            f"The last attempts of {{{{ $labels.instance }}}} to reach the platform's PostgreSQL failed for "
            f"{c.source_down_for}: no collector can run; the last values are still served.",
        ),
    ]
    meta = [
        # Always firing, on purpose: Alertmanager routes it to a dead man's switch, which alerts when
        # it stops arriving (Prometheus, its rules or Alertmanager broken).
        _alert(
            c,
            WATCHDOG,
            "vector(1)\n",
            "0m",
            "none",
            "The ENT alerting pipeline is working.",
            "This alert always fires. Its absence at the receiving end (a dead man's switch) means Prometheus, its "
            "ENT rules or Alertmanager stopped working, and every other ENT alert is blind.",
        ),
    ]
    return [
        {"name": "ent-exporter.connectors", "rules": connectors},
        {"name": "ent-exporter.probes", "rules": probes},
        {"name": "ent-exporter.exporter", "rules": exporter},
        {"name": "ent-exporter.meta", "rules": meta},
        {"name": "ent-exporter.account-feeds", "rules": account_feed_alerts(c)},
    ]


# -- account feeds (issue 16) ---------------------------------------------------------------
ACCOUNT_FEED_FAILED = "ENTAccountFeedFailed"
ACCOUNT_FEED_OVERDUE = "ENTAccountFeedOverdue"
ACCOUNT_FEED_REJECTING = "ENTAccountFeedRejecting"


def account_feed_alerts(c: Config = CONFIG) -> list[dict]:
    sel = c.exporter_selector
    max_age = num(c.account_feed_max_age_hours)
    return [
        _alert(
            c,
            ACCOUNT_FEED_FAILED,
            f"ent_account_feed_last_run_success{{{sel}}} == 0\n",
            c.account_feed_failed_for,
            "critical",
            "The last run of account feed {{ $labels.feed }} failed.",
            "The last run of account feed {{ $labels.feed }} (the directory import, a synchronisation task) "
            "failed: accounts created, moved or closed since its last success are not in the platform, and "
            "new users may not be able to log in. The feed's log (import-directory's output, Moodle's task "
            "log) says why.",
        ),
        _alert(
            c,
            ACCOUNT_FEED_OVERDUE,
            f"time() - ent_account_feed_last_success_timestamp_seconds{{{sel}}}\n> {max_age} * 3600\n",
            c.account_feed_overdue_for,
            "warning",
            "Account feed {{ $labels.feed }} last succeeded {{ $value | humanizeDuration }} ago.",
            "Account feed {{ $labels.feed }} has not succeeded for {{ $value | humanizeDuration }} (alert after "
            f"{max_age} hours: a nightly feed missed a night). It failed, or it did not run at all (its "
            "scheduler, cron or Moodle's cron).",
        ),
        _alert(
            c,
            ACCOUNT_FEED_REJECTING,
            f'ent_account_feed_last_run_rows{{{sel}, outcome="rejected"}}\n'
            f'/ ignoring (outcome) ent_account_feed_last_run_rows{{{sel}, outcome="read"}}\n'
            f"> {num(c.account_feed_rejected_ratio)}\n",
            c.account_feed_rejecting_for,
            "warning",
            "Account feed {{ $labels.feed }} rejected {{ $value | humanizePercentage }} of its rows.",
            "The last run of account feed {{ $labels.feed }} left out {{ $value | humanizePercentage }} of the "
            f"rows it read as invalid (alert above {num(c.account_feed_rejected_ratio * 100)}%): the users of "
            "those rows are missing from the platform. The feed's log names the lines.",
        ),
    ]


def collector_bound(c: Config = CONFIG) -> str:
    """PromQL: each collector's cadence plus a tenth of it, clamped (the overdue bound of /readyz)."""
    cadence = f"ent_exporter_collector_cadence_seconds{{{c.exporter_selector}}}"
    return (
        f"{cadence}\n  + clamp({cadence} / 10, {c.collector_stale_margin_min_seconds}, "
        f"{c.collector_stale_margin_max_seconds})"
    )


# File name under prometheus/rules/ -> groups (rule_files, below, adds the history's file).
def _rule_files_before_history(c: Config = CONFIG) -> dict[str, list[dict]]:
    return {
        "ent-exporter.rules.yml": recording_rules(c),
        "ent-exporter.alerts.yml": alerting_rules(c),
    }


# -- A year of history (issue 15): daily figures recorded once an hour --------------------------
# A panel of daily logins over a year would otherwise read every raw sample of the year (2,880 a
# day per series at the 30 s scrape); these series hold one sample an hour, the last 24 hours'
# increase, so a year at a 1-day step reads 365 of them. They live in their own rule file and group
# (interval 1h), apart from the 5-minute rules above.
HISTORY_INTERVAL = "1h"
STRUCTURE_PROFILE_LOGINS_1D = "structure_profile:ent_logins:increase1d"
STRUCTURE_LOGINS_1D = "structure:ent_logins:increase1d"
STRUCTURE_APP_ACCESSES_1D = "structure_app:ent_app_accesses:increase1d"
STRUCTURE_PROFILE_ACTIVATIONS_1D = "structure_profile:ent_account_activations:increase1d"
# Per application and profile (as published: per structure, profile="all" under the series budget): the
# daily bars of openings, by profile over every application or the ones picked.
STRUCTURE_APP_PROFILE_ACCESSES_1D = "structure_app_profile:ent_app_accesses:increase1d"


def daily(rule: str, selector: str) -> str:
    """A history rule's daily figure as a panel reads it at a 1-day step: its last hourly value before each
    step (beyond Prometheus' 5-minute lookback, hence last_over_time): the 24 hours before it."""
    return f"last_over_time({rule}{{{selector}}}[{HISTORY_INTERVAL}])"


def history_rules(c: Config = CONFIG) -> list[dict]:
    return [
        {
            "name": "ent-exporter.history",
            "interval": HISTORY_INTERVAL,
            "rules": [
                {
                    "record": STRUCTURE_PROFILE_LOGINS_1D,
                    "expr": f"sum by ({BY_STRUCTURE}, profile) (increase(ent_logins_total[1d]))",
                },
                # Logins are events: a structure's profiles add up (people would not, see the visitors gauges).
                {"record": STRUCTURE_LOGINS_1D, "expr": f"sum by ({BY_STRUCTURE}) (increase(ent_logins_total[1d]))"},
                {
                    "record": STRUCTURE_APP_ACCESSES_1D,
                    "expr": f"sum by ({BY_STRUCTURE}, app) (increase(ent_app_accesses_total[1d]))",
                },
                {
                    "record": STRUCTURE_APP_PROFILE_ACCESSES_1D,
                    "expr": f"sum by ({BY_STRUCTURE}, app, profile) (increase(ent_app_accesses_total[1d]))",
                },
                {
                    "record": STRUCTURE_PROFILE_ACTIVATIONS_1D,
                    "expr": f"sum by ({BY_STRUCTURE}, profile) (increase(ent_account_activations_total[1d]))",
                },
            ],
        }
    ]


HISTORY_RULE_FILE = "ent-exporter.history.yml"


def rule_files(c: Config = CONFIG) -> dict[str, list[dict]]:
    return {**_rule_files_before_history(c), HISTORY_RULE_FILE: history_rules(c)}
