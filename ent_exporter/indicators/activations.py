"""Account activations: accounts whose activation time has passed, counted once each.

Accounts carry no event id and an activation may reach the source late (a directory
import, an Edifice activation event written after the fact), with an ``activated_at``
behind what was already counted. So the counter keeps the last ``RECOUNT_DAYS`` days
(UTC) open, each with its counts and a fingerprint of the activations counted in it
(their number and the sum of their ``activated_at`` in microseconds). Each cycle reads, in
one snapshot:

- the fingerprints of the current day (every ``RECHECK``, and when a day closes: of every
  open day), in one index-only range scan on ``activated_at`` (no row is read from the
  table), split at the last cycle's upper bound;
- the activations since that bound (an index range scan of the last minute), added to
  their day's counts;
- only when a day's fingerprint up to that bound is not the one kept (an activation set late,
  moved, or an account deleted in that day), the whole day again, which replaces its counts
  (never lowering a series).

Older days are frozen into the total. An activation that lands more than ``RECOUNT_DAYS``
late is not counted; ``ent_accounts`` still shows the account as activated. A change of an
activated account's structure or profile that keeps its ``activated_at`` leaves the
fingerprint as it was: it is not recounted (its counts would not go down anyway). Structure
"all" counts each user once a day and profile: an activation in the last minute counts there
unless the same user and profile had one earlier that day. Every structure and profile of
``accounts`` has a series from the start, 0 until an activation.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from psycopg import sql

from ent_exporter.aggregation.incremental import add_counts
from ent_exporter.aggregation.known import KnownPairsCounter
from ent_exporter.engine.collector import (
    Cadence,
    Collector,
    Context,
    Family,
    Kind,
    LabelValues,
    Result,
    Samples,
    decode_samples,
    encode_samples,
)

RECOUNT_DAYS = 7
# The open days before the current one have their fingerprints read this often (and when a day closes);
# the current day's, every minute.
RECHECK = timedelta(minutes=10)
MICROSECOND = timedelta(microseconds=1)

# Activations of (after, upto] per UTC day, per structure of the account and profile, and per
# profile over distinct users (structure "all"): a user counts there on a day unless they had an
# activation with that profile earlier that day, at or before ``after`` (counted by an earlier read).
# A whole day is read with ``after`` just before its midnight.
ACTIVATIONS_BY_DAY = sql.SQL("""
    WITH activated AS (
        SELECT user_id,
               (activated_at AT TIME ZONE 'UTC')::date AS day,
               coalesce(nullif(structure_id, ''), 'unknown') AS structure,
               coalesce(nullif(profile, ''), 'unknown') AS profile
        FROM {accounts}
        WHERE activated_at > %(after)s AND activated_at <= %(upto)s
    )
    SELECT day, structure, profile, count(*) FROM activated GROUP BY 1, 2, 3
    UNION ALL
    SELECT day, 'all', profile, count(DISTINCT user_id)
    FROM activated
    WHERE NOT EXISTS (
        SELECT 1 FROM {accounts} AS earlier
        WHERE earlier.user_id = activated.user_id
          AND coalesce(nullif(earlier.profile, ''), 'unknown') = activated.profile
          AND earlier.activated_at >= activated.day::timestamp AT TIME ZONE 'UTC'
          AND earlier.activated_at <= %(after)s
    )
    GROUP BY 1, 3
""")
# Each open day's fingerprint, the activations up to the last cycle's bound (``counted``) apart from
# the new ones: their number and the sum of their times in microseconds. An index-only scan.
DAY_PRINTS = sql.SQL("""
    SELECT (activated_at AT TIME ZONE 'UTC')::date, activated_at > %(counted)s, count(*),
           sum((date_part('epoch', activated_at) * 1000000)::bigint)
    FROM {accounts}
    WHERE activated_at >= %(since)s AND activated_at <= %(upto)s
    GROUP BY 1, 2
