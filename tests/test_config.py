"""Bad configuration gets a clear message naming the file and the key, a non-zero exit and no traceback."""

from __future__ import annotations

import os

import pytest

from tests.support import run_cli

CASES = {
    "unknown top-level key": (
        "source: {dsn: x}\nlisten: {port: 9877}\nstate_dri: /tmp\n",
        ["state_dri", "unknown key"],
    ),
    "port out of range": ("source: {dsn: x}\nlisten: {port: 99999}\n", ["listen.port", "less than or equal to 65535"]),
    "missing dsn": ("listen: {port: 9877}\n", ["source.dsn is required", "ENT_EXPORTER_DSN"]),
    "bad cron": ("source: {dsn: x}\nschedules: {hourly: {cron: '61 * * * *'}}\n", ["schedules.hourly.cron", "crontab"]),
    "unknown cadence": ("source: {dsn: x}\nschedules: {yearly: {cron: '0 0 1 1 *'}}\n", ["schedules.yearly"]),
    "bad timezone": ("source: {dsn: x}\ntimezone: Europe/Pariss\n", ["timezone", "Europe/Pariss"]),
    "wrong type": ("source: {dsn: x, statement_timeout_seconds: soon}\n", ["source.statement_timeout_seconds"]),
    "not a mapping": ("- a\n- b\n", ["must be a mapping"]),
    "yaml syntax": ("source: {dsn: x\nlisten: [\n", ["not valid YAML", ":"]),
    "unknown collector": ("source: {dsn: x}\ncollectors: {disabled: [nope]}\n", ["collectors.disabled", "nope"]),
}


@pytest.mark.parametrize("command", ["check-config", "serve", "once"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_config_errors_name_the_file_and_key(tmp_path, case, command):
    text, expected = CASES[case]
    path = tmp_path / "broken.yml"
    path.write_text(text)
    environment = {k: v for k, v in os.environ.items() if k != "ENT_EXPORTER_DSN"}
    result = run_cli(command, "--config", str(path), env=environment)
    assert result.returncode == 2
    assert str(path) in result.stderr
    for fragment in expected:
        assert fragment in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_missing_file_is_named(tmp_path):
    result = run_cli("check-config", "--config", str(tmp_path / "absent.yml"))
    assert result.returncode == 2
    assert "absent.yml: cannot read the configuration" in result.stderr
    assert "Traceback" not in result.stderr


def test_valid_config_and_dsn_from_the_environment(tmp_path):
    path = tmp_path / "ok.yml"
    path.write_text("listen: {port: 9999}\nschedules: {daily: {cron: '30 1 * * *', jitter_seconds: 0}}\n")
    result = run_cli("check-config", "--config", str(path), env={**os.environ, "ENT_EXPORTER_DSN": "dbname=ent"})
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stdout


def test_environment_overrides_the_file():
    from ent_exporter.config import parse_config

    config = parse_config({"source": {"dsn": "dbname=file"}}, "x.yml", environ={"ENT_EXPORTER_DSN": "dbname=env"})
    assert config.source.dsn == "dbname=env"
