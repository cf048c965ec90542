"""`ent-exporter demo` serves every instant family for every demo structure and profile, and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psycopg
import yaml

from tests.support import REPO, free_port, parse, run_cli, scrape

INSTANT_FAMILIES = (
    "ent_logins_total",
    "ent_app_accesses_total",
    "ent_account_activations_total",
    "ent_connector_requests_total",
    "ent_connector_request_duration_seconds_bucket",
)


def demo_dsn(state_dir) -> str:
    return f"postgresql://postgres:@/postgres?host={state_dir / 'pgdata'}"


def test_demo_serves_every_instant_family_for_every_structure_and_profile(tmp_path):
    port = free_port()
    state_dir = tmp_path / "demo"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ent_exporter.cli",
            "--log-level",
            "WARNING",
            "demo",
            "--state-dir",
            str(state_dir),
            "--port",
            str(port),
            "--scale",
            "0.3",
            "--days",
            "21",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "CI": "true"},
    )
    try:
        samples = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                samples = parse(scrape(port))
                if all(name in samples for name in INSTANT_FAMILIES):
                    break
            except OSError:
                pass
            assert process.poll() is None, process.stdout.read()
            time.sleep(0.5)
        assert samples and all(name in samples for name in INSTANT_FAMILIES), sorted(samples or {})

        with psycopg.connect(demo_dsn(state_dir)) as conn:
            structures = {row[0] for row in conn.execute("SELECT structure_id FROM ent.structures")}
            profiles = {row[0] for row in conn.execute("SELECT DISTINCT profile FROM ent.accounts")}
            connectors = {row[0] for row in conn.execute("SELECT DISTINCT connector FROM ent.connector_events")}
        assert len(structures) >= 5 and {"Student", "Teacher", "Relative", "Personnel", "Guest"} <= profiles
        logins = {(dict(k)["structure"], dict(k)["profile"]) for k in samples["ent_logins_total"]}
        for structure in structures | {"all"}:
            for profile in ("Student", "Teacher", "Relative", "Personnel"):
                assert (structure, profile) in logins, (structure, profile)
        accesses = {dict(k)["structure"] for k in samples["ent_app_accesses_total"]}
        assert structures | {"all"} <= accesses
        assert {dict(k)["connector"] for k in samples["ent_connector_requests_total"]} == connectors

        # The example it wrote runs as printed, on the demo's database, without touching the demo's state.
        example = state_dir / "example.yml"
        once = run_cli("once", "--config", str(example), timeout=120)
        assert once.returncode == 0, once.stderr
        assert parse(once.stdout)["ent_logins_total"][(("profile", "Student"), ("structure", "all"))] > 0
        assert not (state_dir / "example-state").exists()
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "Traceback" not in output
    assert f"http://127.0.0.1:{port}/metrics" in output  # this machine only, by default
    dsn = yaml.safe_load(example.read_text())["source"]["dsn"]
    assert f"database: {dsn}" in output and f"ent-exporter once --config {example}" in output
    assert f"ent-exporter serve --config {example}" in output


def test_the_demo_keeps_its_state_outside_the_work_tree(monkeypatch, tmp_path):
    from ent_exporter.demo import default_state_dir

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_dir() == tmp_path / "xdg" / "ent-exporter" / "demo"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_state_dir() == tmp_path / "home" / ".local" / "state" / "ent-exporter" / "demo"
    assert not default_state_dir().is_relative_to(REPO)
