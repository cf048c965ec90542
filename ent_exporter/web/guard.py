"""The listener's bookkeeping against starvation: which connections are open, which of them have not
proven themselves yet (per peer address), which wait for a request head (the ones a full listener
closes first), and a log of refusals that says each kind at most once a minute.

Used from the event loop's thread only: no locks.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable

log = logging.getLogger("ent_exporter.web.server")

REFUSAL_LOG_INTERVAL_SECONDS = 60.0


class RefusalLog:
    """A WARNING per kind of refusal at most every ``interval`` seconds, with the number of the
    refusals of that kind not logged since the previous line."""

    def __init__(self, interval: float = REFUSAL_LOG_INTERVAL_SECONDS, monotonic: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.monotonic = monotonic
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()

    def note(self, kind: str, message: str, *args: object) -> None:
        now = self.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._suppressed[kind] += 1
            return
        suppressed = self._suppressed.pop(kind, 0)
        self._last[kind] = now
        more = f" ({suppressed} more such refusals since the last line)" if suppressed else ""
        log.warning(message + "%s", *args, more)


class Peer:
    """One open connection, as the bookkeeping sees it."""

    __slots__ = ("address", "trusted", "close", "counted")

    def __init__(self, address: str, close: Callable[[], object]) -> None:
        self.address = address
        self.trusted = False  # presented valid credentials (or, with no users, completed a request)
        self.close = close  # aborts the connection at once
        self.counted = False


class Connections:
    """Caps: ``max_open`` sockets in all; ``max_untrusted_per_peer`` connections per address that
    have not proven themselves. A full listener makes room by closing the oldest connection that
    waits for a request head (one not trusted first, then an idle keep-alive one), never one
    being answered."""

    def __init__(self, max_open: int, max_untrusted_per_peer: int, refusals: RefusalLog) -> None:
        self.max_open = max_open
        self.max_untrusted_per_peer = max_untrusted_per_peer
        self.refusals = refusals
        self.open = 0
        self.untrusted = Counter[str]()
        self._waiting_untrusted: OrderedDict[Peer, None] = OrderedDict()
        self._waiting_trusted: OrderedDict[Peer, None] = OrderedDict()

    def admit(self, peer: Peer) -> bool:
        """Whether a new connection may stay open (it is counted when it may)."""
        if self.untrusted[peer.address] >= self.max_untrusted_per_peer:
            self.refusals.note(
                "peer",
                "%s holds %d connections without credentials: closing its new ones",
                peer.address,
                self.max_untrusted_per_peer,
            )
            return False
        if self.open >= self.max_open:
            victims = self._waiting_untrusted or self._waiting_trusted
            if not victims:
                self.refusals.note(
                    "full",
                    "%d connections open, all being answered: closing a new one from %s",
                    self.open,
                    peer.address,
                )
                return False
            victim = next(iter(victims))
            self.refusals.note(
                "evicted",
                "%d connections open: closing the oldest waiting one (from %s) for a new one",
                self.open,
                victim.address,
            )
            self.release(victim)
            victim.close()
        peer.counted = True
        self.open += 1
        self.untrusted[peer.address] += 1
        self._waiting_untrusted[peer] = None
        return True

    def trust(self, peer: Peer) -> None:
        if peer.counted and not peer.trusted:
            peer.trusted = True
            self._forget_untrusted(peer.address)
            if self._waiting_untrusted.pop(peer, 0) is None:
                self._waiting_trusted[peer] = None

    def answering(self, peer: Peer) -> None:
        """A request head arrived: the connection is not closed to make room while it is answered."""
        self._waiting_untrusted.pop(peer, None)
        self._waiting_trusted.pop(peer, None)

    def waiting(self, peer: Peer) -> None:
        """The answer is sent: the connection waits for the next head (keep-alive)."""
        if peer.counted:
            (self._waiting_trusted if peer.trusted else self._waiting_untrusted)[peer] = None

    def release(self, peer: Peer) -> None:
        """The connection is closed (idempotent)."""
        if not peer.counted:
            return
        peer.counted = False
        self.open -= 1
        self.answering(peer)
        if not peer.trusted:
            self._forget_untrusted(peer.address)

    def _forget_untrusted(self, address: str) -> None:
        self.untrusted[address] -= 1
        if self.untrusted[address] <= 0:
            del self.untrusted[address]
