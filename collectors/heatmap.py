"""Logins of the last 28 days by local ISO weekday and hour: the daily and weekly peaks."""
from __future__ import annotations

from datetime import timedelta

from psycopg import sql

from .base import Cadence, Collector, Context, Family, Kind, Result
from .periods import zone_name

WINDOW = timedelta(days=28)
LOGINS_BY_HOUR = Family(
    "ent_logins_by_hour", Kind.GAUGE,
    "Logins of the last 28 days by local ISO weekday (1 = Monday) and hour of day.",
    ("structure", "weekday", "hour"),
)

# Local weekday and hour through AT TIME ZONE, so DST days land in the right hour.
LOGINS_BY_WEEKDAY_HOUR = sql.SQL("""
    WITH per_user AS (
        SELECT user_id,
               extract(isodow FROM occurred_at AT TIME ZONE %(zone)s)::int AS weekday,
               extract(hour FROM occurred_at AT TIME ZONE %(zone)s)::int AS hour,
               count(*) AS logins
        FROM {login_events}
        WHERE occurred_at > %(since)s AND occurred_at <= %(now)s
        GROUP BY 1, 2, 3
    )
    SELECT coalesce(attachment.structure_id, 'unknown'), weekday, hour, sum(logins)
    FROM per_user
    LEFT JOIN LATERAL (
        SELECT DISTINCT structure_id FROM {accounts} WHERE {accounts}.user_id = per_user.user_id
    ) AS attachment ON true
    GROUP BY 1, 2, 3
    UNION ALL
    SELECT 'all', weekday, hour, sum(logins) FROM per_user GROUP BY 2, 3
""")


class LoginHeatmapCollector(Collector):
    name = "login_heatmap"
    cadence = Cadence.WEEKLY
    families = (LOGINS_BY_HOUR,)

    def collect(self, ctx: Context) -> Result:
        rows = ctx.source.fetch(LOGINS_BY_WEEKDAY_HOUR, {
            "zone": zone_name(ctx.timezone), "since": ctx.now - WINDOW, "now": ctx.now,
        })
        # Every cell of a structure that had logins, zeros included: a heatmap has no holes.
        cells = {
            (structure, str(weekday), str(hour)): 0.0
            for structure in {row[0] for row in rows} for weekday in range(1, 8) for hour in range(24)
        }
        for structure, weekday, hour, logins in rows:
            cells[(structure, str(weekday), str(hour))] = float(logins)
        return Result({LOGINS_BY_HOUR.name: cells})
