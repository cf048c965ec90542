"""How active activated accounts are: inactive users (30 and 90 days) and logins per user over 30 days.

Both families look at activated accounts only (activated_at not NULL and <= now), labelled
with the account's structure and profile; a user's logins are all of theirs, whatever the
profile of the login. Windows are exact durations before now: (now - N days, now].
Platform-wide (structure="all") each user counts once per profile of their activated accounts;
profile="all" counts each user once over all their profiles (per structure, and platform-wide).
Every structure and profile known from ``accounts`` is published, 0 (an empty distribution)
when it has no activated account.
"""
from __future__ import annotations

from datetime import timedelta

from psycopg import sql

from .base import Cadence, Collector, Context, Family, HistogramValue, Kind, Result, Samples
from .known import people_pairs, zeros
from .periods import utc

LOGIN_COUNT_BUCKETS = (0, 1, 2, 5, 10, 20, 50)
INACTIVE_ACCOUNTS = Family(
    "ent_inactive_accounts", Kind.GAUGE,
    "Activated accounts whose user has no login in the last N days (label days).",
    ("structure", "profile", "days"), counts_people=True,
)
USER_LOGINS_30D = Family(
    "ent_user_logins_30d", Kind.GAUGE_HISTOGRAM,
    "Distribution of the number of logins of each activated user over the last 30 days.",
    ("structure", "profile"), LOGIN_COUNT_BUCKETS, counts_people=True,
)

# One pass over 90 days of logins, then per activated attachment: its user's logins over
# 30 days and whether it was seen in 30 / 90 days; grouped by that login count.
ACTIVITY = sql.SQL("""
    WITH recent AS (
        SELECT user_id, max(occurred_at) AS last_login,
               count(*) FILTER (WHERE occurred_at > %(since_30)s) AS logins_30d
        FROM {login_events}
        WHERE occurred_at > %(since_90)s AND occurred_at <= %(now)s
        GROUP BY user_id
    ), per_user AS (
        SELECT DISTINCT a.user_id,
               coalesce(nullif(a.structure_id, ''), 'unknown') AS structure,
               coalesce(nullif(a.profile, ''), 'unknown') AS profile,
               coalesce(r.logins_30d, 0) AS logins_30d,
               r.last_login IS NULL OR r.last_login <= %(since_30)s AS inactive_30,
               r.last_login IS NULL AS inactive_90
        FROM {accounts} AS a LEFT JOIN recent AS r ON r.user_id = a.user_id
        WHERE a.activated_at <= %(now)s
    )
    SELECT structure, profile, logins_30d, count(*),
           count(*) FILTER (WHERE inactive_30), count(*) FILTER (WHERE inactive_90)
    FROM per_user GROUP BY 1, 2, 3
    UNION ALL
    SELECT 'all', profile, logins_30d, count(DISTINCT user_id),
           count(DISTINCT user_id) FILTER (WHERE inactive_30), count(DISTINCT user_id) FILTER (WHERE inactive_90)
    FROM per_user GROUP BY 2, 3
    UNION ALL
    SELECT structure, 'all', logins_30d, count(DISTINCT user_id),
           count(DISTINCT user_id) FILTER (WHERE inactive_30), count(DISTINCT user_id) FILTER (WHERE inactive_90)
    FROM per_user GROUP BY 1, 3
    UNION ALL
    SELECT 'all', 'all', logins_30d, count(DISTINCT user_id),
           count(DISTINCT user_id) FILTER (WHERE inactive_30), count(DISTINCT user_id) FILTER (WHERE inactive_90)
    FROM per_user GROUP BY 3
""")


class ActivityCollector(Collector):
    cadence = Cadence.DAILY
    families = (INACTIVE_ACCOUNTS, USER_LOGINS_30D)

    def collect(self, ctx: Context) -> Result:
        now = utc(ctx.now)
        rows = ctx.source.fetch(ACTIVITY, {
            "now": now, "since_30": now - timedelta(days=30), "since_90": now - timedelta(days=90),
        })
        known = people_pairs(ctx)
        inactive: dict[tuple, float] = zeros(known, ("30",), ("90",))
        histograms: dict[tuple, HistogramValue] = {
            pair: HistogramValue([0.0] * len(LOGIN_COUNT_BUCKETS), 0.0, 0.0) for pair in known}
        for structure, profile, logins, users, inactive_30, inactive_90 in rows:
            for days, count in (("30", inactive_30), ("90", inactive_90)):
                key = (structure, profile, days)
                inactive[key] = inactive.get(key, 0.0) + count
            histogram = histograms.setdefault(
                (structure, profile), HistogramValue([0.0] * len(LOGIN_COUNT_BUCKETS), 0.0, 0.0))
            histogram.add(HistogramValue(
                [float(users) if logins <= bound else 0.0 for bound in LOGIN_COUNT_BUCKETS],
                float(users), float(users * logins)))
        samples: Samples = {INACTIVE_ACCOUNTS.name: inactive, USER_LOGINS_30D.name: histograms}
        return Result(samples)
