"""Unique visitors and visits per visitor over calendar periods (day, week and month to date;
the previous closed month).

A visitor is a user with at least one login in the period. The profile is the login's:
a user who logged in under two profiles is a visitor in each (so per-profile series do
not add up to a platform total; use the profile you want, as for structures).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from psycopg import sql

from .base import Cadence, Collector, Context, Family, Kind, Result, Samples
from .periods import day_start, month_start, previous_month, week_start

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
# One statement for every period: the login window is their union, read once.
PERIOD_VISITORS = sql.SQL("""
    WITH periods AS (
        SELECT * FROM unnest(%(periods)s::text[], %(starts)s::timestamptz[], %(ends)s::timestamptz[])
            AS p(period, starts, ends)
    ), per_user AS (
        SELECT p.period, l.user_id, coalesce(nullif(l.profile, ''), 'unknown') AS profile, count(*) AS logins
        FROM {login_events} AS l
        JOIN periods AS p ON l.occurred_at >= p.starts AND l.occurred_at < p.ends
        WHERE l.occurred_at >= %(window_start)s AND l.occurred_at < %(window_end)s
        GROUP BY 1, 2, 3
    )
    SELECT per_user.period, coalesce(attachment.structure_id, 'unknown'), per_user.profile,
           count(*), sum(per_user.logins)
    FROM per_user
    LEFT JOIN LATERAL (
        SELECT DISTINCT structure_id FROM {accounts} WHERE {accounts}.user_id = per_user.user_id
    ) AS attachment ON true
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
        samples: Samples = {UNIQUE_VISITORS.name: {}, VISITS_PER_VISITOR.name: {}}
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
        end = ctx.now + JUST_AFTER
        return [
            ("day", day_start(ctx.now, ctx.timezone), end),
            ("week", week_start(ctx.now, ctx.timezone), end),
            ("month", month_start(ctx.now, ctx.timezone), end),
        ]


class PreviousMonthVisitorsCollector(_PeriodVisitors):
    """The last closed month, once a month."""

    name = "visitors_previous_month"
    cadence = Cadence.MONTHLY

    def periods(self, ctx: Context) -> list[tuple[str, datetime, datetime]]:
        return [("previous_month", *previous_month(ctx.now, ctx.timezone))]

