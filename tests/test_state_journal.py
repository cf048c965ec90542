"""The state journal: a save of a collector kept in memory appends what moved; a load replays it.

Each test compares what a fresh store loads with the result saved last, built independently here
(plain dicts), after saves that change, add and remove series, state entries and histogram values."""

from __future__ import annotations

import json
from random import Random

from ent_exporter.engine.state import StateStore, StoredResult


def stored(samples: dict, state: dict, changed_at: dict, last_success: float, complete: bool = True) -> StoredResult:
    """A result as the runtime gives it: encoded samples, the totals the samples themselves."""
    encoded = {name: list(series.items()) for name, series in samples.items()}
    return StoredResult(
        encoded,
        {**state, "totals": encoded},
        last_success,
        complete,
        {name: dict(times) for name, times in changed_at.items()},
    )


def plain(result: StoredResult) -> tuple:
    """What a result holds, as plain dicts (order does not matter)."""
    return (
        {name: dict(series) for name, series in result.samples.items() if series},
        {name: dict(series) for name, series in result.changed_at.items() if series},
        {key: value for key, value in result.state.items() if key != "totals"},
        {name: dict(series) for name, series in result.state["totals"].items() if series},
        result.last_success,
        result.complete,
    )


def expected(samples: dict, state: dict, changed_at: dict, last_success: float, complete: bool = True) -> tuple:
    keep = {name: dict(series) for name, series in samples.items() if series}
    return (
        keep,
        {name: dict(times) for name, times in changed_at.items() if times},
        json.loads(json.dumps(state)),
        keep,
        last_success,
        complete,
    )


def moves(rng: Random, samples: dict, changed_at: dict, now: float) -> None:
    """A minute: some counters move, one series appears, one goes, the histogram moves."""
    counts = samples["c_total"]
    for key in rng.sample(sorted(counts), 5):
        counts[key] += rng.randint(1, 9)
        changed_at["c_total"][key] = now
    new = (f"S{rng.randint(100, 999)}", "Teacher")
    counts[new] = 1.0
    changed_at["c_total"][new] = now
    gone = rng.choice(sorted(counts))
    del counts[gone]
    changed_at["c_total"].pop(gone, None)
    histogram = samples["h_seconds"][("ldap",)]
    samples["h_seconds"][("ldap",)] = {
        "buckets": [b + 1 for b in histogram["buckets"]],
        "count": histogram["count"] + 1,
        "sum": histogram["sum"] + 0.25,
    }


def start() -> tuple[dict, dict]:
    samples = {
        "c_total": {(f"S{i}", profile): float(i) for i in range(40) for profile in ("Student", "Relative")},
        "h_seconds": {("ldap",): {"buckets": [1.0, 2.0], "count": 2.0, "sum": 0.5}},
    }
    changed_at = {"c_total": {key: 100.0 for key in samples["c_total"]}, "h_seconds": {("ldap",): 100.0}}
    return samples, changed_at


def test_a_save_appends_what_moved_and_a_load_gives_the_last_save(tmp_path):
    rng = Random(17)
    samples, changed_at = start()
    store = StateStore(tmp_path)
    state = {"watermark": 10, "known": [["S1", "Student"]], "gaps": []}
    store.save("c", stored(samples, state, changed_at, 1.0), journal=True)
    file = tmp_path / "collectors" / "c.json"
    journal = tmp_path / "collectors" / "c.journal"
    inode, size = file.stat().st_ino, file.stat().st_size
    assert not journal.exists()
    for minute in range(1, 6):
        moves(rng, samples, changed_at, 100.0 + minute)
        state = {**state, "watermark": 10 + minute}
        if minute == 3:
            state = {key: value for key, value in state.items() if key != "gaps"}  # an entry goes
        store.save("c", stored(samples, state, changed_at, 1.0 + minute, complete=minute != 4), journal=True)
        # The file is untouched; the journal has one line per save, holding what moved only.
        assert (file.stat().st_ino, file.stat().st_size) == (inode, size)
        lines = journal.read_bytes().splitlines()
        assert len(lines) == minute
        line = json.loads(lines[-1])
        assert len(line["samples"]["c_total"]["values"]) == 6  # 5 moved + 1 new
        assert line["samples_gone"]["c_total"]
        assert line["state"] == {"watermark": 10 + minute}
        assert line["state_gone"] == (["gaps"] if minute == 3 else [])
        loaded = StateStore(tmp_path, clean=False).load("c")
        assert plain(loaded) == expected(samples, state, changed_at, 1.0 + minute, minute != 4)
    assert sum(map(len, journal.read_bytes().splitlines())) < size  # five minutes: less than one file


def test_the_file_is_written_whole_once_the_journal_outgrows_it(tmp_path):
    rng = Random(5)
    samples, changed_at = start()
    store = StateStore(tmp_path)
    state = {"watermark": 0}
    store.save("c", stored(samples, state, changed_at, 1.0), journal=True)
    file = tmp_path / "collectors" / "c.json"
    journal = tmp_path / "collectors" / "c.journal"
    rewritten = 0
    inode = file.stat().st_ino
    for minute in range(1, 400):
        moves(rng, samples, changed_at, float(minute))
        state = {"watermark": minute}
        store.save("c", stored(samples, state, changed_at, float(minute)), journal=True)
        if file.stat().st_ino != inode:
            rewritten += 1
            inode = file.stat().st_ino
            assert not journal.exists()
        # Never more than the file and a file's worth of lines (64 kB at least) to read back.
        assert (journal.stat().st_size if journal.exists() else 0) <= max(file.stat().st_size, 64 * 1024)
    assert rewritten >= 2
    assert plain(StateStore(tmp_path, clean=False).load("c")) == expected(samples, state, changed_at, 399.0)


