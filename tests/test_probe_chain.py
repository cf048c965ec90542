"""The whole presented chain: ent_connector_certificate_expiry_timestamp_seconds is the earliest notAfter of
every certificate the server presents (like blackbox_exporter's probe_ssl_earliest_cert_expiry), and
ent_connector_leaf_certificate_expiry_timestamp_seconds keeps the server's own. Real servers (HTTPS, a
TLS endpoint, slapd's LDAPS and StartTLS, an SMTP relay with STARTTLS) present a leaf valid to 2099
through an intermediate that ends in 2031."""

from __future__ import annotations

import socket
import ssl
from datetime import UTC, datetime

import pytest

from ent_exporter.config import parse_config
from ent_exporter.engine.exposition import Exposition
from ent_exporter.probes.base import CheckResult
from ent_exporter.probes.runner import ProbeRunner
from tests.probe_servers import NOT_AFTER, PROBE_DN, PROBE_PASSWORD, PagesHandler, Slapd, WebServer, make_certificates
from tests.support import free_port, parse

INTERMEDIATE_AFTER = datetime(2031, 2, 3, 4, 5, 6, tzinfo=UTC)
CHAIN = "ent_connector_certificate_expiry_timestamp_seconds"
LEAF = "ent_connector_leaf_certificate_expiry_timestamp_seconds"


@pytest.fixture(scope="module")
def chained(tmp_path_factory):
    return make_certificates(
        tmp_path_factory.mktemp("chain"), name="chained", intermediate_not_after=INTERMEDIATE_AFTER
    )


def test_the_dates_are_the_certificates():
    # Independently of the code under test: 2031-02-03 04:05:06 and 2099-06-30 12:34:56 UTC as Unix time.
    assert INTERMEDIATE_AFTER.timestamp() == 1927857906.0
    assert NOT_AFTER.timestamp() == 4086506096.0


def test_every_kind_reports_the_chain_s_earliest_expiry_and_the_leaf_s(chained, tmp_path):
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    https = WebServer(PagesHandler, chained.server_context())
    slapd = Slapd(tmp_path / "slapd", chained).start()
    smtp = Controller(Sink(), hostname="127.0.0.1", port=free_port(), tls_context=chained.server_context())
    smtp.start()
    ca = str(chained.ca)
    try:
        probes = [
            {"connector": "pronote", "kind": "http", "url": https.url("/ok"), "ca_file": ca},
            {"connector": "gar", "kind": "tls", "address": f"127.0.0.1:{https.port}", "ca_file": ca},
            # Unverified, the chain is still read and reported.
            {"connector": "edu", "kind": "tls", "address": f"127.0.0.1:{https.port}", "verify_tls": False},
            {
                "connector": "ldap",
                "kind": "ldap",
                "url": f"ldaps://127.0.0.1:{slapd.tls_port}",
                "bind_dn": PROBE_DN,
                "password_env": "P",
                "ca_file": ca,
            },
            {
                "connector": "ldap-starttls",
                "kind": "ldap",
                "url": f"ldap://127.0.0.1:{slapd.port}",
                "start_tls": True,
                "ca_file": ca,
            },
            {
                "connector": "smtp",
                "kind": "smtp",
                "url": f"smtp://127.0.0.1:{smtp.port}",
                "starttls": True,
                "ca_file": ca,
            },
        ]
        config = parse_config({"source": {"dsn": "x"}, "probes": probes}, "test.yml", environ={"P": PROBE_PASSWORD})
        r = ProbeRunner(config.probes, Exposition([]))
        outcomes = [r.run_once(i) for i in range(len(probes))]
        assert all(isinstance(o, CheckResult) for o in outcomes), outcomes
        samples = parse(r.exposition.body().decode())
        # The TLS version each server agrees with a client of its own (Python's ssl, blackbox's spelling).
        agreed = {port: handshake_version(port, ca) for port in (https.port, slapd.tls_port)}
    finally:
        smtp.stop()
        slapd.stop()
        https.close()
    connectors = ["pronote", "gar", "edu", "ldap", "ldap-starttls", "smtp"]
    assert samples[CHAIN] == {(("connector", c),): 1927857906.0 for c in connectors}
    assert samples[LEAF] == {(("connector", c),): 4086506096.0 for c in connectors}
    # Every kind publishes its handshake's TLS version; where a plain handshake can be made, the same as it.
    versions = {dict(k)["connector"]: dict(k)["version"] for k in samples["ent_connector_probe_tls_version_info"]}
    assert set(versions) == set(connectors)
    assert versions["pronote"] == versions["gar"] == versions["edu"] == agreed[https.port]
    assert versions["ldap"] == agreed[slapd.tls_port]
    assert {versions["ldap-starttls"], versions["smtp"]} <= {"TLS 1.2", "TLS 1.3"}


def handshake_version(port: int, ca: str) -> str:
    context = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as secure:
            version = secure.version() or ""
    return {"TLSv1.2": "TLS 1.2", "TLSv1.3": "TLS 1.3"}[version]


def test_a_leaf_alone_is_both(tmp_path):
    alone = make_certificates(tmp_path, name="alone")
    https = WebServer(PagesHandler, alone.server_context())
    try:
        config = parse_config(
            {
                "source": {"dsn": "x"},
                "probes": [
                    {"connector": "c", "kind": "tls", "address": f"127.0.0.1:{https.port}", "ca_file": str(alone.ca)}
                ],
            },
            "test.yml",
            environ={},
        )
        r = ProbeRunner(config.probes, Exposition([]))
        assert isinstance(r.run_once(0), CheckResult)
        samples = parse(r.exposition.body().decode())
    finally:
        https.close()
    assert samples[CHAIN] == samples[LEAF] == {(("connector", "c"),): 4086506096.0}
