"""Each collector's last result and state, persisted atomically in the state directory.

One JSON file per collector holds its samples, its own state (watermarks, running
totals) and the time of its last success, written together by write-then-rename: after
a crash (even ``kill -9`` mid-write) a file is either the old one or the new one, so
counters and the watermark they were counted up to never disagree.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

import orjson

from ent_exporter.engine import journal as journals
from ent_exporter.engine import pieces
from ent_exporter.engine.collector import Family, Kind
from ent_exporter.engine.files import Directory

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
# Formats read: 1 has no "totals_are_samples" (the state's totals, if any, are in the state).
READABLE_VERSIONS = (1, 2)


@dataclass
class StoredResult:
    samples: dict[str, list[Any]]  # ent_exporter.engine.collector.encode_samples format
    state: dict[str, Any] | None = field(default_factory=dict)  # None: not held in memory (runtime._released)
    last_success: float | None = None  # unix time of the last complete run
    complete: bool = True  # False for a checkpoint taken in the middle of a run
    # When each cumulative series last moved: {family: [(label values, unix time)]}, or {family: {label
    # values: unix time}} (the runtime's, never changed in place once saved).
    changed_at: dict[str, Any] = field(default_factory=dict)
    # The instant the run computed its result as of (unix time): what a restore filters idle series by.
    ran_at: float | None = None


class StateStore:
    def __init__(self, directory: Path, *, clean: bool = True) -> None:
        """``clean=False``: a reader beside a running exporter (leaves its temporary files alone)."""
        # Held open, "collectors" never followed if it is a symbolic link (ent_exporter.engine.files).
        self._directory = Directory.open(directory, "collectors")
        self.directory = self._directory.path
        # Collectors saved with journal=True: what their file and journal hold (see ent_exporter.engine.journal).
        self._views: dict[str, journals.View] = {}
        self.largest_read = 0  # the most characters of a state file held at once by a load (ent_exporter.engine.pieces)
        if clean:
            self.remove_stale_temporaries()

    def remove_stale_temporaries(self) -> list[Path]:
        """Removes the temporary files that writes interrupted by a crash left behind (at start-up:
        one exporter per state directory, so none of them is being written)."""
        removed = [
            self.directory / name
            for name in self._directory.names()
            if name.startswith(".") and name.endswith(".tmp") and self._directory.unlink(name)
        ]
        if removed:
            log.info("removed %d temporary file(s) left by an interrupted write in %s", len(removed), self.directory)
        return removed

    def close(self) -> None:
        self._directory.close()

    def path(self, collector: str) -> Path:
        """The collector's state file."""
        return self.directory / f"{collector}.json"

    _path = path

    def _journal_path(self, collector: str) -> Path:
        return self.directory / f"{collector}.journal"

    def load(
        self,
        collector: str,
        *,
        with_state: bool = True,
        journal: bool = False,
        families: Iterable[Family] = (),
        with_samples: bool = True,
    ) -> StoredResult | None:
        """The collector's stored result: its file, then the lines of its journal that follow it.

        ``with_state=False``: without its state (None), which is then not parsed at all when it is
        the file's last key (files written since the state went last). ``journal=True`` (with the
        state): the next save may append to the journal (see save). ``families``: the collector's,
        whose series are checked against them (number of labels, histogram buckets).
        ``with_samples=False``: the state alone, the samples and times of change not read (empty; a window
        collector's run needs only its state), unless the file says its state's totals are its samples.

        A file that cannot be read or parsed, or whose shape is not the one written (valid JSON of
        another shape), is logged and ignored: the collector counts again from scratch, which is
        exact. A journal line of the wrong shape ends the journal there, like a torn line."""
        path = self._path(collector)
        self._views.pop(collector, None)
        skip = (() if with_state else ("state",)) + (() if with_samples else ("samples", "changed_at"))
        try:
            with self._directory.open_read(path.name) as handle:
                file_bytes = os.fstat(handle.fileno()).st_size
                # Read in pieces (ent_exporter.engine.pieces), never the whole file at once: a window
                # collector's state is tens of MB of encoded days. Without the state, the read ends where
                # it starts, when it is the file's last key (files written since the state went last).
                data, reader = pieces.load(handle, skip=skip, stop=_stop_at_state if not with_state else None)
            self.largest_read = max(self.largest_read, reader.largest)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            # Never happens with rename-based writes short of disk corruption; starting
            # over re-counts from scratch, which is exact, so do that rather than stop.
            log.error("ignoring unreadable state %s (%s): %s starts from scratch", path, error, collector)
            return None
        if not isinstance(data, dict):
            log.warning(
                "ignoring state %s (the wrong shape: %s, not a mapping): %s starts from scratch",
                path,
                _type_name(data),
                collector,
            )
            return None
        if data.get("version") not in READABLE_VERSIONS:
            log.warning(
                "state %s has format %s, expected %s: starting from scratch", path, data.get("version"), FORMAT_VERSION
            )
            return None
        if not with_samples:  # (not read: not checked, not returned)
            data["samples"], data["changed_at"] = {}, {}
        shapes = {family.name: family for family in families}
        problem = _file_problem(data, with_state, shapes)
        if problem:
            log.warning("ignoring state %s (the wrong shape: %s): %s starts from scratch", path, problem, collector)
            return None
        strings: dict[str, str] = {}
        labels: dict[tuple[str, ...], tuple[str, ...]] = {}
        series = _from_columns if data["version"] >= 2 else _compact_series
        samples = series(data.pop("samples"), strings, labels)
        state = _intern(data.pop("state"), strings) if with_state else None
        result = StoredResult(
            samples=samples,
            state=state,
            last_success=data["last_success"],
            complete=data["complete"],
            changed_at=series(data.pop("changed_at", {}), strings, labels),
            ran_at=data.get("ran_at"),
        )
        seq, totals_are_samples = data.get("seq", 0), bool(data.get("totals_are_samples"))
        if totals_are_samples and not with_samples and with_state:  # the state's totals are in the samples
            return self.load(collector, journal=journal, families=families)
        if state is not None and totals_are_samples:
            state.pop("totals", None)
        lines, journal_bytes, broken = self._journal_lines(collector, seq, shapes)
        for line in lines:
            seq, totals_are_samples = line["seq"], line["totals_are_samples"]
            _replay(result, line, strings, labels)
        if state is not None and totals_are_samples:
            state["totals"] = result.samples
        if not with_samples:
            result.samples, result.changed_at = {}, {}
        if journal and state is not None and with_samples:
            self._views[collector] = journal_view(seq, file_bytes, journal_bytes, result, totals_are_samples, broken)
        return result

    def _journal_lines(
        self, collector: str, seq: int, shapes: dict[str, Family]
    ) -> tuple[list[dict[str, Any]], int, bool]:
        try:
            text = self._directory.read(self._journal_path(collector).name)
        except FileNotFoundError:
            return [], 0, False
        except OSError as error:
            # A symbolic link or an unreadable file: none of its lines is replayed (the saves after the
            # file are counted again from the file's state), and the next save writes the file whole.
            log.warning("ignoring the state journal %s (%s): the file is written whole next", error.filename, error)
            return [], 0, True
        lines, used, broken = journals.read_lines(text, seq)
        for number, line in enumerate(lines):
            problem = _line_problem(line, shapes)
            if problem:
                log.warning(
                    "state journal %s: save %s has the wrong shape (%s): the saves before it are restored,"
                    " the file is written whole next",
                    self._journal_path(collector),
                    line.get("seq"),
                    problem,
                )
                return lines[:number], used, True
        if broken:
            log.warning(
                "state journal %s ends with a line that cannot be replayed (a crash while it was"
                " appended): the saves before it are restored, the file is written whole next",
                self._journal_path(collector),
            )
        return lines, used, broken

    def save(
        self,
        collector: str,
        result: StoredResult,
        *,
        journal: bool = False,
        moved: tuple[journals.Delta, journals.Delta] | None = None,
        since: StoredResult | None = None,
    ) -> None:
        """Writes ``result`` atomically, then compacts it in memory (same values: see _compact_in_place).

        ``journal=True`` (a collector saved every minute, whose result stays in memory): when this
        store wrote or loaded the collector's last result, what moved since is appended to the
        journal (ent_exporter.engine.journal) instead of the whole file, until the journal outgrows the file.
        ``moved``: what moved since ``since`` (samples, times of change) for some families, when the
        caller tracks it; used if ``since`` is the result this store last wrote or loaded."""
        state = result.state
        # Incremental counters keep their running totals in their state, and publish them as
        # their samples: written once (and loaded once) instead of twice.
        totals_are_samples = isinstance(state, dict) and "totals" in state and state["totals"] == result.samples
        if totals_are_samples:
            assert state is not None
            state = {key: value for key, value in state.items() if key != "totals"}
        view = self._views.pop(collector, None)
        if journal and isinstance(state, dict):
            entries = {key: _value_bytes(value) for key, value in state.items()}
            if moved is not None and (
                view is None
                or since is None
                or since.samples is not view.samples
                or since.changed_at is not view.changed_at
            ):
                moved = None  # not relative to what the file and journal hold
            if view is not None and self._append(collector, view, result, entries, totals_are_samples, moved):
                _compact_in_place(result, totals_are_samples)
                view.samples, view.changed_at, view.state = result.samples, result.changed_at, entries
                self._views[collector] = view
                return
        seq = view.seq + 1 if view is not None else 1
        file_bytes = self._write_file(collector, result, state, totals_are_samples, seq)
        _compact_in_place(result, totals_are_samples)
        if journal and isinstance(state, dict):
            self._views[collector] = journals.View(seq, file_bytes, 0, result.samples, result.changed_at, entries)

    def _append(
        self,
        collector: str,
        view: journals.View,
        result: StoredResult,
        entries: dict[str, bytes],
        totals_are_samples: bool,
        moved: tuple[journals.Delta, journals.Delta] | None,
    ) -> bool:
        """Appends what moved since ``view`` to the journal; False (nothing written) when it has no room."""
        line = journals.encode_line(
            view.seq + 1,
            {
                "last_success": result.last_success,
                "complete": result.complete,
                "totals_are_samples": totals_are_samples,
                "ran_at": result.ran_at,
            },
            journals.delta(view.samples, result.samples, moved[0] if moved else None),
            journals.delta(view.changed_at, result.changed_at, moved[1] if moved else None),
            {key: value for key, value in entries.items() if view.state.get(key) != value},
            [key for key in view.state if key not in entries],
            _dumps,
            _write_columns,
        )
        if not view.room_for(len(line)):
            return False
        path = self._journal_path(collector)
        try:
            self._directory.append(path.name, line)
        except OSError as error:
            # A symbolic link at the journal's name (never followed), a full disk...: the whole file is
            # written instead (which removes what is at the journal's name), so nothing is lost.
            log.warning("cannot append to the state journal %s (%s): writing the state file whole", path, error)
            view.broken = True
            return False
        view.seq += 1
        view.journal_bytes += len(line)
        return True

    def _write_file(self, collector: str, result: StoredResult, state: Any, totals_are_samples: bool, seq: int) -> int:
        """Writes the collector's whole file (write-then-rename) and drops its journal; returns its size."""
        journal = self._journal_path(collector).name

        def write_all(handle: IO[bytes]) -> None:
            # Written piece by piece (a column, a state entry at a time), never as one string of the
            # whole file: a window collector's state is tens of MB of encoded days.
            write = handle.write
            write(
                b'{"version":%d,"collector":%s,"seq":%d,"totals_are_samples":%s,"last_success":%s'
                b',"complete":%s,"ran_at":%s,"changed_at":'
                % (
                    FORMAT_VERSION,
                    _dumps(collector),
                    seq,
                    _dumps(totals_are_samples),
                    _dumps(result.last_success),
                    _dumps(result.complete),
                    _dumps(result.ran_at),
                )
            )
            _write_columns(write, result.changed_at)
            write(b',"samples":')
            _write_columns(write, result.samples)
            # The state last: a load without it (the restore of a window collector) stops before it.
            write(STATE_KEY)
            _write_value(write, state, depth=2)
            write(b"}")

        def drop_journal() -> None:
            # Dropped before the new file takes the old one's place: a crash in between leaves the
            # old file alone, an earlier save whole (its events are read again), never the journal
            # of one file replayed over another. (Whatever is at its name: a symbolic link itself.)
            if self._directory.unlink(journal):
                self._directory.sync()

        # A new temporary file (O_EXCL, O_NOFOLLOW), fsynced, renamed: see ent_exporter.engine.files.
        return self._directory.write(self._path(collector).name, write_all, 0o600, before_replace=drop_journal)


