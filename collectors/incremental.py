"""Incremental counters: each cycle reads only the events above a persisted watermark.

The watermark is the contract's ``event_id``, which grows with insertion order. A cycle
counts events whose id lies in (watermark, target], where target is the highest id of an
event at least ``settle`` old (late-committing transactions get that long to land). The
range is read in chunks of at most ``chunk_size`` ids, each one an index range scan, and
after each chunk the running totals and the new watermark are checkpointed together: a
restart resumes exactly where the last checkpoint left off, never counting a row twice.

A relation whose events carry no ``event_id`` (NULL, e.g. Edifice, which stores UUIDs) is
counted by ``occurred_at`` instead; the mode is decided once per relation, from its newest
event, and persisted. In that mode a cycle counts the events of [watermark, now - settle),
one aggregate statement per local calendar day of that interval, and keeps each day's
count apart while the day is open. Events that land late, with an ``occurred_at`` behind
the watermark, are caught by a recount: once a day is closed (its end is ``reconcile_delay``
behind now - settle) one statement counts the whole day again and that exact count replaces
the day's live count (a series never goes down: if the recount finds fewer events for a
series than were counted live, the live count is kept). Counters are therefore exact once
the day is closed, and never count an event twice.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any, ClassVar, Iterable

from psycopg import sql

from .base import (
    Cadence, Collector, Context, HistogramValue, Result, Samples, Value, decode_samples, encode_samples,
)

# The two watermarks a relation can be counted by.
BY_EVENT_ID = "event_id"
BY_OCCURRED_AT = "occurred_at"

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

# Whether the relation's events carry an event_id: asked of its newest event (an index
# look-up on occurred_at), once, until the relation has an event.
HAS_EVENT_IDS = sql.SQL("""
    SELECT event_id IS NOT NULL FROM {events} ORDER BY occurred_at DESC LIMIT 1
