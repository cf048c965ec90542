"""Connections: successful logins, counted as they happen (0 for every known structure and profile)."""
from .base import Family, Kind
from .incremental import EventCounter
from .known import KnownPairsCounter


class LoginsCollector(KnownPairsCounter, EventCounter):
    events = "login_events"
    families = (
        Family(
            "ent_logins_total", Kind.COUNTER,
            "Successful logins, per structure of the user (structure=\"all\": each login once) and profile.",
            ("structure", "profile"),
        ),
    )
