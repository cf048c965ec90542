"""The documentation: the site builds without a warning, the README stays short and says the CI's command,
and the generated references match the code."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ent_exporter import probes, reference
from ent_exporter.config import Config
from ent_exporter.web.config import WebConfigFile

REPO = Path(__file__).resolve().parent.parent
README_LIMIT_BYTES = 12 * 1024


def _test_command(markdown: str) -> str:
    """The command of the first ```sh block after "Run the tests"."""
    after = markdown.split("Run the tests", 1)[1]
    match = re.search(r"```sh\n(.*?)\n```", after, re.S)
    assert match, "no ```sh block after 'Run the tests'"
    return match.group(1)


def test_the_site_builds_strictly(tmp_path):
    for module in ("mkdocs", "material"):
        if importlib.util.find_spec(module) is None:
            pytest.fail(f"{module} is not installed: the README's test command installs it (pip install -e '.[test]')")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr[-4000:]}"
    assert (tmp_path / "site" / "report-example.png").is_file()
    assert (tmp_path / "site" / "reference" / "metrics" / "index.html").is_file()


def test_the_readme_is_short():
    size = (REPO / "README.md").stat().st_size
    assert size <= README_LIMIT_BYTES, (
        f"README.md is {size} bytes, more than {README_LIMIT_BYTES}: move reference to docs/"
    )


def test_the_readme_test_command_is_the_ci_command():
    ci = (REPO / ".ci" / "run").read_text().rstrip("\n").splitlines()[-1]
    assert _test_command((REPO / "README.md").read_text()) == ci
    assert _test_command((REPO / "docs" / "development.md").read_text()) == ci


def test_the_generated_references_are_up_to_date():
    stale = reference.stale(REPO)
    assert not stale, f"out of date: {', '.join(map(str, stale))}; run python -m ent_exporter.reference"


def test_the_reference_check_exits_1_on_a_stale_page(tmp_path):
    assert reference.main(["--root", str(tmp_path)]) == 0
    assert reference.main(["--check", "--root", str(tmp_path)]) == 0
    (tmp_path / reference.METRICS_PAGE).write_text("# Metric reference\n")
    assert reference.main(["--check", "--root", str(tmp_path)]) == 1


def test_every_configuration_key_is_described():
    missing = [*reference.undocumented(Config), *(f"web: {key}" for key in reference.undocumented(WebConfigFile))]
    for kind, probe in probes.kinds().items():
        missing += [f"probes (kind {kind}): {key}" for key in reference.undocumented(probe.Settings)]
    assert not missing, f"keys without a description= (the configuration reference shows it): {missing}"


def test_the_generator_imports_only_the_base_installation():
    code = (
        "import sys, ent_exporter.reference as r; r.pages(); "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'fpdf', 'grafanalib'})))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
