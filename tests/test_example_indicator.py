"""Adding an indicator is one module and its truth in the tests, nothing else.

Every discovered family (and the exporter's own, the probes') passes the family checks
(tests/family_checks.py, its catalogue entry included) and is in the generated metric reference; the
process families, named by prometheus-client, pass the catalogue's part. The example of docs/writing-a-collector.md, written as the file the page names into
a copy of the package, with no other edit, is discovered, passes the same checks, is in the reference
and the exposition, and equals its truth: this test's count of guest accounts from the raw rows."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ent_exporter import catalogue, reference
from ent_exporter.engine import process_metrics
from ent_exporter.engine.runtime import SELF_FAMILIES
from ent_exporter.indicators import discover
from ent_exporter.probes import runner
from tests.family_checks import catalogue_problems, problems
from tests.support import REPO

PAGE = REPO / "docs" / "writing-a-collector.md"
NOW = datetime(2026, 11, 18, 14, 0, tzinfo=UTC)

FAMILIES = {family.name: family for cls in discover().values() for family in cls.families} | {
    family.name: family for family in (*SELF_FAMILIES, *runner.FAMILIES)
}
PROCESS_FAMILIES = {family.name: family for family in process_metrics.FAMILIES}


METRICS_PAGE = reference.metrics_page()


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_passes_the_family_checks_and_is_in_the_reference(name):
    assert problems(FAMILIES[name]) == []
    assert f"`{name}`" in METRICS_PAGE
    assert FAMILIES[name].meaning_fr in METRICS_PAGE


@pytest.mark.parametrize("name", sorted(PROCESS_FAMILIES))
def test_the_process_families_have_their_catalogue_entry(name):
    assert catalogue_problems(PROCESS_FAMILIES[name]) == []
    assert f"`{name}`" in METRICS_PAGE


def test_the_catalogue_is_every_family_once_and_one_french_for_each_english_text():
    names = [family.name for family in catalogue.families()]
    assert sorted(names) == sorted(FAMILIES | PROCESS_FAMILIES) and len(set(names)) == len(names)
    french = catalogue.french()  # raises on two Frenches for one English title or help
    for family in catalogue.families():
        assert french[family.title_en] == family.title_fr and french[family.help] == family.meaning_fr


def documented_example() -> tuple[str, str]:
    """The page's first Python block: (the file it names in its first line, its code)."""
    code = re.search(r"```python\n(.*?)```", PAGE.read_text(), re.S)[1]
    path = re.match(r"# (\S+\.py)\n", code)[1]
    return path, code


CHECK = """
import json, sys
from datetime import datetime
from ent_exporter.app import make_runtime, make_source
from ent_exporter.config import parse_config
from ent_exporter.indicators import discover
from ent_exporter import reference
from tests.family_checks import problems
from tests.support import parse

collectors = discover()
cls = collectors["guest_accounts"]
config = parse_config({"source": {"dsn": sys.argv[1], "settle_seconds": 0}, "state_dir": sys.argv[2]}, "test")
with make_source(config) as source:
    runtime = make_runtime(config, source, persistent=True)
    runtime.restore()
    assert runtime.run("guest_accounts", datetime.fromisoformat(sys.argv[3]))
    body = runtime.exposition.body().decode()
print(json.dumps({
    "module": cls.__module__,
    "families": [family.name for family in cls.families],
    "problems": [p for family in cls.families for p in problems(family)],
    "in_reference": all(
        f"`{family.name}`" in reference.metrics_page() and family.meaning_fr in reference.metrics_page()
        for family in cls.families
    ),
    "french": [family.title_fr for family in cls.families],
    "help": [line for line in body.splitlines() if line.startswith("# HELP ent_guest_accounts")],
    "samples": {repr(k): v for k, v in parse(body).get("ent_guest_accounts", {}).items()},
}))
"""


def test_the_documented_example_is_one_module_and_its_truth(source_dsn, tmp_path):
    path, code = documented_example()
    assert path == "ent_exporter/indicators/guests.py"
    copy = tmp_path / "checkout"
    shutil.copytree(REPO / "ent_exporter", copy / "ent_exporter", ignore=shutil.ignore_patterns("__pycache__"))
    assert not (copy / path).exists()
    (copy / path).write_text(code)  # the one new module, as the page gives it

    accounts = [
        ("g1", "S1", "Guest", NOW - timedelta(days=9), None),
        ("g2", "S1", "Guest", NOW - timedelta(days=8), NOW - timedelta(days=1)),
        ("g3", "S2", "Guest", NOW - timedelta(days=7), None),
        ("t1", "S1", "Teacher", NOW - timedelta(days=7), NOW),
        ("s1", "S2", "Student", NOW - timedelta(days=7), None),
        ("g4", "S3", "Guest", NOW - timedelta(days=3), None),
    ]
    with psycopg.connect(source_dsn) as conn:
        conn.cursor().executemany("INSERT INTO ent.accounts VALUES (%s, %s, %s, %s, %s)", accounts)
    # Its truth: guest accounts per structure, counted from the rows.
    truth = Counter(structure for _user, structure, profile, *_ in accounts if profile == "Guest")

    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(copy), str(REPO)])}
    result = subprocess.run(
        [sys.executable, "-c", CHECK, source_dsn, str(tmp_path / "state"), NOW.isoformat()],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["module"] == "ent_exporter.indicators.guests"
    assert found["families"] == ["ent_guest_accounts"]
    assert found["problems"] == [] and found["in_reference"]
    assert found["french"] == ["Comptes invités"]
    assert found["help"] == ["# HELP ent_guest_accounts Guest accounts per structure."]
    assert {ast.literal_eval(key): value for key, value in found["samples"].items()} == {
        (("structure", structure),): float(count) for structure, count in truth.items()
    }