STATE_KEY = b',"state":'


def _stop_at_state(key: str, before: list[str]) -> bool:
    """A load without the state ends at its key when the samples and times of change came before it (the
    state is then the file's last key, as written since it went last)."""
    return key == "state" and "samples" in before and "changed_at" in before


def _dumps(value: Any) -> bytes:
    # orjson: compact JSON like json.dumps', an order of magnitude faster on the large columns of the
    # counters' states written every minute. It writes NaN and infinities as null, so any null sends
    # the value to json.dumps (which writes null as null, NaN as NaN, Infinity as Infinity): a custom
    # gauge can give NaN, and it must read back as NaN.
    text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    return json.dumps(value, separators=(",", ":")).encode() if b"null" in text else text


def _write_value(write: Any, value: Any, depth: int) -> None:
    """Writes ``value`` as JSON; dictionaries down to ``depth`` levels an entry at a time (a window
    collector's days: one encoded day in memory as JSON at once, not the whole state)."""
    if not isinstance(value, dict) or depth <= 0 or not all(isinstance(key, str) for key in value):
        write(_dumps(value))  # (keys other than strings: as JSON converts them, the whole value at once)
        return
    write(b"{")
    for number, (key, item) in enumerate(value.items()):
        write(b"%s%s:" % (b"," if number else b"", _dumps(key)))
        _write_value(write, item, depth - 1)
    write(b"}")


