"""How the dashboards show their numbers (issue 25, "Presentation"), on the generated JSON and, where a
query changed, on a real Prometheus (tests/test_panels_history.py's backfilled history):

- state timelines keep the worst state of each interval (min_over_time / max_over_time over
  [$__interval]) with a minimum interval: a short outage at 90 days is drawn;
- a counter read over Grafana's interval has a minimum interval, and no range query hides an empty
  interval behind ``or vector(0)``;
- bars of an increase are drawn over the interval they count (barAlignment -1);
- colours follow whether a rise is good: more inactive accounts is red;
- counts use the browser's locale (no "12 K"), certificate expiry is in days;
- the establishment's weekday × hour grid is its own (no platform grid under its name);
- the feed table is one frame with typed columns (a time, not an epoch);
- per-establishment copies link only to their own dashboard.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.support import backfilled_prometheus
from tests.test_dashboards import iter_panels, load_dashboards
from tests.test_panels_history import NOW, RANGES, evaluate, grafana_interval, query_range

COUNTER_OVER_INTERVAL = re.compile(r"\b(?:increase|rate|irate|changes)\([^()]*\[\$__(?:rate_)?interval\]")


def every_panel(lang: str = "en"):
    for name, dashboard in load_dashboards(lang).items():
        for panel in iter_panels(dashboard):
            if panel.get("type") != "row":
                yield name, panel


def test_state_timelines_keep_the_worst_state_of_each_interval():
    timelines = [(name, panel) for name, panel in every_panel() if panel["type"] == "state-timeline"]
    assert len(timelines) >= 4
    for name, panel in timelines:
        assert panel.get("interval"), (name, panel["title"])
        for target in panel["targets"]:
            assert re.search(r"\b(?:min|max)_over_time\([^()]*\[\$__interval\]\)", target["expr"]), (
                name,
                panel["title"],
            )
    alerts = next(p for n, p in timelines if p["title"] == "Alert state over time")
    assert "max_over_time(ALERTS{" in alerts["targets"][0]["expr"]  # one firing moment in the step shows


def test_counters_over_the_interval_have_a_minimum_interval_and_no_zero_fallback():
    for name, panel in every_panel():
        for target in panel.get("targets", []):
            if target.get("instant"):
                continue
            if COUNTER_OVER_INTERVAL.search(target["expr"]):
                assert panel.get("interval") or target.get("interval"), (name, panel["title"])
            assert "vector(0)" not in target["expr"], (name, panel["title"])


def test_bars_are_drawn_over_the_interval_they_count():
    bars = [
        (name, panel)
        for name, panel in every_panel()
        if panel["type"] == "timeseries" and panel["fieldConfig"]["defaults"]["custom"].get("drawStyle") == "bars"
    ]
    assert any(p["interval"] == "1d" for _n, p in bars)
    for name, panel in bars:
        assert panel["fieldConfig"]["defaults"]["custom"]["barAlignment"] == -1, (name, panel["title"])


def test_a_rise_of_inactive_accounts_is_red_and_a_rise_of_connections_green():
    def change_steps(dashboard: str, title: str) -> list[tuple]:
        panel = next(p for p in iter_panels(load_dashboards("en")[dashboard]) if p["title"] == title)
        (override, *_rest) = [o for o in panel["fieldConfig"]["overrides"] if o["matcher"]["id"] == "byFrameRefID"]
        (steps,) = [p["value"]["steps"] for p in override["properties"] if p["id"] == "thresholds"]
        return [(step["value"], step["color"]) for step in steps]

    assert change_steps("establishment", "Inactive accounts compared") == [(None, "green"), (0, "red")]
    assert change_steps("overview", "Connections compared") == [(None, "red"), (0, "green")]


def test_counts_in_the_locale_and_certificate_expiry_in_days():
    from ent_exporter.mixin.config import CONFIG

    for name, panel in every_panel("fr"):
        units = [panel.get("fieldConfig", {}).get("defaults", {}).get("unit")] + [
            prop["value"]
            for override in panel.get("fieldConfig", {}).get("overrides", [])
            for prop in override["properties"]
            if prop["id"] == "unit"
        ]
        assert "short" not in units, (name, panel["title"])
    expiry = next(p for n, p in every_panel("fr") if p["title"] == "Expiration des certificats")
    assert expiry["fieldConfig"]["defaults"]["unit"] == "suffix:j"
    assert expiry["targets"][0]["expr"].endswith("/ 86400")
    assert [s["value"] for s in expiry["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [
        None,
        CONFIG.certificate_expiry_critical_days,
        CONFIG.certificate_expiry_warning_days,
    ]


def test_the_establishment_grid_is_its_own():
    grid = next(
        p
        for p in iter_panels(load_dashboards("fr")["establishment"])
        if p["title"].startswith("Connexions par jour et")
    )
    (target,) = grid["targets"]
    assert 'structure="$structure"' in target["expr"] and 'structure="all"' not in target["expr"]
    assert "Grille non publiée" in grid["fieldConfig"]["defaults"]["noValue"]


def test_the_feed_table_is_one_typed_frame():
    table = next(
        p for p in iter_panels(load_dashboards("fr")["exporter"]) if p["title"] == "Dernière exécution de chaque flux"
    )
    assert all(t["format"] == "table" and t["instant"] for t in table["targets"])
    assert all(t["expr"].startswith("max by (instance, feed) (") for t in table["targets"])
    kinds = [t["id"] for t in table["transformations"]]
    assert kinds[0] == "merge" and "convertFieldType" in kinds
    (conversion,) = next(t for t in table["transformations"] if t["id"] == "convertFieldType")["options"]["conversions"]
    assert conversion == {"targetField": "Fin de la dernière exécution", "destinationType": "time"}
    assert not any("{{" in t.get("legendFormat", "") for t in table["targets"])


def test_per_establishment_copies_link_only_to_their_own_dashboard():
    from ent_exporter.mixin import access

    source = load_dashboards("fr")["establishment"]

    def links(dashboard: dict) -> list[str]:
        return [
            link["url"]
            for panel in iter_panels(dashboard)
            for link in panel.get("links", [])
            + panel.get("fieldConfig", {}).get("defaults", {}).get("links", [])
            + [
                link
                for override in panel.get("fieldConfig", {}).get("overrides", [])
                for prop in override.get("properties", [])
                if prop.get("id") == "links"
                for link in prop["value"]
            ]
        ]

    assert any(url.startswith("/d/ent-applications?") for url in links(source))  # what the copy must drop
    copy = access.establishment_dashboard(source, "0750001A", "Collège Jean Moulin")
    assert copy["links"] == []
    assert all(not url.startswith("/d/") or url.startswith(f"/d/{copy['uid']}") for url in links(copy))


# -- on a real Prometheus --------------------------------------------------------------------------

OUTAGE_START = NOW - timedelta(days=3, minutes=37)  # a 4-minute outage between two hourly steps' instants
OUTAGE_MINUTES = 4


@pytest.fixture(scope="module")
def probe_history(tmp_path_factory):
    """A probe up for 10 days but for a few minutes, scraped every minute, backfilled into a real Prometheus."""
    work = tmp_path_factory.mktemp("timeline")
    start = NOW - timedelta(days=10)
    lines = ["# TYPE ent_connector_probe_success gauge"]
    labels = 'job="ent-exporter",instance="exporter:9877",connector="pronote",kind="http"'
    for minute in range(10 * 24 * 60 + 1):
        at = start + timedelta(minutes=minute)
        down = OUTAGE_START <= at < OUTAGE_START + timedelta(minutes=OUTAGE_MINUTES)
        lines.append(f"ent_connector_probe_success{{{labels}}} {0 if down else 1} {int(at.timestamp())}")
    (work / "probe.om").write_text("\n".join([*lines, "# EOF"]) + "\n")
    with backfilled_prometheus(work / "probe.om", work, "ent_connector_probe_success", NOW.timestamp()) as port:
        yield port


def test_a_short_outage_shows_on_the_state_timeline_at_thirty_days(probe_history):
    """At 30 days Grafana's step is an hour: the probe's value sampled once per step misses a 4-minute outage
    (the raw selector, as the panel read it before); min_over_time over the step keeps it, in its step only."""
    panel = next(p for n, p in every_panel() if p["title"] == "Probe state over time")
    ((target, result),) = evaluate(probe_history, panel, RANGES["30d"])
    step = grafana_interval(panel, RANGES["30d"])
    assert step == 3600
    (series,) = result
    down = [int(t) for t, value in series["values"] if float(value) == 0]
    # The step stamped at t covers (t - step, t]: the one holding the outage, and no other.
    assert down == [int(t) for t, _v in series["values"] if int(t) - step < OUTAGE_START.timestamp() + 60 <= int(t)]
    assert len(down) == 1
    sampled = query_range(
        probe_history,
        'min by (connector, kind) (ent_connector_probe_success{connector=~".*", instance=~".*"})',
        int(series["values"][0][0]),
        int(series["values"][-1][0]),
        step,
    )
    assert all(float(value) == 1 for _t, value in sampled[0]["values"])  # what the panel showed before
