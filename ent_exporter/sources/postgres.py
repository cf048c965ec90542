"""The platform database, read-only, through a small psycopg connection pool.

Sessions are read-only by default, with a statement timeout. A ``custom:`` statement (UntrustedSQL),
and every snapshot, runs inside a transaction begun ``READ ONLY`` with ``SET LOCAL statement_timeout``
and ended by ``ROLLBACK``, which also undoes a session-level ``set_config(..., false)`` made in it, with the
session's advisory locks released in the same round trip; a transaction that ended before is
followed by a reset of the session (``RESET ALL``, the session's settings asserted again); a
connection that cannot be ended so is closed, never lent again. A
statement whose answer does not come by its client-side deadline is cancelled on the server and its
connection dropped. The role created by ``init-source`` is the real wall; these are defence in
depth (docs/security.md)."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import selectors
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psycopg
import psycopg_pool
from psycopg import sql

from ent_exporter.engine.collector import SourceUnavailable, UntrustedSQL

log = logging.getLogger(__name__)

# The relations of the source contract (see docs/source-contract.md).
RELATIONS = ("structures", "accounts", "login_events", "app_access_events", "connector_events")
# Relations a platform may give or not (docs/source-contract.md): a collector that reads one
# publishes nothing, without failing, on a source that lacks it (see ent_exporter.aggregation.optional).
OPTIONAL_RELATIONS = ("course_progress", "account_feeds", "user_classes")


# Beyond the server's statement_timeout, how long the client waits for an answer before it
# gives up on the connection: a frozen server (SIGSTOP, a hung host) cannot fire its own timeout.
CLIENT_MARGIN_SECONDS = 5.0
# Longest time the pool keeps retrying one reconnection in the background (with backoff
# 1, 2, 4... s) before it gives up; the next statement starts a new attempt. psycopg_pool's
# default (300 s) let the backoff grow to minutes after a long outage.
RECONNECT_TIMEOUT_SECONDS = 10.0
# Longest time a cancel request (sent when a statement's client-side deadline passes) may take;
# it runs beside the dropped connection, never delays the caller.
CANCEL_SECONDS = 5.0
# What a connection is reset with before it goes back to the pool when its transaction ended
# before the source's ROLLBACK (a statement cannot end it; a setting made after would outlive
# it). Not after every use: RESET ALL and SET SESSION AUTHORIZATION make the next statements
# slower (a counter catching up chunk by chunk took 2.5 times as long), and a ROLLBACK already
# undoes every setting made in the transaction. Not DISCARD ALL: it would also drop the statements
# psycopg prepared. Sent by the source itself, not by the pool's reset callback, which hands every
# returned connection to a worker thread.
RESET_SESSION = "SET SESSION AUTHORIZATION DEFAULT; RESET ALL; CLOSE ALL; UNLISTEN *; SELECT pg_advisory_unlock_all()"


class _Watchdog:
    """One thread that fires the deadlines of every statement (a thread started per statement costs a
    thread's start-up and a wait for it to be scheduled, on every query of every cycle)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._heap: list[list] = []  # [deadline, number, callback or None once disarmed]
        self._armed: dict[int, list] = {}
        self._numbers = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, callback: Any) -> int:
        with self._condition:
            entry = [time.monotonic() + seconds, next(self._numbers), callback]
            heapq.heappush(self._heap, entry)
            self._armed[entry[1]] = entry
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="ent-exporter-deadlines", daemon=True)
                self._thread.start()
            self._condition.notify()
            return entry[1]

    def disarm(self, number: int) -> None:
        with self._condition:
            entry = self._armed.pop(number, None)
            if entry is not None:
                entry[2] = None  # (its connection is not held until the deadline)

    def _watch(self) -> None:
        while True:
            with self._condition:
                while self._heap and self._heap[0][2] is None:
                    heapq.heappop(self._heap)
                now = time.monotonic()
                due = []
                while self._heap and self._heap[0][0] <= now:
                    entry = heapq.heappop(self._heap)
                    if entry[2] is not None:
                        self._armed.pop(entry[1], None)
                        due.append(entry[2])
                if not due:
                    self._condition.wait(self._heap[0][0] - now if self._heap else None)
                    continue
            for callback in due:
                callback()


_WATCHDOG = _Watchdog()


