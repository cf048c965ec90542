"""Accounts by activation state, and the activation ratio, per structure and profile."""
from __future__ import annotations

from psycopg import sql

from .base import Cadence, Collector, Context, Family, Kind, Result, Samples

ACCOUNTS = Family(
    "ent_accounts", Kind.GAUGE,
    "Accounts by state: activated (activated_at passed) or pending; structure=\"all\" counts distinct users.",
    ("structure", "profile", "state"), counts_people=True,
)
ACTIVATION_RATIO = Family(
    "ent_account_activation_ratio", Kind.GAUGE,
    "Activated accounts divided by all accounts (0 when none).",
    ("structure", "profile"), additive=False,
)

ACCOUNT_STATES = sql.SQL("""
    WITH attachment AS (
        SELECT user_id,
               coalesce(nullif(structure_id, ''), 'unknown') AS structure,
               coalesce(nullif(profile, ''), 'unknown') AS profile,
               activated_at <= %(now)s AS activated
        FROM {accounts}
    )
    SELECT structure, profile, count(*) FILTER (WHERE activated), count(*) FILTER (WHERE activated IS NOT TRUE)
    FROM attachment GROUP BY 1, 2
    UNION ALL
    SELECT 'all', profile,
           count(DISTINCT user_id) FILTER (WHERE activated),
           count(DISTINCT user_id) FILTER (WHERE activated IS NOT TRUE)
    FROM attachment GROUP BY 2
""")


class AccountsCollector(Collector):
    cadence = Cadence.DAILY
    families = (ACCOUNTS, ACTIVATION_RATIO)

    def collect(self, ctx: Context) -> Result:
        samples: Samples = {ACCOUNTS.name: {}, ACTIVATION_RATIO.name: {}}
        for structure, profile, activated, pending in ctx.source.fetch(ACCOUNT_STATES, {"now": ctx.now}):
            samples[ACCOUNTS.name][(structure, profile, "activated")] = float(activated)
            samples[ACCOUNTS.name][(structure, profile, "pending")] = float(pending)
            total = activated + pending
            samples[ACTIVATION_RATIO.name][(structure, profile)] = activated / total if total else 0.0
        return Result(samples)
