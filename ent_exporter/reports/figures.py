"""The figures of one calendar month, for every structure and the platform at once.

Each figure is what the exporter publishes for that closed period (see docs/metrics.md), over the
month [1st 00:00, next 1st 00:00) in the platform's timezone (DST months last 743 or 745 hours):

- visitors and visits per visitor: ``ent_unique_visitors`` / ``ent_visits_per_visitor`` of the
  month (``period="previous_month"`` once it is closed), by the indicator's own statement
  (ent_exporter.indicators.visitors.PERIOD_VISITORS); per profile of the login, and ``TOTAL`` =
  distinct people over every profile;
- accounts, activated and pending, and the activation ratio: ``ent_accounts`` /
  ``ent_account_activation_ratio`` as of the month's last instant (the AccountsCollector run at that
  instant: accounts created, and activated, before the month's end); ``TOTAL`` and structure ``all``
  count distinct people;
- inactive accounts: ``ent_inactive_accounts`` as of the month's last instant (the
  ActivityCollector's one-statement count at that instant): 30 (90) days that end with the month.

What no indicator publishes per closed month is counted here, with the same attribution:

- connections: successful logins, each attributed to every structure of its user (a login
  without a user, or of a user without an account, to ``unknown``) and once to the platform
  (``all``), as ``ent_logins_total``; per local day, per profile, and by local ISO weekday ×
  hour (as ``ent_logins_by_hour``, over the month instead of 28 days);
- applications: openings per app, as ``ent_app_accesses_total``, and distinct people who opened it.

Each statement is one pass over the month's rows (or over accounts) for every structure together:
none per structure, so a month of a regional platform costs the same whether one report or a
thousand are written. A compared month (the previous one, the same one a year before) that the
source covers only in part, or not at all, is neither compared nor read (see ``coverage``); one it
covers is read for the totals a report compares, without its local days and hours.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, cast

from psycopg import sql

from ent_exporter.aggregation.periods import local_midnight, zone_name
from ent_exporter.engine import privacy
from ent_exporter.engine.collector import ALL_PROFILES, ALL_STRUCTURES, UNKNOWN, Context, Source
from ent_exporter.indicators.accounts import ACCOUNTS, AccountsCollector
from ent_exporter.indicators.activity import INACTIVE_ACCOUNTS, ActivityCollector
from ent_exporter.indicators.visitors import PERIOD_VISITORS

TOTAL = "*"  # the profile of a "distinct people over every profile" row (never a platform profile: it is folded)
JUST_BEFORE = timedelta(microseconds=1)  # timestamptz resolution: "as of the month's last instant"
INACTIVE_DAYS = (30, 90)


def _attribution(visits: str) -> str:
    """The CTE ``attribution``: each user of the CTE ``visits`` with each structure of their accounts
    ('unknown' without an account), the user's accounts looked up once."""
    return f"""attribution AS (
        SELECT visitor.user_id, coalesce(nullif(attached.structure_id, ''), 'unknown') AS structure
        FROM (SELECT DISTINCT user_id FROM {visits} WHERE user_id IS NOT NULL) AS visitor
        LEFT JOIN LATERAL (
            SELECT DISTINCT structure_id FROM {{accounts}} WHERE {{accounts}}.user_id = visitor.user_id
        ) AS attached ON true"""


