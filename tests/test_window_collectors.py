"""Hourly, daily, weekly and monthly collectors equal values computed in Python from the raw rows,
for every family and label combination, mid-week, on a month boundary and across DST changes."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from random import Random
from zoneinfo import ZoneInfo

import psycopg
import pytest

from ent_exporter.app import make_runtime, make_source
from ent_exporter.config import parse_config
from ent_exporter.engine import privacy
from tests.support import (
    RawData,
    attachments,
    canonical_database,
    insert,
    make_accounts,
    make_events,
    parse,
    run_cli,
    write_config,
)

pytestmark = pytest.mark.time_sensitive

PARIS = ZoneInfo("Europe/Paris")
USERS = 70


def paris(*args, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=PARIS, fold=fold)


NOWS = {
    "mid-week": paris(2026, 11, 18, 15, 0),  # a Wednesday
    "month boundary": paris(2026, 3, 1, 0, 30),  # minutes into a month (and a Sunday)
    "spring DST": paris(2026, 3, 29, 3, 30),  # an hour after 02:00 became 03:00
    "autumn DST": paris(2026, 10, 25, 2, 30, fold=1),  # the second 02:30, after 03:00 became 02:00
}
# Logins placed on the edges the definitions turn on.
EDGES = [
    paris(2026, 2, 28, 23, 59, 59),
    paris(2026, 3, 1, 0, 0),
    paris(2026, 3, 1, 0, 30),
    paris(2026, 3, 29, 1, 59),
    paris(2026, 3, 29, 3, 0),
    paris(2026, 3, 28, 23, 30),
    paris(2026, 10, 25, 2, 30),
    paris(2026, 10, 25, 2, 30, fold=1),
    paris(2026, 10, 25, 1, 15),
    paris(2026, 11, 16, 0, 0),
    paris(2026, 11, 15, 23, 59),
    paris(2026, 11, 18, 15, 0),
    paris(2026, 11, 1, 0, 0),
    paris(2026, 10, 31, 23, 59),
    # exactly 28, 30 and 90 days before the mid-week instant: just outside each window
    *(paris(2026, 11, 18, 15, 0).astimezone(UTC) - timedelta(days=days) for days in (28, 30, 90)),
]
STRUCTURES = [
    ("S0", "Collège Jean Moulin", "college"),
    ("S1", "Lycée Victor Hugo", "lycee"),
    ("S2", "École du Centre", None),
    ("S3", "", "ecole"),
]


def _label(value) -> str:
    return value if value else "unknown"


@pytest.fixture(scope="module")
def data(pg_server):
    """One database for the module: 10 months of logins around the dates under test."""
    dsn = canonical_database(pg_server, "window_collectors")
    with psycopg.connect(dsn) as conn:
        conn.cursor().executemany("INSERT INTO ent.structures VALUES (%s, %s, %s)", STRUCTURES)
    rng = Random(2026)
    start = paris(2026, 1, 10).astimezone(UTC)
    raw = RawData(accounts=make_accounts(rng, USERS, structures=4, start=paris(2026, 6, 1).astimezone(UTC)))
    events = make_events(rng, 4000, USERS, start, timedelta(days=320))
    raw.logins, raw.app_accesses, raw.connector_calls = (
        events.logins,
        events.app_accesses[:300],
        events.connector_calls[:300],
    )
    for moment in EDGES:
        for _ in range(3):
            raw.logins.append(
                (f"user-{rng.randrange(USERS + 5)}", rng.choice(["Student", "Teacher", None]), moment.astimezone(UTC))
            )
    # Users seen only exactly 28, 30 or 90 days before the mid-week instant: on each window's edge.
    mid_week = NOWS["mid-week"].astimezone(UTC)
    for days in (28, 30, 90):
        raw.accounts.append((f"edge-{days}", "S0", "Teacher", start, start))
        raw.logins.append((f"edge-{days}", "Teacher", mid_week - timedelta(days=days)))
    # One person, two profiles in one structure (and a login in a third): one visitor in profile="all".
    raw.accounts += [("two-hats", "S1", "Teacher", start, start), ("two-hats", "S1", "Personnel", start, None)]
    for moment in NOWS.values():
        for hours, profile in ((1, "Teacher"), (2, "Personnel"), (3, "Student"), (30, "Personnel")):
            raw.logins.append(("two-hats", profile, moment.astimezone(UTC) - timedelta(hours=hours)))
    insert(dsn, raw)
    return dsn, raw


# -- the truth --------------------------------------------------------------------------------


def known_pairs(raw: RawData) -> set[tuple[str, str]]:
    """Every (structure, profile) of the accounts, and ("all", profile): published even when 0."""
    pairs = {(_label(structure), _label(profile)) for _user, structure, profile, _c, _a in raw.accounts}
    return pairs | {("all", profile) for _s, profile in pairs}


def people_pairs(raw: RawData) -> set[tuple[str, str]]:
    """known_pairs and profile="all" (each person once over every profile) of each of their structures."""
    pairs = known_pairs(raw)
    return pairs | {(structure, "all") for structure, _p in pairs}


def expected_visitors(raw: RawData, periods: dict[str, tuple[datetime, datetime]]):
    structures_of = attachments(raw.accounts)
    visitors = Counter({(*pair, period): 0 for pair in people_pairs(raw) for period in periods})
    visits = Counter()
    for period, (start, end) in periods.items():
        per_user = Counter((user, _label(profile)) for user, profile, moment in raw.logins if start <= moment < end)
        per_person = Counter((user, "all") for user, _profile, moment in raw.logins if start <= moment < end)
        for (user, profile), logins in [*per_user.items(), *per_person.items()]:
            for structure in structures_of.get(user, {"unknown"}) | {"all"}:
                visitors[(structure, profile, period)] += 1
                visits[(structure, profile, period)] += logins
    return (
        {k: float(v) for k, v in visitors.items()},
        {k: visits[k] / visitors[k] if visitors[k] else 0.0 for k in visitors},
    )


def calendar_periods(now: datetime) -> dict[str, tuple[datetime, datetime]]:
    local = now.astimezone(PARIS)
    end = now.astimezone(UTC) + timedelta(microseconds=1)  # UTC: aware arithmetic in PARIS drops fold
    day = local.replace(hour=0, minute=0, second=0, microsecond=0, fold=0)
    week = day - timedelta(days=local.weekday())
    month = day.replace(day=1)
    # Wall-clock midnights re-attached to the zone (the offset of that day, not of now).
    day, week, month = (datetime(d.year, d.month, d.day, tzinfo=PARIS) for d in (day, week, month))
    return {"day": (day, end), "week": (week, end), "month": (month, end)}


def previous_month_period(now: datetime) -> dict[str, tuple[datetime, datetime]]:
    local = now.astimezone(PARIS)
    first = datetime(local.year, local.month, 1, tzinfo=PARIS)
    last_month_day = first - timedelta(days=1)
    return {"previous_month": (datetime(last_month_day.year, last_month_day.month, 1, tzinfo=PARIS), first)}


def is_activated(activated_at, now) -> bool:
    return activated_at is not None and activated_at <= now


def expected_accounts(raw: RawData, now: datetime):
    counts: Counter = Counter()
    # (structure, profile, user) -> activated in any attachment the series covers: ("all", profile)
    # over the structures, (structure, "all") over the profiles, ("all", "all") over both.
    people: dict[tuple, bool] = {}
    keys = set()
    for user, structure, profile, created, activated_at in raw.accounts:
        if not (created is None or created <= now or is_activated(activated_at, now)):
            continue  # not an account yet
        state = "activated" if is_activated(activated_at, now) else "pending"
        s, p = _label(structure), _label(profile)
        counts[(s, p, state)] += 1
        for key in (("all", p), (s, "all"), ("all", "all")):
            people[(*key, user)] = people.get((*key, user), False) or state == "activated"
        keys |= {(s, p), ("all", p), (s, "all"), ("all", "all")}
    for (s, p, _user), activated in people.items():
        counts[(s, p, "activated" if activated else "pending")] += 1
    accounts = {(s, p, state): float(counts[(s, p, state)]) for s, p in keys for state in ("activated", "pending")}
    ratio = {}
    for s, p in keys:
        total = accounts[(s, p, "activated")] + accounts[(s, p, "pending")]
        ratio[(s, p)] = accounts[(s, p, "activated")] / total if total else 0.0
    return accounts, ratio


BUCKETS = (0, 1, 2, 5, 10, 20, 50)


def expected_activity(raw: RawData, now: datetime):
    def logins_between(user, since) -> list:
        return [m for u, _p, m in raw.logins if u == user and since < m <= now]

    rows = set()  # distinct (user, structure, profile) of activated attachments
    for user, structure, profile, _created, activated_at in raw.accounts:
        if is_activated(activated_at, now):
            rows.add((user, _label(structure), _label(profile)))
    inactive: Counter = Counter({(*pair, days): 0 for pair in people_pairs(raw) for days in ("30", "90")})
    histograms: dict[tuple, list] = {pair: [] for pair in people_pairs(raw)}
    for key_of in (
        lambda user, s, p: (s, p),
        lambda user, s, p: ("all", p),
        lambda user, s, p: (s, "all"),
        lambda user, s, p: ("all", "all"),
    ):
        seen = set()
        for user, structure, profile in sorted(rows):
            key = key_of(user, structure, profile)
            if (key, user) in seen:
                continue  # "all" counts each user once per series
            seen.add((key, user))
            last_30 = logins_between(user, now - timedelta(days=30))
            last_90 = logins_between(user, now - timedelta(days=90))
            inactive[(*key, "30")] += 0 if last_30 else 1
            inactive[(*key, "90")] += 0 if last_90 else 1
            histograms.setdefault(key, []).append(len(last_30))
    buckets = {}
    for key, counts in histograms.items():
        buckets[key] = {
            "buckets": [float(sum(1 for n in counts if n <= bound)) for bound in BUCKETS],
            "count": float(len(counts)),
            "sum": float(sum(counts)),
        }
    return {k: float(v) for k, v in inactive.items()}, buckets


def expected_heatmap(raw: RawData, now: datetime):
    structures_of = attachments(raw.accounts)
    cells: Counter = Counter()
    present = {structure for structure, _profile in known_pairs(raw)}
    for user, _profile, moment in raw.logins:
        if now - timedelta(days=28) < moment <= now:
            local = moment.astimezone(PARIS)
            for structure in structures_of.get(user, {"unknown"}) | {"all"}:
                cells[(structure, str(local.isoweekday()), str(local.hour))] += 1
                present.add(structure)
    return {
        (s, str(d), str(h)): float(cells[(s, str(d), str(h))]) for s in present for d in range(1, 8) for h in range(24)
    }


# -- running the collectors -------------------------------------------------------------------


def collect(dsn: str, name: str, now: datetime) -> dict:
    config = parse_config({"source": {"dsn": dsn}}, "test")
    with make_source(config) as source:
        runtime = make_runtime(config, source, persistent=False)
        assert runtime.run(name, now.astimezone(UTC))
        return runtime.samples(name)


def histogram_dict(samples: dict) -> dict:
    return {key: vars(value) for key, value in samples.items()}


@pytest.mark.parametrize("moment", sorted(NOWS))
def test_visitors_for_the_periods_to_date(data, moment):
    dsn, raw = data
    now = NOWS[moment].astimezone(UTC)  # durations (30 days, 28 days) are exact, not wall-clock
    samples = collect(dsn, "visitors", now)
    visitors, visits = expected_visitors(raw, calendar_periods(now))
    assert samples["ent_unique_visitors"] == visitors
    assert samples["ent_visits_per_visitor"] == pytest.approx(visits)
    assert {k[2] for k in visitors} == {"day", "week", "month"}
    # The two-profile user is one visitor over every profile, with all of her logins.
    if moment == "mid-week":
        per_profile = sum(v for (s, p, period), v in visitors.items() if s == "S1" and p != "all" and period == "day")
        assert visitors[("S1", "all", "day")] < per_profile
        assert visits[("S1", "all", "day")] > 0


@pytest.mark.parametrize("moment", sorted(NOWS))
def test_visitors_of_the_previous_month(data, moment):
    dsn, raw = data
    now = NOWS[moment].astimezone(UTC)  # durations (30 days, 28 days) are exact, not wall-clock
    samples = collect(dsn, "visitors_previous_month", now)
    visitors, visits = expected_visitors(raw, previous_month_period(now))
    assert visitors and samples["ent_unique_visitors"] == visitors
    assert samples["ent_visits_per_visitor"] == pytest.approx(visits)


@pytest.mark.parametrize("moment", sorted(NOWS))
def test_accounts_and_activation_ratio(data, moment):
    dsn, raw = data
    now = NOWS[moment].astimezone(UTC)  # durations (30 days, 28 days) are exact, not wall-clock
    samples = collect(dsn, "accounts", now)
    accounts, ratio = expected_accounts(raw, now)
    assert samples["ent_accounts"] == accounts
    assert samples["ent_account_activation_ratio"] == pytest.approx(ratio)


@pytest.mark.parametrize("moment", sorted(NOWS))
def test_inactive_accounts_and_logins_per_user(data, moment):
    dsn, raw = data
    now = NOWS[moment].astimezone(UTC)  # durations (30 days, 28 days) are exact, not wall-clock
    samples = collect(dsn, "activity", now)
    inactive, histograms = expected_activity(raw, now)
    assert samples["ent_inactive_accounts"] == inactive
    assert histogram_dict(samples["ent_user_logins_30d"]) == histograms


@pytest.mark.parametrize("moment", sorted(NOWS))
def test_logins_by_local_weekday_and_hour(data, moment):
    dsn, raw = data
    now = NOWS[moment].astimezone(UTC)  # durations (30 days, 28 days) are exact, not wall-clock
    samples = collect(dsn, "login_heatmap", now)
    assert samples["ent_logins_by_hour"] == expected_heatmap(raw, now)


def test_dst_logins_land_in_their_local_hour(data):
    """Both 02:30s of the autumn change (an hour apart in UTC) count in hour 2 of that Sunday."""
    dsn, raw = data
    now = paris(2026, 10, 25, 12, 0).astimezone(UTC)
    autumn = collect(dsn, "login_heatmap", now)["ent_logins_by_hour"]
    local = [m.astimezone(PARIS) for _u, _p, m in raw.logins if now - timedelta(days=28) < m <= now]
    assert autumn[("all", "7", "2")] == sum(1 for m in local if m.isoweekday() == 7 and m.hour == 2)
    change_day = [m for m in local if m.date() == now.astimezone(PARIS).date() and m.hour == 2]
    assert {m.utcoffset() for m in change_day} == {timedelta(hours=2), timedelta(hours=1)}
    assert len(change_day) >= 6  # the two 02:30 edges, three logins each


def test_structure_info(data):
    dsn, _raw = data
    samples = collect(dsn, "structure_info", NOWS["mid-week"])
    assert samples["ent_structure_info"] == {
        ("S0", "Collège Jean Moulin", "college"): 1.0,
        ("S1", "Lycée Victor Hugo", "lycee"): 1.0,
        ("S2", "École du Centre", "unknown"): 1.0,
        ("S3", "S3", "ecole"): 1.0,
    }


def test_once_prints_every_family_of_the_design_for_every_structure_and_profile(data, tmp_path):
    dsn, raw = data
    config = write_config(tmp_path / "c.yml", dsn)
    result = run_cli("once", "--config", str(config), "--now", NOWS["mid-week"].isoformat())
    assert result.returncode == 0, result.stderr
    samples = parse(result.stdout)
    design = [
        "ent_logins_total",
        "ent_app_accesses_total",
        "ent_account_activations_total",
        "ent_connector_requests_total",
        "ent_connector_request_duration_seconds_bucket",
        "ent_unique_visitors",
        "ent_visits_per_visitor",
        "ent_accounts",
        "ent_account_activation_ratio",
        "ent_inactive_accounts",
        "ent_user_logins_30d_bucket",
        "ent_user_logins_30d_count",
        "ent_user_logins_30d_sum",
        "ent_logins_by_hour",
        "ent_structure_info",
        "ent_exporter_collector_last_success_timestamp_seconds",
        "ent_exporter_collector_duration_seconds",
        "ent_exporter_collector_failures_total",
        "ent_exporter_source_up",
        "ent_exporter_collector_cadence_seconds",
        "ent_exporter_series",
        "ent_exporter_folded_series_total",
    ]
    assert [name for name in design if name not in samples] == []
    # Self-metrics documented as always there are there: nothing folded is a 0 for every family.
    folded = samples["ent_exporter_folded_series_total"]
    assert {dict(k)["family"] for k in folded} >= {"ent_logins_total", "ent_unique_visitors", "ent_logins_by_hour"}
    assert set(folded.values()) == {0.0}
    structures = {s for _u, s, *_ in raw.accounts} | {"all"}
    profiles = {_label(p) for _u, _s, p, *_ in raw.accounts}
    accounts = {(dict(k)["structure"], dict(k)["profile"]) for k in samples["ent_accounts"]}
    assert {(s, p) for s in structures for p in profiles} <= accounts
    visitors = {dict(k)["structure"] for k in samples["ent_unique_visitors"]}
    assert structures <= visitors
    # Every people count has profile="all" beside structure="all", both at once too.
    for name in (
        "ent_unique_visitors",
        "ent_visits_per_visitor",
        "ent_accounts",
        "ent_account_activation_ratio",
        "ent_inactive_accounts",
        "ent_user_logins_30d_count",
    ):
        pairs = {(dict(k)["structure"], dict(k)["profile"]) for k in samples[name]}
        assert {(s, "all") for s in structures} <= pairs, name


def test_privacy_threshold_publishes_small_people_counts_as_zero(data, tmp_path):
    dsn, raw = data
    config = write_config(tmp_path / "c.yml", dsn, privacy={"min_count": 5})
    result = run_cli("once", "--config", str(config), "--now", NOWS["mid-week"].isoformat())
    assert result.returncode == 0, result.stderr
    # The periods to date (the closed month and the year-earlier days are recounted in their own tests).
    published = {
        k: v
        for k, v in parse(result.stdout)["ent_unique_visitors"].items()
        if dict(k)["period"] not in ("previous_month", "month_a_year_earlier")
    }
    truth, _ = expected_visitors(raw, calendar_periods(NOWS["mid-week"]))
    assert any(0 < v < 5 for v in truth.values()) and any(v >= 5 for v in truth.values())
    # The rule (small counts, and those a total minus its cells would give back) applied to the recount;
    # what it guarantees is tested in tests/test_privacy.py.
    expected, withheld = privacy.protect(truth, 5)
    assert any(truth[key] >= 5 for key in withheld)  # complementary suppression bites here
    assert published == {tuple(sorted(zip(("structure", "profile", "period"), k))): v for k, v in expected.items()}
    assert "are published as 0 (privacy.min_count)" in result.stdout
