"""HTTP endpoints: /metrics serves the pre-rendered exposition, /healthz says the process is alive."""
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
<h1>ent-exporter</h1><p><a href="/metrics">/metrics</a> &middot; <a href="/healthz">/healthz</a></p>
</body></html>"""


def make_handler(exposition: Exposition, health: Callable[[], dict]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ent-exporter"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
                self._send(200, exposition.body(gzipped), CONTENT_TYPE_LATEST, "gzip" if gzipped else None)
            elif path == "/healthz":
                self._send(200, json.dumps(health()).encode(), "application/json")
            elif path == "/":
                self._send(200, INDEX, "text/html; charset=utf-8")
            else:
                self._send(404, b"not found\n", "text/plain; charset=utf-8")

        def _send(self, status: int, body: bytes, content_type: str, encoding: str | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            if encoding:
                self.send_header("Content-Encoding", encoding)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # scrapes are not worth a log line
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


class MetricsServer:
    def __init__(self, address: str, port: int, exposition: Exposition, health: Callable[[], dict]) -> None:
        self.httpd = ThreadingHTTPServer((address, port), make_handler(exposition, health))
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
