"""The hourly, daily, weekly and monthly collectors, run on the embedded PostgreSQL, equal the
values computed in plain Python from the same raw rows (tests/ent_rows.py): every family and
every label combination, at instants mid-week, on period boundaries and across both
Europe/Paris DST changes. The instants reach the collectors as Europe/Paris datetimes: the
collectors must not depend on the runtime handing them UTC."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from ent_exporter.engine.collector import Cadence, Context
from ent_exporter.indicators import discover
from ent_exporter.indicators.accounts import AccountsCollector
from ent_exporter.indicators.activity import ActivityCollector
from ent_exporter.indicators.heatmap import LoginHeatmapCollector
from ent_exporter.indicators.structures import StructureInfoCollector
from ent_exporter.indicators.visitors import CurrentPeriodVisitorsCollector, PreviousMonthVisitorsCollector
from tests.ent_rows import (
    PARIS,
    expected_accounts,
    expected_activity,
    expected_heatmap,
    expected_structure_info,
    expected_visitors,
    generate,
    opened_source,
    paris,
    periods_to_date,
    previous_month,
)

pytestmark = pytest.mark.time_sensitive

NOWS = {  # UTC instants
    "mid-week": paris(2026, 11, 18, 15, 0),  # a Wednesday afternoon
    "month boundary": paris(2026, 3, 1, 0, 30),  # half an hour into March (a Sunday)
    "Monday midnight, 1st of a month": paris(2026, 6, 1, 0, 0),  # now == start of every period
    "spring DST, just after": paris(2026, 3, 29, 3, 30),  # 02:00 became 03:00 an hour ago
    "spring DST day": paris(2026, 3, 29, 12, 0),  # a 23-hour day so far
    "autumn DST, second 02:30": paris(2026, 10, 25, 2, 30, fold=1),  # 03:00 became 02:00 half an hour ago
    "autumn DST day": paris(2026, 10, 25, 12, 0),  # a 25-hour day so far
}
ROWS = generate(2026, NOWS.values())


@pytest.fixture
def source(source_dsn):
    with opened_source(source_dsn, ROWS) as source:
        yield source


def run(collector, source, now):
    """One run as of ``now``, given in local time as a platform's scheduler would."""
    return collector().collect(Context(source=source, now=now.astimezone(PARIS), timezone=PARIS, state={})).samples


def test_collectors_are_registered_with_their_cadence():
    collectors = discover()
    assert {
        name: collectors[name].cadence
        for name in ("visitors", "visitors_previous_month", "accounts", "activity", "login_heatmap", "structure_info")
    } == {
        "visitors": Cadence.HOURLY,
        "visitors_previous_month": Cadence.MONTHLY,
        "accounts": Cadence.DAILY,
        "activity": Cadence.DAILY,
        "login_heatmap": Cadence.WEEKLY,
        "structure_info": Cadence.DAILY,
    }
    # Both visitors collectors publish the same families: the very same declarations.
    assert CurrentPeriodVisitorsCollector.families == PreviousMonthVisitorsCollector.families


def test_the_rows_hold_the_cases_under_test():
    users_per_structure = {}
    for user, structure, *_ in ROWS.accounts:
        users_per_structure.setdefault(user, set()).add(structure)
    assert any(len(s) == 2 for s in users_per_structure.values())
    assert {p for _u, _s, p, _c, _a in ROWS.accounts} >= {None, "", "Teacher"}
    assert any(a is None for *_, a in ROWS.accounts) and any(a and a > NOWS["mid-week"] for *_, a in ROWS.accounts)
    assert any(u is not None and u not in users_per_structure for u, _p, _m in ROWS.logins)
    assert any(u is None for u, _p, _m in ROWS.logins)
    profiles_per_user = {}
    for user, profile, _ in ROWS.logins:
        profiles_per_user.setdefault(user, set()).add(profile)
    assert sum(1 for p in profiles_per_user.values() if len(p) > 1) > 10


@pytest.mark.parametrize("moment", list(NOWS))
def test_visitors_of_the_periods_to_date(source, moment):
    now = NOWS[moment]
    visitors, visits = expected_visitors(ROWS, periods_to_date(now))
    assert {period for _s, _p, period in visitors} == {"day", "week", "month"}
    assert run(CurrentPeriodVisitorsCollector, source, now) == {
        "ent_unique_visitors": visitors,
        "ent_visits_per_visitor": visits,
    }


