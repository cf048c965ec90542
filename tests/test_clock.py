"""One clock: no code of the package reads the wall clock behind the injected clock's back (an AST
scan), and the clocks themselves (pinned, movable, shifted)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ent_exporter.engine import clock as clocks

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ent_exporter"
CLOCK_MODULE = PACKAGE / "engine" / "clock.py"

# Functions that read the wall clock, by module: (module, attribute) -> arguments that make a call a
# conversion of a given time rather than a read of "now" (None: always a read).
READS = {
    ("time", "time"): None,
    ("time", "time_ns"): None,
    ("time", "localtime"): 1,
    ("time", "gmtime"): 1,
    ("time", "ctime"): 1,
    ("time", "asctime"): 1,
    ("time", "strftime"): 2,
    ("datetime", "now"): None,
    ("datetime", "utcnow"): None,
    ("datetime", "today"): None,
    ("date", "today"): None,
}


def wall_clock_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """Where a module reads the wall clock: calls and references such as ``time.time``,
    ``datetime.now(...)``, ``datetime.datetime.utcnow``, ``date.today()``, ``time.gmtime()`` (no
    argument), and names imported from ``time`` that read it (``from time import time``)."""
    found: list[tuple[int, str]] = []
    imported = {
        alias.asname or alias.name: alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "time"
        for alias in node.names
    }
    calls = {id(node.func): node for node in ast.walk(tree) if isinstance(node, ast.Call)}

    def reads(module: str, name: str, node: ast.AST) -> bool:
        if (module, name) not in READS:
            return False
        enough = READS[(module, name)]
        call = calls.get(id(node))
        return enough is None or call is None or len(call.args) + len(call.keywords) < enough

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            owner = node.value
            module = (
                owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else None
            )
            if module in ("time", "datetime", "date") and reads(module, node.attr, node):
                found.append((node.lineno, f"{module}.{node.attr}"))
        elif isinstance(node, ast.Name) and node.id in imported and reads("time", imported[node.id], node):
            found.append((node.lineno, f"time.{imported[node.id]}"))
    return found


def test_the_scan_finds_every_kind_of_wall_clock_read():
    source = "\n".join(
        [
            "import time, datetime as dt",
            "from datetime import datetime, date",
            "from time import time as now_s",
            "a = time.time()",
            "b = datetime.now(tz)",
            "c = dt.datetime.utcnow()",
            "d = date.today()",
            "e = time.gmtime()",
            "f = now_s()",
            "g = time.strftime('%Y')",
            "h = lambda clock=time.time: clock()",
            # conversions of a given time and durations are not reads:
            "i = time.gmtime(0)",
            "j = time.strftime('%Y', time.gmtime(0))",
            "k = time.monotonic()",
            "l = datetime.fromtimestamp(0, tz)",
            "m = time.perf_counter()",
        ]
    )
    assert sorted(wall_clock_reads(ast.parse(source))) == [
        (4, "time.time"),
        (5, "datetime.now"),
        (6, "datetime.utcnow"),
        (7, "date.today"),
        (8, "time.gmtime"),
        (9, "time.time"),
        (10, "time.strftime"),
        (11, "time.time"),
    ]


def test_no_code_reads_the_wall_clock_outside_the_clock_module():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 50 and CLOCK_MODULE in files
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in files
        if path != CLOCK_MODULE
        for line, what in wall_clock_reads(ast.parse(path.read_text(), str(path)))
    ]
    assert offenders == []
    # The clock module itself is where the reads are.
    assert {what for _, what in wall_clock_reads(ast.parse(CLOCK_MODULE.read_text()))} == {"time.time", "datetime.now"}


def test_fixed_clock_is_pinned_and_moves_only_when_told():
    clock = clocks.FixedClock(datetime(2028, 2, 29, 23, 30, tzinfo=ZoneInfo("Europe/Paris")))
    assert clock.now() == datetime(2028, 2, 29, 22, 30, tzinfo=UTC)
    assert clock.now().tzinfo is UTC
    assert clock.time() == datetime(2028, 2, 29, 22, 30, tzinfo=UTC).timestamp()
    assert clock.local(ZoneInfo("Europe/Paris")).day == 29
    assert clock.advance(timedelta(hours=2)) == datetime(2028, 3, 1, 0, 30, tzinfo=UTC)
    assert clock() == clock.now() == datetime(2028, 3, 1, 0, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.set(datetime(2028, 3, 1))


def test_offset_clock_runs_from_its_start_on_its_base():
    base = clocks.FixedClock(datetime(2026, 12, 6, 21, 0, tzinfo=UTC))
    demo = clocks.OffsetClock.starting_at(datetime(2026, 9, 1, 8, 0, tzinfo=UTC), base)
    assert demo.now() == datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
    base.advance(timedelta(minutes=90))
    assert demo.now() == datetime(2026, 9, 1, 9, 30, tzinfo=UTC)
    assert demo.time() == demo.now().timestamp()
    ahead = clocks.OffsetClock(timedelta(days=400), base)
    assert ahead.now() - base.now() == timedelta(days=400)


def test_the_default_clock_is_the_system_one_unless_a_test_says_otherwise():
    pinned = clocks.FixedClock(datetime(2031, 1, 1, tzinfo=UTC))
    previous = clocks.use(pinned)
    try:
        assert clocks.default() is pinned
    finally:
        clocks.use(previous)
    assert clocks.default() is previous
