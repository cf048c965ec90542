"""The canonical platform: the contract's relations as plain tables (what the demo uses),
for a platform that fills them itself."""

from __future__ import annotations

from psycopg import sql

from ent_exporter.sources.adapters.plan import Plan, readonly_role, statements
from ent_exporter.sources.tables import contract_ddl


def build(options) -> Plan:
    plan = Plan("canonical", options.schema, options.role, password=options.password)
    plan.notes.append(f"the contract's relations as tables in schema {options.schema}, with their indexes")
    schema = sql.Identifier(options.schema)
    plan.transactional += [
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema),
        sql.SQL("SET LOCAL search_path TO {}").format(schema),
        *statements(contract_ddl()),
        sql.SQL("RESET search_path"),
        *readonly_role(options.schema, options.role),
    ]
    return plan
