"""HTTP endpoints: /metrics serves the pre-rendered exposition, /healthz says the process is alive
(liveness), /readyz whether what it serves is fresh (readiness: 503 when not)."""
from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST

from .exposition import Exposition

log = logging.getLogger(__name__)

INDEX = b"""<html><head><title>ent-exporter</title></head><body>
<h1>ent-exporter</h1><p><a href="/metrics">/metrics</a> &middot; <a href="/healthz">/healthz</a>
&middot; <a href="/readyz">/readyz</a></p>
</body></html>"""


# Readiness: (ready, details). Not ready is answered 503, so probes and load balancers need no parsing.
Readiness = Callable[[], tuple[bool, dict]]


def make_handler(exposition: Exposition, health: Callable[[], dict],
                 ready: Readiness | None = None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ent-exporter"
        # Headers and body go out as two writes: with Nagle's algorithm the body would wait
        # for the client's delayed ACK of the headers (~40 ms per scrape on keep-alive).
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
                chunks, length = exposition.chunks(gzipped)
                self._send(200, chunks, CONTENT_TYPE_LATEST, "gzip" if gzipped else None, length)
            elif path == "/healthz":
                self._send(200, json.dumps(health()).encode(), "application/json")
            elif path == "/readyz" and ready is not None:
                is_ready, details = ready()
                self._send(200 if is_ready else 503, json.dumps(details).encode(), "application/json")
            elif path == "/":
                self._send(200, INDEX, "text/html; charset=utf-8")
            else:
                self._send(404, b"not found\n", "text/plain; charset=utf-8")

        def _send(self, status: int, body: bytes | tuple[bytes, ...], content_type: str, encoding: str | None = None,
                  length: int | None = None) -> None:
            """Sends ``body``, or its chunks one after the other (never joined into one more copy)."""
            chunks = (body,) if isinstance(body, bytes) else body
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            if encoding:
                self.send_header("Content-Encoding", encoding)
            self.send_header("Content-Length", str(sum(map(len, chunks)) if length is None else length))
            self.end_headers()
            for chunk in chunks:
                self.wfile.write(chunk)

        def log_message(self, format: str, *args: object) -> None:  # scrapes are not worth a log line
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


class _Server(ThreadingHTTPServer):
    # listen() backlog: the default (5) drops the SYNs of scrapers that connect at once,
    # which then wait a second for their retransmission.
    request_queue_size = 128


class MetricsServer:
    def __init__(self, address: str, port: int, exposition: Exposition, health: Callable[[], dict],
                 ready: Readiness | None = None) -> None:
        self.httpd = _Server((address, port), make_handler(exposition, health, ready))
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
