"""Account activations: accounts whose activation time has passed, counted once each.

Accounts carry no event id, so the watermark is ``activated_at``: a cycle counts the
accounts activated in (watermark, now - settle], one index range scan.
"""
from __future__ import annotations

from datetime import datetime

from psycopg import sql

from .base import Cadence, Collector, Context, Family, Kind, Result, decode_samples, encode_samples
from .incremental import add_counts

ACTIVATIONS = sql.SQL("""
    WITH activated AS (
        SELECT user_id,
               coalesce(nullif(structure_id, ''), 'unknown') AS structure,
               coalesce(nullif(profile, ''), 'unknown') AS profile
        FROM {accounts}
        WHERE activated_at > %(after)s AND activated_at <= %(upto)s
    )
    SELECT structure, profile, count(*) FROM activated GROUP BY 1, 2
    UNION ALL
    SELECT 'all', profile, count(DISTINCT user_id) FROM activated GROUP BY 2
""")


class AccountActivationsCollector(Collector):
    cadence = Cadence.INSTANT
    families = (
        Family(
            "ent_account_activations_total", Kind.COUNTER,
            "Account activations, per structure of the account and profile (structure=\"all\": distinct users).",
            ("structure", "profile"),
        ),
    )

    def collect(self, ctx: Context) -> Result:
        totals = decode_samples(self.families, ctx.state.get("totals", {}))
        stored = ctx.state.get("watermark")
        after = datetime.fromisoformat(stored) if stored else datetime.min.replace(tzinfo=ctx.now.tzinfo)
        upto = max(after, ctx.now - ctx.settle)
        rows = ctx.source.fetch(ACTIVATIONS, {"after": after, "upto": upto})
        add_counts(totals[self.families[0].name], rows)
        return Result(totals, {"watermark": upto.isoformat(), "totals": encode_samples(totals)})
