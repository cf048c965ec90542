-- Edifice (Open ENT): the source contract as views over the PostgreSQL event store.
--
-- The event store writes one table per event type in its own schema, partitioned by
-- range on "date" (by month or by ISO week, as its partition manager is configured):
-- login_events, access_events, activation_events, connector_events, ... Each row has
-- id uuid, date timestamp (local time of the platform, without time zone), user_id,
-- profile (Teacher, Student, Relative, Personnel, Guest), module, platform_id, ua, ...
-- Structures and attachments live in the directory (Neo4j), not in the event store:
-- "ent-exporter import-directory" copies them into the two tables below.
-- Event ids are UUIDs: event_id is NULL in the views and the counters watermark on
-- occurred_at (see docs/platforms.md).

-- The directory, as imported (the exporter's role never reads these tables directly).
CREATE SCHEMA IF NOT EXISTS {directory_schema};

CREATE TABLE IF NOT EXISTS {directory_structures} (
    structure_id text PRIMARY KEY,          -- UAI, or the directory id of a structure without one
    name         text NOT NULL,
    kind         text                       -- the structure's type in the directory
);

CREATE TABLE IF NOT EXISTS {directory_attachments} (
    user_id      text NOT NULL,             -- the directory id, as in the events' user_id
    structure_id text NOT NULL,
    profile      text,
    created_at   timestamptz,
    activated    boolean NOT NULL DEFAULT false,  -- activation code used (account activated)
    imported_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, structure_id)     -- also the index that attributes events to structures
);

CREATE OR REPLACE VIEW {ent}.structures AS
SELECT s.structure_id, s.name, s.kind
FROM {directory_structures} AS s;

-- activated_at: the user's first ACTIVATION event; for accounts the directory says are
-- activated but that have no such event (activated before the event store was set up),
-- their creation time (or, if unknown, the time of the import that first saw them).
CREATE OR REPLACE VIEW {ent}.accounts AS
SELECT a.user_id,
       a.structure_id,
       a.profile,
       a.created_at,
       coalesce(activation.first_at,
                CASE WHEN a.activated THEN coalesce(a.created_at, a.imported_at) END) AS activated_at
FROM {directory_attachments} AS a
LEFT JOIN (
    SELECT e.user_id::text AS user_id, min(e.date) AT TIME ZONE {event_timezone} AS first_at
    FROM {activation_events} AS e
    WHERE {platform_filter}
    GROUP BY 1
) AS activation ON activation.user_id = a.user_id;

CREATE OR REPLACE VIEW {ent}.login_events AS
SELECT NULL::bigint AS event_id,
       e.user_id::text AS user_id,
       e.profile::text AS profile,
       e.date AT TIME ZONE {event_timezone} AS occurred_at
FROM {login_events} AS e
WHERE {platform_filter};

-- An ACCESS event is a user opening an application: its module is the app. The platform
-- records one when the user opens an application other than the one they opened last in
-- their session: going back and forth between two apps counts each switch, staying in one
-- counts once.
CREATE OR REPLACE VIEW {ent}.app_access_events AS
SELECT NULL::bigint AS event_id,
       e.user_id::text AS user_id,
       e.profile::text AS profile,
       e.module::text AS app,
       e.date AT TIME ZONE {event_timezone} AS occurred_at
FROM {access_events} AS e
WHERE {platform_filter};

-- A CONNECTOR event is a use of a connector: the CAS server writes one each time it
-- validates a ticket for a registered service (module = the service's class, e.g.
-- PronoteRegisteredService; service = its URL; connector-type Cas; cas-type), and the
-- OAuth2 and some SAML endpoints write them too. connector = the module without its
-- "RegisteredService" suffix (Pronote, Moodle, Kne, ...): the URL would give a series per
-- school. The event has no outcome and no duration: success, duration NULL (failures
-- and latency come from the probes). If the event store has no connector_events table
-- (the platform does not record CONNECTOR events), the view is empty.
DO $$
BEGIN
    IF to_regclass({connector_events_name}) IS NOT NULL THEN
        EXECUTE $view$
            CREATE OR REPLACE VIEW {ent}.connector_events AS
            SELECT NULL::bigint AS event_id,
                   regexp_replace(e.module, 'Regist(e)?redService$', '')::text AS connector,
                   NULL::text AS structure_id,
                   e.date AT TIME ZONE {event_timezone} AS occurred_at,
                   true AS success,
                   NULL::double precision AS duration_ms
            FROM {connector_events} AS e
            WHERE {platform_filter}
        $view$;
    ELSE
        EXECUTE $view$
            CREATE OR REPLACE VIEW {ent}.connector_events AS
            SELECT NULL::bigint AS event_id,
                   NULL::text AS connector,
                   NULL::text AS structure_id,
                   NULL::timestamptz AS occurred_at,
                   NULL::boolean AS success,
                   NULL::double precision AS duration_ms
            WHERE false
        $view$;
    END IF;
END
$$;

-- Account feeds: each run of "ent-exporter import-directory" (feed "directory"), successful or
-- not, with what it did to the rows of its file. The exporter reads the view below.
CREATE TABLE IF NOT EXISTS {directory_feed_runs} (
    run_id        bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    feed          text NOT NULL,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz NOT NULL,
    success       boolean NOT NULL,
    rows_read     bigint,                   -- data lines of the file
    rows_imported bigint,                   -- attachments imported
    rows_rejected bigint,                   -- lines left out: no user_id or structure_id
    rows_skipped  bigint,                   -- lines left out: the same attachment again
    message       text                      -- why a run failed
);
CREATE INDEX IF NOT EXISTS feed_runs_feed_finished_at_idx ON {directory_feed_runs} (feed, finished_at);

CREATE OR REPLACE VIEW {ent}.account_feeds AS
SELECT r.feed, r.started_at, r.finished_at, r.success, r.rows_read, r.rows_imported, r.rows_rejected, r.rows_skipped
FROM {directory_feed_runs} AS r;

-- Classes: each user's classes in a structure, from the directory export's "classes" column
-- (names joined with ";"). Read by the opt-in class collectors through the view below.
CREATE TABLE IF NOT EXISTS {directory_user_classes} (
    user_id      text NOT NULL,
    structure_id text NOT NULL,
    class_name   text NOT NULL,
    PRIMARY KEY (user_id, structure_id, class_name)
);

CREATE OR REPLACE VIEW {ent}.user_classes AS
SELECT c.user_id, c.structure_id, c.class_name
FROM {directory_user_classes} AS c;
