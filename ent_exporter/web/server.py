"""HTTP endpoints: /metrics serves the pre-rendered exposition, /healthz says the process is alive
(liveness), /readyz whether what it serves is fresh (readiness: 503 when not).

Hardened for an untrusted network: each connection's reads time out (idle keep-alive and
half-sent requests are closed after ``read_timeout``), at most ``max_connections`` are served
at once (beyond, new ones get a 503 and are closed), client aborts are not errors, the Server
header names no version, and TLS and basic auth come from the exporter-toolkit web
configuration (ent_exporter.web.config).
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from ent_exporter.engine.exposition import Exposition
from ent_exporter.web.config import WebConfig

READ_TIMEOUT_SECONDS = 10.0
MAX_CONNECTIONS = 64
# What a client that goes away mid-answer raises: not worth more than a debug line.
CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError, ssl.SSLError)


def accepts_gzip(header: str | None) -> bool:
    """Whether an Accept-Encoding header accepts gzip (RFC 9110: q=0 means "not acceptable";
    "*" stands for codings not listed)."""
    explicit = wildcard = None
    for part in (header or "").split(","):
        coding, *parameters = [piece.strip() for piece in part.split(";")]
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        coding = coding.lower()
        if coding in ("gzip", "x-gzip"):
            explicit = quality > 0
        elif coding == "*":
            wildcard = quality > 0
    return explicit if explicit is not None else bool(wildcard)


log = logging.getLogger(__name__)

INDEX = b"""<html><head><title>ent-exporter</title></head><body>
<h1>ent-exporter</h1><p><a href="/metrics">/metrics</a> &middot; <a href="/healthz">/healthz</a>
&middot; <a href="/readyz">/readyz</a></p>
</body></html>"""


# Readiness: (ready, details). Not ready is answered 503, so probes and load balancers need no parsing.
Readiness = Callable[[], tuple[bool, dict]]


def make_handler(
    exposition: Exposition,
    health: Callable[[], dict],
    ready: Readiness | None = None,
    *,
    web: WebConfig | None = None,
    read_timeout: float = READ_TIMEOUT_SECONDS,
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ent-exporter"
        # Headers and body go out as two writes: with Nagle's algorithm the body would wait
        # for the client's delayed ACK of the headers (~40 ms per scrape on keep-alive).
        disable_nagle_algorithm = True
        # Every read of the connection: an idle keep-alive or a half-sent request is closed after it.
        timeout = read_timeout
        head_only = False

        def version_string(self) -> str:  # no Python version in the Server header
            return self.server_version

        def handle(self) -> None:
            try:
                super().handle()
            except CLIENT_GONE as error:  # the client went away: nothing to answer
                self.close_connection = True
                log.debug("%s: connection ended by the client (%s)", self.client_address[0], error)

        def do_HEAD(self) -> None:  # noqa: N802
            self.head_only = True
            try:
                self.do_GET()
            finally:
                self.head_only = False

        def _authorized(self) -> bool:
            if web is None or web.authorized(self.headers.get("Authorization")):
                return True
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="ent-exporter", charset="UTF-8"')
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", "13")
            self._extra_headers()
            self.end_headers()
            if not self.head_only:
                self.wfile.write(b"Unauthorized\n")
            return False

        def _extra_headers(self) -> None:
            for name, value in web.headers.items() if web is not None else ():
                self.send_header(name, value)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if not self._authorized():
                return
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                gzipped = accepts_gzip(self.headers.get("Accept-Encoding"))
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

        def _send(
            self,
            status: int,
            body: bytes | tuple[bytes, ...],
            content_type: str,
            encoding: str | None = None,
            length: int | None = None,
        ) -> None:
            """Sends ``body``, or its chunks one after the other (never joined into one more copy)."""
            chunks = (body,) if isinstance(body, bytes) else body
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            if encoding:
                self.send_header("Content-Encoding", encoding)
            self.send_header("Content-Length", str(sum(map(len, chunks)) if length is None else length))
            self._extra_headers()
            self.end_headers()
            if self.head_only:
                return
            for chunk in chunks:
                self.wfile.write(chunk)

        def log_message(self, format: str, *args: object) -> None:  # scrapes are not worth a log line
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


class _Server(ThreadingHTTPServer):
    # listen() backlog: the default (5) drops the SYNs of scrapers that connect at once,
    # which then wait a second for their retransmission.
    request_queue_size = 128
    ssl_context: ssl.SSLContext | None = None
    read_timeout = READ_TIMEOUT_SECONDS
    max_connections: int
    connections: threading.BoundedSemaphore

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serves the connection in a thread of its own, if fewer than max_connections are."""
        if not self.connections.acquire(blocking=False):
            log.warning(
                "more than %d connections at once: refusing one from %s", self.max_connections, client_address[0]
            )
            try:
                if self.ssl_context is None:
                    request.settimeout(0.5)
                    request.sendall(
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.connections.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is None:
            super().finish_request(request, client_address)  # (the handler class, called on the connection)
            return
        # The TLS handshake happens here, in the connection's thread, within the read timeout:
        # a client that never completes it (or speaks plain HTTP) holds no one else up.
        request.settimeout(self.read_timeout)
        try:
            secure = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            log.debug("%s: TLS handshake failed (%s)", client_address[0], error)
            return
        try:
            super().finish_request(secure, client_address)
        finally:
            secure.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        error = sys.exc_info()[1]
        if isinstance(error, CLIENT_GONE + (socket.timeout,)):
            log.debug("%s: connection ended (%s)", client_address[0], error)
            return
        log.exception("error while serving %s", client_address[0])


class MetricsServer:
    def __init__(
        self,
        address: str,
        port: int,
        exposition: Exposition,
        health: Callable[[], dict],
        ready: Readiness | None = None,
        *,
        web: WebConfig | None = None,
        read_timeout: float = READ_TIMEOUT_SECONDS,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.httpd = _Server(
            (address, port), make_handler(exposition, health, ready, web=web, read_timeout=read_timeout)
        )
        self.httpd.ssl_context = web.ssl_context if web is not None else None
        self.httpd.read_timeout = read_timeout
        self.httpd.max_connections = max_connections
        self.httpd.connections = threading.BoundedSemaphore(max_connections)
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