# Logins of the period attributed to structures first (each user's structures looked up once, from
# the distinct users of the period), then counted in one pass over the period's rows per structure
# and local hour (a month: about 745 per structure) and per structure and profile; those are summed
# per local day and per weekday x hour. The platform (``all``) counts each login once: on its user's
# first structure's row (``first``). No group per user: the old per user x hour grouping made one
# group per login or nearly (13 million a month at the bench's month scale), spilled to disk. The
# first column says which total a row is (the BY_* codes below). People are not counted here:
# visitors are the indicator's (ent_exporter.indicators.visitors.PERIOD_VISITORS).
# ``by_time=False`` (a compared month: only its totals are shown): the per-profile totals alone, the
# same rows of the same statement without the local hours.
def _month_logins(by_time: bool) -> sql.SQL:
    hour = "date_trunc('hour', l.occurred_at AT TIME ZONE %(zone)s)" if by_time else "NULL::timestamp"
    grouping = "GROUPING SETS ((1, 2, 4), (1, 2, 3))" if by_time else "1, 2, 3"
    per_time = """
    SELECT 11, structure, NULL, local_hour::date, NULL::int, NULL::int, sum(logins)
    FROM totals WHERE local_hour IS NOT NULL GROUP BY 2, 4
    UNION ALL
    SELECT 12, structure, NULL, NULL, extract(isodow FROM local_hour)::int, extract(hour FROM local_hour)::int,
           sum(logins)
    FROM totals WHERE local_hour IS NOT NULL GROUP BY 2, 5, 6
    UNION ALL"""
    return sql.SQL(
        """
    WITH period AS (
        SELECT user_id FROM {login_events} WHERE occurred_at >= %(start)s AND occurred_at < %(end)s
    ), """
        + _attribution("period")
        + f"""
    ), attributed AS (
        SELECT user_id, structure, row_number() OVER (PARTITION BY user_id ORDER BY structure) = 1 AS first
        FROM attribution
    ), counted AS (
        SELECT coalesce(a.structure, 'unknown') AS structure,
               coalesce(a.first, true) AS first,
               coalesce(nullif(l.profile, ''), 'unknown') AS profile,
               {hour} AS local_hour,
               count(*) AS logins
        FROM {{login_events}} AS l LEFT JOIN attributed AS a ON a.user_id = l.user_id
        WHERE l.occurred_at >= %(start)s AND l.occurred_at < %(end)s
        GROUP BY {grouping}
    ), totals AS (
        SELECT structure, profile, local_hour, logins FROM counted
        UNION ALL
        SELECT 'all', profile, local_hour, logins FROM counted WHERE first
    ){per_time if by_time else ""}
    SELECT 7, structure, profile, NULL, NULL, NULL, sum(logins) FROM totals WHERE profile IS NOT NULL GROUP BY 2, 3
"""
    )


MONTH_LOGINS = _month_logins(by_time=True)
MONTH_TOTAL_LOGINS = _month_logins(by_time=False)
BY_PROFILE, BY_DAY, BY_HOUR = 7, 11, 12


# Openings of the period per user and app, attributed like logins; per structure and app.
# ``people=False`` (a compared month: only its openings are shown): the distinct people are not counted (0).
def _month_apps(people: bool) -> sql.SQL:
    return sql.SQL(
        """
    WITH per_user AS (
        SELECT user_id, coalesce(nullif(app, ''), 'unknown') AS app, count(*) AS openings
        FROM {app_access_events}
        WHERE occurred_at >= %(start)s AND occurred_at < %(end)s
        GROUP BY 1, 2
    ), """
        + _attribution("per_user")
        + f"""
    ), attributed AS (
        SELECT coalesce(attribution.structure, 'unknown') AS structure, per_user.*
        FROM per_user LEFT JOIN attribution USING (user_id)
        UNION ALL
        SELECT 'all', per_user.* FROM per_user
    )
    SELECT structure, app, sum(openings), {"count(DISTINCT user_id)" if people else "0"}
    FROM attributed GROUP BY 1, 2
"""
    )


MONTH_APPS = _month_apps(people=True)
MONTH_APP_OPENINGS = _month_apps(people=False)

# The source's first connection (the index on occurred_at: one row read): what the reports cover.
FIRST_EVENT = sql.SQL("SELECT occurred_at FROM {login_events} ORDER BY occurred_at LIMIT 1")

STRUCTURES = sql.SQL("""
    SELECT structure_id, name, kind FROM {structures}
    UNION
    SELECT DISTINCT coalesce(nullif(structure_id, ''), 'unknown'), NULL, NULL FROM {accounts}
""")


