"""Platform adapters: the source contract (schema ``ent``) over a platform's own tables.

``init-source`` builds a :class:`~ent_exporter.sources.adapters.plan.Plan` for one platform — views
(or, for ``canonical``, tables), the indexes the collectors need, and a read-only role
that may SELECT the contract's relations and nothing else — then prints or applies it.
``import-directory`` loads the Edifice directory (exported from Neo4j) into the tables
the Edifice views join.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ent_exporter.sources.adapters.plan import AdapterError, Plan, checked_name

PLATFORMS = ("edifice", "moodle", "canonical")


@dataclass
class SourceOptions:
    platform: str
    schema: str = "ent"  # where the contract's relations go
    role: str = "ent_exporter"  # the exporter's read-only role
    password: str | None = None  # makes the role able to log in
    indexes: bool = True  # build the indexes the collectors need on the platform's tables
    # Moodle
    prefix: str = "mdl_"
    moodle_schema: str = "public"
    skip_anonymous: bool = False  # leave out log rows marked anonymous
    active_enrolments_only: bool = False  # a role assignment in a course attaches only with an active enrolment
    # Edifice
    events_schema: str = "events"
    directory_schema: str = "ent_directory"
    event_timezone: str = "Europe/Paris"  # the zone of the event store's "timestamp without time zone"
    platform_id: str | None = None  # only this platform's events, when several share the event store

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            raise AdapterError(f"unknown platform {self.platform!r} (one of {', '.join(PLATFORMS)})")
        for value, what in (
            (self.schema, "schema"),
            (self.role, "role"),
            (self.moodle_schema, "Moodle schema"),
            (self.events_schema, "events schema"),
            (self.directory_schema, "directory schema"),
        ):
            checked_name(value, what)
        if self.prefix and not self.prefix.replace("_", "a").isalnum():
            raise AdapterError(f"table prefix {self.prefix!r}: use letters, digits and underscores")
        try:
            ZoneInfo(self.event_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise AdapterError(
                f"unknown timezone {self.event_timezone!r} (use an IANA name such as Europe/Paris)"
            ) from None
        if self.schema in (
            self.events_schema if self.platform == "edifice" else None,
            self.moodle_schema if self.platform == "moodle" else None,
            self.directory_schema if self.platform == "edifice" else None,
        ):
            raise AdapterError(f"schema {self.schema!r} is the platform's own: choose another one for the contract")


def build_plan(options: SourceOptions) -> Plan:
    """What init-source does for ``options.platform``."""
    from ent_exporter.sources.adapters import canonical, edifice, moodle

    builder = {"edifice": edifice.build, "moodle": moodle.build, "canonical": canonical.build}[options.platform]
    return builder(options)


__all__ = ["AdapterError", "PLATFORMS", "Plan", "SourceOptions", "build_plan"]
