"""The baseline for scrape latency: the same series, rendered by prometheus-client on every scrape.

That is what a generic exporter does (its registry's collect() runs at each request).
Run as ``python -m bench.per_scrape --state-dir DIR --port PORT``: it serves the samples
persisted by ent-exporter in DIR.
"""

from __future__ import annotations

import argparse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ent_exporter import indicators
from ent_exporter.engine.collector import decode_samples
from ent_exporter.engine.exposition import structure_marginals, to_metric
from ent_exporter.engine.state import StateStore


class PersistedSamples:
    """A prometheus-client collector over the persisted samples, rebuilt at every collect()."""

    def __init__(self, state_dir: str) -> None:
        store = StateStore(state_dir)
        self.families = {}
        self.samples = {}
        for name, cls in indicators.discover().items():
            stored = store.load(name)
            if stored is None:
                continue
            for family in cls.families:
                self.families[family.name] = family
            for family_name, series in decode_samples(cls.families, stored.samples).items():
                self.samples.setdefault(family_name, {}).update(series)
        # The series ent-exporter publishes with the default configuration (series budget): same bytes.
        for name, family in self.families.items():
            if family.structure_marginals:
                self.samples[name] = structure_marginals(family, self.samples[name])

    def collect(self):
        for name, series in sorted(self.samples.items()):
            yield to_metric(self.families[name], series)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    registry = PersistedSamples(args.state_dir)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # the same socket settings as ent-exporter's server

        def do_GET(self) -> None:  # noqa: N802
            body = generate_latest(registry)  # type: ignore[arg-type]
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
