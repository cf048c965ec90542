"""The structures and profiles known from ``accounts``: the series a people count publishes even at 0.

A structure whose pupils have not logged in yet today has 0 visitors today, not a missing
series: in Grafana a missing series reads as "No data", like a broken pipeline. So every
family that counts people starts from 0 for each (structure, profile) pair found in
``accounts`` and for ("all", profile) for each profile found there, then adds what the
period holds. Structures or profiles seen only in events (``unknown``, a profile no account
has) appear when they have something to count, as before.
"""

from __future__ import annotations

from psycopg import sql

from ent_exporter.engine.collector import (
    ALL_PROFILES,
    ALL_STRUCTURES,
    Context,
    LabelValues,
    Result,
    encode_samples,
)

# One pass over accounts (a hash aggregate); the window collectors that use it run at most hourly.
KNOWN_PAIRS = sql.SQL("""
    SELECT DISTINCT coalesce(nullif(structure_id, ''), 'unknown'), coalesce(nullif(profile, ''), 'unknown')
    FROM {accounts}
""")


def known_pairs(ctx: Context) -> set[tuple[str, str]]:
    """Every (structure, profile) of ``accounts``, plus ("all", profile) for each of their profiles."""
    pairs = {(structure, profile) for structure, profile in ctx.source.fetch(KNOWN_PAIRS)}
    return pairs | {(ALL_STRUCTURES, profile) for _, profile in pairs}


def people_pairs(ctx: Context) -> set[tuple[str, str]]:
    """The known pairs and, for each of their structures and "all", profile="all" (distinct people over
    every profile): the series a family that counts people publishes even at 0. Counters of events
    have no profile="all" (their profiles add up)."""
    pairs = known_pairs(ctx)
    return pairs | {(structure, ALL_PROFILES) for structure, _ in pairs}


def zeros(pairs: set[tuple[str, str]], *suffixes: LabelValues) -> dict[LabelValues, float]:
    """0 for each known pair followed by each of ``suffixes`` (e.g. each period), or alone."""
    return {(*pair, *suffix): 0.0 for pair in pairs for suffix in (suffixes or ((),))}


# Counters run every minute: they read the known pairs at most this often (and at their first run).
COUNTER_REFRESH_SECONDS = 3600.0


class KnownPairsCounter:
    """Mixin for an incremental counter labelled (structure, profile): a 0 series for every known pair.

    A counter born at 0 lets ``rate()`` and ``increase()`` see its first increments (a series
    that appears at 5 loses those 5), and a structure nobody logged in to reads 0, not "No data".
    The pairs are kept in the collector's state and read from accounts at most once an hour.
    The zeros add nothing to any count: the watermark is untouched, and a counter that keeps running
    totals holds them there too (its state then has the totals once, equal to the samples).
    """

    def collect(self, ctx: Context) -> Result:
        result: Result = super().collect(ctx)  # type: ignore[misc]  # (the counter's, next in the MRO)
        now = ctx.now.timestamp()
        known_at = ctx.state.get("known_at")
        if known_at is None or not 0 <= now - known_at < COUNTER_REFRESH_SECONDS:
            pairs, known_at = sorted(known_pairs(ctx)), now
        else:
            known = ctx.state.get("known", [])
            # Tuples once read back (the state keeps them so: the minutes between refreshes copy nothing).
            pairs = known if known and type(known[0]) is tuple else [tuple(pair) for pair in known]
        series = result.samples.setdefault(self.families[0].name, {})  # type: ignore[attr-defined]
        missing = set(pairs) - series.keys()
        result.state = {**result.state, "known": pairs, "known_at": known_at}
        if missing:
            series.update(dict.fromkeys(missing, 0.0))
            if "totals" in result.state:
                # The zeros join the running totals (adding 0 changes no count): the totals stay equal
                # to the samples, so the state file holds them once and the next run decodes them at C speed.
                result.state["totals"] = encode_samples(result.samples)
        return result
