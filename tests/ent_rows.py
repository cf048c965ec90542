"""Raw ENT rows for the window collectors' tests, and the truth computed from them in plain Python.

The rows are generated from a seeded ``random.Random`` and hold the cases the definitions
turn on: users attached to two structures (one with a different profile and activation
state in each), users without an account, NULL and empty profiles, pending accounts and
accounts activated in the future, logins under several profiles, logins without a user,
and logins placed exactly on every window edge and around both Europe/Paris DST changes.

Every ``expected_*`` function reads only these rows: no SQL, so a test compares the
collectors' statements with an independent computation. All instants are UTC datetimes
(comparing aware datetimes of one DST zone in Python ignores ``fold``).
"""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from random import Random
from zoneinfo import ZoneInfo

import psycopg

from ent_exporter.engine.collector import HistogramValue
from ent_exporter.sources.postgres import PostgresSource
from tests.support import copy_rows

PARIS = ZoneInfo("Europe/Paris")
MICROSECOND = timedelta(microseconds=1)
ACCOUNT_PROFILES = ["Teacher", "Student", "Student", "Relative", "Personnel", None, ""]
LOGIN_COUNT_BUCKETS = (0, 1, 2, 5, 10, 20, 50)


def paris(*args: int, fold: int = 0) -> datetime:
    """A Europe/Paris wall-clock time as a UTC instant (fold=1: the second of an ambiguous hour)."""
    return datetime(*args, tzinfo=PARIS, fold=fold).astimezone(UTC)


@dataclass
class EntRows:
    structures: list[tuple] = field(default_factory=list)  # structure_id, name, kind
    accounts: list[tuple] = field(default_factory=list)  # user_id, structure_id, profile, created_at, activated_at
    logins: list[tuple] = field(default_factory=list)  # user_id, profile, occurred_at


# -- calendar, in plain Python ---------------------------------------------------------------


def local_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=PARIS).astimezone(UTC)


def periods_to_date(now: datetime) -> dict[str, tuple[datetime, datetime]]:
    """period -> [start, end] inclusive of now: local midnight, Monday 00:00, the 1st 00:00."""
    today = now.astimezone(PARIS).date()
    return {
        "day": (local_midnight(today), now),
        "week": (local_midnight(today - timedelta(days=today.isoweekday() - 1)), now),
        "month": (local_midnight(today.replace(day=1)), now),
    }


def previous_month(now: datetime) -> dict[str, tuple[datetime, datetime]]:
    """The last closed month as [start, end] inclusive: its 1st 00:00 to the last microsecond."""
    first = now.astimezone(PARIS).date().replace(day=1)
    start = local_midnight((first - timedelta(days=1)).replace(day=1))
    return {"previous_month": (start, local_midnight(first) - MICROSECOND)}


def month_a_year_earlier(now: datetime) -> dict[str, tuple[datetime, datetime]]:
    """The month to date's calendar days a year earlier as [start, end] inclusive: the 1st 00:00 a year back
    to the same local date and time a year back; on a 29 February, the whole February before."""
    local = now.astimezone(PARIS)
    start = local_midnight(date(local.year - 1, local.month, 1))
    if (local.month, local.day) == (2, 29):
        return {"month_a_year_earlier": (start, local_midnight(date(local.year - 1, 3, 1)) - MICROSECOND)}
    same = datetime(
        local.year - 1, local.month, local.day, local.hour, local.minute, local.second, local.microsecond, tzinfo=PARIS
    )
    return {"month_a_year_earlier": (start, same.astimezone(UTC))}


# -- the rows --------------------------------------------------------------------------------