""")

# At the first run, the history before the recount window: one row per series, not per day.
ACTIVATIONS_BEFORE = sql.SQL("""
    WITH activated AS (
        SELECT user_id,
               coalesce(nullif(structure_id, ''), 'unknown') AS structure,
               coalesce(nullif(profile, ''), 'unknown') AS profile
        FROM {accounts}
        WHERE activated_at < %(before)s
    )
    SELECT structure, profile, count(*) FROM activated GROUP BY 1, 2
    UNION ALL
    SELECT 'all', profile, count(DISTINCT user_id) FROM activated GROUP BY 2
""")

ACTIVATIONS = Family(
    "ent_account_activations_total",
    Kind.COUNTER,
    'Account activations, per structure of the account and profile (structure="all": distinct users).',
    ("structure", "profile"),
    counts_people=True,
    title_en="Account activations",
    title_fr="Activations de comptes",
    meaning_fr="Activations de comptes, par établissement du compte et par profil (pour toute la plateforme, chaque"
    " personne une fois).",
)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


class _ActivationCounts(Collector):
    abstract = True
    cadence = Cadence.INSTANT
    families = (ACTIVATIONS,)

    def collect(self, ctx: Context) -> Result:
        state = ctx.state
        # (never behind the last cycle's bound: a clock set back counts nothing twice)
        counted = datetime.fromisoformat(state["counted"]) if "counted" in state else None
        upto = max(ctx.now.astimezone(UTC) - ctx.settle, counted or datetime.min.replace(tzinfo=UTC))
        first_open_day = upto.date() - timedelta(days=RECOUNT_DAYS - 1)
        # Days are decoded only when they change (most minutes: today's, or none); the others pass through.
        frozen_stored = state.get("frozen", {})
        open_stored = {date.fromisoformat(day): samples for day, samples in state.get("open", {}).items()}
        # Fingerprints of what was counted, up to ``counted`` ([number, microseconds as text]; an older state's
        # checksums are not: every open day is then read again, once).
        kept = {day: (p[0], int(p[1])) for day, p in state.get("prints", {}).items() if isinstance(p, list)}
        if "open_since" in state:
            since_day = min(date.fromisoformat(state["open_since"]), first_open_day)
        else:
            # First run: the history before the window is final at once, counted without days.
            since_day = first_open_day
            frozen = decode_samples(self.families, {})
            add_counts(
                frozen[ACTIVATIONS.name], ctx.source.fetch(ACTIVATIONS_BEFORE, {"before": _midnight(first_open_day)})
            )
            frozen_stored = encode_samples(frozen)
        since = _midnight(since_day)
        checked = datetime.fromisoformat(state["checked"]) if "checked" in state else None
        # Every open day's fingerprint, or (most minutes) the current day's only: see RECHECK.
        whole = (
            counted is None
            or checked is None
            or not timedelta(0) <= upto - checked < RECHECK
            or since_day < first_open_day
        )
        check_from = since if whole or counted is None else max(since, _midnight(counted.date()))
        with ctx.source.snapshot() as snapshot:
            old: dict[date, tuple[int, int]] = {}
            new: dict[date, tuple[int, int]] = {}
            for day, fresh, number, microseconds in snapshot.fetch(
                DAY_PRINTS, {"since": check_from, "upto": upto, "counted": counted or since - MICROSECOND}
            ):
                (new if fresh else old)[day] = (int(number), int(microseconds))
            for day, print_ in kept.items():  # the days not read: as they were
                if date.fromisoformat(day) < check_from.date():
                    old[date.fromisoformat(day)] = print_
            if counted is None:  # nothing counted by day yet: every day of the window is read whole
                stale = sorted(set(old) | set(new) | set(open_stored))
            else:
                stale = sorted(
                    day
                    for day in set(old) | {date.fromisoformat(d) for d in kept}
                    if old.get(day) != kept.get(day.isoformat())
                )
            recounted = (
                snapshot.fetch(
                    ACTIVATIONS_BY_DAY,
                    {
                        "after": _midnight(stale[0]) - MICROSECOND,
                        "upto": min(upto, _midnight(stale[-1] + timedelta(days=1)) - MICROSECOND),
                    },
                )
                if stale
                else []
            )
            # The new activations, for the days not read whole (most minutes: one index range of a minute).
            added = (
                snapshot.fetch(ACTIVATIONS_BY_DAY, {"after": counted, "upto": upto})
                if counted is not None and any(day not in stale for day in new)
                else []
            )
        rows_by_day: dict[date, list] = {}
        for row in recounted:
            rows_by_day.setdefault(row[0], []).append(row[1:])
        for day in stale:
            recount = decode_samples(self.families, {})
            add_counts(recount[ACTIVATIONS.name], rows_by_day.get(day, []))
            open_stored[day] = encode_samples(_at_least(recount, self._decoded(open_stored.get(day))))
        added_by_day: dict[date, list] = {}
        for row in added:
            if row[0] not in stale:
                added_by_day.setdefault(row[0], []).append(row[1:])
        for day, rows in added_by_day.items():
            samples = self._decoded(open_stored.get(day))
            add_counts(samples[ACTIVATIONS.name], rows)
            open_stored[day] = encode_samples(samples)
        prints = {
            # (the sum as text: past some 5,000 activations a day it needs more than 64 bits, which JSON writers refuse)
            day.isoformat(): [sum(p[0] for p in pair), str(sum(p[1] for p in pair))]
            for day in sorted(set(old) | set(new))
            for pair in [(old.get(day, (0, 0)), new.get(day, (0, 0)))]
            if day >= first_open_day
        }
        closing = sorted(d for d in open_stored if d < first_open_day)
        if closing:
            frozen = self._decoded(frozen_stored)
            for day in closing:
                _add(frozen, self._decoded(open_stored.pop(day)))
            frozen_stored = encode_samples(frozen)
        if stale or closing or "totals" not in state:
            totals = self._decoded(frozen_stored)
            for samples in open_stored.values():
                _add(totals, self._decoded(samples))
        else:  # the last totals and what this minute added (the recounts, which may replace counts, are above)
            totals = self._decoded(state["totals"])
            for rows in added_by_day.values():
                add_counts(totals[ACTIVATIONS.name], rows)
        return Result(
            totals,
            {
                "open_since": first_open_day.isoformat(),
                "counted": upto.isoformat(),
                "checked": upto.isoformat() if whole else state["checked"],
                "frozen": frozen_stored,
                "open": {day.isoformat(): samples for day, samples in sorted(open_stored.items())},
                "prints": prints,
                # The sum of the above, kept so that a minute that moved nothing decodes it at C speed (the state
                # file holds it once: it equals the samples).
                "totals": encode_samples(totals),
            },
        )

    def _decoded(self, stored: Any) -> Samples:
        """Stored samples (encode_samples) as samples of their own: the stored ones are not changed."""
        decoded = decode_samples(self.families, stored or {})
        return {name: dict(series) for name, series in decoded.items()}


class AccountActivationsCollector(KnownPairsCounter, _ActivationCounts):
    """The activation counts, with a 0 for every structure and profile of accounts."""


def _add(target: Samples, samples: Samples) -> None:
    for name, series in cast("dict[str, dict[LabelValues, float]]", samples).items():  # (counts: floats)
        into = cast("dict[LabelValues, float]", target.setdefault(name, {}))
        get = into.get
        for key, value in series.items():
            into[key] = get(key, 0.0) + value


def _at_least(recount: Samples, previous: Samples | None) -> Samples:
    """A day's recount, never below what was already published for a series (counters do not go down)."""
    if not previous or recount == previous:  # (most days: the recount found what was counted)
        return recount
    published = cast("dict[str, dict[LabelValues, float]]", previous)  # (counts: floats)
    return {
        name: {
            key: max(series.get(key, 0.0), published.get(name, {}).get(key, 0.0))
            for key in set(series) | set(published.get(name, {}))
        }
        for name, series in cast("dict[str, dict[LabelValues, float]]", recount).items()
    }
