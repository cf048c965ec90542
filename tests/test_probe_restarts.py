"""Continuity across restarts: the probes' counters, last success and certificate expiries are saved in
the state directory and taken back by the next process, so that no counter goes backwards and a
restart never looks like a recovery; every probe runs once before the first scrape."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from ent_exporter.config import parse_config
from ent_exporter.engine.clock import FixedClock
from ent_exporter.engine.exposition import Exposition
from ent_exporter.probes.runner import ProbeRunner
from tests.probe_servers import PagesHandler, WebServer, closed_port, make_certificates
from tests.support import parse

T0 = datetime(2026, 3, 2, 8, 0, 0, tzinfo=UTC)  # 1772438400
LDAP_KEY = (("connector", "pronote"), ("kind", "http"))


def runner(state_dir, clock, *probes: dict) -> ProbeRunner:
    config = parse_config({"source": {"dsn": "x"}, "probes": list(probes)}, "test.yml", environ={})
    return ProbeRunner(config.probes, Exposition([]), state_dir=state_dir, wall=clock)


def exposed(r: ProbeRunner) -> dict:
    return parse(r.exposition.body().decode())


def test_counters_success_and_expiries_survive_a_restart_with_their_age(tmp_path):
    assert T0.timestamp() == 1772438400.0
    certificates = make_certificates(tmp_path / "certs")
    server = WebServer(PagesHandler, certificates.server_context())
    holder = closed_port()
    clock = FixedClock(T0)
    up = {"connector": "pronote", "kind": "http", "url": server.url("/ok"), "ca_file": str(certificates.ca)}
    down = {"connector": "gar", "kind": "tcp", "address": f"127.0.0.1:{holder.getsockname()[1]}"}
    try:
        first = runner(tmp_path / "state", clock, up, down)
        assert first.restore() == 0  # no state yet
        first.run_all_once()
        clock.advance(timedelta(seconds=30))
        first.run_once(0)
        first.run_once(1)
        first.stop()  # saves
        before = exposed(first)
    finally:
        server.close()
        holder.close()
    saved = json.loads((tmp_path / "state" / "probes" / "probes.json").read_text())
    assert saved["probes"]["pronote/http"]["outcomes"] == {"success": 2.0, "failure": 0.0}
    assert saved["probes"]["gar/tcp"]["failures"]["refused"] == 2.0

    # A new process, an hour later, its targets gone (the web server is closed): before any probe runs,
    # it serves exactly what the last one saved, the last run's time saying how old it is.
    clock.advance(timedelta(hours=1))
    second = runner(tmp_path / "state", clock, up, down)
    assert second.restore() == 2
    after = exposed(second)
    for family in (
        "ent_connector_probes_total",
        "ent_connector_probe_failures_total",
        "ent_connector_probe_duration_seconds_count",
        "ent_connector_probe_duration_seconds_sum",
        "ent_connector_probe_duration_seconds_bucket",
        "ent_connector_probe_success",
        "ent_connector_certificate_expiry_timestamp_seconds",
        "ent_connector_leaf_certificate_expiry_timestamp_seconds",
        "ent_connector_probe_last_run_timestamp_seconds",
    ):
        assert after[family] == before[family], family
    assert after["ent_connector_probe_success"] == {LDAP_KEY: 1.0, (("connector", "gar"), ("kind", "tcp")): 0.0}
    assert after["ent_connector_probe_last_run_timestamp_seconds"] == {
        LDAP_KEY: 1772438430.0,
        (("connector", "gar"), ("kind", "tcp")): 1772438430.0,
    }
    # Its first run counts on top: pronote is now refused (its server is gone); the certificate's
    # expiry stays the last one seen.
    second.run_all_once()
    samples = exposed(second)
    probes = samples["ent_connector_probes_total"]
    assert probes[(*LDAP_KEY, ("outcome", "success"))] == 2.0
    assert probes[(*LDAP_KEY, ("outcome", "failure"))] == 1.0
    assert samples["ent_connector_probe_success"][LDAP_KEY] == 0.0
    assert samples["ent_connector_probe_last_run_timestamp_seconds"][LDAP_KEY] == 1772442030.0
    assert samples["ent_connector_certificate_expiry_timestamp_seconds"] == {
        (("connector", "pronote"),): certificates.not_after.timestamp()
    }


def test_a_removed_probe_is_forgotten_and_a_bad_file_starts_from_zero(tmp_path, caplog):
    holder = closed_port()
    clock = FixedClock(T0)
    down = {"connector": "gar", "kind": "tcp", "address": f"127.0.0.1:{holder.getsockname()[1]}"}
    other = {"connector": "ent", "kind": "tcp", "address": f"127.0.0.1:{holder.getsockname()[1]}"}
    try:
        first = runner(tmp_path, clock, down)
        first.run_once(0)
        first.save()
        second = runner(tmp_path, clock, other)  # gar removed from the configuration, ent added
        assert second.restore() == 0
        assert exposed(second)["ent_connector_probes_total"] == {
            (("connector", "ent"), ("kind", "tcp"), ("outcome", "success")): 0.0,
            (("connector", "ent"), ("kind", "tcp"), ("outcome", "failure")): 0.0,
        }
        (tmp_path / "probes" / "probes.json").write_text('{"version": 1, "probes": {"ent/tcp": {"outcomes": 3}}}')
        with caplog.at_level("WARNING"):
            assert runner(tmp_path, clock, other).restore() == 0
        assert "ignoring the probes' state" in caplog.text and "start from 0" in caplog.text
    finally:
        holder.close()


def test_a_reload_keeps_the_counters_of_the_probes_still_configured(tmp_path):
    """SIGHUP's reload: gar (kept, its address changed) keeps its counters, ent is removed, cas added at 0;
    the loops go on with the new settings."""
    holder = closed_port()
    web = WebServer(PagesHandler)
    clock = FixedClock(T0)
    gar = {"connector": "gar", "kind": "tcp", "address": f"127.0.0.1:{holder.getsockname()[1]}"}
    ent = {"connector": "ent", "kind": "tcp", "address": f"127.0.0.1:{holder.getsockname()[1]}"}
    try:
        r = runner(tmp_path, clock, gar, ent)
        r.run_all_once()
        r.run_once(0)
        r.start()
        config = parse_config(
            {
                "source": {"dsn": "x"},
                "probes": [
                    {**gar, "address": f"127.0.0.1:{web.port}"},
                    {"connector": "cas", "kind": "http", "url": web.url("/ok")},
                ],
            },
            "test.yml",
            environ={},
        )
        said = r.reload(config.probes)
        assert said == "1 probe(s) kept with their counters, added: cas/http, removed: ent/tcp"
        assert len(r._threads) == 2  # running again
        r.run_once(0)
        r.stop()
        samples = exposed(r)
    finally:
        holder.close()
        web.close()
    gar_key = (("connector", "gar"), ("kind", "tcp"))
    probes = samples["ent_connector_probes_total"]
    assert probes[(*gar_key, ("outcome", "failure"))] == 2.0  # before the reload
    assert probes[(*gar_key, ("outcome", "success"))] >= 1.0  # after, to the new address
    assert {dict(k)["connector"] for k in probes} == {"gar", "cas"}
    assert probes[(("connector", "cas"), ("kind", "http"), ("outcome", "failure"))] == 0.0
