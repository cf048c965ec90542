"""The words of the reports, in French and English.

Pure data and small formatting helpers. Where a report's figure is one metric family's, its title is
the family's in the indicator catalogue (``title_fr`` / ``title_en``, declared beside the family in
ent_exporter/indicators/, the words the dashboards show too); the sentence that says what the month's
number means stays here. Importing the indicators' modules brings numpy and psycopg, never matplotlib.
Every language has every key (tests/test_reports.py checks it); French is the default, as the people
who read these figures do.
"""

from __future__ import annotations

from datetime import date

from ent_exporter.engine.collector import Family
from ent_exporter.indicators.accounts import ACTIVATION_RATIO
from ent_exporter.indicators.activity import INACTIVE_ACCOUNTS
from ent_exporter.indicators.app_accesses import APP_ACCESSES
from ent_exporter.indicators.logins import LOGINS
from ent_exporter.indicators.visitors import UNIQUE_VISITORS, VISITS_PER_VISITOR

LANGUAGES = ("fr", "en")
DEFAULT_LANGUAGE = "fr"

# ISO weekday 1..7 -> name.
WEEKDAYS = {
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
WEEKDAYS_SHORT = {
    "fr": ("lun.", "mar.", "mer.", "jeu.", "ven.", "sam.", "dim."),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}
MONTHS = {
    "fr": (
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}


def title(language: str, family: Family) -> str:
    """A family's title in the catalogue, in the language."""
    return family.title_fr if language == "fr" else family.title_en


# The report figures that are one family's (keys of INDICATORS): their titles are the catalogue's.
FAMILIES = {
    "connections": LOGINS,
    "visitors": UNIQUE_VISITORS,
    "visits_per_visitor": VISITS_PER_VISITOR,
    "app_openings": APP_ACCESSES,
    "activation_ratio": ACTIVATION_RATIO,
}
THIRTY_DAYS = {"fr": "30 jours", "en": "30 days"}

# Indicator titles (a few words, no metric name) and what the number means, in one sentence.
# The keys are the indicators' stable identifiers (CSV file names, HTML anchors).
INDICATORS = {
    "fr": {
        "connections": (
            title("fr", LOGINS),
            "Nombre de connexions réussies au cours du mois, toutes personnes confondues.",
        ),
        "visitors": (
            title("fr", UNIQUE_VISITORS),
            "Personnes distinctes qui se sont connectées au moins une fois dans le mois.",
        ),
        "visits_per_visitor": (
            title("fr", VISITS_PER_VISITOR),
            "Nombre moyen de connexions des personnes venues dans le mois.",
        ),
        "app_openings": (
            title("fr", APP_ACCESSES),
            "Nombre de fois où une application (Pronote, messagerie, agenda…) a été ouverte dans le mois.",
        ),
        "activated_accounts": ("Comptes activés", "Personnes dont le compte est activé à la fin du mois."),
        "activation_ratio": (
            title("fr", ACTIVATION_RATIO),
            "Part des comptes activés parmi tous les comptes, à la fin du mois.",
        ),
        "inactive_30d": (
            f"{title('fr', INACTIVE_ACCOUNTS)} ({THIRTY_DAYS['fr']})",
            "Comptes activés sans aucune connexion pendant les 30 derniers jours du mois.",
        ),
        "connections_per_day": ("Connexions par jour", "Connexions réussies de chaque jour du mois (heure de Paris)."),
        "visitors_by_profile": (
            "Visiteurs par profil",
            "Personnes distinctes venues dans le mois, par profil ; « Total » compte chaque personne une fois.",
        ),
        "applications": (
            "Utilisation des applications",
            "Ouvertures de chaque application dans le mois et personnes distinctes qui l'ont "
            "ouverte ; une application vue les mois comparés mais pas ce mois-ci compte 0.",
        ),
        "logins_by_hour": (
            "Connexions par jour de la semaine et par heure",
            "Connexions du mois selon le jour de la semaine et l'heure locale : les heures de pointe.",
        ),
        "accounts_by_profile": (
            "Comptes et activation par profil",
            "Comptes activés et en attente à la fin du mois, taux d'activation et comptes "
            "activés restés sans connexion 30 et 90 jours.",
        ),
    },
    "en": {
        "connections": (title("en", LOGINS), "Successful logins during the month, everybody included."),
        "visitors": (title("en", UNIQUE_VISITORS), "Distinct people who logged in at least once during the month."),
        "visits_per_visitor": (
            title("en", VISITS_PER_VISITOR),
            "Average number of logins of the people who came during the month.",
        ),
        "app_openings": (
            title("en", APP_ACCESSES),
            "Number of times an application (Pronote, mail, calendar…) was opened during the month.",
        ),
        "activated_accounts": ("Activated accounts", "People whose account is activated at the end of the month."),
        "activation_ratio": (
            title("en", ACTIVATION_RATIO),
            "Share of activated accounts among all accounts, at month end.",
        ),
        "inactive_30d": (
            f"{title('en', INACTIVE_ACCOUNTS)} ({THIRTY_DAYS['en']})",
            "Activated accounts without any login during the last 30 days of the month.",
        ),
        "connections_per_day": ("Connections per day", "Successful logins of each day of the month (local time)."),
        "visitors_by_profile": (
            "Visitors by profile",
            'Distinct people who came during the month, by profile; "Total" counts each person once.',
        ),
        "applications": (
            "Application use",
            "Openings of each application during the month and distinct people who opened it; "
            "an application seen in the compared months but not this one counts 0.",
        ),
        "logins_by_hour": (
            "Connections by weekday and hour",
            "Logins of the month by weekday and local hour: the peak hours.",
        ),
        "accounts_by_profile": (
            "Accounts and activation by profile",
            "Activated and pending accounts at month end, activation rate, and activated "
            "accounts without a login for 30 and 90 days.",
        ),
    },
}

# Everything else a report or a panel says.
TEXT = {
    "fr": {
        "report_title": "Rapport mensuel d'utilisation de l'ENT",
        "platform": "Ensemble de la plateforme",
        "establishment": "Établissement",
        "month": "Mois",
        "generated": "Produit le {when} à partir de la base de la plateforme ; mois du {start} au {end} inclus "
        "(heure de {zone}).",
        "summary": "Chiffres clés",
        "indicator": "Indicateur",
        "value": "Ce mois",
        "previous_month": "Mois précédent",
        "year_before": "Même mois l'an dernier",
        "change": "Évolution",
        "profile": "Profil",
        "total": "Total (personnes distinctes)",
        "day": "Jour",
        "weekday": "Jour de la semaine",
        "hour": "Heure",
        "application": "Application",
        "openings": "Ouvertures",
        "users": "Personnes",
        "visitors": title("fr", UNIQUE_VISITORS),
        "connections": title("fr", LOGINS),
        "visits_per_visitor": title("fr", VISITS_PER_VISITOR),
        "activated": "Activés",
        "pending": "En attente",
        "activation_ratio": title("fr", ACTIVATION_RATIO),
        "inactive_30d": "Inactifs 30 j",
        "inactive_90d": "Inactifs 90 j",
        "not_available": "—",
        "points": "pts",
        "no_data": "Aucune donnée pour ce mois.",
        "footnote": "Une personne rattachée à plusieurs établissements compte dans chacun ; le total de la "
        "plateforme la compte une fois. Évolution : variation en pourcentage (en points pour un taux).",
        "unknown": "inconnu",
        "privacy": "Secret statistique (« s ») : les effectifs de moins de {min_count} personnes ne sont pas "
        "affichés, ni ceux qu'une différence avec un total permettrait de retrouver, ni les taux qui en dépendent.",
        "withheld": "s",
        "data_since": "Données disponibles depuis le {date} : un mois qu'elles ne couvrent pas en entier n'est pas"
        " comparé (« — »).",
        "provisional": "provisoire, au {date}",
        "partial": "Mois en cours : chiffres provisoires au {date} ; les évolutions des connexions, des visiteurs et"
        " des ouvertures d'applications attendent la fin du mois (« — »).",
    },
    "en": {
        "report_title": "Monthly ENT usage report",
        "platform": "Whole platform",
        "establishment": "Establishment",
        "month": "Month",
        "generated": "Produced on {when} from the platform's database; month from {start} to {end} inclusive "
        "({zone} time).",
        "summary": "Key figures",
        "indicator": "Indicator",
        "value": "This month",
        "previous_month": "Previous month",
        "year_before": "Same month last year",
        "change": "Change",
        "profile": "Profile",
        "total": "Total (distinct people)",
        "day": "Day",
        "weekday": "Weekday",
        "hour": "Hour",
        "application": "Application",
        "openings": "Openings",
        "users": "People",
        "visitors": title("en", UNIQUE_VISITORS),
        "connections": title("en", LOGINS),
        "visits_per_visitor": title("en", VISITS_PER_VISITOR),
        "activated": "Activated",
        "pending": "Pending",
        "activation_ratio": title("en", ACTIVATION_RATIO),
        "inactive_30d": "Inactive 30 d",
        "inactive_90d": "Inactive 90 d",
        "not_available": "—",
        "points": "pts",
        "no_data": "No data for this month.",
        "footnote": "A person attached to several establishments counts in each; the platform total counts them "
        "once. Change: percent change (in points for a rate).",
        "unknown": "unknown",
        "privacy": "Withheld (\u201cs\u201d): counts of fewer than {min_count} people are not shown, nor those a "
        "difference with a total would give back, nor the rates made of them.",
        "withheld": "s",
        "data_since": "Data available since {date}: a month they do not wholly cover is not compared (“—”).",
        "provisional": "provisional, as of {date}",
        "partial": "Current month: provisional figures as of {date}; the changes in connections, visitors and"
        " application openings wait for the month's end (“—”).",
    },
}

# Platform profile names as found (Edifice's) -> how a reader calls them.
PROFILES = {
    "fr": {
        "Teacher": "Enseignants",
        "Student": "Élèves",
        "Relative": "Parents",
        "Personnel": "Personnels",
        "Guest": "Invités",
        "unknown": "Profil inconnu",
    },
    "en": {
        "Teacher": "Teachers",
        "Student": "Students",
        "Relative": "Parents",
        "Personnel": "Staff",
        "Guest": "Guests",
        "unknown": "Unknown profile",
    },
}


def text(language: str, key: str, **values: object) -> str:
    template = TEXT[language][key]
    return template.format(**values) if values else template


def indicator(language: str, key: str) -> tuple[str, str]:
    """(title, one-sentence description) of an indicator."""
    return INDICATORS[language][key]


def profile_name(language: str, profile: str) -> str:
    return PROFILES[language].get(profile, profile)


def month_name(language: str, year: int, month: int) -> str:
    return f"{MONTHS[language][month - 1]} {year}"


def app_name(language: str, app: str) -> str:
    """An application as found; ``unknown`` (no name recorded) in the reader's language."""
    return TEXT[language]["unknown"] if app == "unknown" else app


def day_text(language: str, day: date) -> str:
    if language == "fr":
        return f"{WEEKDAYS_SHORT['fr'][day.isoweekday() - 1]} {day.day}"
    return f"{WEEKDAYS_SHORT['en'][day.isoweekday() - 1]} {day.day}"


def long_date(language: str, day: date) -> str:
    if language == "fr":
        return f"{'1er' if day.day == 1 else day.day} {MONTHS['fr'][day.month - 1]} {day.year}"
    return f"{day.day} {MONTHS['en'][day.month - 1]} {day.year}"


# French typography: a narrow no-break space groups thousands and precedes %; the decimal mark is a comma.
NARROW_NBSP = "\u202f"


def number(language: str, value: float, decimals: int = 0) -> str:
    text_ = f"{value:,.{decimals}f}"
    if language == "fr":
        return text_.replace(",", NARROW_NBSP).replace(".", ",")
    return text_


def percent(language: str, ratio: float, decimals: int = 1) -> str:
    """A ratio (0.25) as a percentage (25,0 % / 25.0%)."""
    value = number(language, ratio * 100, decimals)
    return f"{value}{NARROW_NBSP}%" if language == "fr" else f"{value}%"


def change(language: str, current: float | None, before: float | None, *, rate: bool = False) -> str:
    """The change from ``before`` to ``current``: signed percent, or signed points for a rate;
    "—" when there is nothing to compare with (no figure or a withheld one, or 0 before)."""
    if before is None or current is None:
        return TEXT[language]["not_available"]
    if rate:
        points = (current - before) * 100
        sign = "+" if points > 0 else ("−" if points < 0 else "±")
        return (
            f"{sign}{number(language, abs(points), 1)}{NARROW_NBSP if language == 'fr' else ' '}"
            f"{TEXT[language]['points']}"
        )
    if before == 0:
        return TEXT[language]["not_available"]
    ratio = (current - before) / before
    sign = "+" if ratio > 0 else ("−" if ratio < 0 else "±")
    return sign + percent(language, abs(ratio))


def percent_change(current: float | None, before: float | None) -> float | None:
    """The change in percent (None when it cannot be computed): the CSVs' figure."""
    if before is None or current is None or before == 0:
        return None
    return (current - before) / before * 100
