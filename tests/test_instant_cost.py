"""The instant cycle's attribution: the app-access delta looks each distinct user up once in
accounts (EXPLAIN ANALYZE loops), however many (profile, app) groups the user has."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from psycopg import sql

from ent_exporter.aggregation.incremental import dimension_fragments
from ent_exporter.app import make_source
from ent_exporter.config import parse_config
from ent_exporter.indicators.app_accesses import AppAccessesCollector

START = datetime(2026, 1, 5, tzinfo=UTC)
USERS = 300
APPS = 12


def test_app_access_delta_looks_each_user_up_once(source_dsn):
    with psycopg.connect(source_dsn) as conn:
        conn.execute(
            "INSERT INTO ent.accounts SELECT 'u' || i, 'S' || (i %% 7), 'Student', %s, %s"
            " FROM generate_series(1, %s) i",
            (START, START, USERS),
        )
        # Every user opens every app under two profiles: 24 groups per user.
        conn.execute(
            "INSERT INTO ent.app_access_events (user_id, profile, app, occurred_at)"
            " SELECT 'u' || u, (ARRAY['Student', 'Teacher'])[1 + (a + r) %% 2], 'app' || a, %s"
            " FROM generate_series(1, %s) u, generate_series(1, %s) a, generate_series(1, 2) r",
            (START, USERS, APPS),
        )
        conn.execute(
            "INSERT INTO ent.app_access_events (user_id, profile, app, occurred_at) VALUES (NULL, 'Guest', 'app1', %s)",
            (START,),
        )
        conn.execute("ANALYZE ent.accounts")
        conn.execute("ANALYZE ent.app_access_events")
        config = parse_config({"source": {"dsn": source_dsn}}, "test")
        source = make_source(config)
        statement = source.compose(
            AppAccessesCollector.delta_query,
            events="app_access_events",
            **dimension_fragments(AppAccessesCollector.dimensions),
        )
        plan = conn.execute(
            sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) {}").format(statement), {"after": 0, "upto": 10**9}
        ).fetchone()[0][0]["Plan"]
        rows = conn.execute(statement, {"after": 0, "upto": 10**9}).fetchall()

    def nodes(node):
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)

    accounts = [n for n in nodes(plan) if n.get("Relation Name") == "accounts"]
    assert accounts, plan
    # One probe per distinct user (USERS), not one per (user, profile, app) group (USERS * APPS * 2).
    assert sum(n["Actual Loops"] for n in accounts) == USERS, [(n["Node Type"], n["Actual Loops"]) for n in accounts]
    counts = {tuple(r[:-1]): r[-1] for r in rows}
    assert counts[("all", "Guest", "app1")] == 1 and counts[("unknown", "Guest", "app1")] == 1
    assert sum(v for k, v in counts.items() if k[0] == "all") == USERS * APPS * 2 + 1
    assert sum(v for k, v in counts.items() if k[0] != "all") == USERS * APPS * 2 + 1


def test_a_republish_formats_only_the_series_that_changed():
    """The exposition keeps each series' rendered lines: a publish that moved one counter of 5,000
    formats that one line again (the others are the very same cached objects), and the body is
    still byte for byte prometheus-client's."""
    from ent_exporter.engine.collector import Family, HistogramValue, Kind
    from ent_exporter.engine.exposition import Exposition, render_family_reference

    counter = Family("ent_x_total", Kind.COUNTER, "x", ("structure", "app"))
    histogram = Family("ent_h", Kind.GAUGE_HISTOGRAM, "h", ("structure",), (1, 5))
    series = {(f"S{i}", f"app{i % 13}"): float(i) for i in range(5000)}
    hist = {(f"S{i}",): HistogramValue([float(i), float(i + 1)], float(i + 2), float(i * 3)) for i in range(300)}
    exposition = Exposition([counter, histogram])
    exposition.publish({"c": {counter.name: series, histogram.name: hist}})
    before = {
        name: (list(r.position), list(r.lines))
        for name in (counter.name, histogram.name)
        if (r := exposition.rendered(name))
    }
    series = {**series, ("S7", "app7"): 8.0}
    hist = {**hist, ("S3",): HistogramValue([3.0, 5.0], 6.0, 9.0)}
    exposition.publish({"c": {counter.name: series, histogram.name: hist}})
    for name in (counter.name, histogram.name):
        keys, lines = before[name]
        after = exposition.rendered(name)
        assert list(after.position) == keys
        assert [key for key, old, new in zip(keys, lines, after.lines) if new is not old] == (
            [("S7", "app7")] if name == counter.name else [("S3",)]
        )
    assert exposition.body() == render_family_reference(histogram, hist) + render_family_reference(counter, series)


