"""`ent-exporter serve` with probes, as real processes: the first scrape already has every probe's own
result, SIGHUP re-reads the probes keeping their counters, and a restart (SIGTERM, serve again)
continues the counters from the state directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

from tests.probe_servers import PagesHandler, WebServer, closed_port
from tests.support import REPO, free_port, parse, wait_until, write_config

GAR = (("connector", "gar"), ("kind", "tcp"))


def serve(config, command: str = "serve", environ: dict[str, str] | None = None) -> subprocess.Popen:
    """``ent-exporter COMMAND --config CONFIG`` as a real process (``environ`` added to the environment)."""
    return subprocess.Popen(
        [sys.executable, "-m", "ent_exporter.cli", command, "--config", str(config)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(environ or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Lines:
    """A process's stderr, read in a thread as it comes."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=lambda: self.lines.extend(iter(process.stderr.readline, "")))
        self.thread.start()

    def text(self) -> str:
        return "".join(self.lines)


def scrape(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return parse(response.read().decode())
    except OSError:
        return None


def counts(samples: dict) -> tuple[float, float]:
    probes = samples["ent_connector_probes_total"]
    return probes[(*GAR, ("outcome", "success"))], probes[(*GAR, ("outcome", "failure"))]


def test_first_scrape_reload_and_restart(source_dsn, tmp_path):
    holder = closed_port()
    web = WebServer(PagesHandler)
    port = free_port()
    down = {
        "connector": "gar",
        "kind": "tcp",
        "address": f"127.0.0.1:{holder.getsockname()[1]}",
        "interval_seconds": 3600,
    }
    up = {**down, "address": f"127.0.0.1:{web.port}"}
    config = write_config(
        tmp_path / "config.yml", source_dsn, listen={"address": "127.0.0.1", "port": port}, probes=[down]
    )
    errors = []
    try:
        process = serve(config)
        lines = Lines(process)
        try:
            first = wait_until(lambda: scrape(port), timeout=60, message="/metrics answers")
            # Its first scrape: the probe already ran once (refused), success gauge present.
            assert counts(first) == (0.0, 1.0)
            assert first["ent_connector_probe_success"] == {GAR: 0.0}
            write_config(config, source_dsn, listen={"address": "127.0.0.1", "port": port}, probes=[up])
            # SIGHUP's handler is installed once start() returned, after its "serving" line.
            wait_until(lambda: "serving http" in lines.text(), timeout=30, message="serving")
            time.sleep(0.5)
            os.kill(process.pid, signal.SIGHUP)
            # The reloaded probe keeps its counters; its next run is at its offset in the hour, so the
            # counters do not move yet; the process is alive and says what it did.
            wait_until(lambda: "probe(s) kept" in lines.text(), timeout=30, message="the reload's line")
            assert process.poll() is None and counts(scrape(port)) == (0.0, 1.0)
        finally:
            process.terminate()
            process.wait(30)
            lines.thread.join(10)
            errors.append(lines.text())
        assert "SIGHUP: " in errors[0] and "1 probe(s) kept with their counters" in errors[0], errors[0]
        # Restarted: the counters go on from the state (1 failure), plus its run at start, now a success.
        process = serve(config)
        try:
            again = wait_until(lambda: scrape(port), timeout=60, message="/metrics answers again")
            assert counts(again) == (1.0, 1.0)
            assert again["ent_connector_probe_success"] == {GAR: 1.0}
        finally:
            process.terminate()
            errors.append(process.communicate(timeout=30)[1])
    finally:
        holder.close()
        web.close()
    assert all("Traceback" not in err for err in errors), errors