@dataclass(frozen=True)
class Month:
    """A calendar month of the platform's timezone, as UTC instants [start, end)."""

    year: int
    month: int
    zone: tzinfo

    @classmethod
    def parse(cls, text: str, zone: tzinfo) -> Month:
        """``YYYY-MM``; ValueError with the reason otherwise."""
        parts = text.split("-")
        if len(parts) != 2 or len(parts[0]) != 4 or len(parts[1]) != 2 or not all(p.isdigit() for p in parts):
            raise ValueError(f"not a month of the form YYYY-MM: {text!r}")
        year, month = int(parts[0]), int(parts[1])
        if not 1 <= month <= 12 or year < 1900:
            raise ValueError(f"not a month of the form YYYY-MM: {text!r}")
        return cls(year, month, zone)

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    def shift(self, months: int) -> Month:
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1, self.zone)

    @property
    def start(self) -> datetime:
        return local_midnight(self.first_day, self.zone)

    @property
    def end(self) -> datetime:
        return self.shift(1).start

    @property
    def days(self) -> list[date]:
        following = self.shift(1).first_day
        return [self.first_day + timedelta(days=n) for n in range((following - self.first_day).days)]

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass
class ProfileFigures:
    visitors: int = 0
    connections: int = 0  # logins of the profile (all of them, as ent_logins_total)
    visitor_connections: int = 0  # logins with a user (the indicator's): the numerator of visits per visitor
    visitors_withheld: bool = False  # privacy.min_count: the count of visitors is not shown

    @property
    def visits_per_visitor(self) -> float | None:
        """None when the visitors are withheld (a ratio would give them back)."""
        if self.visitors_withheld:
            return None
        return self.visitor_connections / self.visitors if self.visitors else 0.0


@dataclass
class AccountFigures:
    activated: int = 0
    pending: int = 0
    inactive: dict[int, int] = field(default_factory=lambda: {days: 0 for days in INACTIVE_DAYS})
    # privacy.min_count: the counts not shown, of "activated", "pending" and the INACTIVE_DAYS.
    withheld: set[str | int] = field(default_factory=set)

    @property
    def ratio(self) -> float | None:
        """None when a count it is made of is withheld."""
        if {"activated", "pending"} & self.withheld:
            return None
        total = self.activated + self.pending
        return self.activated / total if total else 0.0


@dataclass
class StructureMonth:
    """One structure's (or the platform's, ``all``) figures of one month."""

    structure: str
    connections: int = 0
    per_day: dict[date, int] = field(default_factory=dict)
    by_hour: dict[tuple[int, int], int] = field(default_factory=dict)  # (ISO weekday, hour) -> logins
    profiles: dict[str, ProfileFigures] = field(default_factory=dict)  # profile or TOTAL
    apps: dict[str, tuple[int, int]] = field(default_factory=dict)  # app -> (openings, distinct people)
    apps_withheld: set[str] = field(default_factory=set)  # apps whose people are not shown (privacy.min_count)
    accounts: dict[str, AccountFigures] = field(default_factory=dict)  # profile or TOTAL

    @property
    def total(self) -> ProfileFigures:
        return self.profiles.get(TOTAL, ProfileFigures())

    @property
    def account_total(self) -> AccountFigures:
        return self.accounts.get(TOTAL, AccountFigures())

    @property
    def app_openings(self) -> int:
        return sum(openings for openings, _ in self.apps.values())

    def headline(self) -> dict[str, float | None]:
        """The figures compared with other months (keys: labels.INDICATORS); None: withheld."""
        accounts = self.account_total
        return {
            "connections": self.connections,
            "visitors": None if self.total.visitors_withheld else self.total.visitors,
            "visits_per_visitor": self.total.visits_per_visitor,
            "app_openings": self.app_openings,
            "activated_accounts": None if "activated" in accounts.withheld else accounts.activated,
            "activation_ratio": accounts.ratio,
            "inactive_30d": None if 30 in accounts.withheld else accounts.inactive[30],
        }


@dataclass
class Structure:
    structure_id: str
    name: str
    kind: str


def structures(source: Source) -> dict[str, Structure]:
    """Every structure of ``structures`` and of ``accounts`` (named by its code when it has no name)."""
    found: dict[str, Structure] = {}
    for structure_id, name, kind in source.fetch(STRUCTURES):
        key = structure_id if structure_id else "unknown"
        previous = found.get(key)
        if previous is None or (name and previous.name == key):
            found[key] = Structure(key, name or key, kind or "unknown")
    return found


def first_event(source: Source) -> datetime | None:
    """The instant of the source's first connection (None: none at all)."""
    rows = source.fetch(FIRST_EVENT)
    return rows[0][0] if rows else None


WHOLE, PART, NONE = "whole", "part", "none"


def coverage(month: Month, first: datetime | None) -> str:
    """How much of ``month`` the source covers: WHOLE (its data begins on the month's first day or
    before), PART (it begins on a later day of the month), NONE (after the month, or no data)."""
    if first is None or first >= month.end:
        return NONE
    return PART if first.astimezone(month.zone).date() > month.first_day else WHOLE


