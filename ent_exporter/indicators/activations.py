"""Account activations: accounts whose activation time has passed, counted once each.

Accounts carry no event id and an activation may reach the source late (a directory
import, an Edifice activation event written after the fact), with an ``activated_at``
behind what was already counted. So the counter keeps the last ``RECOUNT_DAYS`` days
(UTC) open: each cycle recounts the activations of those days in one index range scan
on ``activated_at`` and they replace the previous count of their day (never lowering a
series); a day whose counts have the checksum of the last cycle's (md5, computed by the
database, kept in the state) keeps its counts without reading them again. Older days are frozen into the total. An activation that lands more than
``RECOUNT_DAYS`` late is not counted; ``ent_accounts`` still shows the account as activated.
Every structure and profile of ``accounts`` has a series from the start, 0 until an activation.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import cast

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

# Activations of [since, upto] per UTC day, per structure of the account and profile, and
# per profile over distinct users (structure "all").
_COUNTS = """
    WITH activated AS (
        SELECT user_id,
               (activated_at AT TIME ZONE 'UTC')::date AS day,
               coalesce(nullif(structure_id, ''), 'unknown') AS structure,
               coalesce(nullif(profile, ''), 'unknown') AS profile
        FROM {accounts}
        WHERE activated_at >= %(since)s AND activated_at <= %(upto)s
    ), counts AS (
        SELECT day, structure, profile, count(*) AS n FROM activated GROUP BY 1, 2, 3
        UNION ALL
        SELECT day, 'all', profile, count(DISTINCT user_id) FROM activated GROUP BY 1, 3
    )
"""
ACTIVATIONS_BY_DAY = sql.SQL(_COUNTS + "SELECT day, structure, profile, n FROM counts")
# The same counts, one checksum per day: a day whose checksum is the last cycle's is not read again.
DAY_CHECKSUMS = sql.SQL(
    _COUNTS
    + """
    SELECT day, md5(string_agg(concat_ws(E'\\x1f', structure, profile, n), E'\\x1e' ORDER BY structure, profile))
    FROM counts GROUP BY day
"""
)

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
        upto = ctx.now.astimezone(UTC) - ctx.settle
        first_open_day = upto.date() - timedelta(days=RECOUNT_DAYS - 1)
        state = ctx.state
        frozen = decode_samples(self.families, state.get("frozen", {}))
        open_days = {
            date.fromisoformat(day): decode_samples(self.families, samples)
            for day, samples in state.get("open", {}).items()
        }
        prints = dict(state.get("prints", {}))
        if "open_since" in state:
            since_day = min(date.fromisoformat(state["open_since"]), first_open_day)
        else:
            # First run: the history before the window is final at once, counted without days.
            since_day = first_open_day
            add_counts(
                frozen[ACTIVATIONS.name], ctx.source.fetch(ACTIVATIONS_BEFORE, {"before": _midnight(first_open_day)})
            )
        moved = False
        window = {"since": _midnight(since_day), "upto": upto}
        with ctx.source.snapshot() as snapshot:
            # Each day's counts as a checksum first: a day whose checksum is the last cycle's keeps its counts
            # (most minutes, most days), and only the others are read, in one statement.
            checksums = dict(snapshot.fetch(DAY_CHECKSUMS, window))
            stale = sorted(
                day
                for day, checksum in checksums.items()
                if prints.get(day.isoformat()) != checksum or day not in open_days
            )
            rows = (
                snapshot.fetch(
                    ACTIVATIONS_BY_DAY,
                    {
                        "since": _midnight(stale[0]),
                        "upto": min(upto, _midnight(stale[-1] + timedelta(days=1)) - timedelta(microseconds=1)),
                    },
                )
                if stale
                else []
            )
        rows_by_day: dict[date, list] = {}
        for row in rows:
            rows_by_day.setdefault(row[0], []).append(row[1:])
        for day in stale:
            prints[day.isoformat()] = checksums[day]
            recount = decode_samples(self.families, {})
            add_counts(recount[ACTIVATIONS.name], rows_by_day.get(day, []))
            open_days[day] = _at_least(recount, open_days.get(day))
            moved = True
        closing = sorted(d for d in open_days if d < first_open_day)
        for day in closing:
            _add(frozen, open_days.pop(day))
            prints.pop(day.isoformat(), None)
        if moved or closing or "totals" not in state:
            totals = {name: dict(series) for name, series in frozen.items()}  # the frozen part, copied at C speed
            for samples in open_days.values():
                _add(totals, samples)
        else:
            totals = decode_samples(self.families, state["totals"])
        return Result(
            totals,
            {
                "open_since": first_open_day.isoformat(),
                "frozen": encode_samples(frozen),
                "open": {day.isoformat(): encode_samples(samples) for day, samples in sorted(open_days.items())},
                "prints": prints,
                # The sum of the above, kept so that a minute that moved nothing decodes it at C speed (the state
                # file holds it once: it equals the samples).
                "totals": encode_samples(totals),
            },
        )


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
