"""The demo's synthetic ENT: a deterministic history of structures, accounts and events.

Same arguments and seed give byte-identical rows. The shape is that of a French ENT:
UAI-coded structures (a few big lycées, many small écoles), Edifice profile names, logins
that follow the school day in Europe/Paris time (quiet nights, peaks at 8h and 17-20h,
Wednesday afternoons and weekends low, one holiday week), applications with a long-tail
popularity, and connectors with lognormal latencies, one of them ("pronote") failing in
bursts. A few events come from users without an account row or carry no profile, so the
``unknown`` attribution has something to count.

Rows go in through ``COPY ... FROM STDIN`` in large text blocks with explicit event ids
that grow with ``occurred_at``; the identity sequences are then moved past them so later
inserts (the live generator) continue the ids.
"""

from __future__ import annotations

import math
import tempfile
import time
import uuid
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from operator import itemgetter
from random import Random
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from ent_exporter.engine import clock as clocks

PARIS = ZoneInfo("Europe/Paris")

# Bumped whenever the generator's output changes, so ensure_seeded() reseeds old data.
GENERATOR_VERSION = "1"
DEFAULT_SEED = 20261123

BASE_STRUCTURES = 20
BASE_USERS = 20_000

EVENT_TABLES = ("login_events", "app_access_events", "connector_events")
TABLES = ("structures", "accounts", *EVENT_TABLES)

# -- the population -------------------------------------------------------------------------

PROFILES = ("Student", "Relative", "Teacher", "Personnel", "Guest")
PROFILE_SHARES = (0.55, 0.30, 0.09, 0.04, 0.02)
# Share of accounts never activated: relatives are the ones who do not bother.
PENDING_SHARE = {"Student": 0.10, "Relative": 0.32, "Teacher": 0.04, "Personnel": 0.07, "Guest": 0.25}
# Share of users attached to a second structure (a teacher in two schools, a parent of two pupils).
SECOND_STRUCTURE_SHARE = {"Student": 0.0, "Relative": 0.04, "Teacher": 0.03, "Personnel": 0.02, "Guest": 0.0}
NEVER_LOGS_IN_SHARE = 0.10  # activated, then never came back
LAPSED_SHARE = 0.10  # active in the older part of the history only: inactive 30 days at the end
LAPSE_DAYS = 35
NEW_ACCOUNT_SHARE = 0.12  # created during the history (the rest years before it)

# Structure kinds in the order they are handed out, so even a tiny scale gets a lycée, a collège and écoles.
KIND_CYCLE = (
    "lycee",
    "college",
    "ecole",
    "ecole",
    "college",
    "ecole",
    "ecole",
    "college",
    "ecole",
    "lycee",
    "ecole",
    "college",
    "ecole",
    "college",
    "ecole",
    "ecole",
    "college",
    "ecole",
    "lycee",
    "college",
)
KIND_SIZE = {"lycee": 3.0, "college": 1.6, "ecole": 0.45}  # relative number of users
KIND_PREFIX = {
    "lycee": ("Lycée",),
    "college": ("Collège",),
    "ecole": ("École élémentaire", "École primaire", "École maternelle"),
}
NAMESAKES = (
    "Jean Moulin",
    "Victor Hugo",
    "Jules Ferry",
    "Marie Curie",
    "Louise Michel",
    "Jean Jaurès",
    "Simone Veil",
    "Albert Camus",
    "Jacques Prévert",
    "Paul Éluard",
    "Condorcet",
    "Voltaire",
    "Olympe de Gouges",
    "Jean de La Fontaine",
    "George Sand",
    "Antoine de Saint-Exupéry",
    "Louis Pasteur",
    "Émile Zola",
    "Molière",
    "Colette",
    "Joséphine Baker",
    "Gustave Eiffel",
    "Pierre et Marie Curie",
    "Jean Rostand",
    "Henri Matisse",
    "Camille Claudel",
    "Frédéric Mistral",
    "Marcel Pagnol",
    "Jean Macé",
    "Paul Langevin",
    "Lucie Aubrac",
    "Rosa Parks",
    "Nelson Mandela",
    "Alexandre Dumas",
    "Jules Verne",
    "Charles Péguy",
    "Léonard de Vinci",
    "Montaigne",
    "Blaise Pascal",
    "Germaine Tillion",
)
TOWNS = (
    "Paris",
    "Lyon",
    "Marseille",
    "Toulouse",
    "Lille",
    "Nantes",
    "Rennes",
    "Bordeaux",
    "Strasbourg",
    "Dijon",
    "Besançon",
    "Limoges",
    "Poitiers",
    "Amiens",
    "Rouen",
    "Caen",
    "Orléans",
    "Tours",
    "Nancy",
    "Metz",
)
DEPARTMENTS = ("075", "092", "093", "094", "069", "013", "031", "059", "033", "067", "044", "035", "021", "025")
UAI_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"  # the UAI check letter: the 7-digit number modulo 23

# -- logins -------------------------------------------------------------------------------

