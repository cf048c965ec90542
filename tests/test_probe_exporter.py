"""`ent-exporter probe --config FILE`: the probes alone, as a real process with its own port and state, no
database. Against real servers (slapd, an HTTPS server with its own CA, a refused port): the first scrape
has each probe's exact outcome and only the probes' (and process) families; SIGHUP adds a probe keeping
the others' counters; a restart continues every counter from the state; a file with a key it does not
read, or without probes, is one line naming the file and the key, exit 2."""

from __future__ import annotations

import os
import signal
import time

import pytest
import yaml

from ent_exporter.probes import runner
from tests.probe_servers import PROBE_DN, PROBE_PASSWORD, PagesHandler, Slapd, WebServer, closed_port, make_certificates
from tests.support import free_port, run_cli, wait_until
from tests.test_probe_serve import Lines, scrape, serve

PROBES = "ent_connector_probes_total"


def outcomes(samples: dict) -> dict[tuple[str, str], tuple[float, float]]:
    """{(connector, kind): (successes, failures)}."""
    found: dict[tuple[str, str], list[float]] = {}
    for labels, value in samples[PROBES].items():
        named = dict(labels)
        found.setdefault((named["connector"], named["kind"]), [0.0, 0.0])[named["outcome"] == "failure"] = value
    return {probe: (counts[0], counts[1]) for probe, counts in found.items()}


def test_probe_exporter_alone_first_scrape_reload_and_restart(tmp_path):
    certificates = make_certificates(tmp_path / "certs")
    slapd = Slapd(tmp_path / "slapd", certificates).start()
    https = WebServer(PagesHandler, certificates.server_context())
    holder = closed_port()
    port = free_port()
    hour = {"interval_seconds": 3600, "timeout_seconds": 5}
    probes = [
        {
            "connector": "ldap",
            "kind": "ldap",
            "url": f"ldap://127.0.0.1:{slapd.port}",
            "bind_dn": PROBE_DN,
            "password_env": "LDAP_PROBE_PASSWORD",
            **hour,
        },
        {"connector": "pronote", "kind": "http", "url": https.url("/ok"), "ca_file": str(certificates.ca), **hour},
        {"connector": "gar", "kind": "tcp", "address": f"127.0.0.1:{holder.getsockname()[1]}", **hour},
    ]
    config = tmp_path / "probes.yml"

    def write(entries: list[dict]) -> None:
        config.write_text(
            yaml.safe_dump(
                {"listen": {"address": "127.0.0.1", "port": port}, "state_dir": "probe-state", "probes": entries}
            )
        )

    write(probes)
    environ = {"LDAP_PROBE_PASSWORD": PROBE_PASSWORD, "ENT_EXPORTER_DSN": ""}
    errors: list[str] = []
    try:
        process = serve(config, "probe", environ)
        lines = Lines(process)
        try:
            first = wait_until(lambda: scrape(port), timeout=60, message="/metrics answers")
            # Each probe ran once before the first scrape, with its own outcome.
            assert outcomes(first) == {
                ("ldap", "ldap"): (1.0, 0.0),
                ("pronote", "http"): (1.0, 0.0),
                ("gar", "tcp"): (0.0, 1.0),
            }
            assert (
                first["ent_connector_probe_failures_total"][
                    (("connector", "gar"), ("kind", "tcp"), ("reason", "refused"))
                ]
                == 1.0
            )
            assert first["ent_connector_probe_http_status_code"] == {
                (("connector", "pronote"), ("kind", "http")): 200.0
            }
            # The probes' families and the process', nothing of the statistics exporter.
            families = {family.name for family in runner.FAMILIES}
            names = {name.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum") for name in first}
            assert {name for name in names if not name.startswith("process_")} <= families, names
            assert {"ent_connector_probes_total", "process_resident_memory_bytes"} <= names
            # SIGHUP: a fourth probe; the others keep their counters, the new one starts at 0.
            write([*probes, {"connector": "gar2", "kind": "tcp", "address": f"127.0.0.1:{https.port}", **hour}])
            wait_until(lambda: "serving the probes only" in lines.text(), timeout=30, message="serving")
            time.sleep(0.5)  # (SIGHUP's handler is installed right after that line)
            os.kill(process.pid, signal.SIGHUP)
            wait_until(lambda: "probe(s) kept" in lines.text(), timeout=30, message="the reload's line")
            reloaded = outcomes(scrape(port))
            assert reloaded == {**outcomes(first), ("gar2", "tcp"): (0.0, 0.0)}
            assert process.poll() is None
        finally:
            process.terminate()
            process.wait(30)
            lines.thread.join(10)
            errors.append(lines.text())
        assert "3 probe(s) kept with their counters, added: gar2/tcp" in errors[0], errors[0]
        # Restarted: every counter goes on from the state, plus each probe's run at start.
        process = serve(config, "probe", environ)
        try:
            again = wait_until(lambda: scrape(port), timeout=60, message="/metrics answers again")
            assert outcomes(again) == {
                ("ldap", "ldap"): (2.0, 0.0),
                ("pronote", "http"): (2.0, 0.0),
                ("gar", "tcp"): (0.0, 2.0),
                ("gar2", "tcp"): (1.0, 0.0),
            }
        finally:
            process.terminate()
            errors.append(process.communicate(timeout=30)[1])
        assert (tmp_path / "probe-state" / "probes" / "probes.json").is_file()
    finally:
        holder.close()
        https.close()
        slapd.stop()
    assert all("Traceback" not in text for text in errors), errors


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "source: {dsn: 'dbname=ent'}\nprobes:\n  - {connector: gar, kind: tcp, address: 'gar:443'}\n",
            "invalid configuration\n  source: not read by ent-exporter probe (its file has only listen, state_dir,"
            " probes)",
        ),
        ("listen: {port: 9878}\n", "invalid configuration\n  probes: ent-exporter probe needs at least one probe"),
        (
            "probes:\n  - {connector: gar, kind: tcp, address: 'gar'}\n",
            "invalid configuration\n  probes.0.address: not host:port",
        ),
    ],
)
def test_a_probe_exporter_file_is_checked(tmp_path, text, message):
    path = tmp_path / "probes.yml"
    path.write_text(text)
    for check in ((), ("--check",)):
        result = run_cli("probe", "--config", str(path), *check, env={**os.environ, "ENT_EXPORTER_DSN": ""})
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(f"ent-exporter: {path}: {message}"), result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""


def test_check_validates_without_starting(tmp_path):
    path = tmp_path / "probes.yml"
    path.write_text(
        "listen: {address: 127.0.0.1, port: 9878}\nstate_dir: probe-state\nprobes:\n"
        "  - {connector: gar, kind: tcp, address: 'gar.example:443'}\n"
        "  - {connector: pronote, kind: http, url: 'https://p.example/', bearer_token_env: T}\n"
    )
    result = run_cli("probe", "--config", str(path), "--check", env={**os.environ, "T": "token"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{path}: probe configuration is valid (2 probes: gar/tcp, pronote/http)\n"
    assert (tmp_path / "probe-state").is_dir()
