"""Account feeds: when each feed that brings accounts into the platform last ran and succeeded,
and what its last run did (rows read, imported, rejected, skipped; duration).

A feed is what keeps the directory up to date: Edifice's directory import
(``ent-exporter import-directory`` records each run, feed ``directory``), Moodle's user and
enrolment synchronisation tasks (one feed per task, from the task log), or anything a
canonical platform writes into ``account_feeds``. Nobody notices that the nightly academic
import failed, or skipped half its rows, until users cannot log in: these gauges, and the
alerts on them, say it the next morning.

Reads the optional relation ``account_feeds`` (one row per run: feed, started_at,
finished_at, success, rows_read, rows_imported, rows_rejected, rows_skipped); on a source
without it, publishes nothing (see ent_exporter.aggregation.optional). A feed that has never succeeded
has a last success of 0 (1970): the "overdue" alert fires for it. Row counts a feed does
not record (NULL; Moodle's tasks) are not published.
"""

from __future__ import annotations

from psycopg import sql

from ent_exporter.aggregation.optional import relation_present
from ent_exporter.engine.collector import Cadence, Collector, Context, Family, Kind, Result, Samples

RELATION = "account_feeds"
ROW_OUTCOMES = ("read", "imported", "rejected", "skipped")

LAST_RUN = Family(
    "ent_account_feed_last_run_timestamp_seconds",
    Kind.GAUGE,
    "Unix time at which the feed's last run ended, successful or not.",
    ("feed",),
    unit="timestamp",
    title_en="Feed's last run",
    title_fr="Dernière exécution du flux",
    meaning_fr="Date et heure de fin de la dernière exécution du flux, réussie ou non.",
)
LAST_SUCCESS = Family(
    "ent_account_feed_last_success_timestamp_seconds",
    Kind.GAUGE,
    "Unix time at which the feed's last successful run ended (0 if it never succeeded).",
    ("feed",),
    unit="timestamp",
    title_en="Feed's last success",
    title_fr="Dernier succès du flux",
    meaning_fr="Date et heure de fin de la dernière exécution réussie du flux (0 s'il n'a jamais réussi).",
)
LAST_RUN_SUCCESS = Family(
    "ent_account_feed_last_run_success",
    Kind.GAUGE,
    "1 if the feed's last run succeeded, else 0.",
    ("feed",),
    additive=False,
    unit="boolean",
    title_en="Feed's last run succeeded",
    title_fr="Réussite de la dernière exécution du flux",
    meaning_fr="1 si la dernière exécution du flux a réussi, 0 sinon.",
)
LAST_RUN_DURATION = Family(
    "ent_account_feed_last_run_duration_seconds",
    Kind.GAUGE,
    "Duration of the feed's last run.",
    ("feed",),
    additive=False,
    unit="seconds",
    title_en="Feed's last run duration",
    title_fr="Durée de la dernière exécution du flux",
    meaning_fr="Durée de la dernière exécution du flux.",
)
LAST_RUN_ROWS = Family(
    "ent_account_feed_last_run_rows",
    Kind.GAUGE,
    "Rows of the feed's last run: read (in the input), imported, rejected (left out: invalid), "
    "skipped (left out: duplicates).",
    ("feed", "outcome"),
    title_en="Rows of the feed's last run",
    title_fr="Lignes de la dernière exécution du flux",
    meaning_fr="Lignes de la dernière exécution du flux : lues (en entrée), importées, rejetées (écartées car"
    " invalides) ou ignorées (écartées car en double).",
)

# The last run of each feed and its last success; a handful of rows per feed and day.
FEED_RUNS = sql.SQL("""
    WITH runs AS (
        SELECT coalesce(nullif(feed, ''), 'unknown') AS feed, started_at, finished_at, success,
               rows_read, rows_imported, rows_rejected, rows_skipped
        FROM {account_feeds}
        WHERE finished_at <= %(now)s
    ), last AS (
        SELECT DISTINCT ON (feed) * FROM runs ORDER BY feed, finished_at DESC
    ), succeeded AS (
        SELECT feed, max(finished_at) AS at FROM runs WHERE success GROUP BY feed
    )
    SELECT last.feed, extract(epoch FROM last.finished_at), extract(epoch FROM succeeded.at), last.success,
           extract(epoch FROM last.finished_at - last.started_at),
           last.rows_read, last.rows_imported, last.rows_rejected, last.rows_skipped
    FROM last LEFT JOIN succeeded USING (feed)
""")


class AccountFeedsCollector(Collector):
    cadence = Cadence.HOURLY
    families = (LAST_RUN, LAST_SUCCESS, LAST_RUN_SUCCESS, LAST_RUN_DURATION, LAST_RUN_ROWS)

    def collect(self, ctx: Context) -> Result:
        samples: Samples = {family.name: {} for family in self.families}
        if not relation_present(ctx, RELATION):
            return Result(samples)
        for feed, finished, succeeded, success, duration, *rows in ctx.source.fetch(FEED_RUNS, {"now": ctx.now}):
            samples[LAST_RUN.name][(feed,)] = float(finished)
            samples[LAST_SUCCESS.name][(feed,)] = float(succeeded or 0)
            samples[LAST_RUN_SUCCESS.name][(feed,)] = 1.0 if success else 0.0
            if duration is not None:
                samples[LAST_RUN_DURATION.name][(feed,)] = max(0.0, float(duration))
            for outcome, count in zip(ROW_OUTCOMES, rows):
                if count is not None:
                    samples[LAST_RUN_ROWS.name][(feed, outcome)] = float(count)
        return Result(samples)
