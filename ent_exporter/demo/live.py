"""Live events for the demo: every tick, a few logins, app openings and connector calls now.

The volume follows the seeded history's time-of-day pattern (fewer at night) but never
drops to zero, so the counters visibly move. A connector can be made to fail hard, from
the process (``set_outage``) or from another one (a file ``outage-<connector>`` in the
control directory): that is how the end-to-end alert test and a curious user break Pronote.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from random import Random

import psycopg
from psycopg import sql

from ent_exporter.demo.data import (
    APP_CONNECTOR,
    APP_POPULARITY,
    APPS,
    APPS_PER_LOGIN,
    AUTH_CONNECTORS,
    AUTH_WEIGHTS,
    CONNECTORS,
    DAILY_LOGINS,
    PROFILES,
    TIMEOUT_MS,
    call_outcome,
    hourly_share,
    login_rate,
    stochastic_round,
)
from ent_exporter.engine import clock as clocks

log = logging.getLogger(__name__)

PEAK_LOGINS_PER_SECOND = 6.0  # at the busiest hour of a school day
ACTIVATIONS_PER_SECOND = 0.05  # pending accounts that finally activate
CONNECT_TIMEOUT_SECONDS = 2

USERS = sql.SQL("""
    SELECT user_id, min(profile), min(structure_id), bool_or(activated_at IS NOT NULL AND activated_at <= %s)
    FROM {accounts} GROUP BY user_id ORDER BY user_id
