"""ent_exporter.engine.memory: glibc's mmap threshold fixed at start-up, the heap trimmed after a run; no-ops
where the C library is not glibc."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from ent_exporter.engine import memory

REPO = Path(__file__).resolve().parent.parent
GLIBC = platform.libc_ver()[0] == "glibc"

# Blocks of 4 MB allocated after a 30 MB block was freed, then three of five freed (not at the top of
# the heap): how much of the process's resident size they still hold, in kB.
PROBE = """
import json, sys
from ent_exporter.engine import memory
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
if sys.argv[1] == "tune":
    assert memory.tune()
big = bytearray(b"\\x01") * (30 << 20)
del big
before = rss()
blocks = [bytearray(b"\\x01") * (4 << 20) for _ in range(5)]
during = rss() - before
del blocks[1:4]
if sys.argv[1] == "trim":
    memory.trim()
print(json.dumps({"during": during, "after": rss() - before}))
"""


def probe(mode: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MALLOC_MMAP_THRESHOLD_", None)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_tune_and_trim_are_glibc_calls_and_no_ops_elsewhere():
    assert memory.tune() is GLIBC
    assert memory.trim() in (True, False)
    if not GLIBC:
        assert memory.trim() is False


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_with_the_threshold_fixed_freed_blocks_leave_the_process():
    """glibc raises its mmap threshold to the size of a mapped block freed (here 30 MB), so that later
    blocks below it come from the heap, where freed ones stay resident: the cause of the first runs'
    leftovers. With the threshold fixed (tune), each such block is a mapping of its own, unmapped
    when freed."""
    block = 4 << 10  # kB
    plain, tuned = probe("plain"), probe("tune")
    for measured in (plain, tuned):
        assert measured["during"] >= 5 * block * 9 // 10, measured
    assert plain["after"] >= 5 * block * 9 // 10, plain  # nothing of the three freed blocks went back
    assert tuned["after"] <= 2 * block + 1024, tuned  # the three freed blocks went back


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_trim_gives_back_what_the_heap_holds_free():
    """Without the fixed threshold, malloc_trim(0) (trim) returns the freed blocks in the middle of the heap."""
    block = 4 << 10  # kB
    trimmed = probe("trim")
    assert trimmed["during"] >= 5 * block * 9 // 10, trimmed
    assert trimmed["after"] <= 2 * block + 1024, trimmed