def _visitors(source: Source, start: datetime, end: datetime) -> dict[tuple[str, str], tuple[int, int]]:
    """(structure, profile or "all") -> (visitors, their logins) over [start, end): the statement of
    ``ent_unique_visitors`` / ``ent_visits_per_visitor`` (its ``previous_month`` period for a closed month)."""
    rows = source.fetch(
        PERIOD_VISITORS,
        {"periods": ["month"], "starts": [start], "ends": [end], "window_start": start, "window_end": end},
    )
    return {(structure, profile): (int(people), int(logins)) for _, structure, profile, people, logins in rows}


def _context(source: Source, now: datetime, zone: tzinfo) -> Context:
    return Context(source=source, now=now, timezone=zone, state={})


class _Done:
    """A value already there, where a statement's future would be (statements run one at a time)."""

    def __init__(self, value: object) -> None:
        self.value = value

    def result(self) -> object:
        return self.value


def month_figures(
    source: Source, month: Month, as_of: datetime | None = None, pool: Executor | None = None
) -> dict[str, StructureMonth]:
    """Every structure's figures of ``month`` (and ``all``), as the exporter publishes them for that
    closed period; ``as_of``: the instant of a provisional report of the current month (its figures
    over [its start, as_of], accounts as of ``as_of``). Set-based statements, none per structure;
    ``pool``: threads that run them at once (each on a connection of the source's pool), else one by one."""
    return _assemble(month, as_of, _start(source, month, as_of, pool))


def _start(
    source: Source, month: Month, as_of: datetime | None, pool: Executor | None, compared: bool = False
) -> dict[str, Any]:
    """The month's five statements, started on ``pool`` (or run now): their futures (or values).
    ``compared``: a month compared with the one reported, of which only the totals are shown (the
    summary, the visitors per profile, the openings per application): no local days and hours, no
    people per application (see ``_month_logins``, ``_month_apps``); the rest is the same."""
    end = _end(month, as_of)
    # [start, end) of the events; the instant the accounts are counted at (the month's last instant).
    window = {"start": month.start, "end": end, "zone": zone_name(month.zone)}
    instant = end - JUST_BEFORE
    jobs: dict[str, Callable[[], object]] = {
        # the longest first: with two connections, the others run beside it
        "logins": lambda: source.fetch(MONTH_TOTAL_LOGINS if compared else MONTH_LOGINS, window),
        "apps": lambda: source.fetch(MONTH_APP_OPENINGS if compared else MONTH_APPS, window),
        # Visitors and visits per visitor: the indicator's statement over the same period.
        "visitors": lambda: _visitors(source, month.start, end),
        # Accounts and inactive accounts: the indicators themselves, run as of the month's last instant.
        # (each on a context of its own: a collector's state is not shared between threads)
        "inactive": lambda: (
            ActivityCollector().recount(_context(source, instant, month.zone)).samples[INACTIVE_ACCOUNTS.name]
        ),
        "accounts": lambda: AccountsCollector().collect(_context(source, instant, month.zone)).samples[ACCOUNTS.name],
    }
    return {name: pool.submit(job) if pool is not None else _Done(job()) for name, job in jobs.items()}


def _end(month: Month, as_of: datetime | None) -> datetime:
    return month.end if as_of is None else min(month.end, as_of + JUST_BEFORE)


