"""The series budget: with the default configuration a structure publishes at most 150 active series
(histograms counted as Prometheus stores them), the heavy breakdowns (weekday x hour, application x
profile) as their marginals per structure, exactly the sums of the full breakdown; people counts
(logins-per-user distribution) and ratios (visits per visitor) per structure as the collector's own
profile="all" series, never a sum; structure="all" whole; ``breakdowns`` in the configuration
publishes them whole for every structure."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from random import Random

import pytest

from ent_exporter.app import make_runtime, make_source
from ent_exporter.config import parse_config
from tests.support import FULL_BREAKDOWNS, RawData, insert, make_accounts, make_events, parse
from tests.test_comparisons import year_earlier_window
from tests.test_window_collectors import calendar_periods, expected_visitors, previous_month_period

START = datetime(2026, 3, 2, tzinfo=UTC)
NOW = START + timedelta(days=20, hours=15)
# The events span March 2-22: on April 1st they are all in the previous month (the monthly collector's).
APRIL = datetime(2026, 4, 1, 8, tzinfo=UTC)
BUDGET = 150


@pytest.fixture
def seeded_rows(source_dsn):
    rng = Random(17)
    raw = RawData(accounts=make_accounts(rng, 400, structures=6, start=START))
    events = make_events(rng, 6000, 400, START, timedelta(days=20))
    raw.logins, raw.app_accesses, raw.connector_calls = events.logins, events.app_accesses, events.connector_calls
    insert(source_dsn, raw)
    return source_dsn, raw


@pytest.fixture
def seeded(seeded_rows):
    return seeded_rows[0]


def exposition(dsn: str, breakdowns: dict | None = None, now: datetime = NOW) -> dict:
    config = parse_config(
        {
            "source": {"dsn": dsn, "settle_seconds": 0},
            "timezone": "Europe/Paris",
            **({"breakdowns": breakdowns} if breakdowns else {}),
        },
        "test",
    )
    with make_source(config) as source:
        runtime = make_runtime(config, source, persistent=False)
        assert runtime.run_all(now)
        return parse(runtime.exposition.body().decode())


def test_marginals_are_the_sums_of_the_full_breakdown_and_all_stays_whole(seeded):
    budget, full = exposition(seeded), exposition(seeded, FULL_BREAKDOWNS)
    for family, marginal_labels in (
        ("ent_logins_by_hour", ("weekday", "hour")),
        ("ent_app_accesses_total", ("profile",)),
    ):
        whole = {k: v for k, v in full[family].items() if dict(k)["structure"] == "all"}
        assert {k: v for k, v in budget[family].items() if dict(k)["structure"] == "all"} == whole
        expected: dict = defaultdict(float)
        for key, value in full[family].items():
            labels = dict(key)
            if labels["structure"] == "all":
                continue
            for name in marginal_labels:
                expected[tuple(sorted({**labels, name: "all"}.items()))] += value
        assert {k: v for k, v in budget[family].items() if dict(k)["structure"] != "all"} == dict(expected), family
    # People and ratios are never summed: a structure keeps its profile="all" distribution and ratio,
    # the others go.
    for name in (
        "ent_user_logins_30d_bucket",
        "ent_user_logins_30d_count",
        "ent_user_logins_30d_sum",
        "ent_visits_per_visitor",
    ):
        assert budget[name] == {
            k: v for k, v in full[name].items() if dict(k)["structure"] == "all" or dict(k)["profile"] == "all"
        }, name
        assert len(budget[name]) < len(full[name]), name
    # Everything else is the same.
    for family in set(full) - {
        "ent_logins_by_hour",
        "ent_app_accesses_total",
        "ent_exporter_series",
        "ent_visits_per_visitor",
        "ent_user_logins_30d_bucket",
        "ent_user_logins_30d_count",
        "ent_user_logins_30d_sum",
        "ent_exporter_collector_duration_seconds",
        "ent_exporter_collector_last_success_timestamp_seconds",
    }:
        if family.endswith("_sum"):  # a sum of floats: the database adds them in the order it reads them
            assert budget[family].keys() == full[family].keys(), family
            assert all(math.isclose(budget[family][k], v, rel_tol=1e-12) for k, v in full[family].items()), family
        else:
            assert budget[family] == full[family], family


def test_at_most_150_active_series_per_structure_by_default(seeded):
    samples = exposition(seeded)
    per_structure: dict = defaultdict(int)
    for series in samples.values():
        for key in series:
            structure = dict(key).get("structure")
            if structure not in (None, "all"):
                per_structure[structure] += 1
    assert per_structure and max(per_structure.values()) <= BUDGET, dict(per_structure)
    full = exposition(seeded, FULL_BREAKDOWNS)
    assert (
        max(
            sum(1 for s in full.values() for k in s if dict(k).get("structure") == structure)
            for structure in per_structure
        )
        > BUDGET
    )  # the budget is what keeps it under


@pytest.mark.parametrize("now", [NOW, APRIL], ids=["month to date", "previous month"])
def test_visits_per_visitor_per_structure_is_the_ratio_over_everyone_and_all_stays_whole(seeded_rows, now):
    """The collectors of ent_visits_per_visitor (hourly: day, week, month; monthly: previous_month; hourly:
    month_a_year_earlier, empty here: the rows start later)
    follow the budget: per structure, profile="all" only, the collector's own ratio (logins of
    everyone ÷ distinct people), recomputed here from the raw rows; structure="all" per profile."""
    dsn, raw = seeded_rows
    published = {
        tuple(value for _name, value in key): ratio
        for key, ratio in exposition(dsn, now=now)["ent_visits_per_visitor"].items()
    }  # (period, profile, structure)
    start, end = year_earlier_window(now)  # [start, end] inclusive; expected_visitors takes [start, end)
    year_earlier = {"month_a_year_earlier": (start, end + timedelta(microseconds=1))}
    _visitors, ratios = expected_visitors(raw, {**calendar_periods(now), **previous_month_period(now), **year_earlier})
    expected = {
        (period, profile, structure): ratio
        for (structure, profile, period), ratio in ratios.items()
        if structure == "all" or profile == "all"
    }
    assert published == pytest.approx(expected)
    busy = {key for key, ratio in expected.items() if ratio > 0 and key[2] != "all"}
    assert {key[0] for key in busy} == ({"day", "week", "month"} if now == NOW else {"previous_month"})
    structures = {structure for _period, _profile, structure in busy}
    assert structures >= {f"S{n}" for n in range(6)} and {profile for _period, profile, _structure in published} > {
        "all",
        "Student",
        "unknown",
    }
    # Not a sum of the per-profile ratios (nor their mean): a visitor with several profiles is one person,
    # with all their logins (over a month everyone of a structure has logged in under several profiles).
    for period, _profile, structure in {key for key in busy if key[0] in ("month", "previous_month")}:
        per_profile = [ratio for (s, p, q), ratio in ratios.items() if s == structure and q == period and p != "all"]
        assert expected[(period, "all", structure)] not in (
            pytest.approx(sum(per_profile)),
            pytest.approx(sum(per_profile) / len(per_profile)),
        )