""")
ACTIVATE = sql.SQL("UPDATE {accounts} SET activated_at = %s WHERE user_id = %s AND activated_at IS NULL")
INSERT_LOGIN = sql.SQL("INSERT INTO {} (user_id, profile, occurred_at) VALUES (%s, %s, %s)")
INSERT_APP = sql.SQL("INSERT INTO {} (user_id, profile, app, occurred_at) VALUES (%s, %s, %s, %s)")
INSERT_CALL = sql.SQL(
    "INSERT INTO {} (connector, structure_id, occurred_at, success, duration_ms) VALUES (%s, %s, %s, %s, %s)"
)


@dataclass
class Population:
    """Who can log in (per profile) and who could still activate, as read from ``accounts``."""

    active: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict)  # profile -> (user, structure)
    pending: list[tuple[str, str, str | None]] = field(default_factory=list)  # (user, profile, structure)

    @classmethod
    def load(cls, conn: psycopg.Connection, schema: str, now: datetime | None = None) -> Population:
        population = cls(active={profile: [] for profile in PROFILES})
        for user, profile, structure, activated in conn.execute(
            USERS.format(accounts=sql.Identifier(schema, "accounts")), (now or clocks.SYSTEM.now(),)
        ):
            if activated:
                population.active.setdefault(profile, []).append((user, structure))
            else:
                population.pending.append((user, profile, structure))
        return population


@dataclass
class Tick:
    """The rows of one tick, ready for executemany."""

    logins: list[tuple] = field(default_factory=list)
    apps: list[tuple] = field(default_factory=list)
    calls: list[tuple] = field(default_factory=list)


class LiveGenerator:
    """A daemon thread inserting events every ``interval`` seconds; survives database outages."""

    def __init__(
        self,
        dsn: str,
        schema: str = "ent",
        *,
        interval: float = 1.0,
        random_seed: int | None = None,
        control_dir: Path | None = None,
        clock: clocks.Clock | None = None,
    ) -> None:
        self.dsn = dsn
        self.clock = clock or clocks.SYSTEM  # the demo's clock may be pinned (demo --now)
        self.schema = schema
        self.interval = interval
        self.control_dir = Path(control_dir) if control_dir is not None else None
        self.rng = Random(random_seed)
        self.inserted = {"logins": 0, "apps": 0, "calls": 0, "activations": 0}
        self._outages: set[str] = set()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None
        self._population: Population | None = None
        self._healthy = True

    # -- control --

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="ent-demo-live", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def set_outage(self, connector: str, failing: bool) -> None:
        """Makes every call of ``connector`` fail from the next tick on (or work again)."""
        if failing:
            self._outages.add(connector)
        else:
            self._outages.discard(connector)

    def failing_connectors(self) -> set[str]:
        failing = set(self._outages)
        if self.control_dir is not None:
            failing.update(c for c in CONNECTORS if (self.control_dir / f"outage-{c}").exists())
        return failing

    # -- the thread --

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                began = time.monotonic()
                self._tick_quietly()
                self._stopping.wait(max(0.0, self.interval - (time.monotonic() - began)))
        finally:
            self._disconnect()

    def _tick_quietly(self) -> None:
        try:
            self.tick()
            if not self._healthy:
                log.info("live demo events: database reachable again")
            self._healthy = True
        except Exception as error:  # the demo keeps running whatever the database does
            if self._healthy:
                log.warning("live demo events paused, will retry: %s", error)
            self._healthy = False
            self._disconnect()

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                application_name="ent-exporter-demo-live",
            )
        return self._conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None

    def tick(self, now: datetime | None = None) -> Tick:
        """Generates and inserts one tick's events (public so tests can drive it without the thread)."""
        conn = self._connection()
        now = now or self.clock()
        if self._population is None:
            self._population = Population.load(conn, self.schema, now)
        tick = self.plan(self._population, now, self.failing_connectors())
        with conn.transaction():
            cursor = conn.cursor()
            self._insert(cursor, tick)
            if self.rng.random() < ACTIVATIONS_PER_SECOND * self.interval:
                self._activate_one(cursor, now)
        return tick

    def _insert(self, cursor: psycopg.Cursor, tick: Tick) -> None:
        table = lambda name: sql.Identifier(self.schema, name)  # noqa: E731
        cursor.executemany(INSERT_LOGIN.format(table("login_events")), tick.logins)
        cursor.executemany(INSERT_APP.format(table("app_access_events")), tick.apps)
        cursor.executemany(INSERT_CALL.format(table("connector_events")), tick.calls)
        self.inserted["logins"] += len(tick.logins)
        self.inserted["apps"] += len(tick.apps)
        self.inserted["calls"] += len(tick.calls)

    def _activate_one(self, cursor: psycopg.Cursor, now: datetime) -> None:
        population = self._population
        assert population is not None  # (tick() loaded it first)
        if not population.pending:
            return
        user, profile, structure = population.pending.pop(self.rng.randrange(len(population.pending)))
        cursor.execute(ACTIVATE.format(accounts=sql.Identifier(self.schema, "accounts")), (now, user))
        population.active.setdefault(profile, []).append((user, structure))
        self.inserted["activations"] += 1

    # -- what happens in a tick --

    def plan(self, population: Population, now: datetime, failing: set[str]) -> Tick:
        """Logins drawn per profile in proportion to the hour's login rate, each followed by
        its app openings and connector calls, as in the seeded history."""
        rng = self.rng
        rates = {p: len(population.active.get(p, ())) * login_rate(p, now) for p in PROFILES}
        count = max(1, stochastic_round(rng, PEAK_LOGINS_PER_SECOND * self.interval * _intensity(population, rates)))
        candidates = [p for p in PROFILES if population.active.get(p)]
        tick = Tick()
        if candidates:
            for profile in rng.choices(candidates, [rates[p] for p in candidates], k=count):
                user, structure = rng.choice(population.active[profile])
                self._session(tick, user, profile, structure, now, failing)
        else:  # nobody can log in yet: movement still, from a user without an account
            self._session(tick, "demo-unknown-user", None, None, now, failing)
        self._keep_everything_moving(tick, now, failing)
        return tick

    def _session(
        self, tick: Tick, user: str, profile: str | None, structure: str | None, now: datetime, failing: set[str]
    ) -> None:
        rng = self.rng
        tick.logins.append((user, profile, now))
        auth = rng.choices(AUTH_CONNECTORS, AUTH_WEIGHTS)[0]
        if auth is not None:
            tick.calls.append(self._call(auth, structure, now, failing))
        habits = profile if profile in APPS_PER_LOGIN else "Guest"
        opened = rng.choices(range(5), APPS_PER_LOGIN[habits])[0]
        for app in rng.choices(APPS, APP_POPULARITY[habits], k=opened):
            tick.apps.append((user, profile, app, now))
            if app in APP_CONNECTOR:
                tick.calls.append(self._call(APP_CONNECTOR[app], structure, now, failing))

    def _keep_everything_moving(self, tick: Tick, now: datetime, failing: set[str]) -> None:
        """At least one app opening and one call of every connector per tick (directory syncs,
        health checks): every counter moves even at night, which the outage alerts rely on."""
        if not tick.apps:
            user, profile, _ = tick.logins[0]
            habits = profile if profile in APP_POPULARITY else "Guest"
            tick.apps.append((user, profile, self.rng.choices(APPS, APP_POPULARITY[habits])[0], now))
        called = {call[0] for call in tick.calls}
        for connector in CONNECTORS:
            if connector not in called:
                tick.calls.append(self._call(connector, None, now, failing))

    def _call(self, connector: str, structure: str | None, now: datetime, failing: set[str]) -> tuple:
        if connector in failing:
            success, duration = False, TIMEOUT_MS + self.rng.random() * 50
        else:
            success, duration = call_outcome(self.rng, connector)
        return connector, structure, now, success, round(duration, 1)


def _intensity(population: Population, rates: dict[str, float]) -> float:
    """Current login rate relative to the busiest hour of a school day, in (0, 1]."""
    users = {p: len(population.active.get(p, ())) for p in PROFILES}
    peak = max(
        sum(users[p] * DAILY_LOGINS[p] * hourly_share(p, "school", hour) for p in PROFILES) for hour in range(24)
    )
    return min(1.0, sum(rates.values()) / peak) if peak > 0 else 1.0
