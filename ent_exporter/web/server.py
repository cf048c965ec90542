"""HTTP endpoints: /metrics serves the pre-rendered exposition, /healthz says the process is alive
(liveness), /readyz whether what it serves is fresh (readiness: 503 when not).

One asyncio event loop in one thread (named "http") holds every connection; h11 parses HTTP/1.1.
An idle socket costs a few kilobytes, not a thread, and each connection has a TOTAL deadline
for its request head (TLS handshake included), counted from its accept or from its previous
answer: a client that sends one byte now and then is closed all the same (slowloris).

Against starvation (ent_exporter.web.guard): at most ``max_connections`` sockets are open (a
full listener closes the oldest one still waiting for a request head to make room); one peer
address holds at most ``max_untrusted_per_peer`` connections that have not shown valid
credentials (with no users: not completed a request); beyond, its new ones are closed at once.
Basic auth: a header that passed bcrypt once is cached (valid scrapes never wait on bcrypt);
other checks run in one lower-priority worker thread (bcrypt frees the GIL), a bounded number at a time (beyond,
429). A GET or HEAD with a body is answered 400 and closed, other methods 405. Refusals are
logged at most once a minute per kind; client aborts at debug only. The Server header names no
version. ``reload()`` swaps the web configuration for the connections that come next.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import resource
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from email.utils import format_datetime
from http import HTTPStatus

import h11
from prometheus_client import CONTENT_TYPE_LATEST

from ent_exporter.engine import clock as clocks
from ent_exporter.engine.exposition import Exposition
from ent_exporter.web.config import WebConfig
from ent_exporter.web.guard import Connections, Peer, RefusalLog

READ_TIMEOUT_SECONDS = 10.0  # a request head (and the TLS handshake) must arrive whole within this
WRITE_TIMEOUT_SECONDS = 60.0  # an answer (authentication included) must be taken by the client within this
MAX_CONNECTIONS = 4096
MAX_UNTRUSTED_PER_PEER = 32
MAX_HEAD_BYTES = 16 * 1024
BCRYPT_WORKERS = 1  # a core stays free for the event loop (and the rest) on small machines
BCRYPT_NICE = 10
MAX_PENDING_BCRYPT = 8  # checks waiting or running at once; beyond, 429 without a check
ACCEPT_PAUSE_SECONDS = 1.0
CLOSE_GRACE_SECONDS = 5.0  # a closed connection's last answer has this long to leave its buffer
LISTEN_BACKLOG = 128  # the default (5) drops the SYNs of scrapers that connect at once
FILE_DESCRIPTORS_KEPT = 64  # for the rest of the process (database, state files, probes)
# What a client that goes away mid-answer raises: not worth more than a debug line.
CLIENT_GONE = (ConnectionError, TimeoutError, ssl.SSLError, OSError, h11.ProtocolError, asyncio.IncompleteReadError)

log = logging.getLogger(__name__)

INDEX = b"""<html><head><title>ent-exporter</title></head><body>
<h1>ent-exporter</h1><p><a href="/metrics">/metrics</a> &middot; <a href="/healthz">/healthz</a>
&middot; <a href="/readyz">/readyz</a></p>
</body></html>"""

# Readiness: (ready, details). Not ready is answered 503, so probes and load balancers need no parsing.
Readiness = Callable[[], tuple[bool, dict]]


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


def _open_file_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def _lower_priority() -> None:
    """A bcrypt worker gives way to the event loop (Linux: a thread has its own nice value). 10, not
    19: at the lowest priority a busy machine starves the checks of new valid credentials too."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BCRYPT_NICE)
    except (OSError, AttributeError):
        pass


class _Answer:
    """A response to send: status, body chunks (sent one after the other, never joined), headers."""

    __slots__ = ("status", "chunks", "length", "headers", "close")

    def __init__(
        self,
        status: int,
        body: bytes | tuple[bytes, ...],
        content_type: str,
        *,
        length: int | None = None,
        headers: Iterable[tuple[str, str]] = (),
        close: bool = False,
    ) -> None:
        self.status = status
        self.chunks = (body,) if isinstance(body, bytes) else body
        self.length = sum(map(len, self.chunks)) if length is None else length
        self.headers = [("Content-Type", content_type), *headers]
        self.close = close