def _write_columns(write: Any, families: dict[str, list[Any]]) -> None:
    """Writes {family: [(label values, value)]} in the columns format, as JSON, one column at a time:
    {family: {"labels": [[values of label 1], ...], "values": [...]}}."""
    write(b"{")
    for number, (family, series) in enumerate(families.items()):
        if isinstance(series, dict):
            series = list(series.items())
        # Transposed with itemgetter (C loops): the label columns, then the values.
        keys = list(map(itemgetter(0), series))
        width = len(keys[0]) if keys else 0
        columns = [list(map(itemgetter(position), keys)) for position in range(width)]
        write(
            b'%s%s:{"labels":%s,"values":%s}'
            % (b"," if number else b"", _dumps(family), _dumps(columns), _dumps(list(map(itemgetter(1), series))))
        )
    write(b"}")


def _compact_in_place(result: StoredResult, totals_are_samples: bool) -> None:
    """The samples and changed_at of a saved result as (label values, value) tuples, equal strings
    and label tuples shared, the state's totals the samples themselves when they are equal: what
    the runtime keeps in memory between runs then costs a fraction, and the garbage collector
    stops walking it."""
    strings: dict[str, str] = {}
    labels: dict[tuple[str, ...], tuple[str, ...]] = {}
    # Series already as (label tuple, value) pairs (the runtime's: their label tuples are the live
    # samples' keys, shared) are kept as they are: only lists from elsewhere are compacted.
    result.samples = _compact_series(result.samples, strings, labels)
    result.changed_at = _compact_series(result.changed_at, strings, labels)
    if totals_are_samples:
        assert result.state is not None  # (totals_are_samples: the state holds the totals)
        result.state["totals"] = result.samples


