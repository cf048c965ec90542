"""privacy.min_count holds under arithmetic: no published sample, ratio included, reveals a count of 1 to
``min_count - 1`` people, alone or as a published total minus published figures of the same family,
period and labels.

The checks below read only what is published (the exposition's text) and the raw rows: they do not
re-implement the rule (ent_exporter.engine.privacy), they test what it must guarantee.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from random import Random

import pytest

from ent_exporter.engine import privacy
from ent_exporter.engine.collector import Context, Kind
from ent_exporter.engine.exposition import Exposition, Policy
from ent_exporter.indicators.accounts import AccountsCollector
from ent_exporter.indicators.activity import ActivityCollector
from ent_exporter.indicators.visitors import CurrentPeriodVisitorsCollector, PreviousMonthVisitorsCollector
from ent_exporter.sources.postgres import PostgresSource
from tests.ent_rows import (
    PARIS,
    expected_accounts,
    expected_activity,
    expected_visitors,
    generate,
    insert,
    paris,
    periods_to_date,
    previous_month,
)
from tests.support import parse

MIN = 5
SMALL = range(1, MIN)


def groups(samples: dict[tuple, float], labels: tuple[str, ...]):
    """For each label whose value "all" appears: (label, the total's value, the cells' values) of every
    group (the series that agree on every other label)."""
    for position, name in enumerate(labels):
        if not any(key[position] == "all" for key in samples):
            continue
        totals, cells = {}, defaultdict(list)
        for key, value in samples.items():
            rest = key[:position] + key[position + 1 :]
            if key[position] == "all":
                totals[rest] = value
            else:
                cells[rest].append(value)
        for rest, total in totals.items():
            yield name, rest, total, cells.get(rest, [])


def assert_nothing_small(samples: dict[tuple, float], labels: tuple[str, ...], every_subset: bool) -> None:
    """No value of 1..MIN-1; no total minus its cells (all of them, or with ``every_subset`` any of
    them: the cells of partition data) of 1..MIN-1."""
    small = {key: value for key, value in samples.items() if value in SMALL}
    assert not small, small
    for name, rest, total, cells in groups(samples, labels):
        published = [value for value in cells if value > 0]
        subsets = (
            itertools.chain.from_iterable(itertools.combinations(published, n) for n in range(len(published) + 1))
            if every_subset
            else [published]
        )
        for subset in subsets:
            assert total - sum(subset) not in SMALL, (name, rest, total, cells, subset)


# -- the rule on hostile tables ------------------------------------------------------------------------


def partition_table(rng: Random, structures: int, profiles: int) -> dict[tuple, float]:
    """Each person in one structure and one profile: cells of 0 to 9 people, and every total."""
    table: dict[tuple, float] = defaultdict(float)
    for s in range(structures):
        for p in range(profiles):
            people = rng.choice([0, 1, 1, 2, 3, 4, 5, 6, 9, 30])
            for key in ((f"S{s}", f"P{p}"), (f"S{s}", "all"), ("all", f"P{p}"), ("all", "all")):
                table[key] += people
    return dict(table)


@pytest.mark.parametrize("seed", range(60))
def test_no_cell_comes_back_by_difference_in_a_partition(seed):
    rng = Random(seed)
    table = partition_table(rng, rng.randint(1, 6), rng.randint(1, 5))
    published, withheld = privacy.protect(table, MIN)
    assert_nothing_small(published, ("structure", "profile"), every_subset=True)
    # Nothing is altered: a count is published as it is, or withheld (0); exactly the withheld are hidden.
    assert {key for key, value in published.items() if value != table[key]} == withheld
    assert all(published[key] == 0 for key in withheld)


def test_the_rule_withholds_a_complementary_cell_and_no_more_than_needed():
    # One Guest among 40 people of a structure: the Guest is hidden, and so is the smallest other profile.
    table = {
        ("S1", "Student"): 30.0,
        ("S1", "Teacher"): 6.0,
        ("S1", "Guest"): 1.0,
        ("S1", "Relative"): 3.0,
        ("S1", "all"): 40.0,
    }
    published, withheld = privacy.protect(table, MIN)
    # Guest and Relative (4 together) hidden first; 40 - 36 = 4 still tells their sum: Teacher goes too.
    assert withheld == {("S1", "Guest"), ("S1", "Relative"), ("S1", "Teacher")}
    assert published == {
        ("S1", "Student"): 30.0,
        ("S1", "Teacher"): 0.0,
        ("S1", "Guest"): 0.0,
        ("S1", "Relative"): 0.0,
        ("S1", "all"): 40.0,
    }
    # Without the Relative: 1 Guest, and 40 - 39 = 1 would tell it: Teacher (the smallest) is hidden.
    table = {("S1", "Student"): 30.0, ("S1", "Teacher"): 9.0, ("S1", "Guest"): 1.0, ("S1", "all"): 40.0}
    assert privacy.protect(table, MIN)[1] == {("S1", "Guest"), ("S1", "Teacher")}
    # Two hidden cells of 3 and 4 leave 7 unexplained: nothing more to hide.
    table = {("S1", "A"): 30.0, ("S1", "B"): 3.0, ("S1", "C"): 4.0, ("S1", "all"): 37.0}
    assert privacy.protect(table, MIN)[1] == {("S1", "B"), ("S1", "C")}


def test_a_withheld_cell_is_protected_in_its_other_groups_too():
    # Hiding (S1, Teacher) for S1's profiles makes the Teacher column give it back: another Teacher goes.
    table = {
        ("S1", "Student"): 20.0,
        ("S1", "Teacher"): 7.0,
        ("S1", "Guest"): 2.0,
        ("S1", "all"): 29.0,
        ("S2", "Student"): 10.0,
        ("S2", "Teacher"): 8.0,
        ("S2", "Guest"): 0.0,
        ("S2", "all"): 18.0,
        ("all", "Student"): 30.0,
        ("all", "Teacher"): 15.0,
        ("all", "Guest"): 2.0,
        ("all", "all"): 47.0,
    }
    published, withheld = privacy.protect(table, MIN)
    assert_nothing_small(published, ("structure", "profile"), every_subset=True)
    assert ("S1", "Teacher") in withheld and ("all", "Guest") in withheld


@pytest.mark.parametrize("seed", range(20))
def test_counters_stay_monotonic_and_give_nothing_back(seed):
    """Counters of people (activations): each series never goes down while the counts grow, and no
    total minus its cells is small at any step."""
    rng = Random(seed)
    cells = {(f"S{s}", f"P{p}"): 0 for s in range(4) for p in range(3)}
    previous: dict[tuple, float] = {}
    for _step in range(25):
        for key in rng.sample(sorted(cells), 2):
            cells[key] += rng.choice([1, 1, 2, 3])
        table: dict[tuple, float] = defaultdict(float)
        for (s, p), people in cells.items():
            for key in ((s, p), (s, "all"), ("all", p), ("all", "all")):
                table[key] += people
        published, _ = privacy.protect(dict(table), MIN, monotonic=True)
        assert_nothing_small(published, ("structure", "profile"), every_subset=True)
        assert all(published[key] >= previous.get(key, 0) for key in published), (previous, published)
        previous = published


# -- the exporter on hostile rows ----------------------------------------------------------------------

NOW = paris(2026, 11, 18, 15, 0)
ROWS = generate(23, [NOW])  # 48 people in 5 structures, some in two: most cells hold 1 to 4 people
COLLECTORS = (CurrentPeriodVisitorsCollector, PreviousMonthVisitorsCollector, AccountsCollector, ActivityCollector)


@pytest.fixture(scope="module")
def collected(pg_server):
    from tests.support import canonical_database

    dsn = canonical_database(pg_server, "privacy")
    insert(dsn, ROWS)
    source = PostgresSource(dsn)
    source.open()
    try:
        yield {
            collector.name: collector()
            .collect(Context(source=source, now=NOW.astimezone(PARIS), timezone=PARIS, state={}))
            .samples
            for collector in COLLECTORS
        }
    finally:
        source.close()


def published(collected, breakdowns):
    families = [family for collector in COLLECTORS for family in collector.families]
    exposition = Exposition(families, Policy(privacy_min_count=MIN, breakdowns=breakdowns))
    exposition.publish(collected)
    return parse(exposition.body().decode())


def by_labels(samples: dict[tuple, float], labels: tuple[str, ...]) -> dict[tuple, float]:
    return {tuple(dict(key)[name] for name in labels): value for key, value in samples.items()}


@pytest.mark.parametrize("breakdowns", [None, frozenset()], ids=["whole", "series budget"])
def test_no_published_sample_reveals_a_small_count(collected, breakdowns):
    samples = published(collected, breakdowns)
    visitors_truth, visits_truth = expected_visitors(ROWS, periods_to_date(NOW) | previous_month(NOW))
    accounts_truth, ratio_truth = expected_accounts(ROWS, NOW)
    inactive_truth, histograms_truth = expected_activity(ROWS, NOW)
    assert sum(1 for value in visitors_truth.values() if value in SMALL) > 20  # the rows are hostile

    visitors = by_labels(samples["ent_unique_visitors"], ("structure", "profile", "period"))
    accounts = by_labels(samples["ent_accounts"], ("structure", "profile", "state"))
    inactive = by_labels(samples["ent_inactive_accounts"], ("structure", "profile", "days"))
    for table, labels in (
        (visitors, ("structure", "profile", "period")),
        (accounts, ("structure", "profile", "state")),
        (inactive, ("structure", "profile", "days")),
    ):
        assert_nothing_small(table, labels, every_subset=False)
    # Published people counts are the true ones, or 0: withheld (never another number).
    for table, truth in ((visitors, visitors_truth), (accounts, accounts_truth)):
        assert all(value in (0, truth[key]) for key, value in table.items())
        assert any(value == 0 and truth[key] >= MIN for key, value in table.items())  # complementary ones
    # Inactive accounts: the people between 30 and 90 days, and beyond 90, are the counts.
    for (structure, profile, days), value in inactive.items():
        if days == "30":
            between = value - inactive[(structure, profile, "90")]
            assert between not in SMALL and between in (
                0,
                inactive_truth[(structure, profile, "30")] - inactive_truth[(structure, profile, "90")],
            )
    # Histograms: each bucket's people (the difference of two cumulative counts) are counts too.
    buckets = defaultdict(dict)
    for key, value in samples["ent_user_logins_30d_bucket"].items():
        labels = dict(key)
        buckets[(labels["structure"], labels["profile"])][float(labels["le"])] = value
    bins: dict[tuple, float] = {}
    for pair, cumulative in buckets.items():
        previous = 0.0
        for bound in sorted(cumulative):
            bins[(*pair, bound)] = cumulative[bound] - previous
            previous = cumulative[bound]
        count = samples["ent_user_logins_30d_count"][(("profile", pair[1]), ("structure", pair[0]))]
        assert count == cumulative[float("inf")]
    assert_nothing_small(bins, ("structure", "profile", "le"), every_subset=False)
    assert set(histograms_truth) >= set(buckets)

    # Ratios: published only where every count they are made of is published as it is.
    ratios = by_labels(samples["ent_visits_per_visitor"], ("structure", "profile", "period"))
    assert ratios, "some ratios are published"
    for key, value in ratios.items():
        assert visitors[key] == visitors_truth[key] and visitors_truth[key] not in SMALL, key
        assert value == pytest.approx(visits_truth[key])
    hidden = {key for key, value in visitors.items() if value != visitors_truth[key]}
    assert hidden and not hidden & set(ratios)
    activation = by_labels(samples["ent_account_activation_ratio"], ("structure", "profile"))
    for (structure, profile), value in activation.items():
        for state in ("activated", "pending"):
            assert accounts[(structure, profile, state)] == accounts_truth[(structure, profile, state)]
        assert value == pytest.approx(ratio_truth[(structure, profile)])
    assert len(activation) < len(ratio_truth)  # some are left out


def test_every_people_family_is_protected_or_follows_one():
    """Every family of a people count says so; every ratio or average of people names what it follows."""
    from ent_exporter.indicators import discover

    for collector in discover().values():
        for family in collector.families:
            if family.unit == "ratio" or "per_visitor" in family.name:
                assert family.privacy_follows, family.name
                followed = {f.name: f for c in discover().values() for f in c.families}
                for name in family.privacy_follows:
                    assert followed[name].counts_people and set(family.labels) <= set(followed[name].labels)
            if family.nested is not None:
                assert family.counts_people and family.kind is Kind.GAUGE
