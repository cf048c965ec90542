"""Classes (opt-in): unique visitors and accounts broken down by the class a person belongs to.

The ODE statistics app and Opigno break figures down by class; a class of 25 pupils is also
where small counts identify people, so these families count people and ``privacy.min_count``
applies to them, and the cardinality guard folds the rarest classes into ``class="other"``.

Reads the optional relation ``user_classes`` (user_id, structure_id, class_name: one row per
membership of a person in a class of a structure; Edifice's directory import brings it, from
the export's ``classes`` column). Both collectors are opt-in (``collectors.enabled``:
``class_visitors``, ``class_accounts``): a class label multiplies the series by the number
of classes. On a source without the relation they publish nothing. Every class known from
``user_classes`` has its series, 0 when nobody of it has logged in. There is no profile label
(pupils, their teachers and parents attached to a class are its members together): with it
the series would be multiplied again, for counts that small.

- ``ent_class_unique_visitors{structure, class, period}``: members of the class with a login in
  the calendar day / ISO week / month to date (hourly), as ``ent_unique_visitors``.
- ``ent_class_accounts{structure, class, state}``: members of the class whose account in that
  structure is activated (any of their attachments there) or pending (daily).
- ``ent_class_inactive_accounts{structure, class, days}``: activated members without a login in
  the last 30 / 90 days (daily), as ``ent_inactive_accounts``.
"""

from __future__ import annotations

from datetime import timedelta

from psycopg import sql

from ent_exporter.aggregation.optional import relation_present
from ent_exporter.aggregation.periods import day_start, month_start, utc, week_start
from ent_exporter.engine.collector import Cadence, Collector, Context, Family, Kind, Result, Samples

RELATION = "user_classes"
JUST_AFTER = timedelta(microseconds=1)

CLASS_UNIQUE_VISITORS = Family(
    "ent_class_unique_visitors",
    Kind.GAUGE,
    "Members of the class with at least one login in the calendar period (day, week, month to date).",
    ("structure", "class", "period"),
    counts_people=True,
    title_en="Class visitors",
    title_fr="Visiteurs de la classe",
    meaning_fr="Membres de la classe qui se sont connectés au moins une fois dans la période calendaire (jour, semaine"
    " ou mois en cours).",
)
CLASS_ACCOUNTS = Family(
    "ent_class_accounts",
    Kind.GAUGE,
    "Members of the class by the state of their account in its structure: activated or pending.",
    ("structure", "class", "state"),
    counts_people=True,
    title_en="Class accounts by state",
    title_fr="Comptes de la classe par état",
    meaning_fr="Membres de la classe selon l'état de leur compte dans l'établissement : activé ou en attente.",
)
CLASS_INACTIVE_ACCOUNTS = Family(
    "ent_class_inactive_accounts",
    Kind.GAUGE,
    "Activated members of the class without a login in the last N days (label days).",
    ("structure", "class", "days"),
    nested="days",
    counts_people=True,
    title_en="Inactive class members",
    title_fr="Membres inactifs de la classe",
    meaning_fr="Membres de la classe au compte activé qui ne se sont pas connectés pendant les N derniers jours (30 ou"
    " 90).",
)

MEMBERS = """
    SELECT DISTINCT user_id, coalesce(nullif(structure_id, ''), 'unknown') AS structure,
           coalesce(nullif(class_name, ''), 'unknown') AS class
    FROM {user_classes}
    WHERE user_id IS NOT NULL
"""
KNOWN_CLASSES = sql.SQL(f"SELECT DISTINCT structure, class FROM ({MEMBERS}) AS m")

CLASS_VISITORS = sql.SQL(f"""
    WITH periods AS (
        SELECT * FROM unnest(%(periods)s::text[], %(starts)s::timestamptz[], %(ends)s::timestamptz[])
            AS p(period, starts, ends)
    ), visitor AS (
        SELECT DISTINCT p.period, l.user_id
        FROM {{login_events}} AS l
        JOIN periods AS p ON l.occurred_at >= p.starts AND l.occurred_at < p.ends
        WHERE l.occurred_at >= %(window_start)s AND l.occurred_at < %(window_end)s AND l.user_id IS NOT NULL
    ), member AS ({MEMBERS})
    SELECT member.structure, member.class, visitor.period, count(DISTINCT visitor.user_id)
    FROM visitor JOIN member USING (user_id)
    GROUP BY 1, 2, 3
""")

