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

from .base import ALL_STRUCTURES, Context, LabelValues

# One pass over accounts (a hash aggregate); the window collectors that use it run at most hourly.
KNOWN_PAIRS = sql.SQL("""
    SELECT DISTINCT coalesce(nullif(structure_id, ''), 'unknown'), coalesce(nullif(profile, ''), 'unknown')
    FROM {accounts}
""")


def known_pairs(ctx: Context) -> set[tuple[str, str]]:
    """Every (structure, profile) of ``accounts``, plus ("all", profile) for each of their profiles."""
    pairs = {(structure, profile) for structure, profile in ctx.source.fetch(KNOWN_PAIRS)}
    return pairs | {(ALL_STRUCTURES, profile) for _, profile in pairs}


def zeros(pairs: set[tuple[str, str]], *suffixes: LabelValues) -> dict[LabelValues, float]:
    """0 for each known pair followed by each of ``suffixes`` (e.g. each period), or alone."""
    return {(*pair, *suffix): 0.0 for pair in pairs for suffix in (suffixes or ((),))}