# On disk (format 2), each family's series are columns: one list of values per label, one list
# of values (or times, for changed_at). Parsing that makes a few lists and one string per label
# value, instead of two lists per series: loading 300,000 series then takes about half the time
# and a fraction of the transient memory.


def _from_columns(
    families: dict[str, dict[str, Any]], strings: dict[str, str], labels: dict[tuple[str, ...], tuple[str, ...]]
) -> dict[str, list[Any]]:
    """The inverse of _write_columns, as (label values, value) pairs with strings and label tuples shared."""
    compact: dict[str, list[Any]] = {}
    for family, table in families.items():
        values = table["values"]
        columns = [[strings.setdefault(v, v) for v in column] for column in table["labels"]]
        keys = zip(*columns) if columns else (() for _ in values)
        compact[strings.setdefault(family, family)] = [
            (labels.setdefault(key, key), _intern(value, strings)) for key, value in zip(keys, values)
        ]
    return compact


# A restored state holds hundreds of thousands of series (300,000 at 1,000 structures), each
# with its label values: decoded naively, every occurrence of a structure code or profile is a
# string of its own and every series two lists, which costs hundreds of MB and long garbage
# collector passes. Equal strings are shared instead, and the [label values, value] pairs of
# samples and changed_at become tuples (immutable, so the collector stops tracking them).


def _intern(value: Any, strings: dict[str, str]) -> Any:
    """The same JSON value with equal strings shared (lists and dicts stay what they are)."""
    if isinstance(value, str):
        return strings.setdefault(value, value)
    if isinstance(value, list):
        return [_intern(item, strings) for item in value]
    if isinstance(value, dict):
        return {strings.setdefault(key, key): _intern(item, strings) for key, item in value.items()}
    return value


