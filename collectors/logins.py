"""Connections: successful logins, counted as they happen."""
from .base import Family, Kind
from .incremental import EventCounter


class LoginsCollector(EventCounter):
    events = "login_events"
    families = (
        Family(
            "ent_logins_total", Kind.COUNTER,
            "Successful logins, per structure of the user (structure=\"all\": each login once) and profile.",
            ("structure", "profile"),
        ),
    )