# Logins per user and school day, for a user of average activity.
DAILY_LOGINS = {"Student": 0.65, "Relative": 0.42, "Teacher": 1.35, "Personnel": 1.2, "Guest": 0.25}
RHYTHM = {"Student": "pupil", "Relative": "family", "Teacher": "staff", "Personnel": "staff", "Guest": "family"}
# Relative login intensity per local hour 0..23 on a school day.
SCHOOL_DAY_HOURS = {
    "pupil": (
        0.02,
        0.01,
        0.005,
        0.004,
        0.004,
        0.01,
        0.08,
        0.6,
        1.0,
        0.45,
        0.4,
        0.45,
        0.6,
        0.5,
        0.4,
        0.45,
        0.6,
        0.85,
        0.95,
        0.9,
        0.7,
        0.4,
        0.15,
        0.05,
    ),
    "family": (
        0.02,
        0.005,
        0.003,
        0.003,
        0.003,
        0.01,
        0.1,
        0.45,
        0.55,
        0.25,
        0.2,
        0.2,
        0.35,
        0.3,
        0.2,
        0.2,
        0.35,
        0.7,
        0.95,
        1.0,
        0.9,
        0.6,
        0.3,
        0.08,
    ),
    "staff": (
        0.01,
        0.003,
        0.003,
        0.003,
        0.003,
        0.01,
        0.15,
        0.8,
        1.0,
        0.6,
        0.55,
        0.5,
        0.6,
        0.55,
        0.5,
        0.45,
        0.5,
        0.6,
        0.55,
        0.45,
        0.45,
        0.35,
        0.15,
        0.04,
    ),
}
DAY_OFF_HOURS = (
    0.03,
    0.015,
    0.005,
    0.005,
    0.005,
    0.005,
    0.02,
    0.05,
    0.15,
    0.35,
    0.5,
    0.55,
    0.4,
    0.35,
    0.45,
    0.5,
    0.55,
    0.65,
    0.75,
    0.8,
    0.7,
    0.5,
    0.25,
    0.08,
)
WEDNESDAY_AFTERNOON = range(12, 18)
WEDNESDAY_AFTERNOON_FACTOR = {"pupil": 0.3, "family": 0.6, "staff": 0.3}
# A day off's logins as a share of a school day's.
WEEKEND_VOLUME = {"pupil": 0.25, "family": 0.4, "staff": 0.15}
HOLIDAY_VOLUME = {"pupil": 0.3, "family": 0.3, "staff": 0.35}
SUNDAY_EVENING = range(17, 22)  # homework and next week's timetable
SUNDAY_EVENING_FACTOR = 1.4
DAY_NOISE_SIGMA = 0.08

UNKNOWN_USER_SHARE = 0.005  # logins of user ids without an account row
NO_PROFILE_SHARE = 0.002  # logins logged with a NULL or empty profile
UNKNOWN_USER_PROFILES = (*PROFILES, "\\N", "")  # as COPY text: NULL and empty included

# -- applications -------------------------------------------------------------------------

APPS = (
    "pronote",
    "messagerie",
    "cahier-de-textes",
    "espace-documentaire",
    "actualites",
    "blog",
    "agenda",
    "moodle",
    "mediacentre",
    "wiki",
    "forum",
    "exercizer",
    "collaborative-wall",
    "timeline",
    "rack",
)
# Popularity per profile, in APPS order: a long tail led by Pronote and the mailbox.
APP_POPULARITY = {
    "Student": (30, 12, 15, 8, 4, 3, 3, 8, 6, 1.5, 1, 5, 2, 3, 1),
    "Relative": (45, 20, 8, 2, 10, 5, 6, 0.5, 0.5, 0.3, 1, 0.2, 0.5, 3, 0.2),
    "Teacher": (22, 15, 15, 10, 2, 2, 3, 8, 7, 1.5, 1, 5, 4, 1, 4),
    "Personnel": (10, 30, 2, 10, 12, 3, 15, 1, 1, 5, 2, 0.2, 1, 4, 6),
    "Guest": (2, 10, 0.5, 5, 30, 20, 10, 0.5, 0.5, 3, 5, 0.2, 1, 10, 0.5),
}
# How many applications a login opens: distribution over 0..4.
APPS_PER_LOGIN = {
    "Student": (0.25, 0.4, 0.2, 0.1, 0.05),
    "Relative": (0.2, 0.55, 0.2, 0.05, 0),
    "Teacher": (0.1, 0.35, 0.3, 0.15, 0.1),
    "Personnel": (0.15, 0.4, 0.25, 0.15, 0.05),
    "Guest": (0.4, 0.45, 0.15, 0, 0),
}
APP_GAP_SECONDS = (5, 240)  # between a login and its first app, and between apps

# -- connectors ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectorModel:
    median_ms: float
    sigma: float  # of the lognormal latency
    failure_ratio: float


CONNECTORS = {
    "ldap": ConnectorModel(20, 0.5, 0.002),
    "cas": ConnectorModel(60, 0.6, 0.005),
    "saml": ConnectorModel(120, 0.6, 0.005),
    "pronote": ConnectorModel(400, 0.9, 0.01),
    "gar": ConnectorModel(250, 0.6, 0.01),
}
FLAKY_CONNECTOR = "pronote"
# Login authentication: most sessions reuse a token, the rest go through one of these.
AUTH_CONNECTORS = (None, "ldap", "cas", "saml")
AUTH_WEIGHTS = (0.70, 0.12, 0.12, 0.06)
APP_CONNECTOR = {"pronote": "pronote", "mediacentre": "gar"}  # every opening calls the connector
NO_STRUCTURE_SHARE = 0.05  # calls made before the user's structure is known
TIMEOUT_MS = 10_000
BURST_FAILURE_RATIO = 0.75
BURST_MINUTES = (20, 60)
FIRST_BURST_MINUTES = 45  # long enough to show in any 30-minute window


# -- public API ---------------------------------------------------------------------------