def _compact_series(
    families: dict[str, list[Any]], strings: dict[str, str], labels: dict[tuple[str, ...], tuple[str, ...]]
) -> dict[str, list[Any]]:
    """{family: [[label values], value]} -> {family: [(label values, value)]}, strings and label tuples shared."""
    compact: dict[str, list[Any]] = {}
    for family, series in families.items():
        if isinstance(series, dict) or series and type(series[0]) is tuple and type(series[0][0]) is tuple:
            compact[strings.setdefault(family, family)] = series
            continue
        pairs = []
        for values, value in series:
            key = tuple([strings.setdefault(v, v) for v in values])
            pairs.append((labels.setdefault(key, key), _intern(value, strings)))
        compact[strings.setdefault(family, family)] = pairs
    return compact


def _value_bytes(value: Any) -> bytes:
    """A state entry as the file writes it (JSON bytes)."""
    parts: list[bytes] = []
    _write_value(parts.append, value, depth=1)
    return b"".join(parts)


def journal_view(
    seq: int, file_bytes: int, journal_bytes: int, result: StoredResult, totals_are_samples: bool, broken: bool
) -> journals.View:
    """The view of a loaded result: what its file and journal hold."""
    state = {key: value for key, value in (result.state or {}).items() if not (totals_are_samples and key == "totals")}
    return journals.View(
        seq,
        file_bytes,
        journal_bytes,
        result.samples,
        result.changed_at,
        {key: _value_bytes(value) for key, value in state.items()},
        broken,
    )


def _replay(
    result: StoredResult, line: dict[str, Any], strings: dict[str, str], labels: dict[tuple[str, ...], tuple[str, ...]]
) -> None:
    """Applies one journal line to a loaded result."""

    def gone(families: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return {
            strings.setdefault(f, f): [labels.setdefault(tuple(k), tuple(k)) for k in keys]
            for f, keys in families.items()
        }

    result.samples = journals.apply(
        result.samples, _from_columns(line["samples"], strings, labels), gone(line["samples_gone"])
    )
    result.changed_at = journals.apply(
        result.changed_at, _from_columns(line["changed_at"], strings, labels), gone(line["changed_at_gone"])
    )
    result.last_success, result.complete = line["last_success"], line["complete"]
    result.ran_at = line.get("ran_at", result.ran_at)
    if result.state is not None:
        for key in line["state_gone"]:
            result.state.pop(key, None)
        result.state.update(_intern(line["state"], strings))


# -- the shape of what is read back --------------------------------------------------------------
# A file or journal line that parses as JSON but is not what the store writes (edited by hand, from
# another program, a disk that kept the wrong blocks) is refused before anything uses it: the checks
# below say what is wrong in a few words, or None.


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _key_problem(data: dict[str, Any], key: str, check: Any, expected: str, required: bool = True) -> str | None:
    if key not in data:
        return f"no {key}" if required else None
    return None if check(data[key]) else f"{key} is {_type_name(data[key])}, not {expected}"


def _header_problem(data: dict[str, Any]) -> str | None:
    checks = (
        ("seq", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a count", False),
        ("totals_are_samples", lambda v: isinstance(v, bool), "a boolean", False),
        ("last_success", lambda v: v is None or _is_number(v), "a time or null", True),
        ("complete", lambda v: isinstance(v, bool), "a boolean", True),
        ("ran_at", lambda v: v is None or _is_number(v), "a time or null", False),
    )
    for key, check, expected, required in checks:
        problem = _key_problem(data, key, check, expected, required)
        if problem:
            return problem
    return None


def _value_problem(value: Any, family: Family | None, times: bool) -> str | None:
    """What is wrong with one series' value (``times``: a time of change), or None. ``family``: the
    collector's family of that name (None: one it does not have, left out when decoded)."""
    if times:
        return None if _is_number(value) else f"a time of change is {_type_name(value)}, not a number"
    if family is None:
        return None if _is_number(value) or isinstance(value, dict) else f"a value is {_type_name(value)}"
    if family.kind not in (Kind.HISTOGRAM, Kind.GAUGE_HISTOGRAM):
        return None if _is_number(value) else f"a value is {_type_name(value)}, not a number"
    if not isinstance(value, dict):
        return f"a value is {_type_name(value)}, not a histogram"
    return _histogram_problem(value, len(family.buckets))


def _histogram_problem(value: dict[str, Any], buckets: int) -> str | None:
    if set(value) != {"buckets", "count", "sum"}:
        return f"a histogram has the keys {', '.join(sorted(map(str, value)))}, not buckets, count, sum"
    if not isinstance(value["buckets"], list) or not all(map(_is_number, value["buckets"])):
        return "a histogram's buckets are not a list of numbers"
    if len(value["buckets"]) != buckets:
        return f"a histogram has {len(value['buckets'])} buckets, not {buckets}"
    if not _is_number(value["count"]) or not _is_number(value["sum"]):
        return "a histogram's count or sum is not a number"
    return None


def _columns_problem(what: str, families: Any, shapes: dict[str, Family], times: bool) -> str | None:
    """The columns format (see _write_columns): {family: {"labels": [[...], ...], "values": [...]}}."""
    if not isinstance(families, dict):
        return f"{what} is {_type_name(families)}, not a mapping"
    for name, table in families.items():
        where = f"{what}.{name}"
        if not isinstance(table, dict) or set(table) != {"labels", "values"}:
            return f"{where} is not a mapping of labels and values"
        columns, values = table["labels"], table["values"]
        if not isinstance(values, list) or not isinstance(columns, list):
            return f"{where}: labels or values are not lists"
        family = shapes.get(name)
        if family is not None and values and len(columns) != len(family.labels):
            return f"{where} has {len(columns)} labels, not {len(family.labels)}"
        for column in columns:
            if not isinstance(column, list) or len(column) != len(values):
                return f"{where}: a label column is not a list as long as the values"
            if not all(isinstance(item, str) for item in column):
                return f"{where}: a label value is not a string"
        for value in values:
            problem = _value_problem(value, family, times)
            if problem:
                return f"{where}: {problem}"
    return None


def _pairs_problem(what: str, families: Any, shapes: dict[str, Family], times: bool) -> str | None:
    """Format 1: {family: [[label values], value], ...]}."""
    if not isinstance(families, dict):
        return f"{what} is {_type_name(families)}, not a mapping"
    for name, series in families.items():
        where = f"{what}.{name}"
        if not isinstance(series, list):
            return f"{where} is {_type_name(series)}, not a list"
        family = shapes.get(name)
        for pair in series:
            if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], list):
                return f"{where}: a series is not a pair of label values and a value"
            if not all(isinstance(item, str) for item in pair[0]):
                return f"{where}: a label value is not a string"
            if family is not None and len(pair[0]) != len(family.labels):
                return f"{where} has {len(pair[0])} labels, not {len(family.labels)}"
            problem = _value_problem(pair[1], family, times)
            if problem:
                return f"{where}: {problem}"
    return None


