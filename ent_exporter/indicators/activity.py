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

import numpy as np
from psycopg import sql

from ent_exporter.aggregation.days import (
    JUST_AFTER,
    DayLog,
    _decode,
    _encode,
    _integers,
    days_between,
    ids_array,
    parts_for,
    user_parts,
)
from ent_exporter.aggregation.known import people_pairs, zeros
from ent_exporter.aggregation.periods import local_midnight, utc
from ent_exporter.engine.collector import Cadence, Collector, Context, Family, HistogramValue, Kind, Result, Samples

LOGIN_COUNT_BUCKETS = (0, 1, 2, 5, 10, 20, 50)
INACTIVE_ACCOUNTS = Family(
    "ent_inactive_accounts",
    Kind.GAUGE,
    "Activated accounts whose user has no login in the last N days (label days).",
    ("structure", "profile", "days"),
    counts_people=True,
    nested="days",
    title_en="Inactive accounts",
    title_fr="Comptes inactifs",
    meaning_fr="Comptes activés dont la personne ne s'est pas connectée pendant les N derniers jours (30 ou 90).",
)
USER_LOGINS_30D = Family(
    "ent_user_logins_30d",
    Kind.GAUGE_HISTOGRAM,
    "Distribution of the number of logins of each activated user over the last 30 days.",
    ("structure", "profile"),
    LOGIN_COUNT_BUCKETS,
    counts_people=True,
    structure_marginals=("profile",),
    breakdown_option="user_logins_30d_by_profile_per_structure",
    title_en="Login frequency (last 30 days)",
    title_fr="Fréquence de connexion (30 derniers jours)",
    meaning_fr="Répartition des personnes au compte activé selon leur nombre de connexions pendant les 30 derniers"
    " jours.",
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


# The activated attachments, distinct (user, structure, profile), label rule applied, as arrays (as
# ent_exporter.aggregation.days's statements): each one's user id (joined in one text, looked up in the log's
# Users) and its structure's and profile's positions in the lists of names (NAMES, read first and
# handed back). In parts of the users, as ent_exporter.aggregation.days.USER_STRUCTURES: one part's bytes at a time.
NAMES = sql.SQL("""
    SELECT array_agg(DISTINCT coalesce(nullif(structure_id, ''), 'unknown')),
           array_agg(DISTINCT coalesce(nullif(profile, ''), 'unknown'))
    FROM {accounts}
""")
ACTIVATED = sql.SQL("""
    WITH structures AS (
        SELECT structure, (position - 1)::int4 AS position
        FROM unnest(%(structures)s::text[]) WITH ORDINALITY AS s(structure, position)
    ), profiles AS (
        SELECT profile, (position - 1)::int4 AS position
        FROM unnest(%(profiles)s::text[]) WITH ORDINALITY AS p(profile, position)
    ), activated AS (
        SELECT DISTINCT user_id, coalesce(nullif(structure_id, ''), 'unknown') AS structure,
               coalesce(nullif(profile, ''), 'unknown') AS profile
        FROM {accounts}
        WHERE activated_at <= %(now)s AND user_id IS NOT NULL  -- NOT NULL in the contract
          AND (hashtext(user_id) & %(mask)s::int4) = %(part)s::int4
    )
    SELECT string_agg(user_id, ''), string_agg(int4send(octet_length(convert_to(user_id, 'UTF8'))), ''::bytea),
           string_agg(int4send(structures.position), ''::bytea), string_agg(int4send(profiles.position), ''::bytea)
    FROM activated JOIN structures USING (structure) JOIN profiles USING (profile)
""")


class ActivityCollector(Collector):
    cadence = Cadence.DAILY
    families = (INACTIVE_ACCOUNTS, USER_LOGINS_30D)

    def collect(self, ctx: Context) -> Result:
        """Combines per-day login counts per user kept in the state (ent_exporter.aggregation.days) for the whole
        days of the 30-day window, and each user's last day with a login for the 90-day one; reads
        only the new events and each window's first, partial day."""
        now = utc(ctx.now)
        zone = ctx.timezone
        until = now + JUST_AFTER
        since_30, since_90 = now - timedelta(days=30), now - timedelta(days=90)
        b30, b90 = since_30.astimezone(zone).date(), since_90.astimezone(zone).date()
        log = DayLog(ctx.state.get("log", {}))
        last_day = (
            _decode(ctx.state["last_day"], "<i4")
            if log.watermark is not None and "last_day" in ctx.state
            else np.zeros(0, np.int32)
        )
        if log.watermark is not None and log.watermark > until:  # the clock went back: start over
            log, last_day = DayLog({}), np.zeros(0, np.int32)

        def fold(day, entry) -> None:
            nonlocal last_day
            if len(last_day) < len(log.users):
                last_day = np.concatenate([last_day, np.zeros(len(log.users) - len(last_day), np.int32)])
            seen = entry.user[entry.count > 0]
            last_day[seen] = np.maximum(last_day[seen], day.toordinal())

        log.update(ctx, b90 + timedelta(days=1), until, fold=fold, keep_from=b30 + timedelta(days=1))
        if len(last_day) < len(log.users):
            last_day = np.concatenate([last_day, np.zeros(len(log.users) - len(last_day), np.int32)])
        # Logins over 30 days per user number; whether seen in 90 days.
        edge_30 = log.read(ctx, since_30 + JUST_AFTER, local_midnight(b30 + timedelta(days=1), zone))
        edge_90 = log.read(ctx, since_90 + JUST_AFTER, local_midnight(b90 + timedelta(days=1), zone))
        size = len(log.users)
        if len(last_day) < size:
            last_day = np.concatenate([last_day, np.zeros(size - len(last_day), np.int32)])
        logins = np.zeros(size)
        logins += np.bincount(edge_30.user, weights=edge_30.count.astype(np.float64), minlength=size)
        for day in days_between(b30 + timedelta(days=1), now.astimezone(zone).date()):  # a day at a time
            if day in log.days and not log.days[day].folded:
                whole = log.days[day].whole()
                logins += np.bincount(whole.user, weights=whole.count.astype(np.float64), minlength=size)
                del whole
        seen_90 = last_day > b90.toordinal()
        seen_90[edge_90.user[edge_90.count > 0]] = True
        seen_90[logins > 0] = True
        samples = self._combine(ctx, log, logins, seen_90)
        return Result(samples, state={"log": log.state(), "last_day": _encode(last_day.astype("<i4"))})

    def _combine(self, ctx: Context, log: DayLog, logins: np.ndarray, seen_90: np.ndarray) -> Samples:
        users, structures_parts, profiles_parts = [], [], []
        strangers = 0
        with ctx.source.snapshot() as source:
            structure_list, profile_list = source.fetch(NAMES)[0]
            structure_list, profile_list = list(structure_list or []), list(profile_list or [])
            for part in user_parts(parts_for(log)):
                text, lengths, structure, profile = source.fetch(
                    ACTIVATED, {"now": utc(ctx.now), "structures": structure_list, "profiles": profile_list, **part}
                )[0]
                if text is None:
                    continue
                ids = ids_array(text, lengths)
                del text
                user = log.users.lookup(ids)
                # Activated users without a login in the log: numbered after the log's users, once each
                # (the parts' users are disjoint).
                unknown = np.flatnonzero(user < 0)
                distinct, stranger = np.unique(ids[unknown], return_inverse=True)
                user[unknown] = len(log.users) + strangers + stranger.ravel()
                strangers += len(distinct)
                del ids, distinct, stranger
                users.append(user)
                structures_parts.append(_integers(structure, ">i4").astype(np.int64))
                profiles_parts.append(_integers(profile, ">i4").astype(np.int64))
        user = np.concatenate(users) if users else np.zeros(0, np.int64)
        structure = np.concatenate(structures_parts) if structures_parts else np.zeros(0, np.int64)
        profile = np.concatenate(profiles_parts) if profiles_parts else np.zeros(0, np.int64)
        del users, structures_parts, profiles_parts
        structures = {name: position for position, name in enumerate(structure_list or [])}
        profiles = {name: position for position, name in enumerate(profile_list or [])}
        size = max(len(log.users), int(user.max()) + 1 if len(user) else 0)
        user_logins = np.concatenate([logins, np.zeros(size - len(logins))]).astype(np.int64)
        user_seen_90 = np.concatenate([seen_90, np.zeros(size - len(seen_90), bool)])
        structure_names = [*structures, "all"]
        profile_names = [*profiles, "all"]
        every_s, every_p = len(structures), len(profiles)
        known = people_pairs(ctx)
        inactive: dict[tuple, float] = zeros(known, ("30",), ("90",))
        histograms: dict[tuple, HistogramValue] = {
            pair: HistogramValue([0.0] * len(LOGIN_COUNT_BUCKETS), 0.0, 0.0) for pair in known
        }
        width = every_p + 1
        # Each series' users: the distinct (series, user) pairs, sorted, so that each series is a run
        # of them, summed with reduceat (no inverse index, no bincount per series). structure="all" and
        # profile="all" are scalars, not arrays as long as the attachments.
        for s_key, p_key in ((structure, profile), (every_s, profile), (structure, every_p), (every_s, every_p)):
            pairs = np.unique((s_key * width + p_key) * size + user)
            if not len(pairs):
                continue
            member = pairs % size
            group = pairs // size
            del pairs
            starts = np.flatnonzero(np.diff(group, prepend=-1))
            groups = group[starts]
            del group
            n = user_logins[member]
            users = np.diff(np.append(starts, len(member)))
            total = np.add.reduceat(n, starts)
            idle_30 = np.add.reduceat(n == 0, starts, dtype=np.int64)
            idle_90 = np.add.reduceat(~user_seen_90[member], starts, dtype=np.int64)
            below = [np.add.reduceat(n <= bound, starts, dtype=np.int64) for bound in LOGIN_COUNT_BUCKETS]
            del member, n
            for i, g in enumerate(groups):
                key = (structure_names[g // width], profile_names[g % width])
                inactive[(*key, "30")] = float(idle_30[i])
                inactive[(*key, "90")] = float(idle_90[i])
                histograms[key] = HistogramValue([float(b[i]) for b in below], float(users[i]), float(total[i]))
        return {INACTIVE_ACCOUNTS.name: inactive, USER_LOGINS_30D.name: histograms}

    def recount(self, ctx: Context) -> Result:
        """The whole window read again in one statement (the behaviour before per-day aggregates)."""
        now = utc(ctx.now)
        rows = ctx.source.fetch(
            ACTIVITY,
            {
                "now": now,
                "since_30": now - timedelta(days=30),
                "since_90": now - timedelta(days=90),
            },
        )
        known = people_pairs(ctx)
        inactive: dict[tuple, float] = zeros(known, ("30",), ("90",))
        histograms: dict[tuple, HistogramValue] = {
            pair: HistogramValue([0.0] * len(LOGIN_COUNT_BUCKETS), 0.0, 0.0) for pair in known
        }
        for structure, profile, logins, users, inactive_30, inactive_90 in rows:
            for days, count in (("30", inactive_30), ("90", inactive_90)):
                key = (structure, profile, days)
                inactive[key] = inactive.get(key, 0.0) + count
            histogram = histograms.setdefault(
                (structure, profile), HistogramValue([0.0] * len(LOGIN_COUNT_BUCKETS), 0.0, 0.0)
            )
            histogram.add(
                HistogramValue(
                    [float(users) if logins <= bound else 0.0 for bound in LOGIN_COUNT_BUCKETS],
                    float(users),
                    float(users * logins),
                )
            )
        samples: Samples = {INACTIVE_ACCOUNTS.name: inactive, USER_LOGINS_30D.name: histograms}
        return Result(samples)