def test_the_saved_result_shares_the_collectors_label_tuples(tmp_path):
    """What the runtime encodes and keeps of a result reuses the samples' key tuples: no copy per series."""
    from ent_exporter.engine.collector import Family, Kind, encode_samples

    family = Family("ent_y_total", Kind.COUNTER, "y", ("structure",))
    samples = {family.name: {(f"S{i}",): float(i) for i in range(100)}}
    encoded = encode_samples(samples)
    assert all(labels is key for (labels, _), key in zip(encoded[family.name], samples[family.name]))


def test_the_budgets_marginals_are_updated_with_the_changes_and_equal_a_recount():
    """A counter under the series budget (app accesses: per structure, profile="all" only) moves a few
    series a minute: its marginals are updated with those changes, not summed again over every series,
    and every body equals what an exposition publishing the same series from scratch renders."""
    import random

    from ent_exporter.engine import exposition as module
    from ent_exporter.engine.exposition import Exposition, Policy

    APP_ACCESSES = AppAccessesCollector.families[0]
    rng = random.Random(17)
    structures, profiles, apps = [f"S{i}" for i in range(40)] + ["all"], ["Student", "Teacher", "Relative"], ["a", "b"]
    series = {(s, p, a): float(rng.randrange(50)) for s in structures for p in profiles for a in apps}
    incremental = Exposition([APP_ACCESSES], Policy(breakdowns=frozenset()))
    incremental.publish({"app_accesses": {APP_ACCESSES.name: dict(series)}})
    # The same series published with what moved, as the runtime knows it: nothing else is compared.
    hinted = Exposition([APP_ACCESSES], Policy(breakdowns=frozenset()))
    hinted.publish({"app_accesses": {APP_ACCESSES.name: dict(series)}})
    recounts = []
    original = module.structure_marginals
    module.structure_marginals = lambda *args: recounts.append(1) or original(*args)
    try:
        for cycle in range(30):
            moved = set()
            for _ in range(rng.randrange(0 if cycle == 7 else 1, 25)):  # some move, some are new (an app, a structure)
                key = (rng.choice(structures + ["S-new"]), rng.choice(profiles), rng.choice(apps + ["c"]))
                series[key] = series.get(key, 0.0) + rng.randrange(1, 9)
                moved.add(key)
            renders = hinted.renders
            incremental.publish({"app_accesses": {APP_ACCESSES.name: dict(series)}})
            hinted.publish(
                {"app_accesses": {APP_ACCESSES.name: dict(series)}},
                {"app_accesses": {APP_ACCESSES.name: sorted(moved)}},
            )
            assert hinted.renders == renders + bool(moved)  # nothing moved: nothing rendered
            fresh = Exposition([APP_ACCESSES], Policy(breakdowns=frozenset()))
            fresh.publish({"app_accesses": {APP_ACCESSES.name: dict(series)}})
            assert incremental.body() == fresh.body() == hinted.body(), cycle
        assert len(recounts) == 30, "each fresh exposition recounts; the updated ones never do"
        del series[("S1", "Student", "a")]  # a series gone (idle, withdrawn): recounted
        incremental.publish({"app_accesses": {APP_ACCESSES.name: dict(series)}})
        assert len(recounts) == 31
    finally:
        module.structure_marginals = original
    fresh = Exposition([APP_ACCESSES], Policy(breakdowns=frozenset()))
    fresh.publish({"app_accesses": {APP_ACCESSES.name: dict(series)}})
    assert incremental.body() == fresh.body()
    assert b'structure="S1",profile="all"' in fresh.body() or b'profile="all",structure="S1"' in fresh.body()