def generate(seed: int, instants: Iterable[datetime]) -> EntRows:
    """Rows spanning a year, dense around the given instants and on each of their window edges."""
    rng = Random(seed)
    rows = EntRows(
        structures=[
            ("S1", "Collège Jean Moulin", "college"),
            ("S2", "Lycée Victor Hugo", "lycee"),
            ("S3", "École du Centre", None),
            ("S4", "", "ecole"),
        ]
    )  # S9 appears in accounts only: discovered from the data, with no structure_info
    structure_ids = ["S1", "S2", "S3", "S4", "S9"]
    first_day, last_day = paris(2025, 11, 1), paris(2026, 11, 25)

    def anytime(start: datetime, end: datetime) -> datetime:
        return start + timedelta(seconds=rng.randrange(int((end - start).total_seconds())))

    def activation(created: datetime) -> datetime | None:
        fate = rng.choice(["past", "past", "past", "pending", "future"])
        if fate == "pending":
            return None
        if fate == "future":  # after some of the instants under test, before others
            return anytime(paris(2026, 3, 1), paris(2026, 12, 31))
        return anytime(created, paris(2026, 2, 1))

    profiles_of: dict[str, list] = defaultdict(list)
    for number in range(48):
        user = f"u{number:02d}"
        profile = rng.choice(ACCOUNT_PROFILES)
        created = anytime(paris(2025, 1, 1), paris(2025, 12, 31))
        activated = activation(created)
        for structure in rng.sample(structure_ids, 2 if number % 6 == 0 else 1):
            if number % 12 == 0:  # a second attachment may differ in profile and state
                profile, activated = rng.choice(ACCOUNT_PROFILES), activation(created)
            rows.accounts.append((user, structure, profile, created, activated))
            profiles_of[user].append(profile)
    # Spelled out: a teacher in S1 who is also staff, not yet activated, in S2; a heavy user;
    # an account activated after every instant under test.
    # A teacher who is also staff in the same structure (two profiles, one person in profile="all").
    rows.accounts += [
        ("u-two", "S1", "Teacher", paris(2025, 9, 1), paris(2025, 9, 2)),
        ("u-both", "S2", "Teacher", paris(2025, 9, 1), None),
        ("u-both", "S2", "Personnel", paris(2025, 9, 1), paris(2025, 9, 3)),
        ("u-two", "S2", "Personnel", paris(2025, 9, 1), None),
        ("u-heavy", "S3", "Student", paris(2025, 9, 1), paris(2025, 9, 1)),
        ("u-late", "S1", "Relative", paris(2025, 9, 1), paris(2026, 12, 15)),
    ]
    profiles_of["u-two"] += ["Teacher", "Personnel"]
    profiles_of["u-heavy"].append("Student")
    profiles_of["u-both"] += ["Teacher", "Personnel"]
    profiles_of["u-late"].append("Relative")

    members = sorted(profiles_of)
    guests = [f"guest{number}" for number in range(6)]  # no account row: structure "unknown"
    weights = [rng.paretovariate(1.2) for _ in members] + [1.0] * len(guests) + [0.5]

    def login(moment: datetime, user: str | None = None) -> None:
        if user is None:
            user = rng.choices(members + guests + [None], weights)[0]
        draw = rng.random()
        if draw < 0.75 and profiles_of.get(user):
            profile = rng.choice(profiles_of[user])
        elif draw < 0.9:
            profile = rng.choice(["Teacher", "Student", "Relative", "Guest"])
        else:
            profile = rng.choice([None, ""])
        rows.logins.append((user, profile, moment))

    for _ in range(4000):  # background, about 11 logins a day
        login(anytime(first_day, last_day))
    for now in instants:
        for _ in range(150):  # dense around the instant, some of them after it
            login(anytime(now - timedelta(days=3), now + timedelta(days=1)))
        edges = [now, now + MICROSECOND]
        for start, _end in (periods_to_date(now) | previous_month(now)).values():
            edges += [start, start - MICROSECOND]
        for days in (28, 30, 90):
            edges += [now - timedelta(days=days), now - timedelta(days=days) + MICROSECOND]
        for moment in edges:
            for _ in range(2):
                login(moment)
    for moment in (
        paris(2026, 3, 29, 1, 59, 59),
        paris(2026, 3, 29, 3, 0),
        paris(2026, 3, 28, 23, 30),
        paris(2026, 10, 25, 1, 59),
        paris(2026, 10, 25, 2, 30),
        paris(2026, 10, 25, 2, 30, fold=1),
        paris(2026, 10, 25, 3, 0),
    ):
        for _ in range(3):
            login(moment)
    mid_week = paris(2026, 11, 18, 15, 0)
    for now in instants:  # the two-profile user logs in under both profiles around every instant
        for hours, profile in ((1, "Teacher"), (2, "Personnel"), (26, "Personnel")):
            rows.logins.append(("u-both", profile, now - timedelta(hours=hours)))
    for number in range(55):  # one user beyond the last finite bucket over 30 days
        login(mid_week - timedelta(days=29, hours=number * 12), "u-heavy")
    rng.shuffle(rows.logins)  # insertion order must not matter
    return rows


