"""Active probes against real servers on loopback, started here: OpenLDAP's slapd, HTTPS servers
with certificates made by the test, a CAS protocol fixture, an SMTP server (aiosmtpd). Each outcome
is read back from the exporter's exposition, as Prometheus would scrape it."""

from __future__ import annotations

import threading
import urllib.request
import zlib
from typing import Literal

import pytest

from ent_exporter.config import parse_config
from ent_exporter.engine.exposition import Exposition
from ent_exporter.probes.base import REASONS, CheckResult, Probe, ProbeSettings
from ent_exporter.probes.runner import ProbeRunner
from ent_exporter.web.server import MetricsServer
from tests.probe_servers import (
    EXPIRED_AFTER,
    PROBE_DN,
    PROBE_PASSWORD,
    SUFFIX,
    CASState,
    Greeter,
    PagesHandler,
    Silent,
    Slapd,
    WebServer,
    cas_handler,
    closed_port,
    make_certificates,
)
from tests.support import parse, wait_until

BUCKETS = ("0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "+Inf")
ENVIRON = {
    "LDAP_PROBE_PASSWORD": PROBE_PASSWORD,
    "WRONG_PASSWORD": "not-the-password",
    "CAS_PROBE_PASSWORD": "cas-secret",
}


def runner(*probes: dict, environ: dict = ENVIRON) -> ProbeRunner:
    config = parse_config({"source": {"dsn": "x"}, "probes": list(probes)}, "test.yml", environ=environ)
    return ProbeRunner(config.probes, Exposition([]))


def exposed(r: ProbeRunner) -> dict:
    return parse(r.exposition.body().decode())


def outcome_of(r: ProbeRunner, index: int = 0) -> tuple[str, dict]:
    """Runs probe ``index`` once; returns "success" or its failure reason, and the exposed samples."""
    result = r.run_once(index)
    return ("success" if isinstance(result, CheckResult) else result.reason), exposed(r)


def key(**labels: str) -> tuple:
    return tuple(sorted(labels.items()))


def assert_counted(samples: dict, connector: str, kind: str, successes: int, failures: dict[str, int]) -> None:
    """Every counter of the probe, exactly: outcomes, each reason (0 included), the histogram's count, the gauge."""
    total_failures = sum(failures.values())
    probes = samples["ent_connector_probes_total"]
    assert probes[key(connector=connector, kind=kind, outcome="success")] == successes
    assert probes[key(connector=connector, kind=kind, outcome="failure")] == total_failures
    for reason in REASONS:
        assert samples["ent_connector_probe_failures_total"][
            key(connector=connector, kind=kind, reason=reason)
        ] == failures.get(reason, 0), reason
    assert (
        samples["ent_connector_probe_duration_seconds_count"][key(connector=connector, kind=kind)]
        == successes + total_failures
    )


# -- LDAP: slapd ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def slapd(tmp_path_factory, certificates):
    server = Slapd(tmp_path_factory.mktemp("slapd"), certificates).start()
    yield server
    server.stop()


@pytest.fixture
def own_slapd(tmp_path, certificates):
    """A slapd this test may stop or freeze."""
    server = Slapd(tmp_path / "slapd", certificates).start()
    yield server
    server.stop()


def ldap_probe(url: str, **extra) -> dict:
    return {
        "connector": "ldap",
        "kind": "ldap",
        "url": url,
        "bind_dn": PROBE_DN,
        "password_env": "LDAP_PROBE_PASSWORD",
        "timeout_seconds": 2,
        **extra,
    }


def test_ldap_bind_and_search_succeed(slapd):
    r = runner(ldap_probe(f"ldap://127.0.0.1:{slapd.port}", search={"base": SUFFIX, "filter": "(uid=teacher1)"}))
    outcome, samples = outcome_of(r)
    assert outcome == "success"
    assert samples["ent_connector_probe_success"] == {key(connector="ldap", kind="ldap"): 1.0}
    assert_counted(samples, "ldap", "ldap", 1, {})
    # No TLS: no certificate to report.
    assert samples.get("ent_connector_certificate_expiry_timestamp_seconds", {}) == {}


def test_ldap_wrong_password_is_auth(slapd):
    r = runner(ldap_probe(f"ldap://127.0.0.1:{slapd.port}", password_env="WRONG_PASSWORD"))
    assert outcome_of(r)[0] == "auth"
    outcome, samples = outcome_of(r)
    assert outcome == "auth"
    assert samples["ent_connector_probe_success"] == {key(connector="ldap", kind="ldap"): 0.0}
    assert_counted(samples, "ldap", "ldap", 0, {"auth": 2})


def test_ldap_search_without_entry_is_content(slapd):
    r = runner(ldap_probe(f"ldap://127.0.0.1:{slapd.port}", search={"base": SUFFIX, "filter": "(uid=nobody)"}))
    assert outcome_of(r)[0] == "content"


def test_ldaps_and_starttls_report_the_certificate_expiry_to_the_second(slapd, certificates):
    r = runner(
        ldap_probe(f"ldaps://127.0.0.1:{slapd.tls_port}", ca_file=str(certificates.ca)),
        ldap_probe(
            f"ldap://127.0.0.1:{slapd.port}", connector="ldap-starttls", start_tls=True, ca_file=str(certificates.ca)
        ),
    )
    assert outcome_of(r, 0)[0] == "success"
    outcome, samples = outcome_of(r, 1)
    assert outcome == "success"
    expected = certificates.not_after.timestamp()
    assert expected == 4086506096.0  # 2099-06-30 12:34:56 UTC, the certificate's notAfter
    assert samples["ent_connector_certificate_expiry_timestamp_seconds"] == {
        key(connector="ldap"): expected,
        key(connector="ldap-starttls"): expected,
    }


def test_ldaps_untrusted_certificate_is_tls(slapd):
    r = runner(ldap_probe(f"ldaps://127.0.0.1:{slapd.tls_port}"))  # the system's CAs do not know the test CA
    assert outcome_of(r)[0] == "tls"


def test_ldap_stopped_is_refused_and_recovers(own_slapd):
    r = runner(ldap_probe(f"ldap://127.0.0.1:{own_slapd.port}"))
    assert outcome_of(r)[0] == "success"
    own_slapd.stop()
    outcome, samples = outcome_of(r)
    assert outcome == "refused"
    assert samples["ent_connector_probe_success"] == {key(connector="ldap", kind="ldap"): 0.0}
    own_slapd.start()
    outcome, samples = outcome_of(r)
    assert outcome == "success"
    assert_counted(samples, "ldap", "ldap", 2, {"refused": 1})


def test_ldap_frozen_times_out_within_its_bound_while_scrapes_and_other_probes_go_on(own_slapd):
    """slapd SIGSTOPped: the kernel still accepts connections, nothing answers. The LDAP probe
    costs its timeout and nothing else: scrapes are served, another probe keeps its pace."""
    web = WebServer(PagesHandler)
    r = runner(
        ldap_probe(f"ldap://127.0.0.1:{own_slapd.port}", timeout_seconds=1.5, interval_seconds=2),
        {"connector": "pronote", "kind": "http", "url": web.url("/ok"), "timeout_seconds": 1, "interval_seconds": 1},
    )
    server = MetricsServer("127.0.0.1", 0, r.exposition, lambda: {"status": "ok"})
    server.start()
    own_slapd.freeze()
    r.start()
    scrapes = 0
    try:

        def timed_out_twice():
            nonlocal scrapes
            # Every scrape returns (urlopen would raise past its timeout) while the LDAP probe hangs.
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
                assert response.status == 200
                samples = parse(response.read().decode())
            scrapes += 1
            return (
                samples["ent_connector_probe_failures_total"].get(
                    key(connector="ldap", kind="ldap", reason="timeout"), 0
                )
                >= 2
                and samples
            )

        samples = wait_until(timed_out_twice, 60, interval=0.05, message="two LDAP timeouts")
    finally:
        r.stop()
        own_slapd.thaw()
        server.stop()
        web.close()
    ldap = key(connector="ldap", kind="ldap")
    count = samples["ent_connector_probe_duration_seconds_count"][ldap]
    assert count == samples["ent_connector_probes_total"][key(connector="ldap", kind="ldap", outcome="failure")] >= 2
    # Each timed-out probe took its bound (1.5 s): none finished sooner, none later than the 2.5 s bucket.
    buckets = {
        dict(k)["le"]: v
        for k, v in samples["ent_connector_probe_duration_seconds_bucket"].items()
        if dict(k)["connector"] == "ldap"
    }
    assert buckets["1.0"] == 0 and buckets["2.5"] == count
    assert 1.5 * count - 1e-6 <= samples["ent_connector_probe_duration_seconds_sum"][ldap] <= 1.6 * count
    # Meanwhile: many scrapes, and the web probe kept going (at least one per LDAP probe).
    assert scrapes >= 10
    web_probes = samples["ent_connector_probes_total"][key(connector="pronote", kind="http", outcome="success")]
    assert web_probes >= count


# -- the runner's hard bound, whatever the probe kind does ----------------------------------------


class _SleepySettings(ProbeSettings):
    kind: Literal["sleepy"] = "sleepy"


class SleepyProbe(Probe):
    """A probe kind that ignores its timeout (a library stuck in a call without one); not registered."""

    abstract = True
    kind = "sleepy"
    Settings = _SleepySettings
    release = threading.Event()
    started = 0

    def check(self) -> CheckResult:
        SleepyProbe.started += 1
        SleepyProbe.release.wait(30)
        return CheckResult()


def test_a_stuck_probe_counts_its_bound_and_does_not_pile_up():
    settings = _SleepySettings.model_validate({"connector": "stuck", "kind": "sleepy", "timeout_seconds": 0.3})
    r = ProbeRunner([SleepyProbe(settings)], Exposition([]))
    SleepyProbe.started = 0
    try:
        first, second = r.run_once(0), r.run_once(0)
        assert first.reason == "timeout" and second.reason == "timeout"
        assert SleepyProbe.started == 1  # the second run found the first still stuck: no second attempt
    finally:
        SleepyProbe.release.set()
    samples = exposed(r)
    assert_counted(samples, "stuck", "sleepy", 0, {"timeout": 2})
    assert samples["ent_connector_probe_duration_seconds_sum"][key(connector="stuck", kind="sleepy")] <= 0.6 + 1e-9


def test_the_interval_is_start_to_start_and_never_shorter():
    """A fake clock drives the loop: runs happen every interval_seconds, never more often."""
    web = WebServer(PagesHandler)
    try:
        r = runner({"connector": "pronote", "kind": "http", "url": web.url("/ok"), "interval_seconds": 30})
        now = [1000.0]
        runs = []
        r.clock = lambda: now[0]
        original = r.run_once
        r.run_once = lambda index: (runs.append(now[0]), original(index))[1]
        waits = []

        class Stopping:
            def wait(self, seconds):
                waits.append(seconds)
                now[0] += seconds
                return len(runs) >= 3

        r._stopping = Stopping()
        r._loop(0)
        # The first run at the probe's stable offset in its interval (crc32 of "pronote/http", computed
        # apart); then every interval plus a jitter in [0, 1.5 s) (5% of 30 s): never sooner.
        first = 4058258399 / 2**32 * 30
        assert zlib.crc32(b"pronote/http") == 4058258399
        assert runs[0] == pytest.approx(1000.0 + first)
        assert waits[0] == pytest.approx(first)
        gaps = [b - a for a, b in zip(runs, runs[1:])]
        assert all(30.0 <= gap < 31.5 for gap in gaps), gaps
    finally:
        web.close()


# -- HTTP(S) ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def https(certificates):
    server = WebServer(PagesHandler, certificates.server_context())
    yield server
    server.close()


def http_probe(url: str, **extra) -> dict:
    return {"connector": "pronote", "kind": "http", "url": url, "timeout_seconds": 2, **extra}


def test_https_up_with_the_certificate_expiry_to_the_second(https, certificates):
    r = runner(http_probe(https.url("/ok"), ca_file=str(certificates.ca), body_regex="Espace (Pronote|ENT)"))
    outcome, samples = outcome_of(r)
    assert outcome == "success"
    assert samples["ent_connector_certificate_expiry_timestamp_seconds"] == {
        key(connector="pronote"): certificates.not_after.timestamp()
    }
    assert_counted(samples, "pronote", "http", 1, {})
    # HEAD works too.
    assert outcome_of(runner(http_probe(https.url("/ok"), ca_file=str(certificates.ca), method="HEAD")))[0] == "success"


@pytest.mark.parametrize(
    "case, extra, reason",
    [
        ("503", {"path": "/down"}, "status"),
        ("unexpected body", {"path": "/ok", "body_regex": "Welcome to Moodle"}, "status_or_content"),
        ("untrusted certificate", {"path": "/ok", "ca_file": None}, "tls"),
    ],
)
def test_https_failures(https, certificates, case, extra, reason):
    extra = dict(extra)
    path = extra.pop("path")
    settings = {"ca_file": str(certificates.ca), **extra}
    if settings["ca_file"] is None:
        del settings["ca_file"]
    outcome = outcome_of(runner(http_probe(https.url(path), **settings)))[0]
    assert outcome == ("content" if reason == "status_or_content" else reason), case


def test_https_expired_certificate_is_tls_but_its_expiry_is_still_known_without_verification(tmp_path):
    expired = make_certificates(tmp_path, EXPIRED_AFTER, name="expired")
    server = WebServer(PagesHandler, expired.server_context())
    try:
        assert outcome_of(runner(http_probe(server.url("/ok"), ca_file=str(expired.ca))))[0] == "tls"
        outcome, samples = outcome_of(runner(http_probe(server.url("/ok"), verify_tls=False)))
        assert outcome == "success"
        assert samples["ent_connector_certificate_expiry_timestamp_seconds"] == {
            key(connector="pronote"): EXPIRED_AFTER.timestamp()
        }
    finally:
        server.close()


def test_http_redirects_go_only_to_named_hosts():
    """A redirect to a host the configuration does not name is not followed: that host sees no request."""
    other = WebServer(PagesHandler, address="127.0.0.2")
    first = WebServer(PagesHandler)
    try:
        url = first.url(f"/elsewhere?to={other.url('/ok')}")
        assert outcome_of(runner(http_probe(url, expect_status=[302])))[0] == "success"  # not followed by default
        assert outcome_of(runner(http_probe(url, follow_redirects=True)))[0] == "status"
        assert other.recorder.requests == []
        assert outcome_of(runner(http_probe(url, follow_redirects=True, redirect_hosts=["127.0.0.2"])))[0] == "success"
        assert other.recorder.requests == [("GET", "/ok")]
    finally:
        other.close()
        first.close()


def test_http_hung_server_times_out_and_refused_port_is_refused():
    silent = Silent()
    holder = closed_port()
    try:
        r = runner(
            http_probe(f"http://127.0.0.1:{silent.port}/", timeout_seconds=1),
            http_probe(f"http://127.0.0.1:{holder.getsockname()[1]}/", connector="gar"),
        )
        outcome, samples = outcome_of(r, 0)
        assert outcome == "timeout"
        # httpx's own read timeout or the runner's bound, whichever comes first: about the bound, never more.
        assert 0.9 <= samples["ent_connector_probe_duration_seconds_sum"][key(connector="pronote", kind="http")] <= 1.0
        assert outcome_of(r, 1)[0] == "refused"
    finally:
        silent.close()
        holder.close()


# -- TCP / TLS -------------------------------------------------------------------------------------


def test_tcp_and_tls(https, certificates):
    holder = closed_port()
    silent = Silent()
    try:
        r = runner(
            {"connector": "pronote", "kind": "tcp", "address": f"127.0.0.1:{https.port}"},
            {
                "connector": "pronote",
                "kind": "tls",
                "address": f"127.0.0.1:{https.port}",
                "ca_file": str(certificates.ca),
            },
            {"connector": "gar", "kind": "tcp", "address": f"127.0.0.1:{holder.getsockname()[1]}"},
            {"connector": "gar", "kind": "tls", "address": f"127.0.0.1:{silent.port}", "timeout_seconds": 1},
            {"connector": "edu", "kind": "tls", "address": f"127.0.0.1:{https.port}"},
        )
        assert [outcome_of(r, i)[0] for i in range(5)] == ["success", "success", "refused", "timeout", "tls"]
        samples = exposed(r)
        assert samples["ent_connector_certificate_expiry_timestamp_seconds"] == {
            key(connector="pronote"): certificates.not_after.timestamp()
        }
    finally:
        holder.close()
        silent.close()


# -- CAS -------------------------------------------------------------------------------------------


@pytest.fixture
def cas(certificates):
    state = CASState(users={"probe": "cas-secret"})
    server = WebServer(cas_handler(state), certificates.server_context())
    yield server, state
    server.close()


def cas_probe(server: WebServer, certificates, **extra) -> dict:
    return {
        "connector": "cas",
        "kind": "cas",
        "url": server.url("/cas"),
        "ca_file": str(certificates.ca),
        "timeout_seconds": 2,
        **extra,
    }


ACCOUNT = {"service": "https://ent.example.test/", "username": "probe", "password_env": "CAS_PROBE_PASSWORD"}


def test_cas_login_page_and_ticket_flow(cas, certificates):
    server, state = cas
    outcome, samples = outcome_of(runner(cas_probe(server, certificates)))
    assert outcome == "success"
    assert samples["ent_connector_certificate_expiry_timestamp_seconds"] == {
        key(connector="cas"): certificates.not_after.timestamp()
    }
    assert state.validated == [] and server.recorder.requests == [("GET", "/cas/login")]
    outcome, samples = outcome_of(runner(cas_probe(server, certificates, **ACCOUNT)))
    assert outcome == "success"
    assert len(state.validated) == 1
    methods = [(method, path.split("?")[0].rsplit("/TGT-", 1)[0]) for method, path in server.recorder.requests[1:]]
    assert methods == [
        ("GET", "/cas/login"),
        ("POST", "/cas/v1/tickets"),
        ("POST", "/cas/v1/tickets"),
        ("GET", "/cas/serviceValidate"),
        ("DELETE", "/cas/v1/tickets"),
    ]
    assert state.granting == {} and len(state.logged_out) == 1  # the test account was logged out


def test_cas_failures(cas, certificates):
    server, state = cas
    assert (
        outcome_of(
            runner(cas_probe(server, certificates, **ACCOUNT), environ={**ENVIRON, "CAS_PROBE_PASSWORD": "wrong"})
        )[0]
        == "auth"
    )
    state.reject_validation = True
    assert outcome_of(runner(cas_probe(server, certificates, **ACCOUNT)))[0] == "content"
    state.reject_validation = False
    state.login_form = False
    assert outcome_of(runner(cas_probe(server, certificates)))[0] == "content"
    assert outcome_of(runner({**cas_probe(server, certificates), "url": server.url("/nocas")}))[0] == "status"


# -- SMTP ------------------------------------------------------------------------------------------


@pytest.fixture
def smtp(certificates):
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    from tests.support import free_port

    controller = Controller(Sink(), hostname="127.0.0.1", port=free_port(), tls_context=certificates.server_context())
    controller.start()
    yield controller
    controller.stop()


def test_smtp_ehlo_and_starttls(smtp, certificates):
    url = f"smtp://127.0.0.1:{smtp.port}"
    r = runner(
        {"connector": "smtp", "kind": "smtp", "url": url, "timeout_seconds": 2},
        {
            "connector": "smtp-tls",
            "kind": "smtp",
            "url": url,
            "starttls": True,
            "ca_file": str(certificates.ca),
            "timeout_seconds": 2,
        },
        {"connector": "smtp-untrusted", "kind": "smtp", "url": url, "starttls": True, "timeout_seconds": 2},
    )
    assert [outcome_of(r, i)[0] for i in range(3)] == ["success", "success", "tls"]
    samples = exposed(r)
    assert samples["ent_connector_certificate_expiry_timestamp_seconds"] == {
        key(connector="smtp-tls"): certificates.not_after.timestamp()
    }
    assert_counted(samples, "smtp", "smtp", 1, {})


def test_smtps_implicit_tls(certificates):
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    from tests.support import free_port

    controller = Controller(Sink(), hostname="127.0.0.1", port=free_port(), ssl_context=certificates.server_context())
    controller.start()
    try:
        outcome, samples = outcome_of(
            runner(
                {
                    "connector": "smtp",
                    "kind": "smtp",
                    "url": f"smtps://127.0.0.1:{controller.port}",
                    "ca_file": str(certificates.ca),
                    "timeout_seconds": 2,
                }
            )
        )
        assert outcome == "success"
        assert samples["ent_connector_certificate_expiry_timestamp_seconds"] == {
            key(connector="smtp"): certificates.not_after.timestamp()
        }
    finally:
        controller.stop()


def test_smtp_refusing_service_stopped_and_hung():
    greeter = Greeter(b"554 5.3.2 relay out of service\r\n")
    silent = Silent()
    holder = closed_port()
    try:
        r = runner(
            {"connector": "smtp", "kind": "smtp", "url": f"smtp://127.0.0.1:{greeter.port}", "timeout_seconds": 2},
            {"connector": "smtp2", "kind": "smtp", "url": f"smtp://127.0.0.1:{holder.getsockname()[1]}"},
            {"connector": "smtp3", "kind": "smtp", "url": f"smtp://127.0.0.1:{silent.port}", "timeout_seconds": 1},
        )
        assert [outcome_of(r, i)[0] for i in range(3)] == ["status", "refused", "timeout"]
    finally:
        greeter.close()
        silent.close()
        holder.close()


def test_failure_detail_is_logged_once_per_change(caplog, https, certificates):
    r = runner(http_probe(https.url("/down"), ca_file=str(certificates.ca)))
    with caplog.at_level("INFO", logger="ent_exporter.probes.runner"):
        for _ in range(3):
            r.run_once(0)
        r.probes[0].settings.url = https.url("/ok")
        r.run_once(0)
        r.run_once(0)
    messages = [record.getMessage() for record in caplog.records if record.name == "ent_exporter.probes.runner"]
    assert len(messages) == 2, messages
    assert "failed (status)" in messages[0] and "503" in messages[0]
    assert "succeeded" in messages[1]


# -- DNS -------------------------------------------------------------------------------------------

UNRESOLVABLE = "ent-probe-test.invalid"  # RFC 6761: .invalid never resolves


@pytest.mark.parametrize(
    "entry",
    [
        {"kind": "ldap", "url": f"ldap://{UNRESOLVABLE}"},
        {"kind": "ldap", "url": f"ldaps://{UNRESOLVABLE}:636"},
        {"kind": "ldap", "url": f"ldap://{UNRESOLVABLE}", "start_tls": True},
        {"kind": "http", "url": f"https://{UNRESOLVABLE}/"},
        {"kind": "http", "url": f"http://{UNRESOLVABLE}/"},
        {"kind": "cas", "url": f"https://{UNRESOLVABLE}/cas"},
        {"kind": "smtp", "url": f"smtp://{UNRESOLVABLE}"},
        {"kind": "smtp", "url": f"smtps://{UNRESOLVABLE}"},
        {"kind": "tcp", "address": f"{UNRESOLVABLE}:389"},
        {"kind": "tls", "address": f"{UNRESOLVABLE}:443"},
    ],
    ids=lambda entry: entry.get("url", entry.get("address", "")).split(":")[0] + "-" + entry["kind"],
)
def test_a_name_that_does_not_resolve_is_dns_on_every_kind(entry):
    r = runner({"connector": "gar", "timeout_seconds": 5, **entry})
    outcome, samples = outcome_of(r)
    assert outcome == "dns"
    assert_counted(samples, "gar", entry["kind"], 0, {"dns": 1})


def test_offsets_are_stable_and_spread_the_probes_over_their_interval():
    """Fifty probes of one interval: their offsets are the same at every start, all different, and spread
    over the whole interval."""
    from ent_exporter.probes.runner import offset

    keys = [f"connector{i}/ldap" for i in range(50)]
    offsets = sorted(offset(k, 30.0) for k in keys)
    assert offsets == sorted(offset(k, 30.0) for k in keys)  # stable
    assert all(0.0 <= o < 30.0 for o in offsets)
    assert len(set(offsets)) == 50
    # Spread: every 6-second fifth of the interval has some of them.
    assert {int(o // 6) for o in offsets} == {0, 1, 2, 3, 4}
