"""The demo's probes: its stand-in HTTPS service (up, with a certificate to show), its own /healthz
(up), a dead port (down, refused), and `touch DIR/outage-<name>` failing a probe."""

from __future__ import annotations

from cryptography import x509

from ent_exporter.config import parse_config
from ent_exporter.demo.probes import DemoTargets
from ent_exporter.engine.exposition import Exposition
from ent_exporter.probes.runner import ProbeRunner
from ent_exporter.web.server import MetricsServer
from tests.support import parse


def test_demo_probes_one_down_out_of_the_box_and_outage_files(tmp_path):
    targets = DemoTargets(tmp_path)
    exposition = Exposition([])
    server = MetricsServer("127.0.0.1", 0, exposition, lambda: {"status": "ok"})
    server.start()
    try:
        config = parse_config({"source": {"dsn": "x"}, "probes": targets.probes("0.0.0.0", server.port)}, "demo")
        runner = ProbeRunner(config.probes, exposition)
        outcomes = {p.settings.connector: runner.run_once(i) for i, p in enumerate(runner.probes)}
        assert {c: getattr(o, "reason", "success") for c, o in outcomes.items()} == {
            "pronote": "success",
            "ent": "success",
            "gar": "refused",
        }
        samples = parse(exposition.body().decode())
        assert samples["ent_connector_probe_success"] == {
            (("connector", "ent"), ("kind", "http")): 1.0,
            (("connector", "gar"), ("kind", "tcp")): 0.0,
            (("connector", "pronote"), ("kind", "http")): 1.0,
        }
        not_after = x509.load_pem_x509_certificate(targets.certificate.read_bytes()).not_valid_after_utc
        assert samples["ent_connector_certificate_expiry_timestamp_seconds"] == {
            (("connector", "pronote"),): not_after.timestamp()
        }

        (tmp_path / "outage-pronote").touch()
        assert runner.run_once(0).reason == "status"
        (tmp_path / "outage-pronote").unlink()
        assert not hasattr(runner.run_once(0), "reason")
        counts = parse(exposition.body().decode())["ent_connector_probe_failures_total"]
        assert counts[(("connector", "pronote"), ("kind", "http"), ("reason", "status"))] == 1.0
    finally:
        server.stop()
        targets.close()


def test_demo_targets_never_take_the_port_the_demo_will_listen_on(tmp_path):
    # The demo checks its port free, loads its data, then binds: meanwhile its probe targets bind ephemeral
    # ports, and the kernel may hand out that very port (a CI run failed so). Released ephemeral ports are
    # the likeliest next ones; none of them may be taken.
    import socket

    from ent_exporter.demo.probes import loopback_socket

    avoid = set()
    for _ in range(64):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            avoid.add(probe.getsockname()[1])
    with loopback_socket(avoid) as sock:
        assert sock.getsockname()[1] not in avoid
    targets = DemoTargets(tmp_path, avoid=avoid)
    try:
        assert targets.server.server_address[1] not in avoid and targets.dead.getsockname()[1] not in avoid
    finally:
        targets.close()
