"""The code base's habits, checked by the test command: ruff (lint and format), the architecture's
import contracts (import-linter) and the type checker (mypy), as configured in pyproject.toml."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.support import REPO


def run(*command: str, timeout: float = 300) -> subprocess.CompletedProcess:
    # This checkout's package, whatever an installed one points to.
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=environment)


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(REPO / ".venv" / "bin"))
    if path is None:
        pytest.fail(f"{name} is not installed: the README's test command installs it (pip install -e '.[test]')")
    return path


def test_ruff_finds_nothing():
    result = run(sys.executable, "-m", "ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_code_is_formatted_by_ruff():
    result = run(sys.executable, "-m", "ruff", "format", "--check", "--no-cache", ".")
    assert result.returncode == 0, "run `ruff format .`\n" + result.stdout + result.stderr


def test_the_import_contracts_hold():
    result = run(tool("lint-imports"), "--no-cache")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_mypy_finds_nothing():
    # pyproject.toml's [tool.mypy]: the package, strictly in the engine.
    result = run(sys.executable, "-m", "mypy", timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
