"""Incremental counters: each cycle reads only the events above a persisted watermark.

The watermark is the contract's ``event_id``, which grows with insertion order. A cycle
counts events whose id lies in (watermark, target], where target is the highest id of an
event at least ``settle`` old. The range is read in chunks of at most ``chunk_size`` ids,
each one an index range scan, and after each chunk the running totals and the new
watermark are checkpointed together: a restart resumes exactly where the last checkpoint
left off, never counting a row twice.

Ids are handed out when a row is inserted, not when its transaction commits: a transaction
that stays open while others commit higher ids makes its events appear *below* the
watermark. So the ids missing below the watermark are remembered, as ranges ("gaps"),
found in the same snapshot as the events counted (a REPEATABLE READ transaction: what the
count did not see, the gap query sees missing). Each cycle looks the gaps up again (one
index probe per gap, in one statement), counts the events that have appeared there, and
narrows the gaps around them. A gap is dropped as soon as every transaction that could fill
it has ended (PostgreSQL's snapshot horizon, see Gaps); short of that it is watched for
``late_commit_limit`` after it was first seen, then for as long again on a second list whose
arrivals are not counted but reported (``ent_exporter_late_events_total{outcome="missed"}``).
At most ``MAX_GAPS`` ranges are kept on each list (the oldest go first).

A relation whose events carry no ``event_id`` (NULL, e.g. Edifice, which stores UUIDs) is
counted by ``occurred_at`` instead; the mode is decided once per relation, from its newest
event, and persisted. In that mode a cycle counts the events of [watermark, now - settle),
one aggregate statement per local calendar day of that interval, and keeps each day's
count apart while the day is open. Events that land late, with an ``occurred_at`` behind
the watermark, are caught by a recount: once a day is closed (its end is the late-commit limit
behind now - settle) one statement counts the whole day again and that exact count replaces
the day's live count (a series never goes down: if the recount finds fewer events for a
series than were counted live, the live count is kept). Counters are therefore exact once
the day is closed, and never count an event twice. The reconcile delay is the late-commit
limit: an event whose transaction commits within that limit of its ``occurred_at`` is
counted. Each closed day's number of events is checked once more when the next day is
recounted; what arrived in between is reported as missed.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, ClassVar, cast

from psycopg import sql

from ent_exporter.engine.collector import (
    ALL_STRUCTURES,
    INVALID_MEASUREMENTS,
    Cadence,
    Collector,
    Context,
    Family,
    HistogramValue,
    LabelValues,
    Report,
    Result,
    Samples,
    Value,
    decode_samples,
    encode_samples,
    marginal_keys,
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

# The ranges of ids of (after, upto] that hold no event: an index-only scan of the range,
# run in the same snapshot as the range's count.
MISSING_IDS = sql.SQL("""
    WITH ids AS (
        SELECT event_id FROM {events} WHERE event_id > %(after)s AND event_id <= %(upto)s
    )
    SELECT lo, hi FROM (
        SELECT lag(event_id, 1, %(after)s::bigint) OVER (ORDER BY event_id) + 1 AS lo, event_id - 1 AS hi FROM ids
        UNION ALL
        SELECT coalesce(max(event_id), %(after)s::bigint) + 1, %(upto)s::bigint FROM ids
    ) AS gaps
    WHERE lo <= hi
    ORDER BY lo
""")

# The events that have appeared in watched gaps: one index probe per gap.
IDS_IN_GAPS = sql.SQL("""
    SELECT found.event_id
    FROM unnest(%(lo)s::bigint[], %(hi)s::bigint[]) AS gap(lo, hi)
    JOIN LATERAL (
        SELECT event_id FROM {events} WHERE event_id BETWEEN gap.lo AND gap.hi
    ) AS found ON true
""")

# The cluster's transaction horizon: the oldest transaction still running (xmin) and the next
# one to start (xmax), with epoch. Any role may ask; txid_current_snapshot() exists in every
# supported version (pg_current_snapshot(), its newer name, from PostgreSQL 13 on).
XID_HORIZON = sql.SQL("""
    SELECT txid_snapshot_xmin(s), txid_snapshot_xmax(s) FROM txid_current_snapshot() AS s
""")

# Events of a closed day, for the audit of what arrived after its recount.
EVENTS_BETWEEN = sql.SQL("""
    SELECT count(*) FROM {events} WHERE occurred_at >= %(since)s AND occurred_at < %(until)s