""")

FIRST_OCCURRED_AT = sql.SQL("SELECT min(occurred_at) FROM {events}")

# The contract's columns of each event relation, but event_id (see TIME_SLICE).
EVENT_COLUMNS = {
    "login_events": ("user_id", "profile", "occurred_at"),
    "app_access_events": ("user_id", "profile", "app", "occurred_at"),
    "connector_events": ("connector", "structure_id", "occurred_at", "success", "duration_ms"),
}

# The events of a time interval, standing in for the relation in a collector's delta query:
# every row gets event_id 0, so the query's id range (-1, 0] takes the whole slice, and the
# same statement serves both watermarks. The interval is an index range scan on occurred_at.
TIME_SLICE = sql.SQL("""(
        SELECT 0::bigint AS event_id, {columns}
        FROM {relation}
        WHERE occurred_at >= %(since)s AND occurred_at < %(until)s
    ) AS {alias}""")
WHOLE_SLICE = {"after": -1, "upto": 0}

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
    """Counts the events of one relation incrementally, by ``event_id`` or ``occurred_at`` watermark.

    Subclasses give ``events`` (the relation name) and the label columns the events add
    to structure and profile (``dimensions``). Collectors whose rows have another shape
    replace ``delta_query`` (rows for the id range (%(after)s, %(upto)s] of ``{events}``) and
    ``accumulate``. The same query serves the ``occurred_at`` watermark: ``{events}`` is then
    a time slice of the relation (see TIME_SLICE).
    """

    abstract = True
    cadence = Cadence.INSTANT
    events: ClassVar[str]
    dimensions: ClassVar[tuple[str, ...]] = ()
    delta_query: ClassVar[sql.SQL] = ATTRIBUTED_EVENT_COUNTS
    # None: decided from the relation's newest event (event_id NULL -> occurred_at).
    watermark: ClassVar[str | None] = None
    # How long after the end of a day (beyond the settle delay) its events are recounted
    # (occurred_at watermark only): the time events have to land late and still be counted.
    reconcile_delay: ClassVar[timedelta] = timedelta(hours=1)

    def placeholders(self) -> dict[str, sql.Composable]:
        return dimension_fragments(self.dimensions)

    def collect(self, ctx: Context) -> Result:
        state = dict(ctx.state)
        # States written before there were two modes hold an event_id watermark.
        mode = state.get("mode") or (BY_EVENT_ID if "watermark" in state else None) or self.watermark
        if mode is None:
            rows = ctx.source.fetch(HAS_EVENT_IDS, {}, events=self.events)
            if not rows:  # no event yet: decide when there is one
                return Result(samples=decode_samples(self.families, {}), state={})
            mode = BY_EVENT_ID if rows[0][0] else BY_OCCURRED_AT
        if mode == BY_OCCURRED_AT:
            return self._collect_by_time(ctx, state)
        return self._collect_by_event_id(ctx, state)

    def _ids_gone(self, ctx: Context) -> bool:
        """Whether the relation's newest event has no event_id any more, although it was counted by
        id: its view changed under the exporter (Moodle's connector_events became a view of two
        tables, without ids). Asked only when an id-counted relation has nothing new."""
        rows = ctx.source.fetch(HAS_EVENT_IDS, {}, events=self.events)
        return bool(rows) and not rows[0][0]

    # -- event_id watermark ------------------------------------------------------------
    def _collect_by_event_id(self, ctx: Context, state: dict[str, Any]) -> Result:
        totals = decode_samples(self.families, state.get("totals", {}))
        after = state.get("watermark")
        target = self._first(ctx, SETTLED_TARGET, {"cutoff": ctx.now - ctx.settle})
        if target is None and after is not None and self._ids_gone(ctx):
            # Count it by time from now on, from the start of its history: the published counter
            # starts again (Prometheus reads a counter reset), rather than stopping for good.
            return self._collect_by_time(ctx, {})
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
                ctx.checkpoint(totals, self._id_state(after, totals))
        return Result(samples=totals, state=self._id_state(after, totals))

    @staticmethod
    def _id_state(after: int, totals: Samples) -> dict[str, Any]:
        return {"mode": BY_EVENT_ID, "watermark": after, "totals": encode_samples(totals)}

    # -- occurred_at watermark ---------------------------------------------------------
    def _collect_by_time(self, ctx: Context, state: dict[str, Any]) -> Result:
        zone = ctx.timezone
        closed = decode_samples(self.families, state.get("closed", {}))  # reconciled days, exact
        live = {  # open days: what the incremental slices counted so far
            date.fromisoformat(day): decode_samples(self.families, samples)
            for day, samples in state.get("open", {}).items()
        }
        # In UTC: arithmetic on aware datetimes of one zone is wall-clock arithmetic.
        cutoff = ctx.now.astimezone(timezone.utc) - ctx.settle
        if state.get("watermark") is not None:
            after = datetime.fromisoformat(state["watermark"])
        else:
            first = self._first(ctx, FIRST_OCCURRED_AT, {})
            if first is None:
                return Result(samples=decode_samples(self.families, {}), state={"mode": BY_OCCURRED_AT})
            after = _day_start(_local_day(first, zone), zone)  # whole days from the start

        def is_closed(day: date) -> bool:
            return _day_start(day + timedelta(days=1), zone) + self.reconcile_delay <= cutoff

        def save() -> dict[str, Any]:
            snapshot = {
                "mode": BY_OCCURRED_AT,
                "watermark": after.astimezone(timezone.utc).isoformat(),
                "closed": encode_samples(closed),
                "open": {day.isoformat(): encode_samples(samples) for day, samples in sorted(live.items())},
            }
            return snapshot

        def reconcile(day: date) -> None:
            exact = self._count(ctx, _day_start(day, zone), _day_start(day + timedelta(days=1), zone))
            _add_monotonic(closed, exact, live.pop(day, None))

        # Open days behind the watermark whose time has come: recount them.
        for day in sorted(live):
            if day < _local_day(after, zone) and is_closed(day):
                reconcile(day)
                ctx.checkpoint(_published(closed, live), save())
        # Then the new interval [after, cutoff), day by day.
        day = _local_day(after, zone)
        while _day_start(day, zone) < cutoff:
            day_end = _day_start(day + timedelta(days=1), zone)
            if is_closed(day):
                # The whole day at once: exact, and it replaces what was counted live.
                reconcile(day)
                after = max(after, day_end)
            else:
                upto = min(cutoff, day_end)
                if after < upto:
                    _add(live.setdefault(day, decode_samples(self.families, {})), self._count(ctx, after, upto))
                    after = upto
            day += timedelta(days=1)
            if _day_start(day, zone) < cutoff:
                ctx.checkpoint(_published(closed, live), save())
        return Result(samples=_published(closed, live), state=save())

    def _count(self, ctx: Context, since: datetime, until: datetime) -> Samples:
        """The delta of the events with since <= occurred_at < until: one aggregate statement."""
        delta = decode_samples(self.families, {})
        relations = getattr(ctx.source, "relations", None) or {}
        columns = EVENT_COLUMNS[self.events]
        events = TIME_SLICE.format(
            columns=sql.SQL(", ").join(sql.Identifier(column) for column in columns),
            relation=relations.get(self.events, sql.Identifier(self.events)),
            alias=sql.Identifier(self.events),
        )
        rows = ctx.source.fetch(self.delta_query, {**WHOLE_SLICE, "since": since, "until": until},
                                events=events, **self.placeholders())
        self.accumulate(delta, rows)
        return delta

    def _first(self, ctx: Context, query: sql.Composable, params: dict[str, Any]) -> Any:
        rows = ctx.source.fetch(query, params, events=self.events)
        return rows[0][0] if rows else None

    def accumulate(self, totals: Samples, rows: Iterable[tuple]) -> None:
        add_counts(totals.setdefault(self.families[0].name, {}), rows)


def _local_day(moment: datetime, zone: tzinfo) -> date:
    return moment.astimezone(zone).date()


def _day_start(day: date, zone: tzinfo) -> datetime:
    """Local midnight of a calendar day, as a UTC instant (DST days last 23 or 25 hours)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(timezone.utc)