def insert(dsn: str, rows: EntRows, schema: str = "ent") -> None:
    with psycopg.connect(dsn) as conn, conn.cursor() as cursor:
        copy_rows(
            cursor,
            schema,
            [
                ("structures", "structure_id, name, kind", rows.structures),
                ("accounts", "user_id, structure_id, profile, created_at, activated_at", rows.accounts),
                ("login_events", "user_id, profile, occurred_at", rows.logins),
            ],
        )
        cursor.execute(f"ANALYZE {schema}.accounts, {schema}.login_events")


@contextlib.contextmanager
def opened_source(dsn: str, rows: EntRows) -> Iterator[PostgresSource]:
    """``rows`` inserted into the database at ``dsn``, and the exporter's source on it, open."""
    insert(dsn, rows)
    source = PostgresSource(dsn)
    source.open()
    try:
        yield source
    finally:
        source.close()


# -- the truth -------------------------------------------------------------------------------


def fold(value) -> str:
    return value if value else "unknown"


def structures_of(rows: EntRows) -> dict[str, set[str]]:
    """user -> the structures of their attachments (a user absent from it is in "unknown")."""
    attached: dict[str, set[str]] = defaultdict(set)
    for user, structure, *_ in rows.accounts:
        attached[user].add(fold(structure))
    return attached


def known_pairs(rows: EntRows) -> set[tuple[str, str]]:
    """(structure, profile) of every account, and ("all", profile): the series a people count always has."""
    pairs = {(fold(structure), fold(profile)) for _user, structure, profile, *_ in rows.accounts}
    return pairs | {("all", profile) for _structure, profile in pairs}


def people_pairs(rows: EntRows) -> set[tuple[str, str]]:
    """known_pairs and profile="all" of each of their structures: what a count of people always has."""
    pairs = known_pairs(rows)
    return pairs | {(structure, "all") for structure, _profile in pairs}


def expected_visitors(rows: EntRows, periods: dict[str, tuple[datetime, datetime]]):
    """(ent_unique_visitors, ent_visits_per_visitor): a visitor per profile of their logins, and once
    over every profile (profile="all"); 0 for every known structure and profile without one."""
    attached = structures_of(rows)
    visitors: Counter = Counter({(*pair, period): 0 for pair in people_pairs(rows) for period in periods})
    visits: Counter = Counter()
    for period, (start, end) in periods.items():
        logins = Counter(
            (user, fold(profile))
            for user, profile, moment in rows.logins
            if user is not None and start <= moment <= end
        )
        everyone = Counter(user for user, profile, moment in rows.logins if user is not None and start <= moment <= end)
        for (user, profile), count in [*logins.items(), *(((user, "all"), n) for user, n in everyone.items())]:
            for structure in attached.get(user, {"unknown"}) | {"all"}:
                visitors[(structure, profile, period)] += 1
                visits[(structure, profile, period)] += count
    return (
        {key: float(n) for key, n in visitors.items()},
        {key: visits[key] / n if n else 0.0 for key, n in visitors.items()},
    )


