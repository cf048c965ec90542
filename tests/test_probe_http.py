"""HTTP probes at blackbox_exporter's level: the answer's status code and the TLS version as gauges,
custom headers, basic and bearer authentication with secrets from the environment or a file. Against a
real HTTPS server started here that answers 200 only to the exact headers it expects; the secrets
never show in the log, the metrics or the failure's detail."""

from __future__ import annotations

import base64
import logging
import ssl

import pytest

from ent_exporter.config import parse_config
from ent_exporter.engine.exposition import Exposition
from ent_exporter.probes.base import CheckResult, ProbeFailure
from ent_exporter.probes.runner import ProbeRunner
from tests.probe_servers import WebServer, closed_port, guarded_handler, make_certificates
from tests.support import parse

STATUS = "ent_connector_probe_http_status_code"
VERSION = "ent_connector_probe_tls_version_info"
PASSWORD = "s3cret-basic-Zq7"
TOKEN = "tok-4f9b2c-bearer"
WRONG = "not-the-password-Wx2"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("certs"))


def context(certificates, version: ssl.TLSVersion) -> ssl.SSLContext:
    """The server's context, its TLS version pinned: the probe can only agree on that one."""
    server = certificates.server_context()
    server.minimum_version = server.maximum_version = version
    return server


def runner(probes: list[dict], environ: dict[str, str]) -> ProbeRunner:
    config = parse_config({"source": {"dsn": "x"}, "probes": probes}, "test.yml", environ=environ)
    return ProbeRunner(config.probes, Exposition([]))


def key(**labels: str) -> tuple:
    return tuple(sorted(labels.items()))


def test_basic_auth_and_headers_reach_the_server_and_the_status_and_tls_version_are_published(
    certificates, tmp_path, caplog
):
    basic = "Basic " + base64.b64encode(f"probe:{PASSWORD}".encode()).decode()
    seen: list[dict[str, str]] = []
    expected = {"Authorization": basic, "X-Probe": "ent-exporter", "Accept-Language": "fr"}
    tls12 = WebServer(guarded_handler(expected, seen), context(certificates, ssl.TLSVersion.TLSv1_2))
    tls13 = WebServer(guarded_handler(expected, seen), context(certificates, ssl.TLSVersion.TLSv1_3))
    plain = WebServer(guarded_handler(expected, seen))
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")  # the final newline is not part of it
    common = {
        "kind": "http",
        "ca_file": str(certificates.ca),
        "headers": {"X-Probe": "ent-exporter", "Accept-Language": "fr"},
        "timeout_seconds": 5,
    }
    probes = [
        {
            **common,
            "connector": "a",
            "url": tls12.url("/private"),
            "basic_auth": {"username": "probe", "password_env": "P"},
        },
        {
            **common,
            "connector": "b",
            "url": tls13.url("/private"),
            "basic_auth": {"username": "probe", "password_file": str(password_file)},
        },
        {
            **common,
            "connector": "c",
            "url": plain.url("/private"),
            "basic_auth": {"username": "probe", "password_env": "P"},
        },
        # The wrong password: the server says 401, the probe's reason is auth (it sent credentials).
        {
            **common,
            "connector": "d",
            "url": tls13.url("/private"),
            "basic_auth": {"username": "probe", "password_env": "W"},
        },
        # No credentials: 401 is an unexpected status.
        {**common, "connector": "e", "url": tls13.url("/private")},
        # A 503 is published as such; nothing answering is 0 (blackbox_exporter's probe_http_status_code).
        {**common, "connector": "f", "url": tls12.url("/down")},
    ]
    holder = closed_port()
    probes.append({**common, "connector": "g", "url": f"https://127.0.0.1:{holder.getsockname()[1]}/"})
    caplog.set_level(logging.DEBUG)
    try:
        r = runner(probes, {"P": PASSWORD, "W": WRONG})
        outcomes = [r.run_once(i) for i in range(len(probes))]
    finally:
        holder.close()
        for server in (tls12, tls13, plain):
            server.close()
    reasons = ["success" if isinstance(o, CheckResult) else o.reason for o in outcomes]
    assert reasons == ["success", "success", "success", "auth", "status", "status", "refused"]
    # The server saw exactly what was configured, on each of the six requests that reached it.
    assert len(seen) == 6
    for headers in seen[:3]:
        assert {name: headers.get(name) for name in expected} == expected
    assert seen[3]["Authorization"] == "Basic " + base64.b64encode(f"probe:{WRONG}".encode()).decode()
    assert "Authorization" not in seen[4] and seen[4]["X-Probe"] == "ent-exporter"

    samples = parse(r.exposition.body().decode())
    assert samples[STATUS] == {
        key(connector="a", kind="http"): 200.0,
        key(connector="b", kind="http"): 200.0,
        key(connector="c", kind="http"): 200.0,
        key(connector="d", kind="http"): 401.0,
        key(connector="e", kind="http"): 401.0,
        key(connector="f", kind="http"): 503.0,
        key(connector="g", kind="http"): 0.0,
    }
    # The version each server was pinned to; plain HTTP and the refused connection have none.
    assert samples[VERSION] == {
        key(connector="a", kind="http", version="TLS 1.2"): 1.0,
        key(connector="b", kind="http", version="TLS 1.3"): 1.0,
        key(connector="d", kind="http", version="TLS 1.3"): 1.0,
        key(connector="e", kind="http", version="TLS 1.3"): 1.0,
        key(connector="f", kind="http", version="TLS 1.2"): 1.0,
    }
    # The secrets: not in the metrics, not in the failures' details, not in the log.
    failures = " ".join(str(o) for o in outcomes if isinstance(o, ProbeFailure))
    for text in (r.exposition.body().decode(), failures, caplog.text, repr(r.probes[0].settings)):
        for secret in (PASSWORD, WRONG, base64.b64encode(f"probe:{PASSWORD}".encode()).decode()):
            assert secret not in text
    assert "answered 401" in failures and "answered 503" in failures