# Per member: activated when any of their attachments to the class's structure is; inactive as
# ent_inactive_accounts (activated, no login in (now - N days, now]).
CLASS_ACCOUNT_STATES = sql.SQL(f"""
    WITH member AS ({MEMBERS}), state AS (
        SELECT member.user_id, member.structure, member.class,
               coalesce(bool_or(a.activated_at <= %(now)s), false) AS activated
        FROM member
        LEFT JOIN {{accounts}} AS a
          ON a.user_id = member.user_id AND coalesce(nullif(a.structure_id, ''), 'unknown') = member.structure
        GROUP BY 1, 2, 3
    ), recent AS (
        SELECT user_id, max(occurred_at) AS last_login
        FROM {{login_events}}
        WHERE occurred_at > %(since_90)s AND occurred_at <= %(now)s AND user_id IN (SELECT user_id FROM member)
        GROUP BY user_id
    )
    SELECT state.structure, state.class,
           count(*) FILTER (WHERE activated), count(*) FILTER (WHERE NOT activated),
           count(*) FILTER (WHERE activated AND (r.last_login IS NULL OR r.last_login <= %(since_30)s)),
           count(*) FILTER (WHERE activated AND r.last_login IS NULL)
    FROM state LEFT JOIN recent AS r USING (user_id)
    GROUP BY 1, 2
""")


def _known(ctx: Context) -> list[tuple[str, str]]:
    return [tuple(row) for row in ctx.source.fetch(KNOWN_CLASSES)]


class ClassVisitorsCollector(Collector):
    """Unique visitors per class, day, week and month to date (opt-in)."""

    name = "class_visitors"
    opt_in = True
    cadence = Cadence.HOURLY
    families = (CLASS_UNIQUE_VISITORS,)

    def collect(self, ctx: Context) -> Result:
        samples: Samples = {CLASS_UNIQUE_VISITORS.name: {}}
        if not relation_present(ctx, RELATION):
            return Result(samples)
        now = utc(ctx.now)
        end = now + JUST_AFTER
        periods = [
            ("day", day_start(now, ctx.timezone)),
            ("week", week_start(now, ctx.timezone)),
            ("month", month_start(now, ctx.timezone)),
        ]
        series = samples[CLASS_UNIQUE_VISITORS.name]
        for structure, class_name in _known(ctx):
            for period, _start in periods:
                series[(structure, class_name, period)] = 0.0
        rows = ctx.source.fetch(
            CLASS_VISITORS,
            {
                "periods": [p for p, _ in periods],
                "starts": [s for _, s in periods],
                "ends": [end] * len(periods),
                "window_start": min(s for _, s in periods),
                "window_end": end,
            },
        )
        for structure, class_name, period, visitors in rows:
            series[(structure, class_name, period)] = float(visitors)
        return Result(samples)


class ClassAccountsCollector(Collector):
    """Accounts and inactive accounts per class (opt-in)."""

    name = "class_accounts"
    opt_in = True
    cadence = Cadence.DAILY
    families = (CLASS_ACCOUNTS, CLASS_INACTIVE_ACCOUNTS)

    def collect(self, ctx: Context) -> Result:
        samples: Samples = {CLASS_ACCOUNTS.name: {}, CLASS_INACTIVE_ACCOUNTS.name: {}}
        if not relation_present(ctx, RELATION):
            return Result(samples)
        now = utc(ctx.now)
        rows = ctx.source.fetch(
            CLASS_ACCOUNT_STATES,
            {"now": now, "since_30": now - timedelta(days=30), "since_90": now - timedelta(days=90)},
        )
        for structure, class_name, activated, pending, inactive_30, inactive_90 in rows:
            samples[CLASS_ACCOUNTS.name][(structure, class_name, "activated")] = float(activated)
            samples[CLASS_ACCOUNTS.name][(structure, class_name, "pending")] = float(pending)
            samples[CLASS_INACTIVE_ACCOUNTS.name][(structure, class_name, "30")] = float(inactive_30)
            samples[CLASS_INACTIVE_ACCOUNTS.name][(structure, class_name, "90")] = float(inactive_90)
        return Result(samples)
