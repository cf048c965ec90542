"""Connections: successful logins, counted as they happen (0 for every known structure and profile)."""

from ent_exporter.aggregation.incremental import EventCounter
from ent_exporter.aggregation.known import KnownPairsCounter
from ent_exporter.engine.collector import Family, Kind


class LoginsCollector(KnownPairsCounter, EventCounter):
    events = "login_events"
    families = (
        Family(
            "ent_logins_total",
            Kind.COUNTER,
            'Successful logins, per structure of the user (structure="all": each login once) and profile.',
            ("structure", "profile"),
        ),
    )