def _assemble(month: Month, as_of: datetime | None, started: dict[str, Any]) -> dict[str, StructureMonth]:
    """The figures made of the rows of the month's statements (``_start``)."""
    figures: dict[str, StructureMonth] = defaultdict(lambda: StructureMonth(""))

    def of(structure: str) -> StructureMonth:
        entry = figures[structure]
        entry.structure = structure
        return entry

    end = _end(month, as_of)
    for grouping, structure, profile, day, weekday, hour, logins in started["logins"].result():
        entry = of(structure)
        if grouping == BY_PROFILE:
            entry.profiles.setdefault(profile, ProfileFigures()).connections = int(logins)
            entry.connections += int(logins)
        elif grouping == BY_DAY:
            entry.per_day[day] = int(logins)
        elif grouping == BY_HOUR:
            entry.by_hour[(weekday, hour)] = int(logins)
    for (structure, profile), (people, logins) in started["visitors"].result().items():
        visiting = of(structure).profiles.setdefault(TOTAL if profile == ALL_PROFILES else profile, ProfileFigures())
        visiting.visitors, visiting.visitor_connections = people, logins
    for structure, app, openings, people in started["apps"].result():
        of(structure).apps[app] = (int(openings), int(people))
    states = started["accounts"].result()
    inactive = started["inactive"].result()
    for (structure, profile, state), value in states.items():
        account = of(structure).accounts.setdefault(TOTAL if profile == ALL_PROFILES else profile, AccountFigures())
        setattr(account, state, int(cast(float, value)))  # (gauges: numbers)
    for (structure, profile, number), value in inactive.items():
        found = figures.get(structure)
        attached = found.accounts.get(TOTAL if profile == ALL_PROFILES else profile) if found else None
        if attached is not None:  # (an activated account is one: its pair has accounts)
            attached.inactive[int(number)] = int(cast(float, value))
    # Every day of the period and every cell of the grid, zeros included; every login under TOTAL.
    period_days = [day for day in month.days if local_midnight(day, month.zone) < end]
    for entry in figures.values():
        if entry.profiles:
            entry.profiles.setdefault(TOTAL, ProfileFigures()).connections = entry.connections
        entry.per_day = {day: entry.per_day.get(day, 0) for day in period_days}
        entry.by_hour = {(w, h): entry.by_hour.get((w, h), 0) for w in range(1, 8) for h in range(24)}
    return dict(figures)


def empty(structure: str, month: Month) -> StructureMonth:
    """The figures of a structure nothing happened in (every day and cell 0)."""
    return StructureMonth(
        structure, per_day={day: 0 for day in month.days}, by_hour={(w, h): 0 for w in range(1, 8) for h in range(24)}
    )


@dataclass
class Report:
    """What one report shows: a structure's month, with the previous month and the same month a year before."""

    structure: Structure
    month: Month
    current: StructureMonth
    previous: StructureMonth
    year_before: StructureMonth
    apps: list[str]  # the catalogue: every app of the three months, most opened this month first
    # How much of each month the source covers (WHOLE, PART, NONE): a compared month not WHOLE is not compared.
    coverage: dict[str, str] = field(
        default_factory=lambda: {"current": WHOLE, "previous": WHOLE, "year_before": WHOLE}
    )
    data_since: date | None = None  # the local day of the source's first connection
    as_of: datetime | None = None  # a provisional report of the current month: the instant it is as of

    def compared(self, which: str) -> bool:
        """Whether the ``previous`` or ``year_before`` month is compared (the source covers all of it)."""
        return self.coverage[which] == WHOLE


def build_reports(
    source: Source,
    month: Month,
    wanted: list[str] | None = None,
    min_count: int = 0,
    as_of: datetime | None = None,
    connections: int = 1,
) -> list[Report]:
    """The reports of ``month`` for ``wanted`` structure ids (None: every structure and the platform);
    people counts below ``min_count`` withheld (privacy.min_count); ``as_of``: a provisional report
    of the current month as of that instant. A compared month the source does not wholly cover is not
    read (its figures are not shown); one it covers is read for its totals only (``_start``). ``connections``: how many statements run at once (threads, each
    on a connection of the source's pool: no more than it holds), every month's started before any is
    assembled (the database's cores work beside each other instead of one after the other)."""
    known = structures(source)
    known.pop("unknown", None)  # events nobody's account explains: in the platform's figures, not a report
    platform = Structure(ALL_STRUCTURES, "", "platform")
    ids = sorted(known) + [ALL_STRUCTURES] if wanted is None else wanted
    first = first_event(source)
    periods = {"current": month, "previous": month.shift(-1), "year_before": month.shift(-12)}
    covered = {which: coverage(m, first) for which, m in periods.items()}
    read = [which for which in periods if which == "current" or covered[which] == WHOLE]
    with _statements(connections) as pool:
        started = {
            which: _start(source, periods[which], _as_of(which, as_of), pool, compared=which != "current")
            for which in read
        }
        assembled = {which: _assemble(periods[which], _as_of(which, as_of), started[which]) for which in read}
    months = {which: apply_privacy(assembled[which], min_count) if which in read else {} for which in periods}
    since = first.astimezone(month.zone).date() if first is not None else None
    reports = []
    for structure_id in ids:
        current, previous, year_before = (
            months[which].get(structure_id) or empty(structure_id, periods[which]) for which in periods
        )
        if as_of is not None:
            current.per_day = {d: n for d, n in current.per_day.items() if local_midnight(d, month.zone) <= as_of}
        catalogue = set(current.apps) | set(previous.apps) | set(year_before.apps)
        apps = sorted(catalogue, key=lambda app: (-current.apps.get(app, (0, 0))[0], app))
        reports.append(
            Report(
                platform if structure_id == ALL_STRUCTURES else known[structure_id],
                month,
                current,
                previous,
                year_before,
                apps,
                dict(covered),
                since,
                as_of,
            )
        )
    return reports


