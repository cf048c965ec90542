"""Optional relations of the source contract: a platform may give them or not.

The five core relations (structures, accounts and the three event relations) are the
contract every source has. Others (``course_progress``, ``account_feeds``) exist only where
the platform's adapter can fill them. A collector that reads one asks first whether it is
there (one catalogue look-up per run): when it is not, the collector publishes nothing and
its run succeeds, so a source without course completions or account feeds has neither
failing runs nor a stale collector, and the families simply do not appear. Once an adapter
creates the relation (a new ``init-source``), the next run publishes.
"""

from __future__ import annotations

from psycopg import sql

from ent_exporter.engine.collector import Context

RELATION_PRESENT = sql.SQL("""
    SELECT EXISTS (
        SELECT 1 FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
        WHERE n.nspname = %(schema)s AND c.relname = %(relation)s
    )
""")


def relation_present(ctx: Context, relation: str) -> bool:
    schema = ctx.source.schema
    rows = ctx.source.fetch(RELATION_PRESENT, {"schema": schema, "relation": relation})
    return bool(rows and rows[0][0])
