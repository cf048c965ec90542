"""The mixin's single configuration: selectors, thresholds and names shared by the
dashboards (``dashboards/*.py``) and the Prometheus rules (``rules.py``).

Change a value here, then run ``python -m ent_exporter.mixin.generate``: the dashboard
JSON and ``prometheus/rules/*.yml`` are regenerated from it, so a threshold drawn on a
panel is always the one the alert uses. ``tests/test_dashboards.py`` fails on drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Config:
    # -- where the data comes from -----------------------------------------------------
    # The Prometheus datasource provisioned by grafana/provisioning/datasources/: every
    # panel and variable references it by this uid, never by name.
    datasource_uid: str = "ent-prometheus"
    # The scrape job of the exporter (prometheus/prometheus.yml): `up` and the
    # exporter's self-metrics are selected with it in alerts and the health dashboard.
    exporter_job: str = "ent-exporter"
    # Scrape interval of that job; also the datasource's "timeInterval", so that
    # $__rate_interval always spans several scrapes.
    scrape_interval: str = "30s"

    # -- dashboards ----------------------------------------------------------------------
    dashboard_tags: tuple[str, ...] = ("ent", "ent-exporter")
    dashboard_uids: dict[str, str] = field(
        default_factory=lambda: {
            "overview": "ent-overview",
            "establishment": "ent-establishment",
            "applications": "ent-applications",
            "connectors": "ent-connectors",
            "exporter": "ent-exporter-health",
            "courses": "ent-courses",  # issue 16: learning progress
            "classes": "ent-classes",  # issue 16: per class (opt-in)
            "regional": "ent-regional",
        }
    )
    # The regional dashboard: how many establishments each ranking shows (top and bottom), and the
    # share of all openings under which an application counts as under-used.
    ranking_size: int = 10
    under_used_share: float = 0.02
    # How far back the catalogue of applications looks (an application seen then and not opened
    # in the period shows 0): the retention of the shipped Prometheus.
    catalogue_lookback: str = "400d"
    # The platform's timezone: ent_logins_by_hour's hour and weekday labels are local
    # to it, and the calendar periods (month to date) are too.
    timezone: str = "Europe/Paris"
    default_time_from: str = "now-7d"
    # Auto-refresh: at most every 5 minutes (REFRESH_INTERVALS offers no shorter one). A refresh of the
    # regional dashboard over a year reads millions of samples (BENCHMARKS.md); the exporter's
    # figures change hourly or daily, its counters every minute.
    refresh: str = "5m"
    # Value of $structure when "All" is picked: the platform-wide series.
    all_structures: str = "all"

    # -- connectors ----------------------------------------------------------------------
    # Failure ratio (failed calls / all calls over 5 minutes) above which a connector pages.
    connector_failure_ratio: float = 0.10
    connector_failure_for: str = "5m"
    # Once firing, the failure alert stays firing this long after the condition stops holding:
    # a connector still failing every call whose traffic falls under the guard below does not
    # resolve (the low-traffic companion takes over within this time).
    connector_failure_keep_firing_for: str = "15m"
    # The low-traffic companion (ENTConnectorFailureRatioHighLowTraffic): the same ratio over a
    # longer window, with a smaller minimum of calls in it, where the 5-minute guard is not met.
    connector_failure_slow_window: str = "1h"
    connector_min_requests_slow_window: int = 10
    connector_failure_slow_for: str = "10m"
    # Dashboards only: the failure ratio at which panels turn yellow (red is the alert's).
    connector_failure_ratio_warning: float = 0.05
    # Below this many calls in 5 minutes the ratio is noise (one failure out of three
    # calls at night): the failure alert needs at least this much traffic.
    connector_min_requests_5m: int = 10
    # p95 latency (seconds, from the histogram over 5 minutes) above which a connector is slow,
    # with at least connector_min_requests_5m calls in those 5 minutes (one slow call at night
    # is not a slow connector).
    connector_latency_p95_seconds: float = 2.5
    connector_latency_for: str = "15m"
    # A connector is silent when it had no call at all over this window although it was busy
    # just before (at least connector_silent_usual_per_minute calls per minute over the hour
    # before the window: a holiday or a quiet night never is) and usually is at this time (the
    # same average a week earlier, over connector_silent_week_margin either side of the same
    # instant: the same local hour, whichever side of a DST change it was).
    connector_silent_window: str = "15m"
    connector_silent_usual_per_minute: float = 1.0
    connector_silent_before: str = "1h"
    connector_silent_week_margin_hours: int = 1
    connector_silent_for: str = "15m"
    # Once silent, the alert keeps firing until calls come back, however long that takes: a
    # recording rule remembers the connector was busy when its calls stopped. The memory survives
    # Prometheus or the exporter being down (no sample) for at most this long.
    connector_silent_memory_gap: str = "1h"

    # -- active probes (probes: in the exporter's configuration) ---------------------------
    # A probe alert fires when a connector's last probe has failed for this long: at the
    # default probe interval (30 s) about 3 failed probes in a row.
    connector_probe_failing_for: str = "1m"
    # An exporter restart (its scrapes fail, its series go stale) shorter than this is not a false
    # "resolved": the failing alert reads the last value seen within it, and the certificate alerts
    # keep firing as long (the restarted exporter probes once before its first scrape, with its
    # state's counters and last results).
    connector_probe_restart_gap: str = "5m"
    # Intermittent failures: the share of failed probes over the window (counters: no
    # failure between two scrapes is lost) above which a ticket is opened.
    connector_probe_failure_ratio: float = 0.2
    connector_probe_ratio_window: str = "15m"
    connector_probe_ratio_for: str = "10m"
    # Certificates the probes see (LDAPS, HTTPS, STARTTLS...): days left before expiry.
    certificate_expiry_warning_days: float = 14
    certificate_expiry_critical_days: float = 3
    certificate_expiry_for: str = "10m"

    # -- the exporter ---------------------------------------------------------------------
    exporter_down_for: str = "5m"
    # A collector is overdue when its last success is older than its cadence plus a margin: a
    # tenth of the cadence, between these bounds (the exporter's /readyz uses the same rule):
    # 1 min + 1 min for the instant ones, 1 h + 6 min hourly, 1 day + 1 h daily, 1 week + 1 h
    # weekly, 31 days + 1 h monthly. A collector that has failed and never succeeded
    # (no last-success sample) is stale too.
    collector_stale_margin_min_seconds: int = 60
    collector_stale_margin_max_seconds: int = 3600
    collector_stale_for: str = "5m"
    source_down_for: str = "5m"

    # -- account feeds (issue 16: the directory import, Moodle's synchronisation tasks) ----------
    # A feed whose last success is older than this is overdue: a nightly feed, plus margin.
    account_feed_max_age_hours: float = 26
    account_feed_overdue_for: str = "10m"
    account_feed_failed_for: str = "5m"
    # Share of the last run's rows left out as invalid above which the feed is said to reject.
    account_feed_rejected_ratio: float = 0.05
    account_feed_rejecting_for: str = "5m"

    # -- alert routing ---------------------------------------------------------------------
    # PLACEHOLDER: replace with the address of your own copy of the runbook
    # (prometheus/RUNBOOK.md); each alert links to its section, #<alertname in lower case>.
    runbook_url_base: str = "https://github.com/ent-exporter/ent-exporter/blob/main/prometheus/RUNBOOK.md"

    @property
    def exporter_selector(self) -> str:
        return f'job="{self.exporter_job}"'

    @property
    def connector_min_requests_per_minute(self) -> float:
        """The failure alert's traffic guard as a rate: ratio panels hide what the alert ignores."""
        return self.connector_min_requests_5m / 5

    def runbook_url(self, alert: str) -> str:
        return f"{self.runbook_url_base}#{alert.lower()}"


CONFIG = Config()