def test_bearer_token_from_the_environment_or_a_file(certificates, tmp_path):
    seen: list[dict[str, str]] = []
    server = WebServer(guarded_handler({"Authorization": f"Bearer {TOKEN}"}, seen), certificates.server_context())
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    wrong_file = tmp_path / "wrong"
    wrong_file.write_text(WRONG + "\n")
    base = {"kind": "http", "url": server.url("/private"), "ca_file": str(certificates.ca)}
    try:
        r = runner(
            [
                {**base, "connector": "env", "bearer_token_env": "T"},
                {**base, "connector": "file", "bearer_token_file": str(token_file)},
                {**base, "connector": "wrong", "bearer_token_file": str(wrong_file)},
            ],
            {"T": TOKEN},
        )
        outcomes = [r.run_once(i) for i in range(3)]
    finally:
        server.close()
    assert [o.reason if isinstance(o, ProbeFailure) else "success" for o in outcomes] == ["success", "success", "auth"]
    assert [headers["Authorization"] for headers in seen] == [f"Bearer {TOKEN}", f"Bearer {TOKEN}", f"Bearer {WRONG}"]
    samples = parse(r.exposition.body().decode())
    assert samples[STATUS] == {
        key(connector="env", kind="http"): 200.0,
        key(connector="file", kind="http"): 200.0,
        key(connector="wrong", kind="http"): 401.0,
    }
    assert WRONG not in str(outcomes[2]) and TOKEN not in r.exposition.body().decode()


def test_a_secret_file_is_read_at_load_and_its_problems_name_the_key_and_file(tmp_path):
    from ent_exporter.config import ConfigError

    empty = tmp_path / "empty"
    empty.write_text("\n")
    two = tmp_path / "two-lines"
    two.write_text("first-secret-line\nsecond\n")
    one = tmp_path / "one-line"
    one.write_text("the-secret\n")
    base = {"connector": "p", "kind": "http", "url": "https://p.example/"}
    cases = [
        ({**base, "bearer_token_file": str(empty)}, f"probes.0.bearer_token_file: {str(empty)!r} is empty"),
        ({**base, "bearer_token_file": str(two)}, f"probes.0.bearer_token_file: {str(two)!r} holds more than one line"),
        (
            {**base, "basic_auth": {"username": "probe"}},
            "probes.0.basic_auth: basic_auth needs password_env or password_file (never the password itself)",
        ),
        (
            {**base, "basic_auth": {"username": "probe", "password_env": "P", "password_file": str(one)}},
            "probes.0.basic_auth: give password_env or password_file, not both",
        ),
        (
            {**base, "bearer_token_env": "P", "basic_auth": {"username": "probe", "password_env": "P"}},
            "probes.0: give basic_auth or a bearer token, not both",
        ),
        ({**base, "bearer_token_env": "EMPTY"}, "probes.0.bearer_token_env: environment variable EMPTY is empty"),
        ({**base, "headers": {"X Probe": "1"}}, "probes.0.headers: 'X Probe' is not a header name"),
    ]
    for probe, message in cases:
        with pytest.raises(ConfigError) as raised:
            parse_config({"source": {"dsn": "x"}, "probes": [probe]}, "x.yml", environ={"P": "p", "EMPTY": ""})
        assert str(raised.value) == f"x.yml: invalid configuration\n  {message}"
        assert "first-secret-line" not in str(raised.value) and "the-secret" not in str(raised.value)
    # A secret file changed on disk is read again with the configuration (SIGHUP), not before.
    token = tmp_path / "token"
    token.write_text("one\n")
    first = parse_config({"source": {"dsn": "x"}, "probes": [{**base, "bearer_token_file": str(token)}]}, "x.yml")
    token.write_text("two\n")
    second = parse_config({"source": {"dsn": "x"}, "probes": [{**base, "bearer_token_file": str(token)}]}, "x.yml")
    assert first.probes[0].request_headers() == {"Authorization": "Bearer one"}
    assert second.probes[0].request_headers() == {"Authorization": "Bearer two"}


def test_the_status_and_tls_version_survive_a_restart(certificates, tmp_path):
    server = WebServer(guarded_handler({}, []), context(certificates, ssl.TLSVersion.TLSv1_2))
    probes = [{"connector": "pronote", "kind": "http", "url": server.url("/down"), "ca_file": str(certificates.ca)}]
    config = parse_config({"source": {"dsn": "x"}, "probes": probes}, "test.yml")
    try:
        first = ProbeRunner(config.probes, Exposition([]), state_dir=tmp_path)
        assert first.run_once(0).reason == "status"
        first.save()
    finally:
        server.close()
    again = ProbeRunner(config.probes, Exposition([]), state_dir=tmp_path)
    assert again.restore() == 1
    samples = parse(again.exposition.body().decode())
    assert samples[STATUS] == {key(connector="pronote", kind="http"): 503.0}
    assert samples[VERSION] == {key(connector="pronote", kind="http", version="TLS 1.2"): 1.0}
