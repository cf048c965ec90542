"""Edifice (Open ENT): views over the PostgreSQL event store and the imported directory."""

from __future__ import annotations

from psycopg import sql

from ent_exporter.sources.adapters.plan import Index, LocalTimeBounds, Plan, readonly_role, sql_file, statements
from ent_exporter.sources.postgres import RELATIONS


def build(options) -> Plan:
    plan = Plan("edifice", options.schema, options.role, password=options.password)
    events = options.events_schema
    zone = sql.Literal(options.event_timezone)
    plan.notes += [
        f"event store: schema {events}; event times are read in {options.event_timezone}",
        f"directory: tables in schema {options.directory_schema}, filled by ent-exporter import-directory",
    ]
    if options.platform_id is not None:
        plan.notes.append(f"only the events of platform_id {options.platform_id!r}")
        platform_filter: sql.Composable = sql.SQL("e.platform_id = {}").format(sql.Literal(options.platform_id))
    else:
        platform_filter = sql.SQL("true")
    plan.transactional += [
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(options.schema)),
        *statements(
            sql_file("edifice.sql"),
            ent=sql.Identifier(options.schema),
            directory_schema=sql.Identifier(options.directory_schema),
            directory_structures=sql.Identifier(options.directory_schema, "structures"),
            directory_attachments=sql.Identifier(options.directory_schema, "attachments"),
            directory_feed_runs=sql.Identifier(options.directory_schema, "feed_runs"),
            directory_user_classes=sql.Identifier(options.directory_schema, "user_classes"),
            login_events=sql.Identifier(events, "login_events"),
            access_events=sql.Identifier(events, "access_events"),
            activation_events=sql.Identifier(events, "activation_events"),
            connector_events=sql.Identifier(events, "connector_events"),
            connector_events_name=sql.Literal(sql.Identifier(events, "connector_events").as_string(None)),
            event_timezone=zone,
            platform_filter=platform_filter,
        ),
        # The contract's core relations and the optional one this platform gives.
        *readonly_role(options.schema, options.role, RELATIONS + ("account_feeds", "user_classes")),
    ]
    if options.indexes:
        local_time = sql.SQL("((date AT TIME ZONE {}))").format(zone)
        plan.indexes += [
            Index(
                (events, "login_events"),
                "login_events_ent_occurred_at",
                local_time,
                "login_events: occurred_at, the counters' watermark and every time window",
                partitioned=True,
            ),
            Index(
                (events, "access_events"),
                "access_events_ent_occurred_at",
                local_time,
                "app_access_events: occurred_at, the counters' watermark and every time window",
                partitioned=True,
            ),
            Index(
                (events, "activation_events"),
                "activation_events_ent_user_date",
                sql.SQL("(user_id, date)"),
                "accounts.activated_at: each user's first activation",
                partitioned=True,
            ),
            Index(
                (events, "connector_events"),
                "connector_events_ent_occurred_at",
                local_time,
                "connector_events: occurred_at, the counters' watermark",
                partitioned=True,
                optional=True,
            ),
        ]
        # A time window on occurred_at reads only the partitions it overlaps (constraint exclusion).
        for table in ("login_events", "access_events", "connector_events"):
            plan.indexes.append(
                LocalTimeBounds(
                    (events, table),
                    "ent_local_time",
                    options.event_timezone,
                    f"{table}: each partition's range of occurred_at, so that a time window skips the other partitions",
                    optional=table == "connector_events",
                )
            )
    return plan
