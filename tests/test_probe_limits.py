"""The probes' limits: what a probe reads of an answer (max_response_bytes, reason too_large), how many
probes talk to their targets at once, and the exporter's memory under a 400 MB answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Literal

from ent_exporter.config import parse_config
from ent_exporter.engine.exposition import Exposition
from ent_exporter.probes.base import MAX_RESPONSE_BYTES, CheckResult, Probe, ProbeSettings
from ent_exporter.probes.runner import ProbeRunner
from tests.probe_servers import WebServer
from tests.support import parse

REPO = Path(__file__).resolve().parent.parent
CHUNK = 64 << 10
BIG = 400 << 20  # 400 MiB


class Sent:
    """Bytes a body handler managed to write, across its connections."""

    def __init__(self) -> None:
        self.bytes = 0
        self.lock = threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.bytes += n


def body_handler(size: int, sent: Sent, declared: bool = True) -> type[BaseHTTPRequestHandler]:
    """GET answers 200 with ``size`` bytes of 'a', written 64 KiB at a time (Content-Length or close-delimited)."""

    class Body(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if declared else "HTTP/1.0"

        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            if declared:
                self.send_header("Content-Length", str(size))
            self.end_headers()
            chunk = b"a" * CHUNK
            left = size
            try:
                while left > 0:
                    piece = chunk[: min(CHUNK, left)]
                    self.wfile.write(piece)
                    sent.add(len(piece))
                    left -= len(piece)
            except OSError:  # the probe stopped reading and closed
                self.close_connection = True

    return Body


def runner(*probes: dict) -> ProbeRunner:
    config = parse_config({"source": {"dsn": "x"}, "probes": list(probes)}, "test.yml", environ={})
    return ProbeRunner(config.probes, Exposition([]))


def test_the_limit_is_one_mebibyte_by_default_and_the_answer_at_it_passes():
    assert MAX_RESPONSE_BYTES == 1048576
    sent = Sent()
    server = WebServer(body_handler(MAX_RESPONSE_BYTES, sent))
    try:
        r = runner({"connector": "pronote", "kind": "http", "url": server.url("/"), "timeout_seconds": 5})
        assert isinstance(r.run_once(0), CheckResult)
    finally:
        server.close()
    assert sent.bytes == MAX_RESPONSE_BYTES


def test_one_byte_past_the_limit_is_too_large_with_or_without_content_length():
    for declared in (True, False):
        sent = Sent()
        server = WebServer(body_handler(100_001, sent, declared))
        try:
            r = runner(
                {
                    "connector": "pronote",
                    "kind": "http",
                    "url": server.url("/"),
                    "max_response_bytes": 100_000,
                    "timeout_seconds": 5,
                }
            )
            outcome = r.run_once(0)
            assert outcome.reason == "too_large", declared
            samples = parse(r.exposition.body().decode())
            assert (
                samples["ent_connector_probe_failures_total"][
                    (("connector", "pronote"), ("kind", "http"), ("reason", "too_large"))
                ]
                == 1
            )
        finally:
            server.close()


MEASURE = """
import json, sys, threading, time
from ent_exporter.config import parse_config
from ent_exporter.engine.exposition import Exposition
from ent_exporter.probes.runner import ProbeRunner

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

small, big = sys.argv[1], sys.argv[2]
config = parse_config({"source": {"dsn": "x"}, "probes": [
    {"connector": "warm", "kind": "http", "url": small, "timeout_seconds": 30, "interval_seconds": 60},
    {"connector": "pronote", "kind": "http", "url": big, "timeout_seconds": 30, "interval_seconds": 60},
]}, "test.yml", environ={})
r = ProbeRunner(config.probes, Exposition([]))
r.run_once(0)  # every module loaded, one exchange done: the baseline
before = rss_kb()
peak = [before]
done = threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss_kb())
        time.sleep(0.005)
threading.Thread(target=sample, daemon=True).start()
outcome = r.run_once(1)
time.sleep(0.05)
done.set()
print(json.dumps({"reason": getattr(outcome, "reason", "success"), "growth_kb": max(peak[0], rss_kb()) - before}))
"""


def test_a_400_mb_answer_leaves_the_memory_flat():
    """A real HTTP server streams 400 MiB: the probe (in its own process, measured there) stops at its
    limit, the process's resident size grows by less than 50 MB, and the server could not send it all."""
    sent, warm_sent = Sent(), Sent()
    big = WebServer(body_handler(BIG, sent))
    small = WebServer(body_handler(10, warm_sent))
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        out = subprocess.run(
            [sys.executable, "-c", MEASURE, small.url("/"), big.url("/")],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
    finally:
        time.sleep(0.2)
        big.close()
        small.close()
    assert result["reason"] == "too_large"
    assert result["growth_kb"] < 50 * 1024, result
    # Reading stopped at 1 MiB: what the server wrote is that plus what the sockets' buffers held.
    assert MAX_RESPONSE_BYTES < sent.bytes < 64 << 20, sent.bytes


class _GateSettings(ProbeSettings):
    kind: Literal["gate"] = "gate"


class GateProbe(Probe):
    """Counts how many of its kind are inside check() at once; each stays 0.2 s."""

    abstract = True
    kind = "gate"
    Settings = _GateSettings
    lock = threading.Lock()
    inside = 0
    most = 0

    def check(self) -> CheckResult:
        with GateProbe.lock:
            GateProbe.inside += 1
            GateProbe.most = max(GateProbe.most, GateProbe.inside)
        time.sleep(0.2)
        with GateProbe.lock:
            GateProbe.inside -= 1
        return CheckResult()


def test_probes_in_flight_are_bounded():
    probes = [
        GateProbe(_GateSettings.model_validate({"connector": f"c{i}", "kind": "gate", "timeout_seconds": 5}))
        for i in range(6)
    ]
    r = ProbeRunner(probes, Exposition([]), max_in_flight=2)
    threads = [threading.Thread(target=r.run_once, args=(i,)) for i in range(6)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    elapsed = time.monotonic() - started
    assert GateProbe.most == 2
    assert elapsed >= 0.6 - 0.01  # three rounds of two
    samples = parse(r.exposition.body().decode())
    durations = samples["ent_connector_probe_duration_seconds_sum"]
    # A probe waiting for a slot has not started: each counts its own 0.2 s, not the wait.
    assert all(0.2 <= seconds < 0.35 for seconds in durations.values()), durations