def two_saves(tmp_path, seed: int):
    """A file (save 1) and a journal of one line (save 2); the random source, samples and times after them."""
    rng = Random(seed)
    samples, changed_at = start()
    store = StateStore(tmp_path)
    store.save("c", stored(samples, {"watermark": 0}, changed_at, 1.0), journal=True)
    moves(rng, samples, changed_at, 2.0)
    store.save("c", stored(samples, {"watermark": 1}, changed_at, 2.0), journal=True)
    return rng, store, samples, changed_at, tmp_path / "collectors" / "c.journal"


def test_a_torn_last_line_is_ignored_and_the_next_save_writes_the_file_whole(tmp_path):
    rng, store, samples, changed_at, journal = two_saves(tmp_path, 3)
    saved = expected(samples, {"watermark": 1}, changed_at, 2.0)
    whole = journal.read_bytes()
    # A crash in the middle of the next append (kill -9, power loss): part of a line, no newline.
    moves(rng, samples, changed_at, 3.0)
    store.save("c", stored(samples, {"watermark": 2}, changed_at, 3.0), journal=True)
    journal.write_bytes(whole + journal.read_bytes()[len(whole) :][:40])
    restarted = StateStore(tmp_path)
    loaded = restarted.load("c", journal=True)
    assert plain(loaded) == saved  # the torn save never happened: its events are read again
    inode = (tmp_path / "collectors" / "c.json").stat().st_ino
    restarted.save("c", stored(samples, {"watermark": 2}, changed_at, 3.0), journal=True)
    assert (tmp_path / "collectors" / "c.json").stat().st_ino != inode and not journal.exists()
    assert plain(StateStore(tmp_path).load("c")) == expected(samples, {"watermark": 2}, changed_at, 3.0)


def test_lines_that_do_not_follow_their_file_are_not_replayed(tmp_path):
    """A journal left from before the file was last written whole, or a line out of sequence: the file
    (and the lines that follow it in sequence) is what is loaded."""
    rng, store, samples, changed_at, journal = two_saves(tmp_path, 9)
    older = journal.read_bytes()  # the line of save 2, which follows file 1
    moves(rng, samples, changed_at, 3.0)
    store.save("c", stored(samples, {"watermark": 2}, changed_at, 3.0), journal=False)  # file 3, whole
    third = expected(samples, {"watermark": 2}, changed_at, 3.0)
    journal.write_bytes(older)  # as if the old journal had survived the rewrite
    assert plain(StateStore(tmp_path).load("c")) == third
    line = json.loads(older)
    line["seq"] = 5  # a gap in the sequence (4 missing)
    journal.write_bytes(json.dumps(line).encode() + b"\n")
    assert plain(StateStore(tmp_path).load("c")) == third


def test_a_document_read_in_pieces_is_what_json_loads_gives_whatever_the_chunk():
    """ent_exporter.engine.pieces: any JSON document (nested objects and lists, escapes, non-ASCII text
    cut anywhere, numbers cut short, NaN and infinities) reads as json.loads reads it, with chunks down to
    one byte; what json.loads refuses is refused; the most held at once is about a chunk or one value."""
    import io
    import json
    import random

    import pytest

    from ent_exporter.engine import pieces

    rng = random.Random(11)

    def value(depth: int = 0):
        roll = rng.random()
        if depth < 4 and roll < 0.3:
            return {f'k{i}é"\\': value(depth + 1) for i in range(rng.randint(0, 5))}
        if depth < 4 and roll < 0.45:
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        scalars = [1, -2.5e-7, 12345678901234567890123, "x" * rng.randint(0, 90), "é€😀\u2028", True, None]
        return rng.choice([*scalars, float("inf"), 0.1, [[1, 2], []]])

    for chunk in (1, 2, 3, 7, 64, 1 << 20):
        for _ in range(60):
            document = {"version": 2, "samples": value(), "state": value(), "z": value()}
            text = json.dumps(document, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 1])).encode()
            read, _ = pieces.load(io.BytesIO(text), chunk=chunk)
            assert json.dumps(read) == json.dumps(json.loads(text)), (chunk, text[:200])
    refused = [b'{"a":1', b'{"a":1}x', b'{"a":12', b"", b'{"a" 1}', b'{"a":1,}', b'{"a":0.}', b'{"a":01}', b'{"a":tru}']
    refused += [b'{"a":[[1],]}', b'{"a":[[1] [2]]}', b'{"a":[[1],[2]}', b'{"a":{"b":1 "c":2}}', b'{"a":"\xff"}']
    for text in refused:
        for chunk in (1, 3, 1 << 20):
            with pytest.raises(ValueError):
                pieces.load(io.BytesIO(text), chunk=chunk)
    assert pieces.load(io.BytesIO(b'\xef\xbb\xbf {"a": [1]} \n'), chunk=1)[0] == {"a": [1]}  # as json.loads(bytes)
    big = b'{"samples":{"f":{"labels":[' + b",".join([b'["' + b"s" * 5000 + b'"]'] * 40) + b'],"values":[]}},"n":1}'
    read, reader = pieces.load(io.BytesIO(big), chunk=4096)
    assert read == json.loads(big) and reader.largest <= 2 * (4096 + 5010) < len(big)
    # Up to a key: what came before it, the rest unread.
    head, reader = pieces.load(io.BytesIO(big), stop=lambda key, before: key == "n", chunk=4096)
    assert reader.stopped and list(head) == ["samples"]
