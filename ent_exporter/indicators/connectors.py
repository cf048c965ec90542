"""Connector health: calls through LDAP, CAS, SAML, Pronote, ... with outcome and latency.

Invalid measurements are left out of what they would corrupt and counted in
``ent_exporter_invalid_measurements_total{family, reason}``: a call whose duration is NaN,
infinite, negative or longer than ``ABSURD_SECONDS`` still counts in the requests, not in the
duration histogram (reason ``nan``, ``infinite``, ``negative``, ``absurd``); a call whose outcome
(``success``) is NULL is left out of the requests (reason ``null_outcome``), its duration still
counts if it is valid.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from psycopg import sql

from ent_exporter.aggregation.incremental import EventCounter
from ent_exporter.engine.collector import (
    INVALID_MEASUREMENTS,
    Family,
    HistogramValue,
    Kind,
    LabelValues,
    Samples,
    label,
)

DURATION_BUCKETS_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
OUTCOMES = ("success", "failure")
# A call said to last longer than this is a measurement error (a clock jump, a unit mistake).
ABSURD_SECONDS = 86_400
INVALID_REASONS = ("nan", "infinite", "negative", "absurd")

# Per connector and outcome (NULL: unknown) of an id range: the call count, then over calls with
# a valid duration the cumulative count at or below each bucket bound, the count and the sum,
# then the calls with an invalid duration per reason. In PostgreSQL NaN is above every number,
# so "duration_ms <= bound" leaves NaN and infinities out.
CONNECTOR_CALLS = sql.SQL("""
    SELECT coalesce(nullif(connector, ''), 'unknown'),
           CASE WHEN success THEN 'success' WHEN NOT success THEN 'failure' END,
           count(*),
           {bucket_counts},
           count(*) FILTER (WHERE {valid}),
           coalesce(sum(duration_ms) FILTER (WHERE {valid}) / 1000.0, 0),
           count(*) FILTER (WHERE duration_ms = 'NaN'),
           count(*) FILTER (WHERE duration_ms IN ('Infinity', '-Infinity')),
           count(*) FILTER (WHERE duration_ms < 0 AND duration_ms > '-Infinity'),
           count(*) FILTER (WHERE duration_ms > {absurd_ms} AND duration_ms < 'Infinity')
    FROM {events}
    WHERE event_id > %(after)s AND event_id <= %(upto)s
    GROUP BY 1, 2
""")
VALID_DURATION = sql.SQL("duration_ms >= 0 AND duration_ms <= {absurd_ms}")
BUCKET_COUNT = sql.SQL("count(*) FILTER (WHERE duration_ms >= 0 AND duration_ms <= {bound_ms})")


class ConnectorsCollector(EventCounter):
    events = "connector_events"
    delta_query = CONNECTOR_CALLS
    bookkeeping = (INVALID_MEASUREMENTS,)
    families = (
        Family(
            "ent_connector_requests_total",
            Kind.COUNTER,
            "Calls through a connector (LDAP, CAS, Pronote, ...), by outcome.",
            ("connector", "outcome"),
            title_en="Connector calls",
            title_fr="Appels aux connecteurs",
            meaning_fr="Appels passés par un connecteur (LDAP, CAS, Pronote…), selon leur résultat.",
        ),
        Family(
            "ent_connector_request_duration_seconds",
            Kind.HISTOGRAM,
            "Duration of calls through a connector, successful or not (calls without a duration are left out).",
            ("connector",),
            DURATION_BUCKETS_SECONDS,
            unit="seconds",
            title_en="Connector call duration",
            title_fr="Durée des appels aux connecteurs",
            meaning_fr="Durée des appels passés par un connecteur, réussis ou non (les appels sans durée sont"
            " écartés).",
        ),
    )

    def placeholders(self) -> dict[str, sql.Composable]:
        absurd_ms = sql.Literal(ABSURD_SECONDS * 1000.0)
        return {
            "bucket_counts": sql.SQL(", ").join(
                BUCKET_COUNT.format(bound_ms=sql.Literal(bound * 1000.0)) for bound in DURATION_BUCKETS_SECONDS
            ),
            "valid": VALID_DURATION.format(absurd_ms=absurd_ms),
            "absurd_ms": absurd_ms,
        }

    def events_in(self, rows: list[tuple]) -> int | None:
        return int(sum(row[2] for row in rows))

    def accumulate(self, totals: Samples, rows: Iterable[tuple]) -> None:
        counts, histograms = (totals.setdefault(family.name, {}) for family in self.families)
        # (the kinds of the families: calls counted, durations as histograms)
        requests = cast("dict[LabelValues, float]", counts)
        durations = cast("dict[LabelValues, HistogramValue]", histograms)
        invalid = cast("dict[LabelValues, float]", totals.setdefault(INVALID_MEASUREMENTS.name, {}))
        buckets = len(DURATION_BUCKETS_SECONDS)
        for connector, outcome, calls, *rest in rows:
            bucket_counts, (timed_calls, seconds, *reasons) = rest[:buckets], rest[buckets:]
            connector = label(connector)
            for reason, count in zip(INVALID_REASONS, reasons):
                if count:
                    key = (self.families[1].name, reason)
                    invalid[key] = invalid.get(key, 0.0) + float(count)
            if outcome is None:
                key = (self.families[0].name, "null_outcome")
                invalid[key] = invalid.get(key, 0.0) + float(calls)
            else:
                requests[(connector, outcome)] = requests.get((connector, outcome), 0.0) + float(calls)
            # Both outcomes of a connector once it is seen: no failures yet is 0, not a missing series.
            for other in OUTCOMES:
                requests.setdefault((connector, other), 0.0)
            delta = HistogramValue([float(c) for c in bucket_counts], float(timed_calls), float(seconds))
            current = durations.get((connector,))
            if current is None:
                durations[(connector,)] = delta
            else:
                current.add(delta)