@pytest.mark.parametrize("moment", list(NOWS))
def test_visitors_of_the_previous_month(source, moment):
    now = NOWS[moment]
    visitors, visits = expected_visitors(ROWS, previous_month(now))
    assert visitors
    assert run(PreviousMonthVisitorsCollector, source, now) == {
        "ent_unique_visitors": visitors,
        "ent_visits_per_visitor": visits,
    }


@pytest.mark.parametrize("moment", list(NOWS))
def test_accounts_and_activation_ratio(source, moment):
    now = NOWS[moment]
    accounts, ratio = expected_accounts(ROWS, now)
    assert run(AccountsCollector, source, now) == {"ent_accounts": accounts, "ent_account_activation_ratio": ratio}


@pytest.mark.parametrize("moment", list(NOWS))
def test_inactive_accounts_and_logins_per_user(source, moment):
    now = NOWS[moment]
    inactive, histograms = expected_activity(ROWS, now)
    assert run(ActivityCollector, source, now) == {"ent_inactive_accounts": inactive, "ent_user_logins_30d": histograms}


def test_login_histogram_reaches_every_bucket(source):
    _inactive, histograms = expected_activity(ROWS, NOWS["mid-week"])
    platform = [value for (structure, _profile), value in histograms.items() if structure == "all"]
    # Someone in the first bucket, someone above the last finite one, and counts in between.
    assert any(h.buckets[0] > 0 for h in platform) and any(h.buckets[-1] < h.count for h in platform)
    assert any(0 < h.buckets[0] < h.buckets[3] < h.count for h in platform)


@pytest.mark.parametrize("moment", list(NOWS))
def test_logins_by_local_weekday_and_hour(source, moment):
    now = NOWS[moment]
    cells = expected_heatmap(ROWS, now)
    assert len(cells) % 168 == 0 and len(cells) >= 168 * 3
    assert run(LoginHeatmapCollector, source, now) == {"ent_logins_by_hour": cells}


def test_dst_logins_land_in_their_local_hour(source):
    """Spring: 01:59:59 and 03:00 are a second apart, in hours 1 and 3; autumn: both 02:30s in hour 2."""
    spring, autumn = paris(2026, 3, 29, 12, 0), paris(2026, 10, 25, 12, 0)
    # (the edge logins are 3 per instant; random ones add to them, but none can be at 02:xx in spring)
    for now, at_least, at_most in ((spring, {1: 3, 3: 3}, {2: 0}), (autumn, {1: 3, 2: 6, 3: 3}, {})):
        cells = run(LoginHeatmapCollector, source, now)["ent_logins_by_hour"]
        local = [m.astimezone(PARIS) for _u, _p, m in ROWS.logins if now - timedelta(days=28) < m <= now]
        on_change_day = [m.hour for m in local if m.date() == now.astimezone(PARIS).date()]
        assert all(on_change_day.count(hour) >= n for hour, n in at_least.items())
        assert all(on_change_day.count(hour) == n for hour, n in at_most.items())
        for hour in (1, 2, 3):  # Sundays of the window, the change day included
            assert cells[("all", "7", str(hour))] == sum(1 for m in local if m.isoweekday() == 7 and m.hour == hour)


def test_structure_info(source):
    assert run(StructureInfoCollector, source, NOWS["mid-week"]) == {
        "ent_structure_info": expected_structure_info(ROWS)
    }


def test_no_user_id_in_any_label(source):
    users = {u for u, *_ in ROWS.accounts} | {u for u, *_ in ROWS.logins if u}
    for collector in (
        CurrentPeriodVisitorsCollector,
        PreviousMonthVisitorsCollector,
        AccountsCollector,
        ActivityCollector,
        LoginHeatmapCollector,
        StructureInfoCollector,
    ):
        for series in run(collector, source, NOWS["mid-week"]).values():
            assert not {value for labels in series for value in labels} & users


def test_a_structure_that_disappears_stops_being_published(source, source_dsn):
    now = NOWS["mid-week"]
    before = run(AccountsCollector, source, now)["ent_accounts"]
    assert any(structure == "S2" for structure, *_ in before)
    with psycopg.connect(source_dsn) as conn:
        conn.execute("DELETE FROM ent.accounts WHERE structure_id = 'S2'")
        conn.execute("DELETE FROM ent.structures WHERE structure_id = 'S2'")
    for collector in (
        CurrentPeriodVisitorsCollector,
        AccountsCollector,
        ActivityCollector,
        LoginHeatmapCollector,
        StructureInfoCollector,
    ):
        for series in run(collector, source, now).values():
            assert not any(labels[0] == "S2" for labels in series), collector.name
