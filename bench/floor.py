"""The scrape floor: ent-exporter's own HTTP server holding a single sample.

Run as ``python -m bench.floor --port PORT``. The same scrapers against it measure what this
machine's scheduling, Python and loopback cost for nothing to serve: the honest reference for
ent-exporter's scrape latency (report: p99 as a ratio to this floor)."""

from __future__ import annotations

import argparse
import signal
import threading

from ent_exporter.engine.collector import Family, Kind
from ent_exporter.engine.exposition import Exposition
from ent_exporter.web.server import MetricsServer

ONE = Family("ent_floor", Kind.GAUGE, "One sample: the scrape floor.")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    exposition = Exposition([ONE])
    exposition.publish({"floor": {ONE.name: {(): 1.0}}})
    server = MetricsServer("127.0.0.1", args.port, exposition, lambda: {"status": "ok", "collectors": {}})
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
