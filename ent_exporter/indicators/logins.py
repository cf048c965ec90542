"""Connections: successful logins, counted as they happen (0 for every known structure and profile)."""

from ent_exporter.aggregation.incremental import EventCounter
from ent_exporter.aggregation.known import KnownPairsCounter
from ent_exporter.engine.collector import Family, Kind

LOGINS = Family(
    "ent_logins_total",
    Kind.COUNTER,
    'Successful logins, per structure of the user (structure="all": each login once) and profile.',
    ("structure", "profile"),
    title_en="Connections",
    title_fr="Connexions",
    meaning_fr="Connexions réussies à l'ENT, par établissement de la personne (pour toute la plateforme, chaque"
    " connexion une fois) et par profil.",
)


class LoginsCollector(KnownPairsCounter, EventCounter):
    events = "login_events"
    families = (LOGINS,)
