"""Unique visitors and visits per visitor over calendar periods (day, week and month to date;
the previous closed month; the month to date a year earlier).

A visitor is a user with at least one login in the period. The profile is the login's:
a user who logged in under two profiles is a visitor in each, with the logins of that
profile (so per-profile series do not add up to a platform total, as for structures);
profile="all" counts each user once over every profile, with all their logins.
A login without a user_id is nobody's visit: it counts neither as a visitor nor as a visit.
Every structure and profile known from ``accounts`` has a series in every period, 0 when
nobody of it has logged in yet (see ent_exporter.aggregation.known).

Three collectors publish these families, with disjoint ``period`` values: the hourly one
(day, week, month to date), the monthly one (previous_month) and the hourly one of the same
calendar days a year earlier (month_a_year_earlier, what a month to date is compared with).
They share the Family constants below, as the runtime requires of families merged by name.

The closed month is not read again: the hourly collector keeps each local day of the month as it
goes (its month to date), keeps them past the month's end until the last day is closed (recounted
whole, the late-commit limit after its end), then combines them once (combine_days, as the month
to date) and keeps that result in its state (PREVIOUS_MONTH). The monthly collector publishes it.
When the hourly collector's days do not cover the closed month (a first start, a lost state, the
hourly collector not running through that month or disabled), the monthly one reads the month whole.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
from psycopg import sql

from ent_exporter.aggregation.days import PROFILE, Attachments, DayLog, days_between
from ent_exporter.aggregation.known import people_pairs, zeros
from ent_exporter.aggregation.periods import (
    day_start,
    month_start,
    month_to_date_a_year_earlier,
    previous_month,
    utc,
    week_start,
    zone_name,
)
from ent_exporter.engine.collector import Cadence, Collector, Context, Family, Kind, Result, Samples

log = logging.getLogger(__name__)

LABELS = ("structure", "profile", "period")
# The hourly collector's state key holding the last closed month, combined from its days.
PREVIOUS_MONTH = "previous_month"
JUST_AFTER = timedelta(microseconds=1)  # timestamptz resolution: [start, now] == [start, now + 1 µs)
UNIQUE_VISITORS = Family(
    "ent_unique_visitors",
    Kind.GAUGE,
    "Distinct users with at least one login in the calendar period (day, week, month to date; previous_month;"
    " month_a_year_earlier: the month to date's days a year earlier).",
    LABELS,
    counts_people=True,
    title_en="Unique visitors",
    title_fr="Visiteurs uniques",
    meaning_fr="Personnes distinctes qui se sont connectées au moins une fois dans la période calendaire (jour,"
    " semaine, mois en cours ; mois précédent ; month_a_year_earlier : les jours du mois en cours un an plus tôt).",
)
VISITS_PER_VISITOR = Family(
    "ent_visits_per_visitor",
    Kind.GAUGE,
    "Logins in the calendar period divided by its unique visitors (0 when none).",
    LABELS,
    additive=False,
    privacy_follows=("ent_unique_visitors",),
    # Series budget: per structure, profile="all" (the collector's own ratio over every profile) unless
    # breakdowns.visits_per_visitor_by_profile_per_structure publishes every profile; structure="all" whole.
    structure_marginals=("profile",),
    breakdown_option="visits_per_visitor_by_profile_per_structure",
    title_en="Visits per visitor",
    title_fr="Visites par visiteur",
    meaning_fr="Connexions de la période calendaire divisées par ses visiteurs uniques (0 quand il n'y en a aucun).",
)

# Per period, per structure of the user and per profile: distinct users and their logins.
# One statement for every period: the login window is their union, read once. Each
# visitor's structures are looked up once (an index-only probe of accounts), not once
# per period and profile; the "all" rows come from per_user, each user counted once.
PERIOD_VISITORS = sql.SQL("""
    WITH periods AS (
        SELECT * FROM unnest(%(periods)s::text[], %(starts)s::timestamptz[], %(ends)s::timestamptz[])
            AS p(period, starts, ends)
    ), login AS (
        SELECT p.period, l.user_id, coalesce(nullif(l.profile, ''), 'unknown') AS profile
        FROM {login_events} AS l
        JOIN periods AS p ON l.occurred_at >= p.starts AND l.occurred_at < p.ends
        WHERE l.occurred_at >= %(window_start)s AND l.occurred_at < %(window_end)s
          AND l.user_id IS NOT NULL
    ), per_user AS (
        -- ROLLUP adds each user's row over every profile (profile NULL, never NULL otherwise): profile="all".
        SELECT period, user_id, coalesce(profile, 'all') AS profile, count(*) AS logins
        FROM login GROUP BY period, user_id, ROLLUP (profile)
    ), attribution AS (
        SELECT visitor.user_id, coalesce(nullif(attached.structure_id, ''), 'unknown') AS structure
        FROM (SELECT DISTINCT user_id FROM per_user) AS visitor
        LEFT JOIN LATERAL (
            SELECT DISTINCT structure_id FROM {accounts} WHERE {accounts}.user_id = visitor.user_id
        ) AS attached ON true
    )
    SELECT per_user.period, attribution.structure, per_user.profile, count(*), sum(per_user.logins)
    FROM per_user JOIN attribution USING (user_id)
    GROUP BY 1, 2, 3
    UNION ALL
    SELECT period, 'all', profile, count(*), sum(logins) FROM per_user GROUP BY 1, 3
