"""Application usage: a user opening an application (Pronote, Moodle, agenda, ...)."""

from ent_exporter.aggregation.incremental import EventCounter
from ent_exporter.engine.collector import Family, Kind

APP_ACCESSES = Family(
    "ent_app_accesses_total",
    Kind.COUNTER,
    'Application openings, per structure of the user (structure="all": each opening once), profile and app.',
    ("structure", "profile", "app"),
    structure_marginals=("profile",),
    breakdown_option="app_accesses_by_profile_per_structure",
    title_en="Application openings",
    title_fr="Ouvertures d'applications",
    meaning_fr="Ouvertures d'applications, par établissement de la personne (pour toute la plateforme, chaque"
    " ouverture une fois), par profil et par application.",
)


class AppAccessesCollector(EventCounter):
    events = "app_access_events"
    dimensions = ("app",)
    families = (APP_ACCESSES,)
