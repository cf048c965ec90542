"""`probes:` in the configuration: check-config (and serve, once) reject a bad probe with the file and
the key named, exit 2 and no traceback; a good one is accepted, its password read from the environment."""

from __future__ import annotations

import os

import pytest

from ent_exporter.config import ConfigError, parse_config
from tests.support import run_cli

BASE = "source: {dsn: 'dbname=ent'}\n"
CASES = {
    "unknown kind": (
        "probes:\n  - {connector: gar, kind: ftp, url: 'ftp://x'}\n",
        ["probes.0.kind", "unknown probe kind 'ftp'", "cas, http, ldap, smtp, tcp, tls"],
    ),
    "no kind": ("probes:\n  - {connector: gar, url: 'https://x'}\n", ["probes.0", "kind is required"]),
    "bad ldap URL": (
        "probes:\n  - {connector: ldap, kind: ldap, url: 'http://ldap.example'}\n",
        ["probes.0.url", "not an ldap:// or ldaps:// URL"],
    ),
    "URL without host": (
        "probes:\n  - {connector: pronote, kind: http, url: 'https://'}\n",
        ["probes.0.url", "no host"],
    ),
    "bad port": (
        "probes:\n  - {connector: smtp, kind: smtp, url: 'smtp://relay:99999'}\n",
        ["probes.0.url", "bad port"],
    ),
    "bad address": (
        "probes:\n  - {connector: gar, kind: tcp, address: 'gar.example'}\n",
        ["probes.0.address", "not host:port"],
    ),
    "missing password variable": (
        "probes:\n  - {connector: pronote, kind: http, url: 'https://p.example'}\n"
        "  - {connector: ldap, kind: ldap, url: 'ldaps://ldap.example', bind_dn: 'cn=probe',"
        " password_env: ENT_TEST_UNSET_PASSWORD}\n",
        ["probes.1.password_env", "ENT_TEST_UNSET_PASSWORD is not set"],
    ),
    "bind without password": (
        "probes:\n  - {connector: ldap, kind: ldap, url: 'ldap://l', bind_dn: 'cn=probe'}\n",
        ["probes.0", "bind_dn needs password_env"],
    ),
    "password in the file": (
        "probes:\n  - {connector: ldap, kind: ldap, url: 'ldap://l', password: hunter2}\n",
        ["probes.0.password", "unknown key"],
    ),
    "unknown key": (
        "probes:\n  - {connector: cas, kind: cas, url: 'https://cas.example/cas', retries: 3}\n",
        ["probes.0.retries", "unknown key"],
    ),
    "timeout above interval": (
        "probes:\n  - {connector: gar, kind: tcp, address: 'gar:443', timeout_seconds: 60}\n",
        ["probes.0", "timeout_seconds (60) must not exceed interval_seconds (30)"],
    ),
    "same connector and kind twice": (
        "probes:\n  - {connector: gar, kind: tcp, address: 'a:1'}\n  - {connector: gar, kind: tcp, address: 'b:1'}\n",
        ["probes", "probes.1 is a second tcp probe of connector gar"],
    ),
    "bad regex": (
        "probes:\n  - {connector: p, kind: http, url: 'https://p', body_regex: '(unclosed'}\n",
        ["probes.0.body_regex", "not a regular expression"],
    ),
    "unreadable CA file": (
        "probes:\n  - {connector: p, kind: tls, address: 'p:443', ca_file: /nonexistent/ca.pem}\n",
        ["probes.0.ca_file", "cannot read '/nonexistent/ca.pem'"],
    ),
    "basic auth password in the file": (
        "probes:\n  - {connector: p, kind: http, url: 'https://p', basic_auth: {username: probe, password: hunter2}}\n",
        ["probes.0.basic_auth.password", "unknown key"],
    ),
    "unreadable password file": (
        "probes:\n  - {connector: p, kind: http, url: 'https://p',"
        " basic_auth: {username: probe, password_file: /nonexistent/password}}\n",
        ["probes.0.basic_auth.password_file", "cannot read '/nonexistent/password' (No such file or directory)"],
    ),
    "missing bearer token variable": (
        "probes:\n  - {connector: p, kind: http, url: 'https://p', bearer_token_env: ENT_TEST_UNSET_PASSWORD}\n",
        ["probes.0.bearer_token_env", "environment variable ENT_TEST_UNSET_PASSWORD is not set"],
    ),
    "Authorization among the headers": (
        "probes:\n  - {connector: p, kind: http, url: 'https://p', headers: {Authorization: 'Bearer x'}}\n",
        ["probes.0.headers", "Authorization is set by the probe itself (use basic_auth or bearer_token_env/_file)"],
    ),
    "bad connector label": (
        "probes:\n  - {connector: 'LDAP académie', kind: tcp, address: 'l:389'}\n",
        ["probes.0.connector"],
    ),
}


@pytest.mark.parametrize("command", ["check-config", "serve"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_probes_are_named_with_file_and_key(tmp_path, case, command):
    text, expected = CASES[case]
    path = tmp_path / "probes.yml"
    path.write_text(BASE + text)
    environment = {k: v for k, v in os.environ.items() if k not in ("ENT_EXPORTER_DSN", "ENT_TEST_UNSET_PASSWORD")}
    result = run_cli(command, "--config", str(path), env=environment)
    assert result.returncode == 2, result.stderr
    assert str(path) in result.stderr
    for fragment in expected:
        assert fragment in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_valid_probes_pass_check_config(tmp_path):
    path = tmp_path / "probes.yml"
    path.write_text(
        BASE
        + """probes:
  - {connector: ldap, kind: ldap, url: 'ldaps://ldap.example:636', bind_dn: 'uid=probe,ou=people,dc=ent',
     password_env: LDAP_PROBE_PASSWORD, search: {base: 'ou=people,dc=ent', filter: '(uid=probe)'}}
  - {connector: cas, kind: cas, url: 'https://cas.example/cas', service: 'https://ent.example/',
     username: probe, password_env: CAS_PROBE_PASSWORD, interval_seconds: 60}
  - {connector: pronote, kind: http, url: 'https://0750001a.index-education.net/pronote/', expect_status: [200, 302]}
  - {connector: smtp, kind: smtp, url: 'smtp://relay.example:25', starttls: true}
  - {connector: gar, kind: tls, address: 'gar.example:443'}
"""
    )
    env = {**os.environ, "LDAP_PROBE_PASSWORD": "x", "CAS_PROBE_PASSWORD": "y"}
    result = run_cli("check-config", "--config", str(path), env=env)
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stdout


def test_the_password_comes_from_the_environment_at_load():
    data = {
        "source": {"dsn": "x"},
        "probes": [
            {"connector": "ldap", "kind": "ldap", "url": "ldap://l", "bind_dn": "cn=probe", "password_env": "P"}
        ],
    }
    config = parse_config(data, "x.yml", environ={"P": "s3cret"})
    assert config.probes[0].password == "s3cret"
    assert "s3cret" not in repr(config)  # never printed with the configuration
    with pytest.raises(
        ConfigError,
        match=r"x.yml: invalid configuration\n  probes.0.password_env: environment "
        r"variable P is not set",
    ):
        parse_config(data, "x.yml", environ={})
    # Defaults: every 30 s, 5 s bound.
    assert (config.probes[0].interval_seconds, config.probes[0].timeout_seconds) == (30.0, 5.0)
