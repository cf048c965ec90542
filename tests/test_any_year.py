"""The suite passes in any year: the tests marked ``time_sensitive`` (late commits, invalid input,
restarts, idle series, windows, reports) pass again with the default clock moved 100 days, 400 days
and 5 years past the machine's date (tests/conftest.py's ``--clock-shift``), each run a pytest
session of its own, as a later date would find them."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support import REPO

SHIFTS = ("100d", "400d", "5y")


@pytest.mark.parametrize("shift", SHIFTS)
def test_the_time_sensitive_tests_pass_with_the_clock_moved(shift):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "time_sensitive",
            f"--clock-shift={shift}",
            "tests",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-2000:]
    assert result.returncode == 0, f"--clock-shift={shift}: {summary}\n{result.stdout[-6000:]}"
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed[1]) >= 80, summary
    assert not re.search(r"failed|error", summary), summary
