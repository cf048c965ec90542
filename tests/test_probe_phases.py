"""Per-phase durations (ent_connector_probe_phase_duration_seconds{phase}): which phases each kind
reports against real servers, that they add up to the probe's duration, and that a server slow to
answer shows in the request phase, not in connect or processing."""

from __future__ import annotations

import time

import pytest

from ent_exporter.config import parse_config
from ent_exporter.engine.exposition import Exposition
from ent_exporter.probes.base import CheckResult
from ent_exporter.probes.runner import ProbeRunner
from tests.probe_servers import PROBE_DN, PROBE_PASSWORD, PagesHandler, Slapd, WebServer, make_certificates
from tests.support import parse

PHASES = "ent_connector_probe_phase_duration_seconds"


class SlowHandler(PagesHandler):
    def do_GET(self) -> None:  # noqa: N802
        time.sleep(0.3)
        super().do_GET()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("certs"))


def phases_of(samples: dict, connector: str, kind: str) -> dict[str, tuple[float, float]]:
    """{phase: (count, sum)} of one probe."""
    counts = samples[f"{PHASES}_count"]
    sums = samples[f"{PHASES}_sum"]
    return {
        dict(k)["phase"]: (v, sums[k])
        for k, v in counts.items()
        if dict(k)["connector"] == connector and dict(k)["kind"] == kind
    }


def test_each_kind_reports_its_phases_and_they_add_up(certificates, tmp_path):
    https = WebServer(PagesHandler, certificates.server_context())
    slow = WebServer(SlowHandler)
    slapd = Slapd(tmp_path / "slapd", certificates).start()
    ca = str(certificates.ca)
    probes = [
        {"connector": "a", "kind": "tcp", "address": f"localhost:{https.port}"},
        {"connector": "b", "kind": "tls", "address": f"127.0.0.1:{https.port}", "ca_file": ca},
        {"connector": "c", "kind": "http", "url": https.url("/ok"), "ca_file": ca},
        {"connector": "d", "kind": "http", "url": slow.url("/ok")},
        {
            "connector": "e",
            "kind": "ldap",
            "url": f"ldap://127.0.0.1:{slapd.port}",
            "bind_dn": PROBE_DN,
            "password_env": "P",
            "start_tls": True,
            "ca_file": ca,
        },
    ]
    try:
        config = parse_config({"source": {"dsn": "x"}, "probes": probes}, "t.yml", environ={"P": PROBE_PASSWORD})
        r = ProbeRunner(config.probes, Exposition([]))
        assert all(isinstance(r.run_once(i), CheckResult) for i in range(len(probes)))
        samples = parse(r.exposition.body().decode())
    finally:
        slapd.stop()
        https.close()
        slow.close()
    expected = {
        ("a", "tcp"): {"resolve", "connect", "processing"},
        ("b", "tls"): {"resolve", "connect", "tls", "processing"},
        ("c", "http"): {"resolve", "connect", "tls", "request", "processing"},
        ("d", "http"): {"resolve", "connect", "request", "processing"},
        ("e", "ldap"): {"resolve", "connect", "tls", "request", "processing"},
    }
    for (connector, kind), names in expected.items():
        phases = phases_of(samples, connector, kind)
        assert set(phases) == names, (connector, phases)
        assert all(count == 1.0 for count, _ in phases.values())
        # processing is the rest: the phases add up to the probe's own duration.
        total = samples["ent_connector_probe_duration_seconds_sum"][(("connector", connector), ("kind", kind))]
        assert sum(s for _, s in phases.values()) == pytest.approx(total, abs=1e-6)
    slow_phases = phases_of(samples, "d", "http")
    assert slow_phases["request"][1] >= 0.3
    assert slow_phases["connect"][1] < 0.1 and slow_phases["processing"][1] < 0.1