@dataclass
class SeedSummary:
    """What seed() wrote (or ensure_seeded() found): rows per table and how fast it went."""

    counts: dict[str, int]
    elapsed_seconds: float
    events_per_second: float
    seeded: bool = True  # False when ensure_seeded() reused existing data
    start: datetime | None = None
    end: datetime | None = None
    parameters: dict[str, str] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return sum(self.counts.get(table, 0) for table in EVENT_TABLES)

    def describe(self) -> str:
        span = ""
        if self.start and self.end:
            span = f" from {self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC"
        what = (
            f"{self.counts.get('structures', 0):,} structures, {self.counts.get('accounts', 0):,} accounts,"
            f" {self.events:,} events{span}"
        )
        if not self.seeded:
            return f"reused {what}"
        return f"seeded {what} in {self.elapsed_seconds:.1f} s ({self.events_per_second:,.0f} events/s)"


def seed(
    conn: psycopg.Connection,
    schema: str = "ent",
    *,
    scale: float = 1.0,
    days: int = 60,
    end: datetime | None = None,
    random_seed: int = DEFAULT_SEED,
    progress: bool = True,
    structures: int | None = None,
    accounts: int | None = None,
    events: int | None = None,
) -> SeedSummary:
    """Replaces the content of the contract's tables in ``schema`` with a synthetic ENT.

    The tables must exist (``ent_exporter.sources.tables.create_contract_tables``); they are
    truncated first. Rows, sequence positions and the ``demo_meta`` marker are written in
    one transaction, committed before returning. ``end`` defaults to now, to the minute.

    ``structures`` and ``accounts`` ask for exact row counts instead of ``scale`` (which
    then sizes nothing else); ``events`` asks for that many events in all (logins, app
    accesses and connector calls, within about 1%: the login rate is scaled to it). The
    shape (profiles, rhythms, apps, connectors) stays the same.
    """
    params = _parameters(scale, days, end, random_seed, structures, accounts, events)
    began = time.perf_counter()
    history = History(params)
    with conn.transaction(), conn.cursor() as cursor:
        _truncate(cursor, schema)
        counts = {
            "structures": _copy_lines(
                cursor, schema, "structures", ("structure_id", "name", "kind"), history.structure_lines()
            ),
            "accounts": _copy_lines(
                cursor,
                schema,
                "accounts",
                ("user_id", "structure_id", "profile", "created_at", "activated_at"),
                history.account_lines(),
            ),
        }
        counts.update(_copy_events(cursor, schema, history, progress))
        _continue_identities(cursor, schema, counts)
        elapsed = time.perf_counter() - began
        events = sum(counts[table] for table in EVENT_TABLES)
        summary = SeedSummary(
            counts, elapsed, events / elapsed if elapsed > 0 else 0.0, True, params.start, params.end, params.stored()
        )
        _write_marker(cursor, schema, summary)
    if not conn.autocommit:
        conn.commit()
    return summary


def ensure_seeded(
    conn: psycopg.Connection,
    schema: str = "ent",
    *,
    scale: float = 1.0,
    days: int = 60,
    end: datetime | None = None,
    random_seed: int = DEFAULT_SEED,
    progress: bool = True,
    structures: int | None = None,
    accounts: int | None = None,
    events: int | None = None,
) -> SeedSummary:
    """Seeds unless ``schema`` already holds data seeded with the same parameters.

    ``end=None`` accepts whatever end the existing data has (a restarted demo keeps its
    history); other differences truncate and reseed.
    """
    stored = read_marker(conn, schema)
    wanted = _parameters(scale, days, end or clocks.SYSTEM.now(), random_seed, structures, accounts, events).stored()
    compared = [key for key in wanted if end is not None or key not in ("start", "end")]
    if stored and all(stored.get(key) == wanted[key] for key in compared):
        if not conn.autocommit:
            conn.commit()  # end the read's transaction, as seed() would have
        return SeedSummary(
            counts={table: int(stored.get(f"rows.{table}", 0)) for table in TABLES},
            elapsed_seconds=0.0,
            events_per_second=0.0,
            seeded=False,
            start=datetime.fromisoformat(stored["start"]),
            end=datetime.fromisoformat(stored["end"]),
            parameters={key: value for key, value in stored.items() if not key.startswith("rows.")},
        )
    return seed(
        conn,
        schema,
        scale=scale,
        days=days,
        end=end,
        random_seed=random_seed,
        progress=progress,
        structures=structures,
        accounts=accounts,
        events=events,
    )


def read_marker(conn: psycopg.Connection, schema: str = "ent") -> dict[str, str]:
    """The demo_meta rows of ``schema`` as a dict ({} when the demo never seeded it)."""
    table = sql.Identifier(schema, "demo_meta")
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table.as_string(conn),)).fetchone()
    assert row is not None  # (one row, always)
    exists = row[0]
    if not exists:
        return {}
    return dict(conn.execute(sql.SQL("SELECT key, value FROM {}").format(table)).fetchall())


# -- parameters ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Parameters:
    scale: float
    days: int
    start: datetime
    end: datetime
    random_seed: int
    # Exact sizes asked for instead of ``scale`` (None: sized by scale, as the demo is).
    structures: int | None = None
    accounts: int | None = None
    events: int | None = None

    def stored(self) -> dict[str, str]:
        stored = {
            "generator_version": GENERATOR_VERSION,
            "scale": repr(self.scale),
            "days": str(self.days),
            "random_seed": str(self.random_seed),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }
        for key in ("structures", "accounts", "events"):
            if getattr(self, key) is not None:
                stored[key] = str(getattr(self, key))
        return stored

    def rng(self, *stream: object) -> Random:
        """An independent, reproducible random stream (string seeds hash with SHA-512, not hash())."""
        return Random(":".join(map(str, ("ent-demo", self.random_seed, *stream))))


