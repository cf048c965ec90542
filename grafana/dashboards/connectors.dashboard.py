"""Connectors: the panel an on-call person opens when paged. Per connector: current alert
state, request rate, success ratio, failures, latency quantiles and the latency heatmap."""
from grafana.dashboards.config import CONFIG
from grafana.dashboards.panels import (
    FAILURE_RATIO, SUCCESS_RATIO, bargauge, connector_variable, dashboard, heatmap, profile_variable, row, stat,
    state_timeline, structure_variable, target, timeseries, value_map,
)
from grafana.dashboards.rules import (
    CONNECTOR_ALERTS, CONNECTOR_FAILURE_RATIO, CONNECTOR_LATENCY_QUANTILE, CONNECTOR_OUTCOME_RATE, CONNECTOR_RATE,
    CONNECTOR_SUCCESS_RATIO, num,
)

C = 'connector=~"$connector"'
ALERTS = "|".join(CONNECTOR_ALERTS)
# 2 = an alert of the connector fires, 1 = one is pending, 0 = none (every connector with traffic has a value).
ALERT_STATE = (
    "max by (connector) (\n"
    f'  2 * ALERTS{{alertname=~"{ALERTS}", alertstate="firing", {C}}}\n'
    f'  or ALERTS{{alertname=~"{ALERTS}", alertstate="pending", {C}}}\n'
    f"  or 0 * {CONNECTOR_RATE}{{{C}}}\n"
    ")"
)
STATE_MAPPINGS = value_map({"0": "OK", "1": "Pending", "2": "Firing"}, {"0": "green", "1": "orange", "2": "red"})
STATE_THRESHOLDS = [(None, "green"), (1, "orange"), (2, "red")]
LATENCY = [(None, "green"), (CONFIG.connector_latency_p95_seconds, "red")]
ALERT_TEXT = (f"Alerts: {', '.join(CONNECTOR_ALERTS)} (failure ratio above {num(CONFIG.connector_failure_ratio * 100)} %, "
              f"no call where there usually are, p95 above {num(CONFIG.connector_latency_p95_seconds)} s); "
              "runbook: prometheus/RUNBOOK.md.")


def instant(expr: str, legend: str = "", ref: str = "A"):
    return target(expr, legend, ref=ref, instant=True)


panels = [
    row("Now"),
    (stat("Alert state",
          "Per connector: Firing when one of its alerts fires, Pending when one is about to, OK otherwise. "
          + ALERT_TEXT,
          instant(ALERT_STATE, "{{connector}}"), "none", STATE_THRESHOLDS, text_mode="value_and_name",
          color_mode="background", mappings=STATE_MAPPINGS), 12, 5),
    (stat("Success ratio (5 min)",
          "Per connector: successful calls ÷ all calls over the last 5 minutes (recording rule "
          f"{CONNECTOR_SUCCESS_RATIO}). Red below {num((1 - CONFIG.connector_failure_ratio) * 100)} %: the "
          "failure alert's threshold.",
          instant(f"{CONNECTOR_SUCCESS_RATIO}{{{C}}}", "{{connector}}"), "percentunit", SUCCESS_RATIO,
          text_mode="value_and_name", decimals=1), 12, 5),

    row("Traffic and errors"),
    (timeseries("Request rate by outcome",
                "Calls per second through each connector over 5 minutes, successful and failed "
                f"({CONNECTOR_OUTCOME_RATE}).",
                target(f"sum by (connector, outcome) ({CONNECTOR_OUTCOME_RATE}{{{C}}})", "{{connector}} {{outcome}}"),
                "reqps", axis_label="calls per second"), 12, 8),
    (timeseries("Failure ratio",
                "Failed calls ÷ all calls over 5 minutes, per connector "
                f"({CONNECTOR_FAILURE_RATIO}); the red line is the alert threshold "
                f"({num(CONFIG.connector_failure_ratio * 100)} % for {CONFIG.connector_failure_for}).",
                target(f"{CONNECTOR_FAILURE_RATIO}{{{C}}}", "{{connector}}"), "percentunit", FAILURE_RATIO,
                threshold_style="line", max_value=1), 12, 8),
    (timeseries("Failed calls",
                "Failed calls per second, per connector (0 when it has none).",
                target(f'sum by (connector) (rate(ent_connector_requests_total{{{C}, outcome="failure"}}'
                       "[$__rate_interval]))\n"
                       f"or 0 * sum by (connector) (rate(ent_connector_requests_total{{{C}}}[$__rate_interval]))",
                       "{{connector}}"),
                "reqps", [(None, "green"), (0.000001, "red")], bars=False, axis_label="failures per second"), 12, 8),
    (state_timeline("Alert state over time",
                    "When each connector's alerts were pending (orange) or firing (red). " + ALERT_TEXT,
                    target(ALERT_STATE, "{{connector}}"), "none", STATE_THRESHOLDS, mappings=STATE_MAPPINGS), 12, 8),

    row("Latency"),
    (timeseries("Latency p50 / p95 / p99",
                "Quantiles of the call duration over 5 minutes, from the histogram "
                f"({CONNECTOR_LATENCY_QUANTILE}). The red line is the p95 alert threshold "
                f"({num(CONFIG.connector_latency_p95_seconds)} s for {CONFIG.connector_latency_for}).",
                [target(f'{CONNECTOR_LATENCY_QUANTILE}{{{C}, quantile="0.5"}}', "{{connector}} p50", ref="A"),
                 target(f'{CONNECTOR_LATENCY_QUANTILE}{{{C}, quantile="0.95"}}', "{{connector}} p95", ref="B"),
                 target(f'{CONNECTOR_LATENCY_QUANTILE}{{{C}, quantile="0.99"}}', "{{connector}} p99", ref="C")],
                "s", LATENCY, threshold_style="line"), 12, 9),
    (heatmap("Latency heatmap",
             "Calls per second in each duration bucket of ent_connector_request_duration_seconds (selected "
             "connectors): the upper bound of the bucket on the y axis. Timeouts pile up in the top buckets.",
             target("sum by (le) (rate(ent_connector_request_duration_seconds_bucket{"
                    f"{C}}}[$__rate_interval]))", "{{le}}", fmt="heatmap"),
             "reqps", cell_unit="reqps", y_unit="s", scheme="Spectral"), 12, 9),
    (bargauge("p95 latency now",
              "Current p95 call duration per connector (5 minutes); red above the alert threshold "
              f"({num(CONFIG.connector_latency_p95_seconds)} s).",
              instant(f'{CONNECTOR_LATENCY_QUANTILE}{{{C}, quantile="0.95"}}', "{{connector}}"), "s", LATENCY,
              max_value=10), 12, 7),
    (bargauge("Calls in the period",
              "Calls through each connector during the period of the time picker.",
              instant(f"sum by (connector) (increase(ent_connector_requests_total{{{C}}}[$__range]))",
                      "{{connector}}"), "short", decimals=0), 12, 7),
]

dashboard = dashboard(
    "connectors", "ENT connectors",
    "Connector health for on-call: alert state, request rate, success ratio, failures, latency quantiles and "
    "latency heatmap per connector (LDAP, CAS, SAML, Pronote, the GAR...).",
    # structure and profile are hidden: they only travel along the links between the ENT dashboards.
    panels, [connector_variable(), structure_variable(hide=True), profile_variable(hide=True)],
    time_from="now-6h",  # what on-call looks at first
)
