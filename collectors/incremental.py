"""Incremental counters: each cycle reads only the events above a persisted watermark.

The watermark is the contract's ``event_id``, which grows with insertion order. A cycle
counts events whose id lies in (watermark, target], where target is the highest id of an
event at least ``settle`` old (late-committing transactions get that long to land). The
range is read in chunks of at most ``chunk_size`` ids, each one an index range scan, and
after each chunk the running totals and the new watermark are checkpointed together: a
restart resumes exactly where the last checkpoint left off, never counting a row twice.
"""
from __future__ import annotations

from typing import Any, ClassVar, Iterable

from psycopg import sql

from .base import Cadence, Collector, Context, Result, Samples, decode_samples, encode_samples

# Highest id of an event old enough to be counted; a backward scan of the event_id index.
SETTLED_TARGET = sql.SQL("""
    SELECT event_id FROM {events}
    WHERE event_id IS NOT NULL AND occurred_at <= %(cutoff)s
    ORDER BY event_id DESC
    LIMIT 1
""")

FIRST_EVENT_ID = sql.SQL("SELECT min(event_id) FROM {events}")

# Where to resume when a range holds no event (ids may have large gaps).
NEXT_EVENT_ID = sql.SQL("""
    SELECT min(event_id) FROM {events} WHERE event_id > %(after)s
""")

# Events of an id range counted per structure of their user and per profile (plus the
# dimensions a collector adds, e.g. app), and once more platform-wide as structure "all".
# Events are first grouped per user so each user's attachments are looked up once.
ATTRIBUTED_EVENT_COUNTS = sql.SQL("""
    WITH per_user AS (
        SELECT user_id,
               coalesce(nullif(profile, ''), 'unknown') AS profile,
               {dimensions}
               count(*) AS events
        FROM {events}
        WHERE event_id > %(after)s AND event_id <= %(upto)s
        GROUP BY user_id, 2 {dimension_positions}
    )
    SELECT coalesce(attachment.structure_id, 'unknown') AS structure, per_user.profile, {dimension_names}
           sum(per_user.events)
    FROM per_user
    LEFT JOIN LATERAL (
        SELECT DISTINCT structure_id FROM {accounts} WHERE {accounts}.user_id = per_user.user_id
    ) AS attachment ON true
    GROUP BY 1, 2 {output_positions}
    UNION ALL
    SELECT 'all', profile, {dimension_names} sum(events)
    FROM per_user
    GROUP BY 2 {output_positions}
""")


def dimension_fragments(dimensions: tuple[str, ...]) -> dict[str, sql.Composable]:
    """The ATTRIBUTED_EVENT_COUNTS placeholders for extra label columns (NULL or '' -> unknown)."""
    def positions(first: int) -> sql.Composable:
        return sql.SQL("").join(sql.SQL(", {}").format(sql.Literal(first + i)) for i in range(len(dimensions)))

    return {
        "dimensions": sql.SQL("").join(
            sql.SQL("coalesce(nullif({column}, ''), 'unknown') AS {column}, ").format(column=sql.Identifier(d))
            for d in dimensions
        ),
        "dimension_names": sql.SQL("").join(sql.SQL("{}, ").format(sql.Identifier(d)) for d in dimensions),
        "dimension_positions": positions(3),
        "output_positions": positions(3),
    }


class EventCounter(Collector):
    """Counts the events of one relation incrementally, by ``event_id`` watermark.

    Subclasses give ``events`` (the relation name) and the label columns the events add
    to structure and profile (``dimensions``). Collectors whose rows have another shape
    replace ``delta_query`` (rows for the id range (%(after)s, %(upto)s]) and ``accumulate``.
    """

    abstract = True
    cadence = Cadence.INSTANT
    events: ClassVar[str]
    dimensions: ClassVar[tuple[str, ...]] = ()
    delta_query: ClassVar[sql.SQL] = ATTRIBUTED_EVENT_COUNTS

    def placeholders(self) -> dict[str, sql.Composable]:
        return dimension_fragments(self.dimensions)

    def collect(self, ctx: Context) -> Result:
        state = dict(ctx.state)
        totals = decode_samples(self.families, state.get("totals", {}))
        after = state.get("watermark")
        target = self._first(ctx, SETTLED_TARGET, {"cutoff": ctx.now - ctx.settle})
        if after is None:
            # First run: start just below the oldest event, whatever the ids look like.
            first = self._first(ctx, FIRST_EVENT_ID, {})
            after = (first - 1) if first is not None else (target if target is not None else 0)
        while target is not None and after < target:
            upto = min(after + ctx.chunk_size, target)
            rows = ctx.source.fetch(self.delta_query, {"after": after, "upto": upto},
                                    events=self.events, **self.placeholders())
            if rows:
                self.accumulate(totals, rows)
                after = upto
            else:
                following = self._first(ctx, NEXT_EVENT_ID, {"after": after})
                after = target if following is None else max(upto, following - 1)
            if after < target:
                ctx.checkpoint(totals, {"watermark": after, "totals": encode_samples(totals)})
        state = {"watermark": after, "totals": encode_samples(totals)}
        return Result(samples=totals, state=state)

    def _first(self, ctx: Context, query: sql.Composable, params: dict[str, Any]) -> Any:
        rows = ctx.source.fetch(query, params, events=self.events)
        return rows[0][0] if rows else None

    def accumulate(self, totals: Samples, rows: Iterable[tuple]) -> None:
        add_counts(totals.setdefault(self.families[0].name, {}), rows)


def add_counts(series: dict, rows: Iterable[tuple]) -> None:
    """Adds rows of (label values..., count) to a counter's running totals."""
    for *labels, count in rows:
        key = tuple(labels)
        series[key] = series.get(key, 0.0) + float(count)
