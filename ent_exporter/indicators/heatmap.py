"""Logins of the last 28 days by local ISO weekday and hour: the daily and weekly peaks.

Each login counts once per structure of its user (``unknown`` without an account) and once
under structure="all". Every structure known from ``accounts``, and any other with a login in
the window (``unknown``), gets all 168 cells, zeros included, so a heatmap has no holes and a
structure nobody logged in to is 0, not absent.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import chain

import numpy as np
from psycopg import sql

from ent_exporter.aggregation.days import HOUR, JUST_AFTER, Attachments, DayLog, days_between
from ent_exporter.aggregation.known import known_pairs
from ent_exporter.aggregation.periods import local_midnight, utc, zone_name
from ent_exporter.engine.collector import Cadence, Collector, Context, Family, Kind, LabelValues, Result, Value

WINDOW = timedelta(days=28)
CELLS = [(str(weekday), str(hour)) for weekday in range(1, 8) for hour in range(24)]  # (weekday - 1) * 24 + hour
LOGINS_BY_HOUR = Family(
    "ent_logins_by_hour",
    Kind.GAUGE,
    "Logins of the last 28 days by local ISO weekday (1 = Monday) and hour of day.",
    ("structure", "weekday", "hour"),
    structure_marginals=("weekday", "hour"),
    breakdown_option="logins_by_hour_per_structure",
    title_en="Logins by weekday and hour (last 28 days)",
    title_fr="Connexions par jour et par heure (28 derniers jours)",
    meaning_fr="Connexions des 28 derniers jours selon le jour de la semaine (1 = lundi) et l'heure de la journée, en"
    " heure locale.",
)

# Local weekday and hour through AT TIME ZONE, so DST days land in the right hour. Each
# user's structures are looked up once (an index-only probe of accounts), not once per
# cell; a login without a user, or of a user without an account, lands in "unknown".
LOGINS_BY_WEEKDAY_HOUR = sql.SQL("""
    WITH per_user AS (
        SELECT user_id,
               extract(isodow FROM occurred_at AT TIME ZONE %(zone)s)::int AS weekday,
               extract(hour FROM occurred_at AT TIME ZONE %(zone)s)::int AS hour,
               count(*) AS logins
        FROM {login_events}
        WHERE occurred_at > %(since)s AND occurred_at <= %(now)s
        GROUP BY 1, 2, 3
    ), attribution AS (
        SELECT visitor.user_id, attached.structure_id AS structure
        FROM (SELECT DISTINCT user_id FROM per_user WHERE user_id IS NOT NULL) AS visitor
        JOIN LATERAL (
            SELECT DISTINCT structure_id FROM {accounts} WHERE {accounts}.user_id = visitor.user_id
        ) AS attached ON true
    )
    SELECT coalesce(nullif(attribution.structure, ''), 'unknown'), weekday, hour, sum(logins)
    FROM per_user LEFT JOIN attribution USING (user_id)
    GROUP BY 1, 2, 3
    UNION ALL
    SELECT 'all', weekday, hour, sum(logins) FROM per_user GROUP BY 2, 3
""")


class LoginHeatmapCollector(Collector):
    name = "login_heatmap"
    cadence = Cadence.WEEKLY
    families = (LOGINS_BY_HOUR,)

    def collect(self, ctx: Context) -> Result:
        """Combines the per-day (user, local hour) login counts kept in the state (ent_exporter.aggregation.days)
        for the whole days of the window, and reads only the window's first, partial day."""
        now = utc(ctx.now)
        zone = ctx.timezone
        since = now - WINDOW
        boundary = since.astimezone(zone).date()
        today = ctx.now.astimezone(zone).date()
        log = DayLog(ctx.state, (HOUR,))
        log.update(ctx, boundary + timedelta(days=1), now + JUST_AFTER)
        days = days_between(boundary + timedelta(days=1), today)
        edge = log.read(ctx, since + JUST_AFTER, local_midnight(boundary + timedelta(days=1), zone))
        attachments = Attachments(ctx, log)
        per_structure = np.zeros(len(attachments.structures) * 168)
        everyone = np.zeros(168)
        # Day by day (a day's arrays at a time, never the window's at once).
        for day, logins in chain(((day, log.days[day].whole()) for day in days if day in log.days), [(boundary, edge)]):
            cell = (day.isoweekday() - 1) * 24 + logins.columns[HOUR].astype(np.int64)
            count = logins.count.astype(np.float64)
            for rows, structure in attachments.each(logins.user):
                per_structure += np.bincount(
                    structure * 168 + cell[rows], weights=count[rows], minlength=len(attachments.structures) * 168
                )
                del structure
            everyone += np.bincount(cell, weights=count, minlength=168)
            del cell, count, logins
        structures = {structure for structure, _ in known_pairs(ctx)} | ({"all"} if everyone.any() else set())
        structures |= {attachments.structures[i] for i in np.nonzero(per_structure.reshape(-1, 168).sum(axis=1))[0]}
        # The 168 (weekday, hour) label pairs shared by every structure's cells.
        cells: dict[LabelValues, Value] = {
            (structure, *CELLS[cell]): 0.0 for structure in structures for cell in range(168)
        }
        for key in np.nonzero(per_structure)[0]:
            cells[(attachments.structures[key // 168], *CELLS[key % 168])] = float(per_structure[key])
        for key in np.nonzero(everyone)[0]:
            cells[("all", *CELLS[key])] = float(everyone[key])
        return Result({LOGINS_BY_HOUR.name: cells}, state=log.state())

    def recount(self, ctx: Context) -> Result:
        """The whole window read again in one statement (the behaviour before per-day aggregates)."""
        now = utc(ctx.now)
        rows = ctx.source.fetch(
            LOGINS_BY_WEEKDAY_HOUR,
            {
                "zone": zone_name(ctx.timezone),
                "since": now - WINDOW,
                "now": now,
            },
        )
        # Every cell of every known structure and of any that had logins, zeros included: no holes.
        structures = {structure for structure, _ in known_pairs(ctx)} | {row[0] for row in rows}
        cells: dict[LabelValues, Value] = {
            (structure, str(weekday), str(hour)): 0.0
            for structure in structures
            for weekday in range(1, 8)
            for hour in range(24)
        }
        for structure, weekday, hour, logins in rows:
            cells[(structure, str(weekday), str(hour))] = float(logins)
        return Result({LOGINS_BY_HOUR.name: cells})