def _as_of(which: str, as_of: datetime | None) -> datetime | None:
    return as_of if which == "current" else None


@contextmanager
def _statements(connections: int) -> Iterator[Executor | None]:
    """Threads for ``connections`` statements at once (None for one: each runs when it is started);
    on an error, the statements not begun are dropped and those running awaited."""
    if connections <= 1:
        yield None
        return
    pool = ThreadPoolExecutor(connections, thread_name_prefix="report-statement")
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def known_structure_ids(source: Source) -> set[str]:
    ids = set(structures(source))
    ids.discard("unknown")
    return ids | {ALL_STRUCTURES}


def apply_privacy(months: dict[str, StructureMonth], min_count: int) -> dict[str, StructureMonth]:
    """privacy.min_count on one month's figures of every structure at once, by the metrics' rule
    (ent_exporter.engine.privacy): people counts (visitors, accounts, inactive accounts, people per
    application) below ``min_count``, and those a published total (the platform, every profile) minus
    published figures would give back, are withheld; so are the ratios made of a withheld count.
    Structure ``unknown`` (events no account explains) has no report: its counts are never shown.
    Event counts (connections, openings) are not people counts: kept."""
    if min_count <= 0:
        return months

    def profile(name: str) -> str:
        return ALL_PROFILES if name == TOTAL else name

    hidden = [UNKNOWN]
    visitors = {
        (structure, profile(name)): float(figures.visitors)
        for structure, entry in months.items()
        for name, figures in entry.profiles.items()
    }
    shown_visitors, withheld_visitors = privacy.protect(
        visitors, min_count, unpublished=[k for k in visitors if k[0] in hidden]
    )
    for structure, entry in months.items():
        for name, visiting in entry.profiles.items():
            key = (structure, profile(name))
            visiting.visitors, visiting.visitors_withheld = int(shown_visitors[key]), key in withheld_visitors
    states = {
        (structure, profile(name), state): float(getattr(figures, state))
        for structure, entry in months.items()
        for name, figures in entry.accounts.items()
        for state in ("activated", "pending")
    }
    shown_states, withheld_states = privacy.protect(
        states, min_count, unpublished=[k for k in states if k[0] in hidden]
    )
    inactive = {
        (structure, profile(name), str(days)): float(count)
        for structure, entry in months.items()
        for name, figures in entry.accounts.items()
        for days, count in figures.inactive.items()
    }
    published_inactive, withheld_inactive = privacy.protect_nested(
        2, inactive, min_count, unpublished=[k for k in inactive if k[0] in hidden]
    )
    for structure, entry in months.items():
        for name, account in entry.accounts.items():
            for state in ("activated", "pending"):
                cell = (structure, profile(name), state)
                setattr(account, state, int(shown_states[cell]))
                if cell in withheld_states:
                    account.withheld.add(state)
            for days in account.inactive:
                cell = (structure, profile(name), str(days))
                account.inactive[days] = int(published_inactive[cell])
                if cell in withheld_inactive:
                    account.withheld.add(days)
    people = {
        (structure, app): float(count) for structure, entry in months.items() for app, (_, count) in entry.apps.items()
    }
    shown_people, withheld_people = privacy.protect(
        people, min_count, unpublished=[k for k in people if k[0] in hidden]
    )
    for structure, entry in months.items():
        for app, (openings, _) in entry.apps.items():
            entry.apps[app] = (openings, int(shown_people[(structure, app)]))
            if (structure, app) in withheld_people:
                entry.apps_withheld.add(app)
    return months
