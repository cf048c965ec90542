"""Connectors: the panel an on-call person opens when paged. Per connector: current alert
state, request rate, success ratio, failures, latency quantiles and the latency heatmap, as
the platform recorded its users' calls; beside them the exporter's own active probes (state,
failures by reason, latency, certificate expiry). Each row says which of the two it shows."""

from ent_exporter.mixin.config import CONFIG
from ent_exporter.mixin.panels import (
    FAILURE_RATIO,
    INSTANCE,
    MIN_CALLS_PER_SECOND,
    SUCCESS_RATIO,
    UP_DOWN,
    bargauge,
    connector_variable,
    dashboard,
    heatmap,
    profile_variable,
    row,
    stat,
    state_timeline,
    structure_variable,
    target,
    timeseries,
    value_map,
)
from ent_exporter.mixin.rules import (
    CONNECTOR_ALERTS,
    CONNECTOR_LATENCY_QUANTILE,
    CONNECTOR_RATE,
    CONNECTOR_SUCCESS_RATIO,
    PROBE_ALERTS,
    num,
)

C = f'connector=~"$connector", {INSTANCE}'
CALLS = f"ent_connector_requests_total{{{C}}}"
FAILED = f'ent_connector_requests_total{{{C}, outcome="failure"}}'
# Raw counters over Grafana's interval: every call counts at any range (a 5-minute recording rule
# drawn at 7 days would see one 5-minute window in 24).
CALL_RATE = f"sum by (connector) (rate({CALLS}[$__rate_interval]))"
FAILED_RATE = f"sum by (connector) (rate({FAILED}[$__rate_interval]))"
BUCKET_RATE = f"sum by (connector, le) (rate(ent_connector_request_duration_seconds_bucket{{{C}}}[$__rate_interval]))"
# Intervals with fewer calls than the failure alert's guard are hidden from ratios and quantiles,
# as the alerts ignore them (1 failure in 2 calls at night is not 50 %).
ENOUGH = f"{CALL_RATE} >= {MIN_CALLS_PER_SECOND:.6g}"
NO_CALLS = "no calls"
ALERTS = "|".join(CONNECTOR_ALERTS + PROBE_ALERTS)
# 2 = an alert of the connector fires, 1 = one is pending, 0 = none (every connector with
# traffic or a probe has a value).
# Per exporter (instance) and connector: the alerts and the recording rules keep the instance, so one
# platform's failing connector is its own row, never diluted by another platform's calls.
PER = "instance, connector"
PER_LEGEND = "{{connector}} · {{instance}}"
ALERT_STATE = (
    f"max by ({PER}) (\n"
    f'  2 * ALERTS{{alertname=~"{ALERTS}", alertstate="firing", {C}}}\n'
    f'  or ALERTS{{alertname=~"{ALERTS}", alertstate="pending", {C}}}\n'
    f"  or 0 * {CONNECTOR_RATE}{{{C}}}\n"
    f"  or 0 * max by ({PER}) (ent_connector_probe_success{{{C}}})\n"
    ")"
)
# The same over time: the worst state of each Grafana interval (a 2-minute firing within an hour-long step shows).
ALERT_STATE_OVER_TIME = (
    f"max by ({PER}) (\n"
    f'  2 * max_over_time(ALERTS{{alertname=~"{ALERTS}", alertstate="firing", {C}}}[$__interval])\n'
    f'  or max_over_time(ALERTS{{alertname=~"{ALERTS}", alertstate="pending", {C}}}[$__interval])\n'
    f"  or 0 * max_over_time({CONNECTOR_RATE}{{{C}}}[$__interval])\n"
    f"  or 0 * max_over_time(ent_connector_probe_success{{{C}}}[$__interval])\n"
    ")"
)
PLATFORM = (
    "Platform-reported: the calls the platform itself recorded (connector_events), real users' traffic; "
    "empty where the platform records no connector calls. "
)
PROBED = (
    "Probes: the exporter's own checks of the connector (probes: in its configuration), every 30 s by "
    "default, on every platform; one account and one path, not every user's. "
)
DAY = 86400
# In days (the bar's unit: "j" in French; Grafana's own time units print English words).
CERTIFICATE = [
    (None, "red"),
    (CONFIG.certificate_expiry_critical_days, "orange"),
    (CONFIG.certificate_expiry_warning_days, "green"),
]
PROBE_STATE_MAPPINGS = value_map({"0": "Down", "1": "Up"}, {"0": "red", "1": "green"})
STATE_MAPPINGS = value_map({"0": "OK", "1": "Pending", "2": "Firing"}, {"0": "green", "1": "orange", "2": "red"})
STATE_THRESHOLDS = [(None, "green"), (1, "orange"), (2, "red")]
LATENCY = [(None, "green"), (CONFIG.connector_latency_p95_seconds, "red")]
ALERT_TEXT = (
    f"Alerts: {', '.join(CONNECTOR_ALERTS)} (platform-reported traffic: failure ratio above "
    f"{num(CONFIG.connector_failure_ratio * 100)} %, no call where there usually are, p95 above "
    f"{num(CONFIG.connector_latency_p95_seconds)} s); {', '.join(PROBE_ALERTS)} (probes: failing for "
    f"{CONFIG.connector_probe_failing_for}, more than {num(CONFIG.connector_probe_failure_ratio * 100)} % "
    f"failed over {CONFIG.connector_probe_ratio_window}, certificate expiring within "
    f"{num(CONFIG.certificate_expiry_warning_days)} / {num(CONFIG.certificate_expiry_critical_days)} days); "
    "runbook: prometheus/RUNBOOK.md."
)