def _file_problem(data: dict[str, Any], with_state: bool, shapes: dict[str, Family]) -> str | None:
    """What is wrong with the shape of a state file's content (its version known), or None."""
    problem = _header_problem(data)
    if problem:
        return problem
    series = _columns_problem if data["version"] >= 2 else _pairs_problem
    if "samples" not in data:
        return "no samples"
    problem = series("samples", data["samples"], shapes, False) or series(
        "changed_at", data.get("changed_at", {}), shapes, True
    )
    if problem:
        return problem
    if with_state:
        if "state" not in data:
            return "no state"
        if not (data["state"] is None or isinstance(data["state"], dict)):
            return f"state is {_type_name(data['state'])}, not a mapping"
    return None


def _gone_problem(what: str, gone: Any) -> str | None:
    if not isinstance(gone, dict) or not all(
        isinstance(keys, list) and all(isinstance(key, list) and all(isinstance(v, str) for v in key) for key in keys)
        for keys in gone.values()
    ):
        return f"{what} is not a mapping of lists of label values"
    return None


def _line_problem(line: dict[str, Any], shapes: dict[str, Family]) -> str | None:
    """What is wrong with the shape of a journal line (see ent_exporter.engine.journal.encode_line), or None."""
    for key in ("samples", "samples_gone", "changed_at", "changed_at_gone", "state", "state_gone"):
        if key not in line:
            return f"no {key}"
    if "totals_are_samples" not in line:
        return "no totals_are_samples"
    problem = (
        _header_problem(line)
        or _columns_problem("samples", line["samples"], shapes, False)
        or _columns_problem("changed_at", line["changed_at"], shapes, True)
        or _gone_problem("samples_gone", line["samples_gone"])
        or _gone_problem("changed_at_gone", line["changed_at_gone"])
    )
    if problem:
        return problem
    if not isinstance(line["state"], dict):
        return f"state is {_type_name(line['state'])}, not a mapping"
    if not isinstance(line["state_gone"], list) or not all(isinstance(key, str) for key in line["state_gone"]):
        return "state_gone is not a list of names"
    return None
