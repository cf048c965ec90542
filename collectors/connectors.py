"""Connector health: calls through LDAP, CAS, SAML, Pronote, ... with outcome and latency."""
from __future__ import annotations

from typing import Iterable

from psycopg import sql

from .base import Family, HistogramValue, Kind, Samples, label
from .incremental import EventCounter

DURATION_BUCKETS_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
OUTCOMES = ("success", "failure")

# Per connector and outcome of an id range: the call count, then (over calls with a known
# duration) the cumulative count at or below each bucket bound, the count and the sum.
CONNECTOR_CALLS = sql.SQL("""
    SELECT coalesce(nullif(connector, ''), 'unknown'),
           CASE WHEN success THEN 'success' ELSE 'failure' END,
           count(*),
           {bucket_counts},
           count(duration_ms),
           coalesce(sum(duration_ms) / 1000.0, 0)
    FROM {events}
    WHERE event_id > %(after)s AND event_id <= %(upto)s
    GROUP BY 1, 2
""")
BUCKET_COUNT = sql.SQL("count(*) FILTER (WHERE duration_ms <= {bound_ms})")


class ConnectorsCollector(EventCounter):
    events = "connector_events"
    delta_query = CONNECTOR_CALLS
    families = (
        Family(
            "ent_connector_requests_total", Kind.COUNTER,
            "Calls through a connector (LDAP, CAS, Pronote, ...), by outcome.",
            ("connector", "outcome"),
        ),
        Family(
            "ent_connector_request_duration_seconds", Kind.HISTOGRAM,
            "Duration of calls through a connector, successful or not (calls without a duration are left out).",
            ("connector",),
            DURATION_BUCKETS_SECONDS,
        ),
    )

    def placeholders(self) -> dict[str, sql.Composable]:
        return {
            "bucket_counts": sql.SQL(", ").join(
                BUCKET_COUNT.format(bound_ms=sql.Literal(bound * 1000.0)) for bound in DURATION_BUCKETS_SECONDS
            )
        }

    def accumulate(self, totals: Samples, rows: Iterable[tuple]) -> None:
        requests, durations = (totals.setdefault(family.name, {}) for family in self.families)
        for connector, outcome, calls, *bucket_counts, timed_calls, seconds in rows:
            connector = label(connector)
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