def instant(expr: str, legend: str = "", ref: str = "A"):
    return target(expr, legend, ref=ref, instant=True)


panels = [
    row("Now"),
    (
        stat(
            "Alert state",
            "Per connector: Firing when one of its alerts fires, Pending when one is about to, OK otherwise. "
            + ALERT_TEXT,
            instant(ALERT_STATE, PER_LEGEND),
            "none",
            STATE_THRESHOLDS,
            text_mode="value_and_name",
            color_mode="background",
            mappings=STATE_MAPPINGS,
        ),
        12,
        5,
    ),
    (
        stat(
            "Success ratio (5 min)",
            "Per connector: successful calls ÷ all calls over the last 5 minutes (recording rule "
            f"{CONNECTOR_SUCCESS_RATIO}). Red below {num((1 - CONFIG.connector_failure_ratio) * 100)} %: the "
            'failure alert\'s threshold. A connector without a call in 5 minutes says "no calls", not a ratio.',
            instant(f"{CONNECTOR_SUCCESS_RATIO}{{{C}}} and {CONNECTOR_RATE}{{{C}}} > 0", PER_LEGEND),
            "percentunit",
            SUCCESS_RATIO,
            text_mode="value_and_name",
            decimals=1,
            no_value=NO_CALLS,
        ),
        12,
        5,
    ),
    row("Probes: the exporter's own checks"),
    (
        stat(
            "Probe state",
            PROBED
            + "Up when the last probe succeeded, Down when it failed (ent_connector_probe_success), per connector "
            f"and kind. {CONFIG.connector_probe_failing_for} down pages ({PROBE_ALERTS[0]}).",
            instant(f"ent_connector_probe_success{{{C}}}", "{{connector}} ({{kind}})"),
            "none",
            UP_DOWN,
            text_mode="value_and_name",
            color_mode="background",
            mappings=PROBE_STATE_MAPPINGS,
        ),
        8,
        5,
    ),
    (
        bargauge(
            "Certificate expiry",
            PROBED + "Time left before the TLS certificate the connector's probes see expires "
            "(ent_connector_certificate_expiry_timestamp_seconds; the soonest of the connector's probes). Orange "
            f"under {num(CONFIG.certificate_expiry_warning_days)} days, red under "
            f"{num(CONFIG.certificate_expiry_critical_days)}: the alerts' thresholds. Connectors probed without "
            "TLS have no bar.",
            instant(f"(ent_connector_certificate_expiry_timestamp_seconds{{{C}}} - time()) / {DAY}", "{{connector}}"),
            "suffix:d",
            CERTIFICATE,
            decimals=1,
        ),
        8,
        5,
    ),
    (
        bargauge(
            "Probe failure ratio in the period",
            PROBED + "Failed probes ÷ all probes during the period of the time picker, per connector and kind "
            "(from the counters: no failure between two scrapes is lost).",
            instant(
                f'sum by (connector, kind) (increase(ent_connector_probes_total{{{C}, outcome="failure"}}'
                "[$__range]))\n/\n"
                f"sum by (connector, kind) (increase(ent_connector_probes_total{{{C}}}[$__range]))",
                "{{connector}} ({{kind}})",
            ),
            "percentunit",
            FAILURE_RATIO,
            max_value=1,
        ),
        8,
        5,
    ),
    (
        state_timeline(
            "Probe state over time",
            PROBED + "When each probe was up (green) or down (red).",
            target(
                f"min by (connector, kind) (min_over_time(ent_connector_probe_success{{{C}}}[$__interval]))",
                "{{connector}} ({{kind}})",
            ),
            "none",
            UP_DOWN,
            mappings=PROBE_STATE_MAPPINGS,
        ),
        12,
        8,
    ),
    (
        timeseries(
            "Probe failures by reason",
            PROBED + "Failed probes per reason (timeout, refused, dns, tls, auth, status, content, too_large, error; "
            "the runbook says what each means), per connector. The exporter's log has the detail of each change.",
            target(
                f"sum by (connector, reason) (increase(ent_connector_probe_failures_total{{{C}}}[$__interval]))",
                "{{connector}} {{reason}}",
            ),
            "short",
            [(None, "green"), (1, "red")],
            bars=True,
            axis_label="failed probes per interval",
            interval="1m",
            max_points=300,
        ),
        12,
        8,
    ),
    (
        timeseries(
            "Probe latency",
            PROBED + "Mean duration of the probes over the interval, per connector and kind "
            "(ent_connector_probe_duration_seconds); a probe that times out counts its timeout.",
            target(
                f"sum by (connector, kind) (rate(ent_connector_probe_duration_seconds_sum{{{C}}}"
                "[$__rate_interval]))\n/\n"
                f"sum by (connector, kind) (rate(ent_connector_probe_duration_seconds_count{{{C}}}"
                "[$__rate_interval]))",
                "{{connector}} ({{kind}})",
            ),
            "s",
            LATENCY,
            interval="1m",
            max_points=500,
        ),
        24,
        8,
    ),
    row("Platform-reported traffic and errors"),
    (
        timeseries(
            "Request rate by outcome",
            PLATFORM + "Calls per second through each connector, successful and failed, averaged over Grafana's "
            "interval from the raw counter (every call counts at any range).",
            target(f"sum by (connector, outcome) (rate({CALLS}[$__rate_interval]))", "{{connector}} {{outcome}}"),
            "suffix:calls/s",
            axis_label="calls per second",
            interval="1m",
            max_points=500,
            no_value=NO_CALLS,
        ),
        12,
        8,
    ),
    (
        timeseries(
            "Failure ratio",
            "Failed calls ÷ all calls over Grafana's interval, per connector, from the raw counters. Intervals "
            f"with fewer than {num(CONFIG.connector_min_requests_per_minute)} calls a minute are not drawn, as "
            f"the alert ignores them; the red line is the alert threshold "
            f"({num(CONFIG.connector_failure_ratio * 100)} % for {CONFIG.connector_failure_for}).",
            target(f"({FAILED_RATE} or 0 * {CALL_RATE})\n/\n({ENOUGH})", "{{connector}}"),
            "percentunit",
            FAILURE_RATIO,
            threshold_style="line",
            max_value=1,
            interval="1m",
            max_points=500,
            no_value=NO_CALLS,
        ),
        12,
        8,
    ),
    (
        timeseries(
            "Failed calls",
            "Failed calls per second, per connector, from the raw counter (0 when it has none).",
            target(f"{FAILED_RATE}\nor 0 * {CALL_RATE}", "{{connector}}"),
            "suffix:calls/s",
            [(None, "green"), (0.000001, "red")],
            bars=False,
            axis_label="failures per second",
            interval="1m",
            max_points=500,
            no_value=NO_CALLS,
        ),
        12,
        8,
    ),
    (
        state_timeline(
            "Alert state over time",
            "When each connector's alerts were pending (orange) or firing (red). " + ALERT_TEXT,
            target(ALERT_STATE_OVER_TIME, PER_LEGEND),
            "none",
            STATE_THRESHOLDS,
            mappings=STATE_MAPPINGS,
        ),
        12,
        8,
    ),
    row("Platform-reported latency", collapsed=True),
    (
        timeseries(
            "Latency p50 / p95 / p99",
            "Quantiles of the call duration over Grafana's interval, from the raw histogram. Intervals with "
            f"fewer than {num(CONFIG.connector_min_requests_per_minute)} calls a minute are not drawn (one slow "
            "call at night is not a p95). The red line is the p95 alert threshold "
            f"({num(CONFIG.connector_latency_p95_seconds)} s for {CONFIG.connector_latency_for}).",
            [
                target(
                    f"histogram_quantile({q}, {BUCKET_RATE})\nand on (connector) ({ENOUGH})",
                    f"{{{{connector}}}} p{q[2:].ljust(2, '0')}",
                    ref=ref,
                )
                for q, ref in (("0.5", "A"), ("0.95", "B"), ("0.99", "C"))
            ],
            "s",
            LATENCY,
            threshold_style="line",
            interval="1m",
            max_points=500,
            no_value=NO_CALLS,
        ),
        12,
        9,
    ),
    (
        heatmap(
            "Latency heatmap",
            "Calls per second in each duration bucket of ent_connector_request_duration_seconds (selected "
            "connectors): the upper bound of the bucket on the y axis. Timeouts pile up in the top buckets.",
            target(
                f"sum by (le) (rate(ent_connector_request_duration_seconds_bucket{{{C}}}[$__rate_interval]))",
                "{{le}}",
                fmt="heatmap",
            ),
            "suffix:calls/s",
            cell_unit="suffix:calls/s",
            y_unit="s",
            scheme="Spectral",
            interval="1m",
        ),
        12,
        9,
    ),
    (
        bargauge(
            "p95 latency now",
            "Current p95 call duration per connector (5 minutes); red above the alert threshold "
            f'({num(CONFIG.connector_latency_p95_seconds)} s). "no calls" when a connector had none.',
            instant(
                f'{CONNECTOR_LATENCY_QUANTILE}{{{C}, quantile="0.95"}} and on ({PER}) {CONNECTOR_RATE}{{{C}}} > 0',
                PER_LEGEND,
            ),
            "s",
            LATENCY,
            max_value=10,
            no_value=NO_CALLS,
        ),
        12,
        7,
    ),
    (
        bargauge(
            "Calls in the period",
            "Calls through each connector during the period of the time picker.",
            instant(f"sum by (connector) (increase(ent_connector_requests_total{{{C}}}[$__range]))", "{{connector}}"),
            "short",
            decimals=0,
            no_value=NO_CALLS,
        ),
        12,
        7,
    ),
]

dashboard = dashboard(
    "connectors",
    "ENT connectors",
    "Connector health for on-call: alert state, request rate, success ratio, failures, latency quantiles and "
    "latency heatmap per connector (LDAP, CAS, SAML, Pronote, the GAR...) as the platform recorded its users' calls "
    "(platform-reported), and the exporter's own active probes: state, failures by reason, latency, certificate "
    "expiry (probes).",
    # structure and profile are hidden: they only travel along the links between the ENT dashboards.
    panels,
    [connector_variable(), structure_variable(hide=True), profile_variable(hide=True)],
    time_from="now-6h",  # what on-call looks at first
)