@contextlib.contextmanager
def _deadline(conn: psycopg.Connection, seconds: float) -> Iterator[None]:
    """Bounds every wait on ``conn`` inside the block: when ``seconds`` pass, a cancel request for
    the running statement is sent to the server (beside, bounded by CANCEL_SECONDS) and the
    connection's socket is shut down: the blocked call returns with an OperationalError and the
    pool drops the connection. Works whatever the server does (the cancel request needs it to
    answer; the cut does not)."""
    expired = threading.Event()
    guard = threading.Lock()  # the cut never reaches a connection once the block is left
    left = False

    def cut() -> None:
        with guard:
            if left:
                return
            expired.set()
            _cancel_in_background(conn)
            try:
                fd = conn.pgconn.socket
                with socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM) as duplicate:
                    duplicate.shutdown(socket.SHUT_RDWR)
            except Exception:  # already closed: nothing is waiting any more
                pass

    armed = _WATCHDOG.arm(seconds, cut)
    try:
        yield
    except psycopg.OperationalError as error:
        if expired.is_set():
            raise SourceUnavailable(f"no answer from the database within {seconds:g} s") from error
        raise
    finally:
        _WATCHDOG.disarm(armed)
        with guard:
            left = True


def _cancel_in_background(conn: psycopg.Connection) -> None:
    """Sends a cancel request for what ``conn`` runs, from a thread of its own, so that the server
    stops the statement even though the client gave up on it (a statement lives on the server
    after its client is gone until it tries to answer). The request's token is taken now, while
    the connection is open."""
    try:
        if psycopg.capabilities.has_cancel_safe():
            token: Any = conn.pgconn.cancel_conn()
            send = _poll_cancel
        else:  # libpq < 17: the blocking request, bounded only by the server's answer
            token, send = conn.pgconn.get_cancel(), _blocking_cancel
    except Exception:  # already closed: nothing runs any more
        return
    threading.Thread(target=send, args=(token,), name="ent-exporter-cancel", daemon=True).start()


def _poll_cancel(token: Any) -> None:
    """Drives a libpq cancel connection (PQcancelStart/PQcancelPoll) for at most CANCEL_SECONDS."""
    until = time.monotonic() + CANCEL_SECONDS
    try:
        token.start()
        while True:
            status = token.poll()
            if status in (psycopg.pq.PollingStatus.OK, psycopg.pq.PollingStatus.FAILED):
                if status == psycopg.pq.PollingStatus.FAILED:
                    log.warning("cancelling a statement on the server failed: %s", token.get_error_message().strip())
                return
            remaining = until - time.monotonic()
            if remaining <= 0:
                log.warning("cancelling a statement on the server: no answer within %g s", CANCEL_SECONDS)
                return
            event = selectors.EVENT_READ if status == psycopg.pq.PollingStatus.READING else selectors.EVENT_WRITE
            with selectors.DefaultSelector() as selector:
                selector.register(token.socket, event)
                selector.select(remaining)
    except Exception as error:  # a failed cancel leaves the server's own statement_timeout
        log.warning("cancelling a statement on the server failed: %s", error)
    finally:
        with contextlib.suppress(Exception):
            token.finish()


def _blocking_cancel(token: Any) -> None:
    try:
        token.cancel()
    except Exception as error:
        log.warning("cancelling a statement on the server failed: %s", error)