def http_status_phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _text(status: int, text: str, **kwargs: object) -> _Answer:
    return _Answer(status, text.encode(), "text/plain; charset=utf-8", **kwargs)  # type: ignore[arg-type]


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
        write_timeout: float = WRITE_TIMEOUT_SECONDS,
        max_connections: int = MAX_CONNECTIONS,
        max_untrusted_per_peer: int = MAX_UNTRUSTED_PER_PEER,
        max_pending_bcrypt: int = MAX_PENDING_BCRYPT,
    ) -> None:
        self.exposition = exposition
        self.health = health
        self.ready = ready
        self.web = web
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.max_pending_bcrypt = max_pending_bcrypt
        limit = _open_file_limit() - FILE_DESCRIPTORS_KEPT
        if max_connections > limit:
            log.info(
                "listen.max_connections %d is above what the open-file limit (ulimit -n) allows: %d",
                max_connections,
                max(limit, 1),
            )
        self.refusals = RefusalLog()
        self.connections = Connections(max(1, min(max_connections, limit)), max_untrusted_per_peer, self.refusals)
        self._pending_bcrypt = 0
        self._bcrypt = concurrent.futures.ThreadPoolExecutor(
            BCRYPT_WORKERS, thread_name_prefix="http-bcrypt", initializer=_lower_priority
        )
        # The listening socket now, in the caller's thread: a port in use is an OSError of the constructor.
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind((address, port))
            self._socket.listen(LISTEN_BACKLOG)
            self._socket.setblocking(False)
        except OSError:
            self._socket.close()
            raise
        self._loop = asyncio.new_event_loop()
        self._closing = False
        self._tasks: set[asyncio.Task] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result()

    async def _listen(self) -> None:
        self._loop.add_reader(self._socket.fileno(), self._accept)

    def _accept(self) -> None:
        """Takes the waiting connections; the ones over a cap are closed here, before any transport,
        task or buffer is made for them (a flood of them costs an accept and a close each)."""
        for _ in range(LISTEN_BACKLOG):
            try:
                sock, address = self._socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # out of file descriptors (EMFILE, ENFILE...): a pause, then again
                self.refusals.note("accept", "cannot accept connections (%s): pausing 1 s", error.strerror or error)
                self._loop.remove_reader(self._socket.fileno())
                self._loop.call_later(ACCEPT_PAUSE_SECONDS, self._resume_accepting)
                return
            peer = Peer(str(address[0]), sock.close)
            if not self.connections.admit(peer):
                sock.close()
                continue
            task = self._loop.create_task(self._accepted(sock, peer))
            peer.close = task.cancel  # (closing it to make room: the task aborts its transport)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _resume_accepting(self) -> None:
        if self._socket.fileno() >= 0 and not self._closing:
            self._loop.add_reader(self._socket.fileno(), self._accept)

    def reload(self, web: WebConfig | None) -> None:
        """The web configuration of the connections accepted from now on (and of the next requests'
        authentication and headers on the open ones); the checks it cached for unchanged users kept."""
        if web is not None and self.web is not None:
            web.adopt_cache(self.web)
        self.web = web

    def stop(self) -> None:
        if self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
            except (concurrent.futures.TimeoutError, RuntimeError):
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        if not self._loop.is_running():
            self._loop.close()
        self._socket.close()
        self._bcrypt.shutdown(wait=False, cancel_futures=True)

    async def _close(self) -> None:
        self._closing = True
        self._loop.remove_reader(self._socket.fileno())
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    # -- one connection ------------------------------------------------------------------------

    async def _accepted(self, sock: socket.socket, peer: Peer) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body: no Nagle wait
        except OSError:
            pass
        loop = asyncio.get_running_loop()
        web = self.web  # TLS: the configuration of the moment of the accept
        context = web.ssl_context if web is not None else None
        writer: asyncio.StreamWriter | None = None
        graceful = False
        try:
            # One deadline for the TLS handshake and the request head, pushed back after each answer.
            async with asyncio.timeout_at(loop.time() + self.read_timeout) as deadline:
                reader = asyncio.StreamReader(limit=MAX_HEAD_BYTES, loop=loop)
                protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
                transport, _ = await loop.connect_accepted_socket(
                    lambda: protocol,
                    sock,
                    ssl=context,
                    ssl_handshake_timeout=self.read_timeout if context is not None else None,
                )
                writer = asyncio.StreamWriter(transport, protocol, reader, loop)
                if web is not None and context is not None and web.client_allowed_sans is not None:
                    if not web.san_allowed(writer.get_extra_info("peercert")):
                        self.refusals.note(
                            "san",
                            "%s: the client certificate names none of client_allowed_sans: closed",
                            peer.address,
                        )
                        return
                await self._exchange(reader, writer, peer, deadline)
            graceful = True
        except asyncio.CancelledError:  # closed to make room, or the server stops
            pass
        except CLIENT_GONE as error:
            log.debug("%s: connection ended (%s)", peer.address, str(error) or error.__class__.__name__)
        except Exception:
            log.exception("error while serving %s", peer.address)
        finally:
            self.connections.release(peer)
            if writer is None:
                sock.close()
            elif graceful and not writer.transport.is_closing():
                # What is still buffered goes out first; a client that does not take it is cut.
                writer.transport.close()
                loop.call_later(CLOSE_GRACE_SECONDS, writer.transport.abort)
            else:
                writer.transport.abort()

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer, deadline: asyncio.Timeout
    ) -> None:
        """Requests and answers on one connection until it closes (h11 keeps the HTTP/1.1 state)."""
        loop = asyncio.get_running_loop()
        http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        while True:
            try:
                request = await self._head(http, reader)
            except h11.RemoteProtocolError as error:
                log.debug("%s: bad request (%s)", peer.address, error)
                if http.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await self._send(http, writer, _text(error.error_status_hint, "bad request\n", close=True))
                return
            if request is None:
                return
            self.connections.answering(peer)
            deadline.reschedule(loop.time() + self.write_timeout)
            answer = await self._answer(http, request, peer)
            await self._send(http, writer, answer, head=request.method == b"HEAD")
            if answer.close or http.our_state is not h11.DONE:
                return
            if self.web is None or not self.web.users:
                self.connections.trust(peer)  # with no users, a completed request proves the client
            http.start_next_cycle()
            self.connections.waiting(peer)
            deadline.reschedule(loop.time() + self.read_timeout)

    async def _head(self, http: h11.Connection, reader: asyncio.StreamReader) -> h11.Request | None:
        """The next request head, None when the client closed the connection."""
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                http.receive_data(await reader.read(MAX_HEAD_BYTES))
                continue
            if isinstance(event, h11.Request):
                return event
            if isinstance(event, h11.ConnectionClosed):
                return None
            raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}", error_status_hint=400)

    async def _send(
        self, http: h11.Connection, writer: asyncio.StreamWriter, answer: _Answer, *, head: bool = False
    ) -> None:
        headers = [
            ("Server", "ent-exporter"),
            ("Date", format_datetime(clocks.default().now(), usegmt=True)),
            *answer.headers,
            ("Content-Length", str(answer.length)),
        ]
        if self.web is not None:
            headers.extend(self.web.headers.items())
        if answer.close:
            headers.append(("Connection", "close"))
        reason = http_status_phrase(answer.status)
        writer.write(http.send(h11.Response(status_code=answer.status, headers=headers, reason=reason)) or b"")
        if not head:
            for chunk in answer.chunks:
                for piece in http.send_with_data_passthrough(h11.Data(data=chunk)) or ():
                    writer.write(piece)
                await writer.drain()
        writer.write(http.send(h11.EndOfMessage()) or b"")
        await writer.drain()

    async def _answer(self, http: h11.Connection, request: h11.Request, peer: Peer) -> _Answer:
        method = request.method
        headers = {name: value for name, value in request.headers}
        if method not in (b"GET", b"HEAD"):
            log.debug("%s: method %s not allowed", peer.address, method)
            return _text(405, "method not allowed\n", headers=[("Allow", "GET, HEAD")], close=True)
        if b"transfer-encoding" in headers or headers.get(b"content-length", b"0") != b"0":
            # A body would be read as the next request (the connection desynchronised): refused.
            log.debug("%s: %s with a body refused", peer.address, method)
            return _text(400, "a GET or HEAD request has no body\n", close=True)
        if not isinstance(http.next_event(), h11.EndOfMessage):  # (a body-less request ends at its head)
            return _text(400, "bad request\n", close=True)
        web = self.web
        if web is not None and web.users:
            refused = await self._authenticate(web, headers.get(b"authorization"), peer)
            if refused is not None:
                return refused
        path = request.target.split(b"?", 1)[0]
        if path == b"/metrics":
            gzipped = accepts_gzip(headers.get(b"accept-encoding", b"").decode("latin-1"))
            chunks, length = self.exposition.chunks(gzipped)
            encoding = [("Content-Encoding", "gzip")] if gzipped else []
            return _Answer(200, chunks, CONTENT_TYPE_LATEST, length=length, headers=encoding)
        if path == b"/healthz":
            return _Answer(200, json.dumps(self.health()).encode(), "application/json")
        if path == b"/readyz" and self.ready is not None:
            is_ready, details = self.ready()
            return _Answer(200 if is_ready else 503, json.dumps(details).encode(), "application/json")
        if path == b"/":
            return _Answer(200, INDEX, "text/html; charset=utf-8")
        return _text(404, "not found\n")

    async def _authenticate(self, web: WebConfig, raw: bytes | None, peer: Peer) -> _Answer | None:
        """None when the Authorization header is valid, else the answer (401, or 429 when busy)."""
        header = raw.decode("latin-1") if raw is not None else None
        ok = web.cached(header)
        if not ok and web.credentials(header) is not None:
            if self._pending_bcrypt >= self.max_pending_bcrypt:
                self.refusals.note(
                    "bcrypt",
                    "%d password checks already pending: answering 429 to %s",
                    self._pending_bcrypt,
                    peer.address,
                )
                return _text(429, "too many password checks at once\n", headers=[("Retry-After", "1")])
            self._pending_bcrypt += 1
            try:
                ok = await asyncio.get_running_loop().run_in_executor(self._bcrypt, web.verify, header)
            finally:
                self._pending_bcrypt -= 1
        if ok:
            self.connections.trust(peer)
            return None
        return _text(
            401, "Unauthorized\n", headers=[("WWW-Authenticate", 'Basic realm="ent-exporter", charset="UTF-8"')]
        )