def _parameters(
    scale: float,
    days: int,
    end: datetime | None,
    random_seed: int,
    structures: int | None = None,
    accounts: int | None = None,
    events: int | None = None,
) -> Parameters:
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    for name, value, least in (("structures", structures, 1), ("accounts", accounts, 1), ("events", events, 0)):
        if value is not None and value < least:
            raise ValueError(f"{name} must be at least {least}, got {value!r}")
    if structures is not None and accounts is not None and accounts < structures:
        raise ValueError(f"accounts ({accounts}) must be at least structures ({structures}): one user each at least")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days!r}")
    if end is None:
        end = clocks.SYSTEM.now()
    elif end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    end = end.astimezone(UTC).replace(second=0, microsecond=0)
    return Parameters(
        float(scale), int(days), end - timedelta(days=days), end, int(random_seed), structures, accounts, events
    )


# -- the synthetic ENT --------------------------------------------------------------------


@dataclass(frozen=True)
class Structure:
    structure_id: str
    name: str
    kind: str
    size: float  # relative number of users


@dataclass
class DayEvents:
    """The events caused by one local day's logins, each (epoch seconds, row text after the
    timestamp). App accesses and calls follow their login by minutes: a few spill into the next day."""

    bursts: list[tuple[int, int]]  # the flaky connector's failure windows that touch the day
    logins: list[tuple[int, str]] = field(default_factory=list)
    apps: list[tuple[int, str]] = field(default_factory=list)
    calls: list[tuple[int, str]] = field(default_factory=list)

    def by_table(self) -> dict[str, list[tuple[int, str]]]:
        return {"login_events": self.logins, "app_access_events": self.apps, "connector_events": self.calls}


