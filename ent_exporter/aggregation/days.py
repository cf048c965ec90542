"""Per-day login aggregates kept in a collector's state: window collectors combine days instead of
re-reading their window of events.

A ``DayLog`` holds, for each local calendar day of a window, the logins of that day grouped per
dense user number (and, as a collector asks, per profile and/or local hour of day), as compact
arrays. Each run brings it up to ``now`` with the machinery of the instant counters' time
watermark (ent_exporter.aggregation.incremental, ``occurred_at`` mode): the events of [watermark, now] are read
as one aggregate statement per local day (an index range scan on ``occurred_at``), added to the
open days; once a day is closed (its end is the late-commit limit behind now) it is recounted
once, whole, and that exact count replaces what was counted live, so late commits within the
limit are counted. A day never seen (the first run, a lost or unreadable state, a window that
reaches further back) is counted whole: the fallback full recount. A ``now`` behind the
watermark (a clock set back) starts over the same way.

Only the days a window needs are kept. The state is persisted atomically with the collector's
result (ent_exporter.engine.state): users as their ids' UTF-8 bytes, NUL-padded to a common width, in number
order (their dense numbers are the positions), and each day's arrays, rows sorted by user and
users as differences, each as base64 of zlib-compressed little-endian bytes (state format 2;
format 1 kept the users as a JSON list of ids and days in any row order, and is still read). In
memory too the users are that one numpy array, with a sort order to look numbers up (Users): no
Python string or dictionary entry per user. Closed days stay encoded until a collector combines
them, one at a time (Day.whole). Statements return arrays (bytea of integers, ids as one text
with their lengths), not a row per group: a first run, which counts its whole window day by day,
holds no Python object per login group nor per account, and one day's rows at a time. There,
accounts are read in PARTS disjoint parts of the users (Attachments): one part's ids in memory at
a time; the regular runs read them in one statement (each part is a scan of accounts), or in a few
parts when the users are many (parts_for: a part holds about PART_USERS users at most).

Windows that do not start at a local midnight (the last 28/30/90 days) take their first,
partial day from the database, as one aggregate statement over (start, end of that day): at
most one local day of logins, whatever the window's length.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from psycopg import sql

from ent_exporter.aggregation.incremental import _day_start
from ent_exporter.engine.collector import Context

JUST_AFTER = timedelta(microseconds=1)  # timestamptz resolution: (t, ...) == [t + 1 µs, ...)
PROFILE = "profile"
HOUR = "hour"
# Each kept column's expression; labels (text) are numbered by the log, the others are small integers.
_COLUMNS = {
    PROFILE: sql.SQL("coalesce(nullif(profile, ''), 'unknown') COLLATE \"C\""),
    HOUR: sql.SQL("extract(hour FROM occurred_at AT TIME ZONE %(zone)s)::int2"),
}
_LABELS = (PROFILE,)

# One local day's logins of [since, until), per user (and the columns a log keeps), as one row of
# arrays rather than a row per group, so that no Python object is made per group: the day's
# distinct users once (their ids joined in one text, with each one's UTF-8 length: text comes as
# it is, where a bytea comes as hex text, twice its size, decoded into a third copy) with their
# positions (the NULL user's apart), then per group its user's position, the kept columns and the count,
# each as one bytea of big-endian integers read straight into numpy.
# Label columns (the profile) come the same way as the users: their distinct values once, and a
# position per group. Positions are explicit (dense_rank), whatever order the aggregates see.
DAY_LOGINS = sql.SQL("""
    WITH per_user AS (
        SELECT user_id COLLATE "C" AS user_id, {columns}count(*)::int4 AS logins
        FROM {login_events}
        WHERE occurred_at >= %(since)s AND occurred_at < %(until)s
        GROUP BY {groups}
    ), ranked AS (
        SELECT *, (dense_rank() OVER w - 1)::int4 AS position,
               row_number() OVER w = 1 OR lag(user_id) OVER w IS DISTINCT FROM user_id AS first{ranks}
        FROM per_user WINDOW w AS (ORDER BY user_id)
    )
    SELECT string_agg(user_id, '') FILTER (WHERE first AND user_id IS NOT NULL),
           string_agg(int4send(octet_length(convert_to(user_id, 'UTF8'))), ''::bytea)
               FILTER (WHERE first AND user_id IS NOT NULL),
           string_agg(int4send(position), ''::bytea) FILTER (WHERE first AND user_id IS NOT NULL),
           min(position) FILTER (WHERE user_id IS NULL)
           {labels}, string_agg(int4send(position), ''::bytea){values}, string_agg(int4send(logins), ''::bytea)
    FROM ranked