""")

LOWEST_ID = -(2**63)  # PostgreSQL's smallest bigint

# At most this many gap ranges are watched (and as many watched after their limit).
MAX_GAPS = 100_000

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

# Given events by id (those found in gaps), standing in for the relation the same way.
ID_SLICE = sql.SQL("""(
        SELECT event_id, {columns}
        FROM {relation}
        WHERE event_id = ANY(%(ids)s::bigint[])
    ) AS {alias}""")

# Events of an id range counted per structure of their user and per profile (plus the
# dimensions a collector adds, e.g. app), and once more platform-wide as structure "all".
# Events are first grouped per user (and profile, dimensions); each distinct user's attachments
# are then looked up once, not once per group (an app-access range has several groups per user).
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
    , attachment AS (
        -- Each distinct user looked up once (one index probe of accounts), whatever the number of
        -- (profile, dimension) groups they have; a user without an account gets one NULL row.
        SELECT visitor.user_id, attached.structure_id
        FROM (SELECT DISTINCT user_id FROM per_user WHERE user_id IS NOT NULL) AS visitor
        LEFT JOIN LATERAL (
            SELECT DISTINCT structure_id FROM {accounts} WHERE {accounts}.user_id = visitor.user_id
        ) AS attached ON true
    )
    SELECT coalesce(nullif(attachment.structure_id, ''), 'unknown') AS structure, {structure_columns},
           sum(per_user.events)
    FROM per_user
    LEFT JOIN attachment ON attachment.user_id = per_user.user_id
    GROUP BY 1, 2 {output_positions}
    UNION ALL
    SELECT 'all', profile, {dimension_names} sum(events)
    FROM per_user
    GROUP BY 2 {output_positions}
""")