class PostgresSource:
    """Runs collectors' statements on a read-only pool with a statement timeout."""

    def __init__(
        self,
        dsn: str,
        schema: str = "ent",
        *,
        statement_timeout_seconds: float = 60,
        connect_timeout_seconds: float = 10,
        max_connections: int = 2,
    ) -> None:
        self.schema = schema
        self.relations = {name: sql.Identifier(schema, name) for name in RELATIONS + OPTIONAL_RELATIONS}
        self._wait_seconds = connect_timeout_seconds
        # Every statement's answer is awaited at most this long (client side).
        self.answer_seconds = statement_timeout_seconds + CLIENT_MARGIN_SECONDS
        timeout_ms = int(statement_timeout_seconds * 1000)
        # Each use of a connection: a read-only transaction whose timeout is its own (SET LOCAL);
        # ended by ROLLBACK, it takes with it whatever a statement set, at session level included.
        # REPEATABLE READ: the statements of a snapshot see one state of the database (for one
        # statement alone, the same as READ COMMITTED).
        self.local_timeout = f"SET LOCAL statement_timeout = {timeout_ms}"
        self._begin = f"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; {self.local_timeout}"
        # The ROLLBACK undoes every setting made in the transaction; a session advisory lock
        # outlives it. Were the transaction already over (ended under the source), the reset.
        self._end = "ROLLBACK; SELECT pg_advisory_unlock_all()"
        self._reset = f"{RESET_SESSION}; SET default_transaction_read_only = on; SET statement_timeout = {timeout_ms}"
        self.pool = psycopg_pool.ConnectionPool(
            dsn,
            min_size=1,
            max_size=max_connections,
            open=False,
            timeout=connect_timeout_seconds,
            check=self._check,
            reconnect_timeout=RECONNECT_TIMEOUT_SECONDS,
            kwargs={
                "application_name": "ent-exporter",
                "connect_timeout": max(1, int(connect_timeout_seconds)),
                # A peer that vanished (network cut, host down) is noticed by the kernel.
                "keepalives": 1,
                "keepalives_idle": 30,
                "keepalives_interval": 10,
                "keepalives_count": 3,
                "options": f"-c default_transaction_read_only=on -c statement_timeout={timeout_ms}",
                "autocommit": True,
            },
            name="ent-exporter",
        )

    def _check(self, conn: psycopg.Connection) -> None:
        """The pool's check of a connection before lending it, bounded like a statement."""
        try:
            with _deadline(conn, self._wait_seconds):
                psycopg_pool.ConnectionPool.check_connection(conn)
        except SourceUnavailable as error:  # the pool drops the connection and takes another
            raise psycopg.OperationalError(str(error)) from error

    @property
    def connections(self) -> int:
        """How many statements it can run at once (its pool's connections)."""
        return self.pool.max_size

    def open(self) -> None:
        """Starts connecting in the background: an unreachable database does not stop the exporter."""
        self.pool.open(wait=False)

    def wait_ready(self) -> None:
        """Opens the pool and waits for a first connection (one-off runs fail fast instead of retrying)."""
        try:
            self.pool.open(wait=True, timeout=self._wait_seconds)
        except psycopg_pool.PoolTimeout as error:
            raise SourceUnavailable(f"no connection to the database within {self._wait_seconds:g} s") from error

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> PostgresSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def compose(self, query: sql.SQL, **placeholders: str | sql.Composable) -> sql.Composed:
        fill: dict[str, sql.Composable] = dict(self.relations)
        for name, value in placeholders.items():
            fill[name] = self.relations[value] if isinstance(value, str) else value
        return query.format(**fill)

    def fetch(
        self,
        query: sql.SQL,
        params: Mapping[str, Any] | Sequence[Any] | None = None,
        **placeholders: str | sql.Composable,
    ) -> list[tuple]:
        statement = self.compose(query, **placeholders)
        if isinstance(query, UntrustedSQL):  # a custom statement: in the sandbox of a transaction
            with self._transaction() as conn, _deadline(conn, self.answer_seconds):
                return conn.execute(statement, params).fetchall()
        # The exporter's own statements set nothing: one round trip, in the session's read-only default
        # (a transaction per statement cost a third more round trips on the instant cycle's small chunks).
        with self._connection() as conn, _deadline(conn, self.answer_seconds):
            return conn.execute(statement, params).fetchall()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """Statements that all see one snapshot of the database (a REPEATABLE READ, read-only
        transaction): what one of them finds missing, another does not find present."""
        with self._transaction() as conn:
            yield Snapshot(self, conn)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection]:
        """A pooled connection in its read-only transaction; then, whatever happened, the
        transaction rolled back and the session reset (one round trip), or the connection closed
        if that cannot be done, so that the pool never lends it again."""
        with self._connection() as conn:
            try:
                with _deadline(conn, self.answer_seconds):
                    conn.execute(self._begin)
                yield conn
            finally:
                if not conn.closed:
                    try:
                        with _deadline(conn, self._wait_seconds):
                            ended = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                            conn.execute(self._reset if ended else self._end)  # (read only: nothing to commit)
                    except Exception:  # not reset: not lent again (the pool opens another)
                        conn.close()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection; unreachable, frozen or lost databases become SourceUnavailable."""
        try:
            with self.pool.connection(timeout=self._wait_seconds) as conn:
                yield conn
        except psycopg_pool.PoolTimeout as error:
            raise SourceUnavailable(f"no connection to the database within {self._wait_seconds:g} s") from error
        except psycopg.errors.QueryCanceled:
            raise  # statement_timeout: the query is too slow, the database is up
        except psycopg.OperationalError as error:
            raise SourceUnavailable(str(error).strip()) from error


class Snapshot:
    """The ``fetch`` of a source, inside one transaction snapshot (see PostgresSource.snapshot)."""

    def __init__(self, source: PostgresSource, conn: psycopg.Connection) -> None:
        self.source = source
        self.schema, self.relations = source.schema, source.relations
        self._conn = conn
        self._after_untrusted = False

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """Already in one snapshot: itself."""
        yield self

    def fetch(
        self,
        query: sql.SQL,
        params: Mapping[str, Any] | Sequence[Any] | None = None,
        **placeholders: str | sql.Composable,
    ) -> list[tuple]:
        statement = self.source.compose(query, **placeholders)
        with _deadline(self._conn, self.source.answer_seconds):
            if self._after_untrusted:  # its own timeout again: a custom statement before may have changed it
                self._conn.execute(self.source.local_timeout)
            self._after_untrusted = isinstance(query, UntrustedSQL)
            return self._conn.execute(statement, params).fetchall()