""")


class _PeriodVisitors(Collector):
    abstract = True
    families = (UNIQUE_VISITORS, VISITS_PER_VISITOR)

    def periods(self, ctx: Context) -> list[tuple[str, datetime, datetime]]:
        raise NotImplementedError

    def collect(self, ctx: Context) -> Result:
        periods = self.periods(ctx)
        rows = ctx.source.fetch(
            PERIOD_VISITORS,
            {
                "periods": [name for name, _, _ in periods],
                "starts": [start for _, start, _ in periods],
                "ends": [end for _, _, end in periods],
                "window_start": min(start for _, start, _ in periods),
                "window_end": max(end for _, _, end in periods),
            },
        )
        return Result(_samples(ctx, [name for name, _, _ in periods], rows))


def _samples(ctx: Context, periods: list[str], rows) -> Samples:
    """Samples of (period, structure, profile, visitors, logins) rows, 0 for every structure and profile
    known from accounts in every period (a quiet morning is 0)."""
    none = zeros(people_pairs(ctx), *((name,) for name in periods))
    samples: Samples = {UNIQUE_VISITORS.name: dict(none), VISITS_PER_VISITOR.name: dict(none)}
    for period, structure, profile, visitors, logins in rows:
        key = (structure, profile, period)
        samples[UNIQUE_VISITORS.name][key] = float(visitors)
        samples[VISITS_PER_VISITOR.name][key] = float(logins) / visitors if visitors else 0.0
    return samples


class CurrentPeriodVisitorsCollector(_PeriodVisitors):
    """Day, ISO week and month to date, refreshed every hour.

    It does not re-read the month: the logins of each local day since the earlier of the week's
    and the month's start are kept per (user, profile) in its state (ent_exporter.aggregation.days.DayLog),
    brought up to now from the new events, and the periods combine those days (see combine_days).
    """

    name = "visitors"
    cadence = Cadence.HOURLY
    # Whether the closed month's days are kept and combined for the monthly collector (this one only).
    keeps_closed_month = True

    def collect(self, ctx: Context) -> Result:
        periods = self.periods(ctx)
        zone = ctx.timezone
        first = min(start for _, start, _ in periods).astimezone(zone).date()
        log = DayLog(ctx.state, (PROFILE,))
        # The closed month: its days stay until it is combined, if this log kept them as it went.
        closed = _month_days(ctx)
        combined = ctx.state.get(PREVIOUS_MONTH)
        pending = self.keeps_closed_month and not _is_summary_of(combined, closed[0], ctx) and closed[0] in log.days
        if pending:
            first = min(first, closed[0])
        end = max(end for _, _, end in periods)
        log.update(ctx, first, end)
        last = (end - JUST_AFTER).astimezone(zone).date()  # the periods' last local day (today, here)
        # Each period's days, decoded one at a time as combine_days reaches them (never the month's at once).
        windows = [
            (
                name,
                (log.days[day].whole() for day in days_between(start.astimezone(zone).date(), last) if day in log.days),
            )
            for name, start, _ in periods
        ]
        attachments = Attachments(ctx, log)
        rows = [
            (name, structure, profile, visitors, logins)
            for name, window in windows
            for (structure, profile), (visitors, logins) in combine_days(log, window, attachments).items()
        ]
        state = log.state()
        if pending and all(day in log.days and log.days[day].closed for day in closed):
            # Every day of the closed month is final: combined once, kept for the monthly collector.
            month = combine_days(log, (log.days[day].whole() for day in closed), attachments)
            combined = {
                "month": closed[0].isoformat(),
                "zone": zone_name(zone),
                "rows": [
                    [structure, profile, visitors, logins] for (structure, profile), (visitors, logins) in month.items()
                ],
            }
        if combined is not None:
            state[PREVIOUS_MONTH] = combined
        return Result(_samples(ctx, [name for name, _, _ in periods], rows), state=state)

    def periods(self, ctx: Context) -> list[tuple[str, datetime, datetime]]:
        # Periods to date include the instant itself: [start, now].
        now = utc(ctx.now)
        end = now + JUST_AFTER
        return [
            ("day", day_start(now, ctx.timezone), end),
            ("week", week_start(now, ctx.timezone), end),
            ("month", month_start(now, ctx.timezone), end),
        ]


class PreviousMonthVisitorsCollector(_PeriodVisitors):
    """The last closed month, once a month: what the hourly collector combined from its days when the
    month's last day closed; read whole from login_events when it has not (see the module docstring)."""

    name = "visitors_previous_month"
    cadence = Cadence.MONTHLY

    def collect(self, ctx: Context) -> Result:
        first = _month_days(ctx)[0]
        combined = (ctx.peer_state(CurrentPeriodVisitorsCollector.name) or {}).get(PREVIOUS_MONTH)
        if combined is not None and _is_summary_of(combined, first, ctx):
            log.debug("%s: %s combined from the hourly visitors' days (no read of the month)", self.name, first)
            rows = [("previous_month", *row) for row in combined["rows"]]
            return Result(_samples(ctx, ["previous_month"], rows))
        # DEBUG: on a first start this is expected (nothing to act on); a lost state has its own WARNING.
        log.debug(
            "%s: the hourly visitors' days do not cover %s (a first start, a lost state, or the month not yet"
            " closed for them): reading the month whole",
            self.name,
            first.strftime("%Y-%m"),
        )
        return super().collect(ctx)

    def periods(self, ctx: Context) -> list[tuple[str, datetime, datetime]]:
        return [("previous_month", *previous_month(ctx.now, ctx.timezone))]


