"""Every metric family of every discovered collector, as ``tests.support.parse`` reads it from
the exposition, computed in plain Python from canonical rows.

The platform adapter tests translate their platform's raw rows (Edifice's event store and
directory export, Moodle's tables) into canonical rows by the mapping the README documents,
without SQL; this module turns those rows into the exposition's samples with the window
truths of ``tests.ent_rows`` and the counter truths of ``tests.support``. Label names are
the design's (design.md, "Metric names"), written out here rather than read from the
collectors, so that a collector publishing other labels fails the comparison.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from ent_exporter.engine.collector import HistogramValue, Kind
from ent_exporter.indicators import discover
from tests.ent_rows import (
    LOGIN_COUNT_BUCKETS,
    EntRows,
    expected_accounts,
    expected_activity,
    expected_heatmap,
    expected_structure_info,
    expected_visitors,
    month_a_year_earlier,
    periods_to_date,
    previous_month,
)
from tests.support import as_samples, expected_activations, expected_connector_samples, expected_event_counts

Samples = dict[str, dict[tuple, float]]  # sample name -> sorted label items -> value

LABELS = {
    "ent_unique_visitors": ("structure", "profile", "period"),
    "ent_visits_per_visitor": ("structure", "profile", "period"),
    "ent_accounts": ("structure", "profile", "state"),
    "ent_account_activation_ratio": ("structure", "profile"),
    "ent_inactive_accounts": ("structure", "profile", "days"),
    "ent_user_logins_30d": ("structure", "profile"),
    "ent_logins_by_hour": ("structure", "weekday", "hour"),
    "ent_structure_info": ("structure", "name", "kind"),
}


def gauge_samples(name: str, values: Mapping[tuple, float]) -> Samples:
    return {name: {tuple(sorted(zip(LABELS[name], key))): float(value) for key, value in values.items()}}


def histogram_samples(name: str, values: Mapping[tuple, HistogramValue], bounds: Iterable[float]) -> Samples:
    """A (gauge) histogram as the text format exposes it: _bucket{le}, _count and _sum."""
    bounds = tuple(bounds)
    out: Samples = {f"{name}_bucket": {}, f"{name}_count": {}, f"{name}_sum": {}}
    for key, value in values.items():
        labels = tuple(zip(LABELS[name], key))
        for bound, count in [*zip((str(float(b)) for b in bounds), value.buckets), ("+Inf", value.count)]:
            out[f"{name}_bucket"][tuple(sorted((*labels, ("le", bound))))] = float(count)
        out[f"{name}_count"][tuple(sorted(labels))] = float(value.count)
        out[f"{name}_sum"][tuple(sorted(labels))] = float(value.sum)
    return out


def window_families(rows: EntRows, now: datetime) -> Samples:
    """The hourly, daily, weekly and monthly families as of ``now``, from canonical rows."""
    visitors, visits = expected_visitors(rows, periods_to_date(now) | previous_month(now) | month_a_year_earlier(now))
    accounts, ratio = expected_accounts(rows, now)
    inactive, histograms = expected_activity(rows, now)
    return {
        **gauge_samples("ent_unique_visitors", visitors),
        **gauge_samples("ent_visits_per_visitor", visits),
        **gauge_samples("ent_accounts", accounts),
        **gauge_samples("ent_account_activation_ratio", ratio),
        **gauge_samples("ent_inactive_accounts", inactive),
        **histogram_samples("ent_user_logins_30d", histograms, LOGIN_COUNT_BUCKETS),
        **gauge_samples("ent_logins_by_hour", expected_heatmap(rows, now)),
        **gauge_samples("ent_structure_info", expected_structure_info(rows)),
    }


def counter_families(
    accounts: list[tuple],
    logins: Iterable[tuple],
    accesses: Iterable[tuple],
    connector_calls: Iterable[tuple],
    upto: datetime,
) -> Samples:
    """The instant counters, from canonical rows already cut at what the counters have read.

    ``logins``: (user, profile, ...), ``accesses``: (user, profile, app, ...),
    ``connector_calls``: (connector, structure, occurred_at, success, duration_ms).
    """
    connectors = {
        "ent_connector_requests_total": {},
        "ent_connector_request_duration_seconds_bucket": {},
        "ent_connector_request_duration_seconds_count": {},
        "ent_connector_request_duration_seconds_sum": {},
    }
    return {
        "ent_logins_total": as_samples(
            "ent_logins_total", ("structure", "profile"), expected_event_counts(accounts, logins, False)
        ),
        "ent_app_accesses_total": as_samples(
            "ent_app_accesses_total", ("structure", "profile", "app"), expected_event_counts(accounts, accesses, True)
        ),
        "ent_account_activations_total": as_samples(
            "ent_account_activations_total", ("structure", "profile"), expected_activations(accounts, upto)
        ),
        **connectors,
        **expected_connector_samples(connector_calls),
    }


def published_sample_names() -> set[str]:
    """Every sample name the discovered collectors can publish (histograms: _bucket, _count, _sum),
    opt-in collectors aside."""
    names = set()
    for collector in discover().values():
        if collector.opt_in:  # runs only when configured (its families, if shared, come from another)
            continue
        for family in collector.families:
            if family.kind in (Kind.HISTOGRAM, Kind.GAUGE_HISTOGRAM):
                names |= {f"{family.name}_bucket", f"{family.name}_count", f"{family.name}_sum"}
            else:
                names.add(family.name)
    return names


def differences(actual: Mapping[tuple, float], expected: Mapping[tuple, float], limit: int = 12) -> list[str]:
    lines = []
    for key in sorted(set(actual) | set(expected)):
        if actual.get(key) != expected.get(key):
            lines.append(f"  {dict(key)}: exported {actual.get(key)}, truth {expected.get(key)}")
    return lines[:limit] + ([f"  ... {len(lines) - limit} more"] if len(lines) > limit else [])


def assert_every_family(samples: Samples, truth: Samples, only: Iterable[str] | None = None) -> None:
    """Each sample name (all the collectors publish, or ``only`` those) equals its truth, series for series."""
    names = set(only) if only is not None else published_sample_names()
    missing = names - set(truth)
    assert not missing, f"no truth for {sorted(missing)}"
    wrong = {
        name: differences(samples.get(name, {}), truth[name])
        for name in sorted(names)
        if samples.get(name, {}) != truth[name]
    }
    assert not wrong, "\n".join(f"{name}:\n" + "\n".join(lines) for name, lines in wrong.items())


def window_edges(now: datetime, step: timedelta) -> list[datetime]:
    """The instants the window definitions turn on, as of ``now``: each calendar period's first
    instant and the one ``step`` (the platform's time resolution) before it, now and just after it,
    and the start of the 28, 30 and 90 days windows ((now - N days, now]: the first is out) and
    just after it."""
    edges = [now, now + step]
    for start, _end in (periods_to_date(now) | previous_month(now)).values():
        edges += [start, start - step]
    for days in (28, 30, 90):
        edges += [now - timedelta(days=days), now - timedelta(days=days) + step]
    return sorted(set(edges))


def assert_windows_populated(truth: Samples) -> None:
    """The truth is not trivially empty: platform-wide, day < week < month to date and a previous
    month with visitors; users inactive for 30 days but not 90, and for 90; activated users with no
    login in 30 days and users beyond the last finite bucket; both account states."""
    platform = {
        name: {
            tuple(v for n, v in key if n != "structure"): value
            for key, value in series.items()
            if dict(key).get("structure") == "all" and dict(key).get("profile") != "all"
        }
        for name, series in truth.items()
    }
    visitors, inactive, buckets = Counter(), Counter(), Counter()
    for (period, _profile), value in platform["ent_unique_visitors"].items():
        visitors[period] += value
    for (days, _profile), value in platform["ent_inactive_accounts"].items():
        inactive[days] += value
    for (le, _profile), value in platform["ent_user_logins_30d_bucket"].items():
        buckets[le] += value
    assert 0 < visitors["day"] < visitors["week"] < visitors["month"] and visitors["previous_month"] > 0, visitors
    assert inactive["30"] > inactive["90"] > 0, inactive
    assert 0 < buckets["0.0"] and buckets["50.0"] < buckets["+Inf"], buckets
    assert {dict(k)["state"] for k, v in truth["ent_accounts"].items() if v} == {"activated", "pending"}
    assert any(0 < v < 1 for v in truth["ent_account_activation_ratio"].values())
    assert len({dict(k)["structure"] for k in truth["ent_logins_by_hour"]}) >= 3  # all, unknown, a structure


# The sample names of the window families (those not counted incrementally).
WINDOW_SAMPLE_NAMES = frozenset(window_families(EntRows(), datetime.fromisoformat("2026-01-01T00:00+00:00")))


FEED_FAMILIES = (
    "ent_account_feed_last_run_timestamp_seconds",
    "ent_account_feed_last_success_timestamp_seconds",
    "ent_account_feed_last_run_success",
    "ent_account_feed_last_run_duration_seconds",
    "ent_account_feed_last_run_rows",
)


def feed_truth(runs: list[tuple], now: datetime) -> dict[str, dict[tuple, float]]:
    """The feed families as parse() returns them, from the recorded runs (those ended by ``now``):
    runs = (feed, started_at, finished_at, success, rows_read, rows_imported, rows_rejected, rows_skipped, ...)."""
    out: dict[str, dict[tuple, float]] = {name: {} for name in FEED_FAMILIES}
    by_feed: dict[str, list[tuple]] = {}
    for run in runs:
        if run[2] <= now:
            by_feed.setdefault(run[0], []).append(run)
    for feed, feed_runs in by_feed.items():
        last = max(feed_runs, key=lambda run: run[2])
        successes = [run[2] for run in feed_runs if run[3]]
        key = (("feed", feed),)
        out.setdefault("ent_account_feed_last_run_timestamp_seconds", {})[key] = last[2].timestamp()
        out.setdefault("ent_account_feed_last_success_timestamp_seconds", {})[key] = (
            max(successes).timestamp() if successes else 0.0
        )
        out.setdefault("ent_account_feed_last_run_success", {})[key] = 1.0 if last[3] else 0.0
        out.setdefault("ent_account_feed_last_run_duration_seconds", {})[key] = (last[2] - last[1]).total_seconds()
        for outcome, count in zip(("read", "imported", "rejected", "skipped"), last[4:8]):
            if count is not None:
                out.setdefault("ent_account_feed_last_run_rows", {})[(("feed", feed), ("outcome", outcome))] = float(
                    count
                )
    return out


COURSE_FAMILIES = (
    "ent_course_enrolled_users",
    "ent_course_completed_users",
    "ent_course_completion_ratio",
    "ent_course_activity_completions",
    "ent_course_badges_issued",
)


def course_truth(
    progress: Iterable[tuple] | None, structures: Iterable[str], upto: datetime, per_course: bool = False
) -> dict[str, dict[tuple, float]]:
    """The course families as parse() returns them. ``progress``: one row per person enrolled in a course,
    (user, structure, course, completed_at or None, activities complete, passed, failed, badges); None for
    a source without course_progress (nothing published). Each structure of ``structures`` and "all" has
    its course="all" series, 0 without enrolments; per course only when ``per_course``."""
    out: dict[str, dict[tuple, float]] = {name: {} for name in COURSE_FAMILIES}
    if progress is None:
        return out
    groups: dict[tuple[str, str], list[tuple]] = {(s, "all"): [] for s in [*structures, "all"]}
    for row in progress:
        _user, structure, course = row[:3]
        keys = [(structure, "all"), ("all", "all")] + ([(structure, course)] if per_course else [])
        for key in keys:
            groups.setdefault(key, []).append(row)
    for (structure, course), rows in groups.items():
        labels = (("course", course), ("structure", structure))
        completed = [r for r in rows if r[3] is not None and r[3] <= upto]
        out["ent_course_enrolled_users"][labels] = float(len({r[0] for r in rows}))
        out["ent_course_completed_users"][labels] = float(len({r[0] for r in completed}))
        out["ent_course_completion_ratio"][labels] = len(completed) / len(rows) if rows else 0.0
        for position, state in ((4, "complete"), (5, "passed"), (6, "failed")):
            out["ent_course_activity_completions"][(*labels[:1], ("state", state), *labels[1:])] = float(
                sum(r[position] for r in rows)
            )
        out["ent_course_badges_issued"][labels] = float(sum(r[7] for r in rows))
    return out