""")


def _encode(array: np.ndarray) -> str:
    # Compressed straight from the array's buffer (a byte view, no copy of the array: the users'
    # ids are ~18 MB at the month scale).
    return base64.b64encode(zlib.compress(np.ascontiguousarray(array).reshape(-1).view(np.uint8), 1)).decode("ascii")


def _decode(text: str, dtype: Any) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=dtype).copy()


class Day:
    """One local day's logins: ``user`` numbers, the kept columns and ``count``, aligned arrays.
    ``closed``: recounted whole after the late-commit limit, final. ``folded``: its arrays were
    dropped (the collector kept what it needs of them elsewhere). An open day keeps apart, in
    ``tail``, its events of the last late-commit limit before the watermark: they are read again
    at the next run (so events committed late within the limit are counted).

    A closed day is final: it is kept ``packed`` only (its encoded, compressed arrays, as in the
    state), encoded once when it closes and decoded only for the moment a collector combines it
    (``whole``), so a window of days costs its compressed size, not its arrays."""

    __slots__ = ("user", "columns", "count", "closed", "folded", "tail", "packed")

    def __init__(
        self,
        user: np.ndarray | None,
        columns: dict[str, np.ndarray] | None,
        count: np.ndarray | None,
        closed: bool = False,
        folded: bool = False,
        tail: Day | None = None,
        packed: dict[str, Any] | None = None,
    ) -> None:
        self.user, self.columns, self.count, self.closed, self.folded = user, columns, count, closed, folded
        self.tail = tail
        self.packed = packed

    def add(self, other: Day) -> None:
        self.unpack()
        self.user = np.concatenate([self.user, other.user])
        self.columns = {name: np.concatenate([self.columns[name], other.columns[name]]) for name in self.columns}
        self.count = np.concatenate([self.count, other.count])

    def pack(self) -> None:
        """Keeps the day as its encoded arrays only (a closed day: it changes no more)."""
        if self.packed is None and not self.folded:
            self.packed = _arrays(self)
        self.user = self.columns = self.count = None

    def unpack(self) -> None:
        if self.user is None and self.packed is not None:
            self.user, self.columns, self.count = _from_arrays(self.packed, list(self.packed["columns"]))
            self.packed = None

    def whole(self) -> Day:
        """Settled part and tail together, as arrays (a packed day decoded for the moment, not kept)."""
        if self.user is None and self.packed is not None:
            day = Day(*_from_arrays(self.packed, list(self.packed["columns"])))
        else:
            day = self
        if self.tail is None or not len(self.tail.user):
            return day
        day = Day(day.user, dict(day.columns), day.count)
        day.add(self.tail)
        return day

    def state(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"closed": self.closed, "folded": self.folded}
        if not self.folded:
            entry.update(self.packed if self.packed is not None else _arrays(self))
            if self.tail is not None:
                entry["tail"] = _arrays(self.tail)
        return entry

    @classmethod
    def load(cls, entry: dict[str, Any], names: Sequence[str]) -> Day:
        if entry.get("folded"):
            return cls(*_empty(names), closed=bool(entry.get("closed")), folded=True)
        tail = entry.get("tail")
        if entry.get("closed") and tail is None:  # final: kept encoded, as stored (decoded when combined)
            packed = {
                "delta": bool(entry.get("delta")),
                "user": entry["user"],
                "count": entry["count"],
                "columns": {name: entry["columns"][name] for name in names},
            }
            return cls(None, None, None, closed=True, packed=packed)
        return cls(
            *_from_arrays(entry, names),
            closed=bool(entry.get("closed")),
            tail=None if tail is None else cls(*_from_arrays(tail, names)),
        )


def _arrays(day: Day) -> dict[str, Any]:
    """A day's arrays encoded (format 2): rows sorted by user number, users as the differences
    from the row before ("delta"), which compress to about half."""
    order = np.argsort(day.user, kind="stable")
    user = day.user[order].astype(np.int64)
    return {
        "delta": True,
        "user": _encode(np.diff(user, prepend=0).astype("<i4")),
        "count": _encode(day.count[order].astype("<i4")),
        "columns": {name: _encode(values[order].astype("<i2")) for name, values in day.columns.items()},
    }


def _from_arrays(entry: dict[str, Any], names: Sequence[str]) -> tuple:
    user = _decode(entry["user"], "<i4")
    if entry.get("delta"):
        user = np.cumsum(user, dtype=np.int32)
    return user, {name: _decode(entry["columns"][name], "<i2") for name in names}, _decode(entry["count"], "<i4")


def _empty(names: Sequence[str]) -> tuple:
    return np.zeros(0, np.int32), {name: np.zeros(0, np.int16) for name in names}, np.zeros(0, np.int32)


def _integers(data: bytes | None, dtype: str) -> np.ndarray:
    """Big-endian integers sent as one bytea (string_agg of int4send/int2send), in native order."""
    return np.frombuffer(data or b"", dtype).astype(dtype.replace(">", "="))


def split_ids(joined: bytes, chunk: int = 65536, lengths: np.ndarray | None = None) -> np.ndarray:
    """NUL-separated byte strings (or, given their ``lengths``, byte strings joined) as one
    fixed-width numpy bytes array (no Python object each), filled a chunk of strings and a column
    of bytes at a time (small temporaries)."""
    data = np.frombuffer(joined, np.uint8)
    if lengths is None:
        ends = np.append(np.flatnonzero(data == 0), len(data))
        starts = np.concatenate([[0], ends[:-1] + 1])
        lengths = ends - starts
    else:
        lengths = lengths.astype(np.int64)
        starts = np.cumsum(lengths) - lengths
    width = max(1, int(lengths.max()) if len(lengths) else 1)
    table = np.zeros((len(starts), width), np.uint8)
    for first in range(0, len(starts), chunk):
        rows, start, length = (
            table[first : first + chunk],
            starts[first : first + chunk],
            lengths[first : first + chunk],
        )
        for column in range(width):
            long_enough = np.flatnonzero(length > column)
            rows[long_enough, column] = data[start[long_enough] + column]
    return table.view(f"S{width}").ravel()


def ids_array(text: str | None, lengths: bytes | None) -> np.ndarray:
    """Ids sent as one text (string_agg(user_id, '')) and their UTF-8 lengths (a bytea of int4send),
    as a fixed-width numpy bytes array."""
    if text is None:
        return np.zeros(0, "S1")
    return split_ids(text.encode(), lengths=_integers(lengths, ">i4"))


FORMAT = 2  # of a DayLog's state (see the module docstring)


class Users:
    """Dense user numbers: the ids' UTF-8 bytes in one fixed-width numpy array (``ids``, position =
    number), looked up through ``order`` (the numbers sorted by id). A login without a user (NULL)
    has a number of its own, ``null``, whose slot holds no id. About 40 bytes a user, where a list
    of strings and a dictionary took about 160."""

    def __init__(self, ids: np.ndarray | None = None, null: int | None = None) -> None:
        self.ids = np.zeros(0, "S1") if ids is None else ids
        self.null = None
        numbers = np.arange(len(self.ids))
        if null is not None:
            numbers = numbers[numbers != null]
        self.order = numbers[np.argsort(self.ids[numbers], kind="stable")].astype(np.int64)
        if null is not None:
            self._place_null(null)

    def _place_null(self, null: int) -> None:
        """The NULL user's slot (no id: b"") goes into the order after any real id b"" (the smallest)."""
        self.null = null
        empty = int(np.count_nonzero(self.ids == b"")) - 1  # real ids b"", the NULL user's slot aside
        self.order = np.insert(self.order, empty, null)

    def __len__(self) -> int:
        return len(self.ids)

    def null_number(self) -> int:
        if self.null is None:
            self.ids = np.concatenate([self.ids, np.zeros(1, self.ids.dtype)])
            self._place_null(len(self.ids) - 1)
        return self.null

    def _find(self, ids: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(ids at the common width, their places in the sort order, found, numbers: -1 if not found)."""
        wanted = ids.astype(known.dtype, copy=False)
        place = np.searchsorted(known, wanted, sorter=self.order)
        found = place < len(self.order)
        found[found] = (known[self.order[place[found]]] == wanted[found]) & (self.order[place[found]] != self.null)
        numbers = np.full(len(wanted), -1, np.int64)
        numbers[found] = self.order[place[found]]
        return wanted, place, found, numbers

    def lookup(self, ids: np.ndarray, chunk: int = 65536) -> np.ndarray:
        """The numbers of ids (a numpy bytes array, repeats allowed), -1 for those not numbered.
        A chunk of ids at a time: the search's temporaries stay small whatever their count."""
        known = self.ids
        if known.dtype.itemsize < ids.dtype.itemsize:
            known = known.astype(ids.dtype)
        numbers = np.empty(len(ids), np.int64)
        for start in range(0, len(ids), chunk):
            numbers[start : start + chunk] = self._find(ids[start : start + chunk], known)[3]
        return numbers

    def numbers(self, ids: np.ndarray) -> np.ndarray:
        """The numbers of distinct ids (a numpy bytes array), numbering those not seen yet."""
        if not len(ids):
            return np.zeros(0, np.int32)
        if self.ids.dtype.itemsize < ids.dtype.itemsize:
            self.ids = self.ids.astype(ids.dtype)
        wanted, place, found, numbers = self._find(ids, self.ids)
        new = np.flatnonzero(~found)
        if len(new):
            new = new[np.argsort(wanted[new], kind="stable")]  # in id order, to merge into ``order``
            numbers[new] = len(self.ids) + np.arange(len(new))
            self.ids = np.concatenate([self.ids, wanted[new]])
            self.order = np.insert(self.order, place[new], numbers[new])
        return numbers.astype(np.int32)

    def parameters(self) -> dict[str, Any]:
        """The users for a statement (``numbered`` in USER_STRUCTURES): the ids as one bytea (fixed
        width, NUL-padded), that width, their count and the NULL user's number."""
        return {"ids": self.ids.tobytes(), "width": self.ids.dtype.itemsize, "count": len(self.ids), "null": self.null}

    def state(self) -> dict[str, Any]:
        return {"width": self.ids.dtype.itemsize, "ids": _encode(self.ids), "null": self.null}

    @classmethod
    def load(cls, state: dict[str, Any]) -> Users:
        users = state.get("users", [])
        if isinstance(users, dict):  # format 2
            width = int(users["width"])
            return cls(_decode(users["ids"], f"S{width}"), users.get("null"))
        # Format 1: a JSON list of ids, None for the logins without a user.
        null = next((number for number, user in enumerate(users) if user is None), None)
        ids = np.array([b"" if user is None else user.encode() for user in users], dtype="S") if users else None
        return cls(ids, null)


class DayLog:
    """Per-day login aggregates of one collector (see the module docstring)."""

    def __init__(self, state: dict[str, Any], columns: Sequence[str] = ()) -> None:
        self.names = tuple(columns)
        # Format 2 keeps its columns under "by": an exporter that knew only format 1 ("columns") finds
        # none and counts its window again, rather than misreading the users.
        columns = state.get("by") if state.get("format") == FORMAT else state.get("columns")
        valid = columns == list(self.names) and state.get("watermark") is not None
        self.users = Users.load(state) if valid else Users()
        self.profiles: list[str] = list(state.get("profiles", [])) if valid else []
        self.profile_numbers = {profile: number for number, profile in enumerate(self.profiles)}
        self.watermark = datetime.fromisoformat(state["watermark"]) if valid else None
        # Events of [tail_since, watermark) are in the open days' tails, read again next run.
        self.tail_since = datetime.fromisoformat(state["tail_since"]) if valid and state.get("tail_since") else None
        self.days: dict[date, Day] = (
            {date.fromisoformat(day): Day.load(entry, self.names) for day, entry in state.get("days", {}).items()}
            if valid
            else {}
        )
        self.recounted: list[str] = []  # days counted whole in this run (for tests and logs)
        # No usable state: the whole window is counted in this run (the memory peak of a first start).
        self.counted_whole = self.watermark is None

    # -- numbering ---------------------------------------------------------------------
    def profile_number(self, profile: str) -> int:
        number = self.profile_numbers.get(profile)
        if number is None:
            number = self.profile_numbers[profile] = len(self.profiles)
            self.profiles.append(profile)
        return number

    # -- bringing it up to now -----------------------------------------------------------
    def update(
        self,
        ctx: Context,
        first: date,
        until: datetime,
        fold: Callable[[date, Day], None] | None = None,
        keep_from: date | None = None,
    ) -> None:
        """Brings the days ``first``..local day of ``until`` up to ``until`` (exclusive, UTC).

        Days before ``first`` are dropped. ``fold`` is called with each day counted whole or
        brought up to date; closed days before ``keep_from`` then lose their arrays. Closed
        days are kept packed (encoded once, when they close)."""
        zone = ctx.timezone
        now = ctx.now.astimezone(UTC)
        if self.watermark is not None and self.watermark > until:  # the clock went back: start over
            self.days, self.watermark, self.tail_since = {}, None, None
        if self.watermark is None:
            self.days = {}
        self.days = {day: entry for day, entry in self.days.items() if day >= first}
        tail_since = until - ctx.late_commit_limit
        if self.tail_since is not None:
            tail_since = max(self.tail_since, tail_since)
        old_tail = self.tail_since if self.tail_since is not None else tail_since
        day = first
        while _day_start(day, zone) < until:
            start, end = _day_start(day, zone), _day_start(day + timedelta(days=1), zone)
            closed = end + ctx.late_commit_limit <= now and until >= end
            entry = self.days.get(day)
            if entry is None or (closed and not entry.closed):
                self.days.pop(day, None)  # a live count goes before its day's recount arrives
                if closed:  # the whole day at once, final
                    entry = self.read(ctx, start, end)
                    entry.closed = True
                else:
                    entry = self.read(ctx, start, min(end, max(start, tail_since)))
                    entry.tail = self.read(ctx, max(start, tail_since), min(end, until))
                self.days[day] = entry
                self.recounted.append(day.isoformat())
                if fold:
                    fold(day, entry.whole())
            elif not entry.closed:
                # What settled since the last run joins the day; the tail is read again, up to now.
                settle_from, settle_to = max(start, old_tail), min(end, tail_since)
                if settle_from < settle_to:
                    entry.add(self.read(ctx, settle_from, settle_to))
                tail_from, tail_to = max(start, tail_since), min(end, until)
                entry.tail = self.read(ctx, tail_from, tail_to) if tail_from < tail_to else None
                if fold:
                    fold(day, entry.whole())
            if keep_from is not None and day < keep_from and entry.closed and not entry.folded:
                entry.user, entry.columns, entry.count = _empty(self.names)
                entry.packed = None
                entry.folded = True
            if entry.closed:
                entry.pack()
            day += timedelta(days=1)
        self.watermark = until
        self.tail_since = tail_since

    def read(self, ctx: Context, since: datetime, until: datetime, source: Any = None) -> Day:
        """The logins of [since, until) as a Day (one statement, an index range scan), fetched as
        arrays (see DAY_LOGINS): each of the day's users is numbered once, whatever its groups."""
        per_user = sql.SQL("").join(
            sql.SQL("{} AS {}, ").format(_COLUMNS[name], sql.Identifier(name)) for name in self.names
        )
        groups = sql.SQL(", ").join(sql.SQL(str(i + 1)) for i in range(len(self.names) + 1))
        labels = [name for name in self.names if name in _LABELS]
        ranks = sql.SQL("").join(
            sql.SQL(
                ", (dense_rank() OVER (ORDER BY {0}) - 1)::int2 AS {1}, row_number() OVER (PARTITION BY {0}) = 1 AS {2}"
            ).format(sql.Identifier(name), sql.Identifier(f"{name}_rank"), sql.Identifier(f"{name}_first"))
            for name in labels
        )
        label_lists = sql.SQL("").join(
            sql.SQL(
                ", array_agg({0}) FILTER (WHERE {2}), string_agg(int2send({1}), ''::bytea) FILTER (WHERE {2})"
            ).format(sql.Identifier(name), sql.Identifier(f"{name}_rank"), sql.Identifier(f"{name}_first"))
            for name in labels
        )
        values = sql.SQL("").join(
            sql.SQL(", string_agg(int2send({}), ''::bytea)").format(
                sql.Identifier(f"{name}_rank" if name in _LABELS else name)
            )
            for name in self.names
        )
        row = (source or ctx.source).fetch(
            DAY_LOGINS,
            {"since": since, "until": until, "zone": _zone(ctx)},
            columns=per_user,
            groups=groups,
            ranks=ranks,
            labels=label_lists,
            values=values,
        )[0]
        row = list(row)
        ids, row[0] = ids_array(row[0], row[1]), None  # the text dropped as soon as it is split
        id_positions, null_position = row[2:4]
        numbers = np.zeros(len(id_positions or b"") // 4 + (null_position is not None), np.int32)
        if len(ids):
            numbers[_integers(id_positions, ">i4")] = self.users.numbers(ids)
        del ids
        if null_position is not None:
            numbers[null_position] = self.users.null_number()
        label_numbers = {
            name: self._numbers(row[4 + 2 * i], row[5 + 2 * i], self.profile_number, np.int16)
            for i, name in enumerate(labels)
        }
        positions, *columns, counts = row[4 + 2 * len(labels) :]
        user = numbers[_integers(positions, ">i4")]
        found: dict[str, np.ndarray] = {}
        for name, data in zip(self.names, columns):
            value = _integers(data, ">i2")
            found[name] = label_numbers[name][value] if name in label_numbers else value
        return Day(user, found, _integers(counts, ">i4"))

    @staticmethod
    def _numbers(values: list | None, positions: bytes | None, number: Callable[[Any], int], dtype: Any) -> np.ndarray:
        """The log's numbers of a day's distinct values, by their position in the day (dense_rank)."""
        values = values or []
        numbers = np.zeros(len(values), dtype)
        numbers[_integers(positions, ">i2")] = np.fromiter(map(number, values), dtype, len(values))
        return numbers

    def state(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "by": list(self.names),
            "watermark": None if self.watermark is None else self.watermark.astimezone(UTC).isoformat(),
            "tail_since": None if self.tail_since is None else self.tail_since.astimezone(UTC).isoformat(),
            "users": self.users.state(),
            "profiles": self.profiles,
            "days": {day.isoformat(): entry.state() for day, entry in sorted(self.days.items())},
        }


def _zone(ctx: Context) -> str:
    from ent_exporter.aggregation.periods import zone_name

    return zone_name(ctx.timezone)


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


# -- attribution: each user's structures, from accounts ----------------------------------------

# Each user's structures (label rule applied), as arrays, as DAY_LOGINS does: every attachment's
# user id (joined in one text with their lengths, looked up in the log's Users) and its structure's position in the
# list of names (STRUCTURE_NAMES, read first and handed back, so every part numbers alike). No
# Python object per account. In a run that counts its window whole, the accounts come in PARTS
# statements, each a disjoint part of the users (hashtext of the id): a part's bytes are all that is
# in memory at once (500k accounts' ids are ~16 MB of text); a regular run reads them at once, or in a
# few parts when the users are many (parts_for).
PARTS = 8
STRUCTURE_NAMES = sql.SQL("""
    SELECT array_agg(DISTINCT coalesce(nullif(structure_id, ''), 'unknown')) FROM {accounts}
""")
USER_STRUCTURES = sql.SQL("""
    WITH structures AS (
        SELECT structure, (position - 1)::int4 AS position
        FROM unnest(%(structures)s::text[]) WITH ORDINALITY AS s(structure, position)
    ), attached AS (
        SELECT DISTINCT user_id, coalesce(nullif(structure_id, ''), 'unknown') AS structure
        FROM {accounts}
        WHERE user_id IS NOT NULL  -- NOT NULL in the contract
          AND (hashtext(user_id) & %(mask)s::int4) = %(part)s::int4
    )
    SELECT string_agg(user_id, ''), string_agg(int4send(octet_length(convert_to(user_id, 'UTF8'))), ''::bytea),
           string_agg(int4send(position), ''::bytea)
    FROM attached JOIN structures USING (structure)
""")


# The users a regular run's part of the attachments holds at most (about 100 bytes each while it is read:
# the ids' text, its bytes, the fixed-width ids, the look-ups' arrays). Read at once, 500,000 users'
# attachments were about 50 MB held at once, the peak of a serving process at 1,000 establishments
# (bench/schedule.py); in 4 parts, a quarter of it, for 3 more scans of accounts (about 0.1 s each there).
PART_USERS = 125_000


def user_parts(apart: bool | int = True) -> list[dict[str, int]]:
    """The parameters of each part of the users: ``apart`` True, PARTS (a power of two); False, one part
    (all of them); a number, that many (a power of two up to PARTS: see parts_for). Each part is a scan of
    accounts."""
    parts = (PARTS if apart else 1) if isinstance(apart, bool) else apart
    return [{"mask": parts - 1, "part": part} for part in range(parts)]


def parts_for(log: DayLog) -> int:
    """How many parts a run reads the accounts in: PARTS when it counts its window whole (the first run, or
    after a state loss: its days' arrays are all being built); otherwise enough that a part holds about
    PART_USERS of the log's users at most (one for most platforms), a power of two up to PARTS."""
    if log.counted_whole:
        return PARTS
    parts = 1
    while parts < PARTS and len(log.users) > parts * PART_USERS:
        parts *= 2
    return parts


class Attachments:
    """user number -> structure numbers. Most users have one structure: ``first`` holds it, by user
    number (a gather, no search); the few further attachments are sorted parallel arrays."""

    def __init__(self, ctx: Context, log: DayLog) -> None:
        users_parts: list[np.ndarray] = []
        structures_parts: list[np.ndarray] = []
        with ctx.source.snapshot() as source:  # the parts of a read see the same accounts
            names = source.fetch(STRUCTURE_NAMES)[0][0]
            self.structures: list[str] = list(names or [])
            for part in user_parts(parts_for(log)):
                text, lengths, structures = source.fetch(USER_STRUCTURES, {"structures": self.structures, **part})[0]
                if text is None:
                    continue
                users = log.users.lookup(ids_array(text, lengths))
                del text
                numbered = users >= 0  # attachments of users the log has not numbered play no part
                users_parts.append(users[numbered])
                structures_parts.append(_integers(structures, ">i4")[numbered])
        numbers = {structure: position for position, structure in enumerate(self.structures)}
        users = np.concatenate(users_parts) if users_parts else np.zeros(0, np.int64)
        structures = np.concatenate(structures_parts) if structures_parts else np.zeros(0, np.int32)
        self.unknown = numbers.get("unknown")
        if self.unknown is None:
            self.unknown = len(self.structures)
            self.structures.append("unknown")
        user = users.astype(np.int64)
        structure = structures.astype(np.int64)
        order = np.argsort(user, kind="stable")
        user, structure = user[order], structure[order]
        # The first attachment of each user by number; the others apart.
        is_first = np.ones(len(user), bool)
        is_first[1:] = user[1:] != user[:-1]
        self.first = np.full(len(log.users) + 1, self.unknown, np.int64)
        self.first[user[is_first]] = structure[is_first]
        self.extra_user = user[~is_first]
        self.extra_structure = structure[~is_first]
        self.has_extra = np.zeros(len(log.users) + 1, bool)
        self.has_extra[self.extra_user] = True

    def each(self, user: np.ndarray) -> Iterator[tuple[Any, np.ndarray]]:
        """The rows (by their user numbers) once per structure of their user, ``unknown`` for a user
        without any account, in at most two parts of (rows, structure numbers): every row with its
        user's first structure (rows: a slice, so that the caller's arrays are views, not copies),
        then the rows of users with more structures (row indices), once per further structure."""
        user = np.asarray(user)
        if not len(user):
            return
        yield slice(None), self.first[np.minimum(user, len(self.first) - 1)]
        if not len(self.extra_user):
            return
        more = np.flatnonzero(self.has_extra[np.minimum(user, len(self.has_extra) - 1)])
        if not len(more):
            return
        left = np.searchsorted(self.extra_user, user[more], side="left")
        counts = np.searchsorted(self.extra_user, user[more], side="right") - left
        extra_rows = np.repeat(more, counts)
        offsets = np.arange(len(extra_rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        yield extra_rows, self.extra_structure[np.repeat(left, counts) + offsets]
