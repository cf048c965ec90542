"""Unique visitors and visits per visitor over calendar periods (day, week and month to date;
the previous closed month).

A visitor is a user with at least one login in the period. The profile is the login's:
a user who logged in under two profiles is a visitor in each, with the logins of that
profile (so per-profile series do not add up to a platform total, as for structures);
profile="all" counts each user once over every profile, with all their logins.
A login without a user_id is nobody's visit: it counts neither as a visitor nor as a visit.
Every structure and profile known from ``accounts`` has a series in every period, 0 when
nobody of it has logged in yet (see collectors.known).

Two collectors publish these families, with disjoint ``period`` values: the hourly one
(day, week, month to date) and the monthly one (previous_month). They share the Family
constants below, as the runtime requires of families merged by name.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from psycopg import sql

from .base import Cadence, Collector, Context, Family, Kind, Result, Samples
from .known import people_pairs, zeros
from .periods import day_start, month_start, previous_month, utc, week_start

LABELS = ("structure", "profile", "period")
JUST_AFTER = timedelta(microseconds=1)  # timestamptz resolution: [start, now] == [start, now + 1 µs)
UNIQUE_VISITORS = Family(
    "ent_unique_visitors", Kind.GAUGE,
    "Distinct users with at least one login in the calendar period (day, week, month to date; previous_month).",
    LABELS, counts_people=True,
)
VISITS_PER_VISITOR = Family(
    "ent_visits_per_visitor", Kind.GAUGE,
    "Logins in the calendar period divided by its unique visitors (0 when none).",
    LABELS, additive=False,
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
        rows = ctx.source.fetch(PERIOD_VISITORS, {
            "periods": [name for name, _, _ in periods],
            "starts": [start for _, start, _ in periods],
            "ends": [end for _, _, end in periods],
            "window_start": min(start for _, start, _ in periods),
            "window_end": max(end for _, _, end in periods),
        })
        # 0 for every structure and profile known from accounts, in every period: a quiet morning is 0.
        none = zeros(people_pairs(ctx), *((name,) for name, _, _ in periods))
        samples: Samples = {UNIQUE_VISITORS.name: dict(none), VISITS_PER_VISITOR.name: dict(none)}
        for period, structure, profile, visitors, logins in rows:
            key = (structure, profile, period)
            samples[UNIQUE_VISITORS.name][key] = float(visitors)
            samples[VISITS_PER_VISITOR.name][key] = float(logins) / visitors if visitors else 0.0
        return Result(samples)


class CurrentPeriodVisitorsCollector(_PeriodVisitors):
    """Day, ISO week and month to date, refreshed every hour."""

    name = "visitors"
    cadence = Cadence.HOURLY

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
    """The last closed month, once a month."""

    name = "visitors_previous_month"
    cadence = Cadence.MONTHLY

    def periods(self, ctx: Context) -> list[tuple[str, datetime, datetime]]:
        return [("previous_month", *previous_month(ctx.now, ctx.timezone))]