def is_activated(activated_at: datetime | None, now: datetime) -> bool:
    return activated_at is not None and activated_at <= now


def exists(created_at: datetime | None, activated_at: datetime | None, now: datetime) -> bool:
    """Whether an account is one at ``now``: created by then (or activated by then)."""
    return created_at is None or created_at <= now or is_activated(activated_at, now)


def expected_accounts(rows: EntRows, now: datetime):
    """(ent_accounts, ent_account_activation_ratio). "all": users per profile, activated if any attachment
    is; profile="all": people (per structure, and platform-wide), activated if any of their attachments is."""
    counts: Counter = Counter()
    people: dict[tuple, bool] = {}  # (structure, profile, user) of the series that count people
    for user, structure, profile, created, activated_at in rows.accounts:
        if not exists(created, activated_at, now):
            continue
        activated = is_activated(activated_at, now)
        counts[(fold(structure), fold(profile), activated)] += 1
        for key in (("all", fold(profile), user), (fold(structure), "all", user), ("all", "all", user)):
            people[key] = people.get(key, False) or activated
    for (structure, profile, _user), activated in people.items():
        counts[(structure, profile, activated)] += 1
    pairs = {(structure, profile) for structure, profile, _ in counts}
    accounts, ratio = {}, {}
    for structure, profile in pairs:
        activated, pending = counts[(structure, profile, True)], counts[(structure, profile, False)]
        accounts[(structure, profile, "activated")] = float(activated)
        accounts[(structure, profile, "pending")] = float(pending)
        ratio[(structure, profile)] = activated / (activated + pending)
    return accounts, ratio


def expected_activity(rows: EntRows, now: datetime):
    """(ent_inactive_accounts, ent_user_logins_30d) over activated accounts."""

    def logins_in_last(user: str, days: int) -> int:
        since = now - timedelta(days=days)
        return sum(1 for who, _profile, moment in rows.logins if who == user and since < moment <= now)

    members: dict[tuple, set] = {pair: set() for pair in people_pairs(rows)}  # (structure, profile) -> users
    for user, structure, profile, _created, activated_at in rows.accounts:
        if is_activated(activated_at, now):
            for key in (
                (fold(structure), fold(profile)),
                ("all", fold(profile)),
                (fold(structure), "all"),
                ("all", "all"),
            ):
                members[key].add(user)
    inactive, histograms = {}, {}
    for key, users in members.items():
        last_30 = [logins_in_last(user, 30) for user in users]
        last_90 = [logins_in_last(user, 90) for user in users]
        inactive[(*key, "30")] = float(sum(1 for n in last_30 if n == 0))
        inactive[(*key, "90")] = float(sum(1 for n in last_90 if n == 0))
        histograms[key] = HistogramValue(
            buckets=[float(sum(1 for n in last_30 if n <= bound)) for bound in LOGIN_COUNT_BUCKETS],
            count=float(len(last_30)),
            sum=float(sum(last_30)),
        )
    return inactive, histograms


def expected_heatmap(rows: EntRows, now: datetime) -> dict[tuple, float]:
    """ent_logins_by_hour: the 168 cells of every known structure and of any with a login in
    (now - 28 days, now]."""
    attached = structures_of(rows)
    cells: Counter = Counter()
    for user, _profile, moment in rows.logins:
        if now - timedelta(days=28) < moment <= now:
            local = moment.astimezone(PARIS)
            for structure in attached.get(user, {"unknown"}) | {"all"}:
                cells[(structure, str(local.isoweekday()), str(local.hour))] += 1
    present = {structure for structure, _, _ in cells} | {structure for structure, _ in known_pairs(rows)}
    return {
        (structure, str(weekday), str(hour)): float(cells[(structure, str(weekday), str(hour))])
        for structure in present
        for weekday in range(1, 8)
        for hour in range(24)
    }


def expected_structure_info(rows: EntRows) -> dict[tuple, float]:
    return {(structure, name or structure, fold(kind)): 1.0 for structure, name, kind in rows.structures}
