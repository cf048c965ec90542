"""The state journal: what moved in a collector's result since its state file was written.

A counter runs every minute and moves a few thousand of its tens of thousands of series: writing
its whole state file each time costs time proportional to every series. Instead, the state store
appends one line per save to ``<collector>.journal`` beside the file (ent_exporter.engine.state): the series
whose value or time of change differ from what the file and the lines before hold, the series
gone, the state entries that changed, and the run's time of success. The file is written whole
again (and the journal dropped) once the journal outgrows it, so a load never replays more than
about a file's worth of lines.

Every line carries a sequence number, and the file the number of the last save it holds: a line
is replayed only if it comes right after the file or the line before it. A line is appended and
fsynced before the run's values are published; a crash mid-append leaves a torn last line, which
is ignored (that save never happened: its events are read again), and the next save then writes
the file whole. Lines are JSON, one object each, in the file's columns format.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_MISSING = object()


@dataclass
class View:
    """What a collector's state file and journal hold, as the store last wrote or read them.

    ``samples`` and ``changed_at`` are the stored result's own lists of (label values, value)
    pairs, or dicts of them (references: never changed in place; histogram dicts, which may be,
    are always written whole);
    ``state`` the JSON bytes of each state entry (the running totals apart when they are the
    samples)."""

    seq: int
    file_bytes: int
    journal_bytes: int
    samples: dict[str, list[Any]]
    changed_at: dict[str, Any]
    state: dict[str, bytes]
    broken: bool = False  # the journal ends with a line that was not replayed: write the file next

    def room_for(self, line_bytes: int) -> bool:
        """Whether a line fits before the journal outgrows the file (then the file is written whole)."""
        return not self.broken and self.journal_bytes + line_bytes <= max(self.file_bytes, 64 * 1024)


@dataclass
class Delta:
    """Per family: the pairs new or changed, and the label values of the series gone."""

    changed: dict[str, list[Any]] = field(default_factory=dict)
    gone: dict[str, list[Any]] = field(default_factory=dict)


def delta(before: dict[str, list[Any]], after: dict[str, list[Any]], known: Delta | None = None) -> Delta:
    """What turns ``before`` into ``after`` ({family: [(label values, value)]}): one pass of dict work
    per family (C-level copies, one comparison per series). ``known``: the delta of some families,
    already known (the runtime's change tracking), taken as it is."""
    result = Delta()
    if known is not None:
        for family in known.changed:
            if known.changed[family]:
                result.changed[family] = known.changed[family]
            if known.gone.get(family):
                result.gone[family] = sorted(known.gone[family])
    for family, pairs in after.items():
        if known is not None and family in known.changed:
            continue
        pairs = list(pairs.items()) if isinstance(pairs, dict) else pairs
        previous = before.get(family)
        if previous is None:
            if pairs:
                result.changed[family] = pairs
            continue
        values = dict(previous)
        if pairs and type(pairs[0][1]) is dict:  # histograms: mutable values, few series, written whole
            changed = pairs
        else:
            get = values.get
            changed = [pair for pair in pairs if get(pair[0], _MISSING) != pair[1]]
        if changed:
            result.changed[family] = changed
        new = sum(1 for labels, _ in changed if labels not in values)
        if len(pairs) - new < len(values):  # some series are gone
            result.gone[family] = sorted(values.keys() - dict(pairs).keys())
    for family, previous in before.items():
        if family not in after and previous and not (known is not None and family in known.changed):
            result.gone[family] = list(previous) if isinstance(previous, dict) else [labels for labels, _ in previous]
    return result


def apply(
    pairs_by_family: dict[str, Any], changes: dict[str, list[Any]], gone: dict[str, list[Any]]
) -> dict[str, list[Any]]:
    """``pairs_by_family`` with a line's changes applied (new lists; order: as before, then the new)."""
    result = dict(pairs_by_family)
    for family in changes.keys() | gone.keys():
        before = result.get(family, ())
        series = dict(before.items() if isinstance(before, dict) else before)
        for labels in gone.get(family, ()):
            series.pop(labels, None)
        series.update(changes.get(family, ()))
        result[family] = list(series.items())
    return result


def encode_line(
    seq: int,
    header: dict[str, Any],
    samples: Delta,
    changed_at: Delta,
    state: dict[str, bytes],
    state_gone: list[str],
    dumps: Callable[[Any], bytes],
    columns: Callable[[Callable[[bytes], Any], dict[str, list[Any]]], None],
) -> bytes:
    """One journal line (bytes, newline included). ``columns`` writes {family: pairs} in the file's
    columns format; ``dumps`` is the file's JSON encoder; ``state`` holds encoded entries."""
    parts: list[bytes] = [b'{"seq":%d' % seq]
    for key, value in header.items():
        parts.append(b",%s:%s" % (dumps(key), dumps(value)))
    for name, moved in (("samples", samples), ("changed_at", changed_at)):
        parts.append(b',"%s":' % name.encode())
        columns(parts.append, moved.changed)
        parts.append(
            b',"%s_gone":%s' % (name.encode(), dumps({f: [list(k) for k in keys] for f, keys in moved.gone.items()}))
        )
    parts.append(b',"state":{')
    parts.append(b",".join(b"%s:%s" % (dumps(key), value) for key, value in state.items()))
    parts.append(b'},"state_gone":%s}\n' % dumps(state_gone))
    return b"".join(parts)


def read_lines(text: bytes, after_seq: int) -> tuple[list[dict[str, Any]], int, bool]:
    """The journal's lines that follow a file holding save ``after_seq``, in order, parsed; the bytes
    they take; and whether anything after them was left out (a torn or out-of-sequence line)."""
    lines: list[dict[str, Any]] = []
    used = 0
    expected = after_seq + 1
    for raw in text.split(b"\n")[:-1]:  # the part after the last newline is a torn line (or empty)
        try:
            line = json.loads(raw)
        except ValueError:
            return lines, used, True
        seq = line.get("seq") if isinstance(line, dict) else None
        if not isinstance(seq, int) or isinstance(seq, bool):  # not a line the store wrote
            return lines, used, True
        if seq <= after_seq:  # written before the file was (the file holds it)
            used += len(raw) + 1
            continue
        if seq != expected:
            return lines, used, True
        lines.append(line)
        used += len(raw) + 1
        expected += 1
    return lines, used, text[used:].strip() != b""