def dimension_fragments(dimensions: tuple[str, ...], summed: int | None = None) -> dict[str, sql.Composable]:
    """The ATTRIBUTED_EVENT_COUNTS placeholders for extra label columns (NULL or '' -> unknown).
    ``summed``: the position of the label (1: profile, 2...: the dimensions) whose per-structure rows are
    summed over its values, written "all" (the series budget's shape of a single marginal label)."""

    def positions(first: int) -> sql.Composable:
        return sql.SQL("").join(sql.SQL(", {}").format(sql.Literal(first + i)) for i in range(len(dimensions)))

    columns: list[sql.Composable] = [
        sql.SQL("per_user.{}").format(sql.Identifier(name)) for name in ("profile", *dimensions)
    ]
    if summed is not None:
        columns[summed - 1] = sql.Literal(ALL_STRUCTURES)  # ("all": the same word for every label)
    return {
        "structure_columns": sql.SQL(", ").join(columns),
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
    # Families kept in the totals beside the published ones (e.g. INVALID_MEASUREMENTS), so
    # that they are persisted and recounted with them; the runtime publishes them itself.
    bookkeeping: ClassVar[tuple[Family, ...]] = ()

    def placeholders(self) -> dict[str, sql.Composable]:
        return dimension_fragments(self.dimensions, self._summed_in_sql())

    def _summed_in_sql(self) -> int | None:
        """The label the delta query sums per structure for the series budget, when it is one label of
        ATTRIBUTED_EVENT_COUNTS (the rows then come in the budget's shape: fewer, and no Python pass)."""
        if self._shape is None or len(self._shape[1]) != 1 or self.delta_query is not ATTRIBUTED_EVENT_COUNTS:
            return None
        return self._shape[1][0]

    def _decode(self, stored: Mapping[str, list]) -> Samples:
        return decode_samples((*self.families, *self.bookkeeping), stored)

    # The series budget's shape of the counted family, for this run: (structure position, positions of
    # the labels summed per structure), or None (counted whole). Set by collect().
    _shape: tuple[int, tuple[int, ...]] | None = None

    def _shape_for(self, ctx: Context) -> tuple[int, tuple[int, ...]] | None:
        """A counter whose per-structure breakdown is not published (series budget) counts what is:
        per structure, the marginal of each label in Family.structure_marginals (that label "all", the
        sum of its values: events add up); structure="all" whole. Its totals, state and change tracking
        then hold the published series only, not the full breakdown."""
        family = self.families[0]
        if family.whole_in(ctx.breakdowns) or family.counts_people or not family.additive:
            return None
        return family.marginal_positions()

    def collect(self, ctx: Context) -> Result:
        self._shape = self._shape_for(ctx)
        shape = "whole" if self._shape is None else "budget"
        state = dict(ctx.state)
        if state and state.get("shape", "whole") != shape:
            # The configuration's breakdowns changed. Whole -> budget: the totals are folded into their
            # marginals (exact). Budget -> whole: the full breakdown was never counted, so count again
            # from the first event (one full read; the new series carry the whole history).
            state = self._folded(state) if shape == "budget" else {}
        result = self._collect(ctx, state)
        result.state = {**result.state, "shape": shape}
        return result

    def _folded(self, state: dict[str, Any]) -> dict[str, Any]:
        """A state's totals (and, by time, its closed and open days) folded into the budget's shape."""
        fold = lambda stored: encode_samples(self._fold(self._decode(stored)))  # noqa: E731
        folded = dict(state)
        if "totals" in folded:
            folded["totals"] = fold(folded["totals"])
        if "closed" in folded:
            folded["closed"] = fold(folded["closed"])
        if "open" in folded:
            folded["open"] = {day: fold(samples) for day, samples in folded["open"].items()}
        return folded

    def _fold(self, samples: Samples) -> Samples:
        assert self._shape is not None  # (folded into the budget's shape: there is one)
        name = self.families[0].name
        folded = dict(samples)
        folded[name] = {}
        add_counts(
            folded[name], _shaped_rows(((*key, value) for key, value in samples.get(name, {}).items()), *self._shape)
        )
        return folded

    def _collect(self, ctx: Context, state: dict[str, Any]) -> Result:
        # States written before there were two modes hold an event_id watermark.
        mode = state.get("mode") or (BY_EVENT_ID if "watermark" in state else None) or self.watermark
        if mode is None:
            rows = ctx.source.fetch(HAS_EVENT_IDS, {}, events=self.events)
            if not rows:  # no event yet: decide when there is one
                return Result(samples=self._decode({}), state={})
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
        totals = self._decode(state.get("totals", {}))
        after = state.get("watermark")
        gaps = Gaps(state.get("gaps", []), state.get("watch", []), state.get("late", {}))
        now = ctx.now.timestamp()
        limit = ctx.late_commit_limit.total_seconds()
        gaps.expire(now, limit)
        horizon = ctx.source.fetch(XID_HORIZON) if gaps else []
        if horizon:  # the gaps found last cycle: every transaction that could fill them is below xmax now
            gaps.set_horizon(horizon[0][1])
        if gaps:
            self._count_late(ctx, totals, gaps)
        if horizon:  # ...and once those have all ended, what the probe above saw is final
            gaps.drop_finished(horizon[0][0])
        target = self._first(ctx, SETTLED_TARGET, {"cutoff": ctx.now - ctx.settle})
        if target is None and after is not None and self._ids_gone(ctx):
            # Count it by time from now on, from the start of its history: the published counter
            # starts again (Prometheus reads a counter reset), rather than stopping for good.
            return self._collect_by_time(ctx, {})
        if after is None:
            # First run: start just below the oldest event, whatever the ids look like.
            first = self._first(ctx, FIRST_EVENT_ID, {})
            after = (first - 1) if first is not None else (target if target is not None else 0)
            # Ids below the first one seen may belong to transactions still open: one gap.
            gaps.add([(LOWEST_ID, after)], now)
        while target is not None and after < target:
            upto = min(after + ctx.chunk_size, target)
            with ctx.source.snapshot() as snapshot:
                rows = snapshot.fetch(
                    self.delta_query, {"after": after, "upto": upto}, events=self.events, **self.placeholders()
                )
                # A range with as many events as ids has no gap: its ids are not read a second time.
                dense = self.events_in(rows) == upto - after
                missing = (
                    [] if dense else snapshot.fetch(MISSING_IDS, {"after": after, "upto": upto}, events=self.events)
                )
            if missing == [(after + 1, upto)]:  # nothing in the range: jump to the next event
                following = self._first(ctx, NEXT_EVENT_ID, {"after": after})
                upto = target if following is None else max(upto, following - 1)
                missing = [(after + 1, upto)]
            self.accumulate(totals, rows)
            gaps.add(missing, now)
            after = upto
            if after < target:
                ctx.checkpoint(totals, self._id_state(after, totals, gaps))
        return Result(samples=totals, state=self._id_state(after, totals, gaps))

    def _count_late(self, ctx: Context, totals: Samples, gaps: Gaps) -> None:
        """Counts the events that have appeared in the watched gaps, and narrows the gaps."""
        ranges = gaps.ranges()
        relations = ctx.source.relations
        with ctx.source.snapshot() as snapshot:
            found = sorted(
                row[0]
                for row in snapshot.fetch(
                    IDS_IN_GAPS, {"lo": [r[0] for r in ranges], "hi": [r[1] for r in ranges]}, events=self.events
                )
            )
            counted = [event_id for event_id in found if gaps.is_tracked(event_id)]
            for start in range(0, len(counted), ctx.chunk_size):
                ids = counted[start : start + ctx.chunk_size]
                events = ID_SLICE.format(
                    columns=sql.SQL(", ").join(sql.Identifier(c) for c in EVENT_COLUMNS[self.events]),
                    relation=relations.get(self.events, sql.Identifier(self.events)),
                    alias=sql.Identifier(self.events),
                )
                self.accumulate(
                    totals,
                    snapshot.fetch(
                        self.delta_query,
                        {"after": ids[0] - 1, "upto": ids[-1], "ids": ids},
                        events=events,
                        **self.placeholders(),
                    ),
                )
        gaps.found(found)

    @staticmethod
    def _id_state(after: int, totals: Samples, gaps: Gaps | None = None) -> dict[str, Any]:
        state = {"mode": BY_EVENT_ID, "watermark": after, "totals": encode_samples(totals)}
        if gaps is not None:
            state.update(gaps.state())
        return state

    def report(self, state: Mapping[str, Any]) -> Report:
        late = state.get("late", {})
        gaps = state.get("gaps")
        invalid: dict[tuple[str, str], float] = {}
        if self.bookkeeping:
            if "totals" in state:
                totals = self._decode(state["totals"])
            else:
                totals = _published(
                    self._decode(state.get("closed", {})),
                    {day: self._decode(samples) for day, samples in state.get("open", {}).items()},
                )
            invalid = dict(cast("dict[tuple[str, str], float]", totals.get(INVALID_MEASUREMENTS.name, {})))
        return Report(
            invalid=invalid,
            late_events={"counted": float(late.get("counted", 0)), "missed": float(late.get("missed", 0))},
            late_commit_gaps=float(len(gaps)) if gaps is not None else (0.0 if state.get("mode") else None),
        )

    # -- occurred_at watermark ---------------------------------------------------------
    def _collect_by_time(self, ctx: Context, state: dict[str, Any]) -> Result:
        zone = ctx.timezone
        closed = self._decode(state.get("closed", {}))  # reconciled days, exact
        live = {  # open days: what the incremental slices counted so far
            date.fromisoformat(day): self._decode(samples) for day, samples in state.get("open", {}).items()
        }
        # In UTC: arithmetic on aware datetimes of one zone is wall-clock arithmetic.
        cutoff = ctx.now.astimezone(UTC) - ctx.settle
        if state.get("watermark") is not None:
            after = datetime.fromisoformat(state["watermark"])
        else:
            first = self._first(ctx, FIRST_OCCURRED_AT, {})
            if first is None:
                return Result(samples=self._decode({}), state={"mode": BY_OCCURRED_AT})
            after = _day_start(_local_day(first, zone), zone)  # whole days from the start

        # The delay before a day is recounted: the late-commit limit.
        delay = ctx.late_commit_limit
        # The last day recounted: [day, its number of events then, when] (checked once, later).
        audit = state.get("audit")
        late = dict(state.get("late", {}))

        def is_closed(day: date) -> bool:
            return _day_start(day + timedelta(days=1), zone) + delay <= cutoff

        def save() -> dict[str, Any]:
            snapshot = {
                "mode": BY_OCCURRED_AT,
                "watermark": after.astimezone(UTC).isoformat(),
                "closed": encode_samples(closed),
                "open": {day.isoformat(): encode_samples(samples) for day, samples in sorted(live.items())},
                "audit": audit,
                "late": late,
            }
            return snapshot

        def reconcile(day: date) -> None:
            nonlocal audit
            since, until = _day_start(day, zone), _day_start(day + timedelta(days=1), zone)
            # The day recounted before, in an earlier run: what arrived since is beyond the limit.
            # (Days recounted in this run, e.g. the history at the first run, are not checked.)
            if audit is not None and audit[2] < ctx.now.timestamp():
                earlier = date.fromisoformat(audit[0])
                now_there = self._first(
                    ctx,
                    EVENTS_BETWEEN,
                    {"since": _day_start(earlier, zone), "until": _day_start(earlier + timedelta(days=1), zone)},
                )
                if (now_there or 0) > audit[1]:
                    late["missed"] = late.get("missed", 0) + (now_there or 0) - audit[1]
            with ctx.source.snapshot() as snapshot:
                exact, events = self._count(ctx, since, until, snapshot, with_events=True)
                if events is None:
                    events = self._first(ctx, EVENTS_BETWEEN, {"since": since, "until": until}, snapshot) or 0
            audit = [day.isoformat(), events, ctx.now.timestamp()]
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
                    _add(live.setdefault(day, self._decode({})), self._count(ctx, after, upto))
                    after = upto
            day += timedelta(days=1)
            if _day_start(day, zone) < cutoff:
                ctx.checkpoint(_published(closed, live), save())
        return Result(samples=_published(closed, live), state=save())

    def _count(
        self, ctx: Context, since: datetime, until: datetime, source: Any = None, with_events: bool = False
    ) -> Any:
        """The delta of the events with since <= occurred_at < until: one aggregate statement
        (with_events: and how many events it counted, if the rows tell, else None)."""
        source = source or ctx.source
        delta = self._decode({})
        relations = ctx.source.relations
        columns = EVENT_COLUMNS[self.events]
        events = TIME_SLICE.format(
            columns=sql.SQL(", ").join(sql.Identifier(column) for column in columns),
            relation=relations.get(self.events, sql.Identifier(self.events)),
            alias=sql.Identifier(self.events),
        )
        rows = source.fetch(
            self.delta_query, {**WHOLE_SLICE, "since": since, "until": until}, events=events, **self.placeholders()
        )
        self.accumulate(delta, rows)
        return (delta, self.events_in(rows)) if with_events else delta

    def _first(self, ctx: Context, query: sql.SQL, params: dict[str, Any], source: Any = None) -> Any:
        rows = (source or ctx.source).fetch(query, params, events=self.events)
        return rows[0][0] if rows else None

    def accumulate(self, totals: Samples, rows: Iterable[tuple]) -> None:
        if self._shape is not None and self._summed_in_sql() is None:
            rows = _shaped_rows(rows, *self._shape)
        add_counts(totals.setdefault(self.families[0].name, {}), rows)

    def events_in(self, rows: list[tuple]) -> int | None:
        """How many events the delta query's rows count (None: unknown). ATTRIBUTED_EVENT_COUNTS
        counts each event once under structure "all"."""
        if self.delta_query is not ATTRIBUTED_EVENT_COUNTS:
            return None
        return int(sum(row[-1] for row in rows if row[0] == "all"))


class Gaps:
    """Ranges of ids missing below the watermark, watched for late commits.

    ``tracked``: [lo, hi, first seen (unix time), horizon], sorted by lo; events appearing there
    are counted. ``watch``: [lo, hi, expired at, horizon] of gaps past the limit; events appearing
    there are only reported as missed. ``late``: {"counted": n, "missed": n}, cumulative.

    The horizon of a gap is the cluster's next transaction id (xmax) at the start of the cycle
    after the one that found it: every transaction that had taken one of its ids by then has a
    lower transaction id. Once the oldest running transaction (xmin) is at or above it, they have
    all ended, so a probe after that sees everything the gap will ever hold: the gap is dropped.
    With short transactions a gap is probed once or twice; only a long transaction keeps gaps
    (up to the limit)."""

    def __init__(self, tracked: list, watch: list, late: Mapping[str, float]) -> None:
        self.tracked = [[*g, None][:4] for g in tracked]
        self.watch = [[*g, None][:4] for g in watch]
        self.late = {"counted": late.get("counted", 0), "missed": late.get("missed", 0)}

    def __bool__(self) -> bool:
        return bool(self.tracked or self.watch)

    def ranges(self) -> list[tuple[int, int]]:
        return [(g[0], g[1]) for g in self.tracked] + [(g[0], g[1]) for g in self.watch]

    def expire(self, now: float, limit: float) -> None:
        self.watch = [g for g in self.watch if now - g[2] < limit]
        kept = []
        for gap in self.tracked:
            if now - gap[2] < limit:
                kept.append(gap)
            else:
                self.watch.append([gap[0], gap[1], now, gap[3]])
        self.tracked = kept
        self._cap()

    def add(self, missing: Iterable[tuple[int, int]], now: float) -> None:
        self.tracked.extend([lo, hi, now, None] for lo, hi in missing)
        self._cap()

    def set_horizon(self, xmax: int) -> None:
        for gap in (*self.tracked, *self.watch):
            if gap[3] is None:
                gap[3] = xmax

    def drop_finished(self, xmin: int) -> None:
        """Drops the gaps every transaction that could fill has ended (after they were probed)."""
        self.tracked = [g for g in self.tracked if g[3] is None or g[3] > xmin]
        self.watch = [g for g in self.watch if g[3] is None or g[3] > xmin]

    def _cap(self) -> None:
        if len(self.tracked) > MAX_GAPS:  # the oldest first (lowest ids first among equals)
            self.tracked.sort(key=lambda g: (g[2], g[0]))
            excess, self.tracked = self.tracked[:-MAX_GAPS], self.tracked[-MAX_GAPS:]
            self.watch.extend(list(g) for g in excess)
        if len(self.watch) > MAX_GAPS:
            self.watch.sort(key=lambda g: (g[2], g[0]))
            self.watch = self.watch[-MAX_GAPS:]
        self.tracked.sort()
        self.watch.sort()

    def is_tracked(self, event_id: int) -> bool:
        return _containing(self.tracked, event_id) is not None

    def found(self, ids: list[int]) -> None:
        """Narrows the gaps around the ids found in them; counts them as counted or missed."""
        for event_id in ids:
            if _containing(self.tracked, event_id) is not None:
                self.late["counted"] += 1
            elif _containing(self.watch, event_id) is not None:
                self.late["missed"] += 1
        self.tracked = _split(self.tracked, ids)
        self.watch = _split(self.watch, ids)

    def state(self) -> dict[str, Any]:
        return {"gaps": self.tracked, "watch": self.watch, "late": dict(self.late)}


def _containing(gaps: list, event_id: int) -> list | None:
    position = bisect.bisect_right(gaps, event_id, key=lambda g: g[0]) - 1
    if position >= 0 and gaps[position][0] <= event_id <= gaps[position][1]:
        return gaps[position]
    return None


def _split(gaps: list, ids: list[int]) -> list:
    """The gaps without the given ids (sorted): each gap split into the ranges between them."""
    if not ids:
        return gaps
    result = []
    for lo, hi, *rest in gaps:
        start = bisect.bisect_left(ids, lo)
        end = bisect.bisect_right(ids, hi)
        for event_id in ids[start:end]:
            if lo <= event_id - 1:
                result.append([lo, event_id - 1, *rest])
            lo = event_id + 1
        if lo <= hi:
            result.append([lo, hi, *rest])
    return result


def _local_day(moment: datetime, zone: tzinfo) -> date:
    return moment.astimezone(zone).date()


def _day_start(day: date, zone: tzinfo) -> datetime:
    """Local midnight of a calendar day, as a UTC instant (DST days last 23 or 25 hours)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


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
        chosen: dict[LabelValues, Value | None] = {}
        for key in set(recount) | set(counted):
            a, b = recount.get(key), counted.get(key)
            chosen[key] = a if b is None or (a is not None and _size(a) >= _size(b)) else b
        _add(target, {name: cast("dict[LabelValues, Value]", chosen)})  # (never None: each key is in one)


def _published(closed: Samples, live: dict[date, Samples]) -> Samples:
    total: Samples = {}
    _add(total, closed)
    for samples in live.values():
        _add(total, samples)
    return total


def _shaped_rows(rows: Iterable[tuple], structure: int, positions: tuple[int, ...]) -> Iterable[tuple]:
    """Rows of (label values..., count) in the series budget's shape: structure "all" as they are;
    any other structure once per marginal label, that label "all" (add_counts sums them up)."""
    for row in rows:
        if row[structure] == ALL_STRUCTURES:
            yield row
        else:
            yield from marginal_keys(tuple(row), positions)


def add_counts(series: dict, rows: Iterable[tuple]) -> None:
    """Adds rows of (label values..., count) to a counter's running totals."""
    get = series.get
    for row in rows:
        key = row[:-1] if type(row) is tuple else tuple(row[:-1])
        series[key] = get(key, 0.0) + float(row[-1])
