"""Accounts by activation state, and the activation ratio, per structure and profile.

An account is one attachment of a user to a structure (a row of ``accounts``): a user
attached to two structures has an account in each. It counts from its creation on (``created_at``
passed, or ``activated_at`` if that is earlier): an account created later is not one yet, so a
closed period's figures do not change as new accounts arrive. Platform-wide (structure="all") a
user counts once per profile, as activated when any of their attachments under that
profile is activated and as pending otherwise, so activated + pending = distinct users.
profile="all" counts people over every profile: per structure, its distinct users (activated
when any of their attachments there is); structure="all", profile="all", every distinct user.
Structures and profiles are those found in ``accounts``, recomputed from scratch at each
run: one that no account refers to any more stops being published.
"""

from __future__ import annotations

from psycopg import sql

from ent_exporter.aggregation.periods import utc
from ent_exporter.engine.collector import Cadence, Collector, Context, Family, Kind, Result, Samples

ACCOUNTS = Family(
    "ent_accounts",
    Kind.GAUGE,
    'Accounts by state: activated (activated_at passed) or pending; structure="all" counts distinct users.',
    ("structure", "profile", "state"),
    counts_people=True,
    title_en="Accounts by state",
    title_fr="Comptes par état",
    meaning_fr="Comptes selon leur état, activé (date d'activation passée) ou en attente ; pour toute la plateforme,"
    " chaque personne compte une fois.",
)
ACTIVATION_RATIO = Family(
    "ent_account_activation_ratio",
    Kind.GAUGE,
    "Activated accounts divided by all accounts (0 when none).",
    ("structure", "profile"),
    additive=False,
    privacy_follows=("ent_accounts",),
    unit="ratio",
    title_en="Activation ratio",
    title_fr="Taux d'activation",
    meaning_fr="Part des comptes activés parmi tous les comptes (0 quand il n'y en a aucun).",
)

# One read of accounts: attachments counted per structure, then users per profile.
ACCOUNT_STATES = sql.SQL("""
    WITH attachment AS (
        SELECT user_id,
               coalesce(nullif(structure_id, ''), 'unknown') AS structure,
               coalesce(nullif(profile, ''), 'unknown') AS profile,
               coalesce(activated_at <= %(now)s, false) AS activated
        FROM {accounts}
        -- The accounts that exist at now: created by then (or activated by then, if the dates disagree; a
        -- NULL created_at, which the contract does not allow, as always there).
        WHERE created_at IS NULL OR least(created_at, activated_at) <= %(now)s
    ), platform_user AS (
        SELECT user_id, profile, bool_or(activated) AS activated
        FROM attachment GROUP BY 1, 2
    )
    SELECT structure, profile, count(*) FILTER (WHERE activated), count(*) FILTER (WHERE NOT activated)
    FROM attachment GROUP BY 1, 2
    UNION ALL
    SELECT 'all', profile, count(*) FILTER (WHERE activated), count(*) FILTER (WHERE NOT activated)
    FROM platform_user GROUP BY 2
    UNION ALL
    SELECT structure, 'all', count(*) FILTER (WHERE activated), count(*) FILTER (WHERE NOT activated)
    FROM (SELECT user_id, structure, bool_or(activated) AS activated FROM attachment GROUP BY 1, 2) AS person
    GROUP BY 1
    UNION ALL
    SELECT 'all', 'all', count(*) FILTER (WHERE activated), count(*) FILTER (WHERE NOT activated)
    FROM (SELECT user_id, bool_or(activated) AS activated FROM attachment GROUP BY 1) AS person
    HAVING count(*) > 0
""")


class AccountsCollector(Collector):
    cadence = Cadence.DAILY
    families = (ACCOUNTS, ACTIVATION_RATIO)

    def collect(self, ctx: Context) -> Result:
        samples: Samples = {ACCOUNTS.name: {}, ACTIVATION_RATIO.name: {}}
        for structure, profile, activated, pending in ctx.source.fetch(ACCOUNT_STATES, {"now": utc(ctx.now)}):
            samples[ACCOUNTS.name][(structure, profile, "activated")] = float(activated)
            samples[ACCOUNTS.name][(structure, profile, "pending")] = float(pending)
            total = activated + pending
            samples[ACTIVATION_RATIO.name][(structure, profile)] = activated / total if total else 0.0
        return Result(samples)