class YearEarlierMonthVisitorsCollector(CurrentPeriodVisitorsCollector):
    """The month to date's calendar days a year earlier (see month_to_date_a_year_earlier), every hour:
    what the month to date is compared with, never PromQL's 365-day ``offset 1y``. The same day log
    as the month to date's, a year back: its closed days are read once, then each run reads what joined
    the window (and the late-commit tail again, as the month to date's does)."""

    name = "visitors_month_a_year_earlier"
    cadence = Cadence.HOURLY
    keeps_closed_month = False

    def periods(self, ctx: Context) -> list[tuple[str, datetime, datetime]]:
        return [("month_a_year_earlier", *month_to_date_a_year_earlier(ctx.now, ctx.timezone))]


def _month_days(ctx: Context) -> list[date]:
    """The local days of the last closed month."""
    start, end = previous_month(ctx.now, ctx.timezone)
    return days_between(start.astimezone(ctx.timezone).date(), end.astimezone(ctx.timezone).date() - timedelta(days=1))


def _is_summary_of(combined: Mapping[str, Any] | None, first: date, ctx: Context) -> bool:
    """Whether ``combined`` (the hourly state's PREVIOUS_MONTH) is the month starting on ``first`` in this calendar."""
    return (
        isinstance(combined, Mapping)
        and combined.get("month") == first.isoformat()
        and combined.get("zone") == zone_name(ctx.timezone)
        and isinstance(combined.get("rows"), list)
        and all(isinstance(row, list) and len(row) == 4 for row in combined["rows"])
    )


def combine_days(log: DayLog, days, attachments: Attachments) -> dict[tuple[str, str], tuple[int, float]]:
    """(structure, profile) -> (distinct users, their logins) over the days given, with
    profile="all" (each user once) and structure="all" (each user once per series)."""
    every = len(log.profiles)  # profile="all"
    width = every + 1
    nobody = -1 if log.users.null is None else log.users.null  # a login without a user is nobody's visit
    # User numbers are dense: logins per (user, profile), added day by day in place (int32: a user's
    # logins over a window stay far below 2**31), one slot per profile; a user's logins over every
    # profile are their row's sum.
    per_pair = np.zeros(len(log.users) * every, np.int32)
    for day in days:
        valid = np.flatnonzero(day.user != nobody)
        np.add.at(per_pair, day.user[valid].astype(np.int64) * every + day.columns[PROFILE][valid], day.count[valid])
        del valid
    result: dict[tuple[str, str], tuple[int, float]] = {}
    names = [*log.profiles, "all"]
    visitors_all, logins_all = np.zeros(width, np.int64), np.zeros(width)
    size = len(attachments.structures) * width
    visitors, logins = np.zeros(size, np.int64), np.zeros(size)
    # Per (user, profile), then per user (profile="all"): structure="all" counts each row once, and
    # each structure of the row's user (unknown without an account) once.
    pairs = np.flatnonzero(per_pair)
    per_person = per_pair.reshape(-1, every).sum(axis=1) if every else np.zeros(0, np.int64)
    people = np.flatnonzero(per_person)
    for user, profile, count in (
        (pairs // every if every else pairs, pairs % every if every else pairs, per_pair[pairs].astype(np.float64)),
        (people, np.full(len(people), every), per_person[people].astype(np.float64)),
    ):
        visitors_all += np.bincount(profile, minlength=width)
        logins_all += np.bincount(profile, weights=count, minlength=width)
        for rows, structure in attachments.each(user):
            keys = structure * width + profile[rows]
            del structure
            visitors += np.bincount(keys, minlength=size)
            logins += np.bincount(keys, weights=count[rows], minlength=size)
            del keys
    del per_pair, per_person, pairs, people
    for p in np.nonzero(visitors_all)[0]:
        result[("all", names[p])] = (int(visitors_all[p]), float(logins_all[p]))
    for key in np.nonzero(visitors)[0]:
        result[(attachments.structures[key // width], names[key % width])] = (int(visitors[key]), float(logins[key]))
    return result