def test_a_counter_counting_in_the_budgets_shape_is_published_without_adding_up_marginals():
    """App accesses under the budget are counted in its shape (summed per structure in SQL): their series
    are their own marginals, so a minute's moves are rendered as they come, nothing added up (neither
    recounted nor updated); a series out of that shape falls back to the update. Every body equals what
    an exposition publishing the same series from scratch renders."""
    import random

    from ent_exporter.engine import exposition as module
    from ent_exporter.engine.exposition import Exposition, Policy

    APP_ACCESSES = AppAccessesCollector.families[0]
    rng = random.Random(23)
    structures, profiles, apps = [f"S{i}" for i in range(40)], ["Student", "Teacher"], ["a", "b", "c"]
    series = {(s, "all", a): float(rng.randrange(50)) for s in structures for a in apps}
    series.update({("all", p, a): float(rng.randrange(50)) for p in profiles for a in apps})
    hinted = Exposition([APP_ACCESSES], Policy(breakdowns=frozenset()))
    hinted.publish({"app_accesses": {APP_ACCESSES.name: dict(series)}})
    sums = []
    originals = module.structure_marginals, module.updated_marginals
    module.structure_marginals = lambda *args: sums.append("recount") or originals[0](*args)
    module.updated_marginals = lambda *args: sums.append("update") or originals[1](*args)
    try:
        for cycle in range(20):
            moved = set()
            for _ in range(rng.randrange(1, 25)):  # some move, some are new (an app, a structure)
                key = rng.choice([(rng.choice(structures + ["S-new"]), "all"), ("all", rng.choice(profiles))])
                key += (rng.choice(apps + ["d"]),)
                series[key] = series.get(key, 0.0) + rng.randrange(1, 9)
                moved.add(key)
            hinted.publish(
                {"app_accesses": {APP_ACCESSES.name: dict(series)}},
                {"app_accesses": {APP_ACCESSES.name: sorted(moved)}},
            )
            fresh = Exposition([APP_ACCESSES], Policy(breakdowns=frozenset()))
            fresh.publish({"app_accesses": {APP_ACCESSES.name: dict(series)}})
            assert hinted.body() == fresh.body(), cycle
        assert sums == ["recount"] * 20, "each fresh exposition recounts; the hinted one adds nothing up"
        series[("S1", "Student", "a")] = 4.0  # out of the budget's shape: its marginal is updated
        hinted.publish(
            {"app_accesses": {APP_ACCESSES.name: dict(series)}},
            {"app_accesses": {APP_ACCESSES.name: [("S1", "Student", "a")]}},
        )
        assert sums[-1] == "update"
    finally:
        module.structure_marginals, module.updated_marginals = originals
    fresh = Exposition([APP_ACCESSES], Policy(breakdowns=frozenset()))
    fresh.publish({"app_accesses": {APP_ACCESSES.name: dict(series)}})
    assert hinted.body() == fresh.body()


def test_a_counter_under_the_budget_counts_its_published_shape_and_follows_the_configuration(source_dsn, tmp_path):
    """ent_app_accesses_total under the series budget counts, per structure, profile="all" (events add
    up) and structure="all" whole: its totals, state and tracking hold those series, not the full
    application x profile x structure breakdown. Each figure equals the raw rows' count. Enabling the
    breakdown counts the whole history again (it was never counted); disabling it folds the totals."""
    from collections import Counter
    from datetime import timedelta
    from random import Random

    from ent_exporter.app import make_runtime
    from tests.support import FULL_BREAKDOWNS, RawData, expected_event_counts, insert, make_accounts, make_events

    rng = Random(23)
    accounts = make_accounts(rng, 300, structures=5, start=START)
    first = make_events(rng, 2000, 300, START, timedelta(days=3))
    insert(source_dsn, RawData(accounts=accounts, app_accesses=first.app_accesses))
    name = AppAccessesCollector.families[0].name

    def budget_truth(events) -> dict:
        truth: Counter = Counter()
        for (structure, profile, app), count in expected_event_counts(accounts, events, with_app=True).items():
            truth[(structure, profile if structure == "all" else "all", app)] += count
        return dict(truth)

    def run(now, breakdowns=None) -> dict:
        config = parse_config(
            {
                "source": {"dsn": source_dsn, "settle_seconds": 0},
                "state_dir": str(tmp_path),
                **({"breakdowns": breakdowns} if breakdowns else {}),
            },
            "test",
        )
        with make_source(config) as source:
            runtime = make_runtime(config, source, persistent=True)
            runtime.restore()
            assert runtime.run("app_accesses", now)
            return runtime

    runtime = run(START + timedelta(days=4))
    totals = runtime.samples("app_accesses")[name]
    assert totals == budget_truth(first.app_accesses)
    assert all(key[0] == "all" or key[1] == "all" for key, _ in runtime.state("app_accesses")["totals"][name])

    later = make_events(rng, 500, 300, START + timedelta(days=4, hours=1), timedelta(hours=5))
    insert(source_dsn, RawData(app_accesses=later.app_accesses))
    everything = first.app_accesses + later.app_accesses
    assert run(START + timedelta(days=5))._last_samples["app_accesses"][name] == budget_truth(everything)

    whole = run(START + timedelta(days=5, minutes=1), FULL_BREAKDOWNS)._last_samples["app_accesses"][name]
    assert whole == dict(expected_event_counts(accounts, everything, with_app=True))
    assert run(START + timedelta(days=5, minutes=2))._last_samples["app_accesses"][name] == budget_truth(everything)