def _copy(value: Value) -> Value:
    if isinstance(value, HistogramValue):
        return HistogramValue(list(value.buckets), value.count, value.sum)
    return value


def _add(target: Samples, delta: Samples) -> None:
    """Adds ``delta`` into ``target`` series by series (histograms bucket by bucket)."""
    for name, series in delta.items():
        into = target.setdefault(name, {})
        for key, value in series.items():
            current = into.get(key)
            if current is None:
                into[key] = _copy(value)
            elif isinstance(current, HistogramValue):
                current.add(value)  # type: ignore[arg-type]
            else:
                into[key] = current + value  # type: ignore[operator]


def _size(value: Value) -> float:
    return value.count if isinstance(value, HistogramValue) else value


def _add_monotonic(target: Samples, exact: Samples, live: Samples | None) -> None:
    """Adds a closed day's exact count, or its live count for a series where that is larger."""
    live = live or {}
    for name in set(exact) | set(live):
        recount, counted = exact.get(name, {}), live.get(name, {})
        chosen = {}
        for key in set(recount) | set(counted):
            a, b = recount.get(key), counted.get(key)
            chosen[key] = a if b is None or (a is not None and _size(a) >= _size(b)) else b
        _add(target, {name: chosen})


def _published(closed: Samples, live: dict[date, Samples]) -> Samples:
    total: Samples = {}
    _add(total, closed)
    for samples in live.values():
        _add(total, samples)
    return total


def add_counts(series: dict, rows: Iterable[tuple]) -> None:
    """Adds rows of (label values..., count) to a counter's running totals."""
    for *labels, count in rows:
        key = tuple(labels)
        series[key] = series.get(key, 0.0) + float(count)
