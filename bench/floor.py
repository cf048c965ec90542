"""The scrape floor: ent-exporter's own HTTP server holding a single sample, or as many gzip bytes as ours.

Run as ``python -m bench.floor --port PORT``. The same scrapers against it measure what this
machine's scheduling, Python and loopback cost for nothing to serve: the honest reference for
ent-exporter's scrape latency (report: p99 as a ratio to this floor).

``--gzip-bytes N``: the same server holding one gauge family whose gzipped body is about N bytes (label
values of random hex, as incompressible as the exporter's body is after gzip): what serving that many bytes
costs on this machine with nothing else to do. Between it and the exporter is the exporter's own work; between
it and the one-sample floor, the body's size (its transfer and the scrapers reading it)."""

from __future__ import annotations

import argparse
import random
import signal
import threading

from ent_exporter.engine.collector import Family, Kind
from ent_exporter.engine.exposition import Exposition
from ent_exporter.web.server import MetricsServer

ONE = Family("ent_floor", Kind.GAUGE, "One sample: the scrape floor.")
SIZED = Family("ent_floor_sized", Kind.GAUGE, "Samples making the body as large as the exporter's.", ("key",))


def exposition(gzip_bytes: int = 0) -> Exposition:
    """One sample, or about ``gzip_bytes`` of gzipped body (within 2 %)."""
    if gzip_bytes <= 0:
        served = Exposition([ONE])
        served.publish({"floor": {ONE.name: {(): 1.0}}})
        return served
    generator = random.Random(0)
    samples = max(1, gzip_bytes // 16)
    for _ in range(6):
        served = Exposition([SIZED])
        served.publish(
            {"floor": {SIZED.name: {(f"{generator.getrandbits(64):016x}",): float(i) for i in range(samples)}}}
        )
        size = len(served.body(gzipped=True))
        if abs(size - gzip_bytes) <= gzip_bytes * 0.02:
            break
        samples = max(1, round(samples * gzip_bytes / size))
    return served


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--gzip-bytes", type=int, default=0, help="hold about this many gzipped bytes (0: one sample)")
    args = parser.parse_args()
    server = MetricsServer(
        "127.0.0.1", args.port, exposition(args.gzip_bytes), lambda: {"status": "ok", "collectors": {}}
    )
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