class History:
    """The population and its events, generated day by day from reproducible random streams."""

    def __init__(self, params: Parameters) -> None:
        self.params = params
        self.start_t = int(params.start.timestamp())
        self.end_t = int(params.end.timestamp())
        self.lapse_t = self.end_t - LAPSE_DAYS * 86400
        count = params.structures if params.structures is not None else max(1, round(BASE_STRUCTURES * params.scale))
        self.structures = make_structures(params.rng("structures"), count)
        self.holiday_week = _holiday_week(params)
        if params.accounts is None:
            self._make_users(params.rng("users"))
        else:
            self._make_exact_users(params.rng("users"), params.accounts)
        self._make_login_pools()
        # Multiplies every login rate: 1 for the demo, fitted when a number of events is asked for.
        self.activity = 1.0
        self.unknown_users = [_uuid(params.rng("unknown")) for _ in range(max(10, len(self.user_ids) // 100))]
        self.bursts = failure_bursts(
            params.rng("bursts"), self.local_dates(), self.holiday_week, self.start_t, self.end_t
        )
        if params.events is not None:
            expected = self.expected_events()
            self.activity = params.events / expected if expected > 0 else 0.0

    # users are kept in parallel lists indexed by user number: the event loops are hot
    def _make_users(self, rng: Random) -> None:
        total = BASE_USERS * self.params.scale
        weight_sum = sum(s.size for s in self.structures)
        self.user_ids: list[str] = []
        self.profiles: list[str] = []
        self.attachments: list[tuple[str, ...]] = []
        self.created: list[int] = []
        self.activated: list[float] = []  # epoch seconds, math.inf when pending
        self.weights: list[float] = []  # expected logins relative to the profile's average user
        self.lapsed: list[bool] = []
        for structure in self.structures:
            count = max(5, round(total * structure.size / weight_sum))
            for profile in rng.choices(PROFILES, PROFILE_SHARES, k=count):
                self._add_user(rng, profile, structure)

    def _make_exact_users(self, rng: Random, accounts: int) -> None:
        """Exactly ``accounts`` account rows: users spread over the structures by size (largest
        remainder, at least one each), a few attached to a second structure as usual, then the
        count trimmed or topped up with single-structure users to the exact number."""
        if accounts < len(self.structures):
            raise ValueError(
                f"accounts ({accounts}) must be at least the number of structures ({len(self.structures)})"
            )
        self.user_ids, self.profiles, self.attachments = [], [], []
        self.created, self.activated, self.weights, self.lapsed = [], [], [], []
        second = sum(share * SECOND_STRUCTURE_SHARE[p] for p, share in zip(PROFILES, PROFILE_SHARES))
        users = max(len(self.structures), round(accounts / (1 + second)))
        weight_sum = sum(s.size for s in self.structures)
        quotas = [1 + (users - len(self.structures)) * s.size / weight_sum for s in self.structures]
        counts = [int(q) for q in quotas]
        by_remainder = sorted(range(len(quotas)), key=lambda i: (counts[i] - quotas[i], i))
        for i in by_remainder[: users - sum(counts)]:
            counts[i] += 1
        for structure, count in zip(self.structures, counts):
            for profile in rng.choices(PROFILES, PROFILE_SHARES, k=count):
                self._add_user(rng, profile, structure)
        rows = sum(len(attached) for attached in self.attachments)
        for u in reversed(range(len(self.attachments))):  # too many: fewer second attachments
            if rows <= accounts:
                break
            if len(self.attachments[u]) > 1:
                self.attachments[u] = self.attachments[u][:1]
                rows -= 1
        number = 0
        while rows < accounts:  # too few: more users, structure after structure
            self._add_user(
                rng, rng.choices(PROFILES, PROFILE_SHARES)[0], self.structures[number % len(self.structures)]
            )
            self.attachments[-1] = self.attachments[-1][:1]
            rows += 1
            number += 1

    def expected_events(self) -> float:
        """How many events day_events() writes on average over the history (at activity 1):
        the login rates of every hour, less the logins of accounts not activated yet, plus the
        app openings and connector calls that follow them."""
        follow = {}
        for profile in PROFILES:
            apps = sum(n * share for n, share in enumerate(APPS_PER_LOGIN[profile]))
            popularity = APP_POPULARITY[profile]
            with_call = sum(w for app, w in zip(APPS, popularity) if app in APP_CONNECTOR) / sum(popularity)
            auth = sum(w for c, w in zip(AUTH_CONNECTORS, AUTH_WEIGHTS) if c is not None) / sum(AUTH_WEIGHTS)
            follow[profile] = 1 + apps + auth + apps * with_call
        activation = {}  # per pool: activation times in order and the cumulative weight activated by then
        for key, (members, _) in self.pools.items():
            ordered = sorted(members, key=lambda u: self.activated[u])
            activation[key] = (
                [self.activated[u] for u in ordered],
                [0.0, *accumulate(self.weights[u] for u in ordered)],
            )
        total = 0.0
        for day in self.local_dates():
            day_factor = self.params.rng("day", day.isoformat()).lognormvariate(0, DAY_NOISE_SIGMA)
            kind = day_kind(day, self.holiday_week)
            hour_starts = _hour_starts(day)
            for hour in range(24):
                begin, end = hour_starts[hour], hour_starts[hour + 1]
                if end <= self.start_t or begin > self.end_t:  # as day_events() skips them
                    continue
                # The share of the hour within the history (an hour of length 0, on the day
                # the clocks go back, still gets its logins, all at its start).
                inside = (min(end, self.end_t) - max(begin, self.start_t)) / (end - begin) if end > begin else 1.0
                recent = begin >= self.lapse_t
                middle = (begin + end) / 2
                for profile in PROFILES:
                    members, cumulative = self.pools[(profile, recent)]
                    if not members:
                        continue
                    times, weights = activation[(profile, recent)]
                    kept = weights[bisect_left(times, middle)] / cumulative[-1] + UNKNOWN_USER_SHARE
                    logins = (
                        cumulative[-1]
                        * DAILY_LOGINS[profile]
                        * hourly_share(profile, kind, hour)
                        * day_factor
                        * inside
                        * kept
                    )
                    total += logins * follow[profile]
        return total

    def _add_user(self, rng: Random, profile: str, home: Structure) -> None:
        attached: tuple[str, ...] = (home.structure_id,)
        if len(self.structures) > 1 and rng.random() < SECOND_STRUCTURE_SHARE[profile]:
            other = rng.choice([s for s in self.structures if s is not home])
            attached += (other.structure_id,)
        if rng.random() < NEW_ACCOUNT_SHARE:
            created = self.start_t + rng.random() * (self.end_t - self.start_t)
            activated = created + rng.expovariate(1 / (5 * 86400))
        else:
            created = self.start_t - rng.uniform(30, 3 * 365) * 86400
            activated = created + rng.expovariate(1 / (30 * 86400))
        if rng.random() < PENDING_SHARE[profile] or activated > self.end_t:
            activated = math.inf
        habit = rng.random()
        weight = 0.0 if habit < NEVER_LOGS_IN_SHARE else rng.lognormvariate(-0.5, 1.0)  # mean 1: a long tail
        self.user_ids.append(_uuid(rng))
        self.profiles.append(profile)
        self.attachments.append(attached)
        self.created.append(int(created))
        self.activated.append(math.inf if activated == math.inf else int(activated))
        self.weights.append(weight)
        self.lapsed.append(NEVER_LOGS_IN_SHARE <= habit < NEVER_LOGS_IN_SHARE + LAPSED_SHARE)

    def _make_login_pools(self) -> None:
        """Per profile and phase (before/after the lapse date): users and cumulative weights for choices()."""
        self.pools: dict[tuple[str, bool], tuple[list[int], list[float]]] = {}
        for profile in PROFILES:
            for recent in (False, True):
                members = [
                    u
                    for u, p in enumerate(self.profiles)
                    if p == profile
                    and self.activated[u] != math.inf
                    and self.weights[u] > 0
                    and not (recent and self.lapsed[u])
                ]
                self.pools[(profile, recent)] = (members, list(accumulate(self.weights[u] for u in members)))
        self.login_text = [f"{uid}\t{profile}" for uid, profile in zip(self.user_ids, self.profiles)]
        self.home = [attached[0] for attached in self.attachments]

    # -- rows --

    def structure_lines(self) -> Iterator[str]:
        for s in self.structures:
            yield f"{s.structure_id}\t{s.name}\t{s.kind}\n"

    def account_lines(self) -> Iterator[str]:
        for u, uid in enumerate(self.user_ids):
            activated = "\\N" if self.activated[u] == math.inf else timestamp_text(self.activated[u])
            created = timestamp_text(self.created[u])
            for structure_id in self.attachments[u]:
                yield f"{uid}\t{structure_id}\t{self.profiles[u]}\t{created}\t{activated}\n"

    def local_dates(self) -> list[date]:
        first = self.params.start.astimezone(PARIS).date()
        last = self.params.end.astimezone(PARIS).date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]

    def day_events(self, day: date) -> DayEvents:
        """Logins of one local day, hour by hour and profile by profile, with what follows them."""
        rng = self.params.rng("day", day.isoformat())
        kind = day_kind(day, self.holiday_week)
        day_factor = rng.lognormvariate(0, DAY_NOISE_SIGMA)
        hour_starts = _hour_starts(day)
        events = DayEvents(bursts=[(a, b) for a, b in self.bursts if a < hour_starts[24] and b > hour_starts[0]])
        for hour in range(24):
            begin, length = hour_starts[hour], hour_starts[hour + 1] - hour_starts[hour]
            if begin + length <= self.start_t or begin > self.end_t:
                continue
            recent = begin >= self.lapse_t
            for profile in PROFILES:
                members, cumulative = self.pools[(profile, recent)]
                if not members:
                    continue
                expected = (
                    cumulative[-1]
                    * DAILY_LOGINS[profile]
                    * hourly_share(profile, kind, hour)
                    * day_factor
                    * self.activity
                )
                users, texts, homes = self._who_logs_in(rng, members, cumulative, expected)
                self._sessions(rng, profile, users, texts, homes, begin, length, events)
        return events

    def _who_logs_in(
        self, rng: Random, members: list[int], cumulative: list[float], expected: float
    ) -> tuple[list[int], list[str], list[str | None]]:
        """Users drawn by activity weight, plus a few without an account (user -1): their numbers,
        their row text (user id and profile, a few with the profile missing) and home structures."""
        users = rng.choices(members, cum_weights=cumulative, k=stochastic_round(rng, expected))
        texts = [self.login_text[u] for u in users]
        for i in range(stochastic_round(rng, len(users) * NO_PROFILE_SHARE)):
            texts[i] = self.user_ids[users[i]] + ("\t\\N" if i % 2 else "\t")  # NULL or empty profile
        homes: list[str | None] = [self.home[u] for u in users]
        for _ in range(stochastic_round(rng, expected * UNKNOWN_USER_SHARE)):
            users.append(-1)
            texts.append(f"{rng.choice(self.unknown_users)}\t{rng.choice(UNKNOWN_USER_PROFILES)}")
            homes.append(None)
        return users, texts, homes

    def _sessions(
        self,
        rng: Random,
        profile: str,
        users: list[int],
        texts: list[str],
        homes: list[str | None],
        begin: int,
        length: int,
        events: DayEvents,
    ) -> None:
        """A login per user at a random second of the hour, then its app openings and connector calls."""
        random = rng.random  # hot loop: local names
        activated = self.activated
        logins, apps, calls, bursts = events.logins, events.apps, events.calls, events.bursts
        app_counts = rng.choices(range(5), APPS_PER_LOGIN[profile], k=len(users))
        opened = iter(rng.choices(APPS, APP_POPULARITY[profile], k=sum(app_counts)))
        auths = rng.choices(AUTH_CONNECTORS, AUTH_WEIGHTS, k=len(users))
        gap_low, gap_span = APP_GAP_SECONDS[0], APP_GAP_SECONDS[1] - APP_GAP_SECONDS[0]
        for user, text, home, count, auth in zip(users, texts, homes, app_counts, auths):
            t = begin + int(random() * length)
            if user >= 0 and t < activated[user]:
                for _ in range(count):  # not activated yet: no session, but keep the stream aligned
                    next(opened)
                continue
            logins.append((t, text))
            if auth is not None:
                calls.append((t, self._call(rng, auth, home, t, bursts)))
            for _ in range(count):
                t += gap_low + int(random() * gap_span)
                app = next(opened)
                apps.append((t, f"{text}\t{app}"))
                connector = APP_CONNECTOR.get(app)
                if connector is not None:
                    calls.append((t, self._call(rng, connector, home, t, bursts)))

    @staticmethod
    def _call(rng: Random, connector: str, home: str | None, t: int, bursts: list) -> str:
        """A connector call's row text after the timestamp: connector, structure, success, duration."""
        in_burst = bool(bursts) and connector == FLAKY_CONNECTOR and any(a <= t < b for a, b in bursts)
        success, duration = call_outcome(rng, connector, in_burst)
        structure = "\\N" if home is None or rng.random() < NO_STRUCTURE_SHARE else home
        return f"{connector}\t{structure}\t{'t' if success else 'f'}\t{duration:.1f}"


def call_outcome(rng: Random, connector: str, in_burst: bool = False) -> tuple[bool, float]:
    """Success and duration in ms of one call: lognormal latency when it works; when it fails,
    a timeout (always during a burst) or an immediate refusal."""
    model = CONNECTORS[connector]
    if rng.random() >= (BURST_FAILURE_RATIO if in_burst else model.failure_ratio):
        return True, model.median_ms * math.exp(model.sigma * rng.gauss())
    if in_burst or rng.random() < 0.5:
        return False, TIMEOUT_MS + rng.random() * 50
    return False, model.median_ms * 0.2 * rng.random() + 1


def stochastic_round(rng: Random, expected: float) -> int:
    """Stochastic rounding: an integer whose mean is ``expected``."""
    whole = int(expected)
    return whole + (rng.random() < expected - whole)


def _uuid(rng: Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# -- calendar -----------------------------------------------------------------------------


def day_kind(day: date, holiday_week: date | None = None) -> str:
    """school, wednesday, saturday, sunday or holiday."""
    weekday = day.isoweekday()
    if weekday == 6:
        return "saturday"
    if weekday == 7:
        return "sunday"
    if holiday_week is not None and holiday_week <= day < holiday_week + timedelta(days=7):
        return "holiday"
    return "wednesday" if weekday == 3 else "school"


def _hour_table() -> dict[tuple[str, str], tuple[float, ...]]:
    """Share of a school day's logins falling in each hour, per rhythm and kind of day."""
    table = {}
    day_off_total = sum(DAY_OFF_HOURS)
    for rhythm, hours in SCHOOL_DAY_HOURS.items():
        total = sum(hours)
        school = tuple(h / total for h in hours)
        table[(rhythm, "school")] = school
        table[(rhythm, "wednesday")] = tuple(
            share * (WEDNESDAY_AFTERNOON_FACTOR[rhythm] if hour in WEDNESDAY_AFTERNOON else 1)
            for hour, share in enumerate(school)
        )
        weekend = tuple(h / day_off_total * WEEKEND_VOLUME[rhythm] for h in DAY_OFF_HOURS)
        table[(rhythm, "saturday")] = weekend
        table[(rhythm, "sunday")] = tuple(
            share * (SUNDAY_EVENING_FACTOR if hour in SUNDAY_EVENING else 1) for hour, share in enumerate(weekend)
        )
        table[(rhythm, "holiday")] = tuple(h / day_off_total * HOLIDAY_VOLUME[rhythm] for h in DAY_OFF_HOURS)
    return table


HOUR_TABLE = _hour_table()


def hourly_share(profile: str, kind: str, hour: int) -> float:
    """Share of a school day's logins of ``profile`` that happen in ``hour`` of a day of ``kind``."""
    return HOUR_TABLE[(RHYTHM[profile], kind)][hour]


def login_rate(profile: str, moment: datetime, holiday: bool = False) -> float:
    """Expected logins per hour of an average activated user of ``profile`` at ``moment`` (Paris time)."""
    local = moment.astimezone(PARIS)
    kind = "holiday" if holiday and local.isoweekday() <= 5 else day_kind(local.date())
    return DAILY_LOGINS[profile] * hourly_share(profile, kind, local.hour)


def _hour_starts(day: date) -> list[int]:
    """Epoch seconds of each local hour of ``day``, and of the next midnight (DST days have 23 or 25 hours)."""
    starts = [int(datetime(day.year, day.month, day.day, hour, tzinfo=PARIS).timestamp()) for hour in range(24)]
    return starts + [_midnight_after(day)]


def _midnight_after(day: date) -> int:
    return int(datetime.combine(day + timedelta(days=1), datetime.min.time(), PARIS).timestamp())


def _holiday_week(params: Parameters) -> date | None:
    """The Monday of the one holiday week, 40% into the history, when the history has room for it."""
    if params.days < 28:
        return None
    middle = (params.start + timedelta(days=params.days * 0.4)).astimezone(PARIS).date()
    return middle - timedelta(days=middle.weekday())


def failure_bursts(
    rng: Random, dates: Sequence[date], holiday_week: date | None, start_t: int, end_t: int
) -> list[tuple[int, int]]:
    """A few windows on busy school days during which the flaky connector mostly fails."""
    candidates = [d for d in dates[1:-1] if day_kind(d, holiday_week) == "school"]
    if not candidates:
        return []
    chosen = sorted(rng.sample(candidates, min(len(candidates), max(2, round(len(dates) / 12)))))
    first = rng.randrange(len(chosen))
    bursts = []
    for number, day in enumerate(chosen):
        minutes = FIRST_BURST_MINUTES if number == first else rng.randint(*BURST_MINUTES)
        begin = datetime(day.year, day.month, day.day, rng.randint(9, 16), rng.randrange(60), tzinfo=PARIS)
        a = int(begin.timestamp())
        if start_t <= a and a + minutes * 60 <= end_t:
            bursts.append((a, a + minutes * 60))
    return bursts


# -- structures ---------------------------------------------------------------------------


def make_structures(rng: Random, count: int) -> list[Structure]:
    """UAI-coded schools: kinds from KIND_CYCLE, lognormal sizes around the kind's typical size."""
    namesakes = {kind: rng.sample(NAMESAKES, len(NAMESAKES)) for kind in KIND_PREFIX}
    used = {kind: 0 for kind in KIND_PREFIX}
    per_department = -(-count // len(DEPARTMENTS))
    numbers = {d: rng.sample(range(1, 10_000), per_department) for d in DEPARTMENTS}  # distinct within a department
    structures = []
    for index in range(count):
        kind = KIND_CYCLE[index % len(KIND_CYCLE)]
        department = DEPARTMENTS[index % len(DEPARTMENTS)]
        digits = f"{department}{numbers[department][index // len(DEPARTMENTS)]:04d}"
        uai = digits + UAI_LETTERS[int(digits) % 23]
        order = used[kind]
        used[kind] += 1
        name = f"{rng.choice(KIND_PREFIX[kind])} {namesakes[kind][order % len(NAMESAKES)]}"
        if order >= len(NAMESAKES):  # namesakes run out: tell them apart by town, as the ENT does
            name += f" ({TOWNS[(order // len(NAMESAKES) - 1) % len(TOWNS)]})"
        structures.append(Structure(uai, name, kind, KIND_SIZE[kind] * rng.lognormvariate(0, 0.3)))
    return structures


# -- writing ------------------------------------------------------------------------------

_SECONDS = [f"{s:02d}+00" for s in range(60)]
_minute_prefixes: dict[int, str] = {}


def timestamp_text(t: float) -> str:
    """Epoch seconds -> PostgreSQL timestamptz text in UTC ('2026-11-23 08:15:42+00'), cached per minute."""
    minute, second = divmod(int(t), 60)
    prefix = _minute_prefixes.get(minute)
    if prefix is None:
        if len(_minute_prefixes) > 500_000:
            _minute_prefixes.clear()
        prefix = _minute_prefixes[minute] = time.strftime("%Y-%m-%d %H:%M:", time.gmtime(minute * 60))
    return prefix + _SECONDS[second]


BLOCK_CHARS = 1 << 20


def _copy_lines(cursor: psycopg.Cursor, schema: str, table: str, columns: Sequence[str], lines: Iterable[str]) -> int:
    """COPYs text lines in ~1 MB blocks; returns the number of rows."""
    rows = 0
    with cursor.copy(_copy_statement(schema, table, columns)) as copy:
        block: list[str] = []
        size = 0
        for line in lines:
            block.append(line)
            size += len(line)
            if size >= BLOCK_CHARS:
                copy.write("".join(block))
                rows += len(block)
                block, size = [], 0
        if block:
            copy.write("".join(block))
            rows += len(block)
    return rows


def _copy_statement(schema: str, table: str, columns: Sequence[str]) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(schema, table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )


EVENT_COLUMNS = {
    "login_events": ("event_id", "occurred_at", "user_id", "profile"),
    "app_access_events": ("event_id", "occurred_at", "user_id", "profile", "app"),
    "connector_events": ("event_id", "occurred_at", "connector", "structure_id", "success", "duration_ms"),
}


class _EventWriter:
    """Numbers one table's events in time order and writes them as COPY text.

    Events arrive day by day, a few spilling past the day's end; ``flush(upto)`` writes
    those before ``upto``, which no later day can precede.
    """

    def __init__(self, write: Callable[[str], object], start_t: int, end_t: int) -> None:
        self.write = write
        self.start_t, self.end_t = start_t, end_t
        self.pending: list[tuple[int, str]] = []
        self.rows = 0

    def add(self, events: list[tuple[int, str]]) -> None:
        self.pending.extend(events)

    def flush(self, upto: float = math.inf) -> None:
        pending = self.pending
        pending.sort(key=_FIRST)  # stable: ties keep generation order, so output stays deterministic
        cut = bisect_left(pending, upto, key=_FIRST)
        start_t, end_t, event_id = self.start_t, self.end_t, self.rows
        lines = []
        minute, prefix = -1, ""
        for t, rest in pending[:cut]:
            if start_t <= t <= end_t:
                event_id += 1
                if t // 60 != minute:  # sorted events share minutes: format the prefix once per minute
                    minute = t // 60
                    prefix = timestamp_text(minute * 60)[:-5]
                lines.append(f"{event_id}\t{prefix}{_SECONDS[t % 60]}\t{rest}\n")
        self.rows = event_id
        if lines:
            self.write("".join(lines))
        del pending[:cut]


_FIRST = itemgetter(0)
# The table whose rows stream into COPY while the history is generated: the biggest one.
# The others wait in temporary files, since a connection runs one COPY at a time.
STREAMED_TABLE = "app_access_events"


def _copy_events(cursor: psycopg.Cursor, schema: str, history: History, progress: bool) -> dict[str, int]:
    from tqdm import tqdm

    dates = history.local_dates()
    spooled = [table for table in EVENT_TABLES if table != STREAMED_TABLE]
    spools = {table: tempfile.TemporaryFile("w+", encoding="utf-8") for table in spooled}
    try:
        with cursor.copy(_copy_statement(schema, STREAMED_TABLE, EVENT_COLUMNS[STREAMED_TABLE])) as copy:
            writers = {
                table: _EventWriter(
                    copy.write if table == STREAMED_TABLE else spools[table].write, history.start_t, history.end_t
                )
                for table in EVENT_TABLES
            }
            with tqdm(total=len(dates), desc="demo data", unit="day", disable=not progress, leave=False) as bar:
                for day in dates:
                    for table, events in history.day_events(day).by_table().items():
                        writers[table].add(events)
                        writers[table].flush(_midnight_after(day))
                    bar.update()
                    bar.set_postfix(events=f"{sum(w.rows for w in writers.values()):,}", refresh=False)
            for writer in writers.values():
                writer.flush()
        sizes = {table: spool.tell() for table, spool in spools.items()}
        with tqdm(
            total=sum(sizes.values()),
            desc="demo data: loading",
            unit="B",
            unit_scale=True,
            disable=not progress,
            leave=False,
        ) as bar:
            for table, spool in spools.items():
                spool.seek(0)
                with cursor.copy(_copy_statement(schema, table, EVENT_COLUMNS[table])) as copy:
                    while block := spool.read(BLOCK_CHARS):
                        copy.write(block)
                        bar.update(len(block))  # characters: bytes for this ASCII-only text
    finally:
        for spool in spools.values():
            spool.close()
    return {table: writer.rows for table, writer in writers.items()}


def _truncate(cursor: psycopg.Cursor, schema: str) -> None:
    cursor.execute(
        sql.SQL("TRUNCATE {} RESTART IDENTITY").format(
            sql.SQL(", ").join(sql.Identifier(schema, table) for table in TABLES)
        )
    )


def _continue_identities(cursor: psycopg.Cursor, schema: str, counts: dict[str, int]) -> None:
    """Moves each event_id sequence past the explicit ids COPY wrote, so inserts continue them."""
    for table in EVENT_TABLES:
        rows = counts[table]
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence(%s, 'event_id'), %s, %s)",
            (sql.Identifier(schema, table).as_string(cursor), max(rows, 1), rows > 0),
        )


def _write_marker(cursor: psycopg.Cursor, schema: str, summary: SeedSummary) -> None:
    table = sql.Identifier(schema, "demo_meta")
    cursor.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, value text)").format(table))
    cursor.execute(sql.SQL("DELETE FROM {}").format(table))
    values = {
        **summary.parameters,
        **{f"rows.{t}": str(n) for t, n in summary.counts.items()},
        "seeded_at": clocks.SYSTEM.now().isoformat(),
        "seed_seconds": f"{summary.elapsed_seconds:.2f}",
    }
    cursor.executemany(sql.SQL("INSERT INTO {} (key, value) VALUES (%s, %s)").format(table), list(values.items()))
