"""The words of the reports, in French and English.

Pure data and small formatting helpers. Where a report's figure is one metric family's, its title is
the family's in the indicator catalogue (``title_fr`` / ``title_en``, declared beside the family in
ent_exporter/indicators/, the words the dashboards show too); the sentence that says what the month's
number means stays here. Importing the indicators' modules brings numpy and psycopg, never matplotlib.
Every language has every key (tests/test_reports.py checks it); French is the default, as the people
who read these figures do.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
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
        "connections_per_day": (
            "Connexions par jour",
            "Connexions réussies de chaque jour du mois ; en gris, les samedis et dimanches.",
        ),
        "visitors_by_profile": (
            "Visiteurs par profil",
            "Personnes distinctes venues dans le mois, par profil ; « Total » compte chaque personne une fois.",
        ),
        "applications": (
            "Utilisation des applications",
            "Ouvertures de chaque application dans le mois (les dix premières dans le graphique) et personnes distinctes qui l'ont "
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
        "connections_per_day": (
            "Connections per day",
            "Successful logins of each day of the month; Saturdays and Sundays in grey.",
        ),
        "visitors_by_profile": (
            "Visitors by profile",
            'Distinct people who came during the month, by profile; "Total" counts each person once.',
        ),
        "applications": (
            "Application use",
            "Openings of each application during the month (the first ten in the chart) and distinct people who opened it; "
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
        "({zone}).",
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
        "unknown_profile_note": "« Profil inconnu » : comptes ou connexions dont la plateforme n'a pas enregistré "
        "le profil (élève, enseignant, parent…) ; ils comptent dans le total.",
        "day_of_month": "Jour du mois",
        "weekdays": "Du lundi au vendredi",
        "weekend": "Samedi et dimanche",
        "accounts": "Comptes",
        "visitors_axis": "Visiteurs (personnes distinctes)",
        "local_hour": "Heure ({zone})",
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
        "generated": "Produced on {when} from the platform's database; month from {start} to {end} inclusive ({zone}).",
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
        "unknown_profile_note": "\u201cUnknown profile\u201d: accounts or logins whose profile the platform did not "
        "record (student, teacher, parent…); they count in the total.",
        "day_of_month": "Day of the month",
        "weekdays": "Monday to Friday",
        "weekend": "Saturday and Sunday",
        "accounts": "Accounts",
        "visitors_axis": "Visitors (distinct people)",
        "local_hour": "Hour ({zone})",
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


# -- applications -------------------------------------------------------------------------------

# The applications of Edifice (ODE, Open ENT: the ``module`` of its ACCESS events, e.g. "Blog",
# "CollaborativeWall", or the identifiers of a platform's own contract such as "collaborative-wall")
# and of Moodle (the ``component`` of a module view, "mod_assign"; "course" and "frontpage" for
# course pages), by their key (see ``app_key``) -> (French, English) as the platforms' menus name them.
APPLICATIONS: dict[str, tuple[str, str]] = {
    # Edifice / ODE
    "pronote": ("Pronote", "Pronote"),
    "messagerie": ("Messagerie", "Mail"),
    "conversation": ("Messagerie", "Mail"),
    "zimbra": ("Messagerie", "Mail"),
    "cahierdetextes": ("Cahier de textes", "Homework book"),
    "diary": ("Cahier de textes", "Homework book"),
    "homeworks": ("Cahier de textes", "Homework book"),
    "espacedocumentaire": ("Espace documentaire", "Documents"),
    "workspace": ("Espace documentaire", "Documents"),
    "actualites": ("Actualités", "News"),
    "news": ("Actualités", "News"),
    "blog": ("Blog", "Blog"),
    "agenda": ("Agenda", "Calendar"),
    "calendar": ("Agenda", "Calendar"),
    "moodle": ("Moodle", "Moodle"),
    "mediacentre": ("Médiacentre", "Media centre"),
    "gar": ("Médiacentre", "Media centre"),
    "wiki": ("Wiki", "Wiki"),
    "forum": ("Forum", "Forum"),
    "exercizer": ("Exercices et évaluations", "Exercises and tests"),
    "collaborativewall": ("Mur collaboratif", "Collaborative wall"),
    "timeline": ("Fil de nouveautés", "News feed"),
    "rack": ("Casier", "Drop box"),
    "scrapbook": ("Cahier multimédia", "Multimedia notebook"),
    "poll": ("Sondage", "Poll"),
    "community": ("Communautés", "Communities"),
    "pages": ("Pages", "Pages"),
    "rbs": ("Réservation de ressources", "Resource booking"),
    "timelinegenerator": ("Frise chronologique", "Timeline maker"),
    "mindmap": ("Carte mentale", "Mind map"),
    "collaborativeeditor": ("Pad", "Shared pad"),
    "directory": ("Annuaire", "Directory"),
    "annuaire": ("Annuaire", "Directory"),
    "sharebigfiles": ("Poste-fichiers", "Large file sharing"),
    "archive": ("Mes données", "My data"),
    "support": ("Assistance ENT", "Help desk"),
    "schoolbook": ("Carnet de liaison", "Home-school notebook"),
    "competences": ("Compétences", "Skills assessment"),
    "presences": ("Présences", "Attendance"),
    "viescolaire": ("Vie scolaire", "School life"),
    "edt": ("Emploi du temps", "Timetable"),
    "formulaire": ("Formulaires", "Forms"),
    "statistics": ("Statistiques", "Statistics"),
    "stats": ("Statistiques", "Statistics"),
    "userbook": ("Mon compte", "My account"),
    "searchengine": ("Recherche", "Search"),
    "admin": ("Console d'administration", "Administration console"),
    # Moodle
    "course": ("Cours (Moodle)", "Course (Moodle)"),
    "frontpage": ("Accueil (Moodle)", "Home page (Moodle)"),
    "modassign": ("Devoir (Moodle)", "Assignment (Moodle)"),
    "modquiz": ("Test (Moodle)", "Quiz (Moodle)"),
    "modforum": ("Forum (Moodle)", "Forum (Moodle)"),
    "modresource": ("Fichier (Moodle)", "File (Moodle)"),
    "modpage": ("Page (Moodle)", "Page (Moodle)"),
    "modurl": ("Lien (Moodle)", "URL (Moodle)"),
    "modfolder": ("Dossier (Moodle)", "Folder (Moodle)"),
    "modbook": ("Livre (Moodle)", "Book (Moodle)"),
    "modlabel": ("Zone texte et média (Moodle)", "Text and media area (Moodle)"),
    "modlesson": ("Leçon (Moodle)", "Lesson (Moodle)"),
    "modglossary": ("Glossaire (Moodle)", "Glossary (Moodle)"),
    "modwiki": ("Wiki (Moodle)", "Wiki (Moodle)"),
    "modchoice": ("Sondage (Moodle)", "Choice (Moodle)"),
    "modfeedback": ("Feedback (Moodle)", "Feedback (Moodle)"),
    "moddata": ("Base de données (Moodle)", "Database (Moodle)"),
    "modworkshop": ("Atelier (Moodle)", "Workshop (Moodle)"),
    "modscorm": ("Paquetage SCORM (Moodle)", "SCORM package (Moodle)"),
    "modh5pactivity": ("Activité H5P (Moodle)", "H5P activity (Moodle)"),
    "modlti": ("Outil externe (Moodle)", "External tool (Moodle)"),
    "modchat": ("Chat (Moodle)", "Chat (Moodle)"),
    "modsurvey": ("Consultation (Moodle)", "Survey (Moodle)"),
    "modbigbluebuttonbn": ("Classe virtuelle BigBlueButton (Moodle)", "BigBlueButton (Moodle)"),
    "modimscp": ("Paquetage IMS (Moodle)", "IMS content package (Moodle)"),
    "unknown": ("Application inconnue", "Unknown application"),
}

# A configured name: one text for every language, or one per language (reports.applications).
AppNames = Mapping[str, "str | Mapping[str, str | None]"]


def app_key(app: str) -> str:
    """The table's key of an identifier: lower case, letters and digits only
    ("CollaborativeWall", "collaborative-wall" and "collaborative_wall" are one application)."""
    return "".join(c for c in app.lower() if c.isalnum())


def app_name(language: str, app: str, configured: AppNames | None = None) -> str:
    """How a reader calls an application: the configuration's name (``reports.applications``, by
    identifier as found, else by key), else the built-in table's, else the identifier itself."""
    name = _configured(language, app, configured)
    if name:
        return name
    known = APPLICATIONS.get(app_key(app))
    if known is not None:
        return known[0 if language == "fr" else 1]
    return app


def _configured(language: str, app: str, configured: AppNames | None) -> str | None:
    if not configured:
        return None
    name = configured.get(app)
    if name is None:
        key = app_key(app)
        name = next((value for identifier, value in configured.items() if app_key(identifier) == key), None)
    if name is None or isinstance(name, str):
        return name or None
    return name.get(language) or name.get("en" if language == "fr" else "fr") or None


def app_names(language: str, apps: list[str], configured: AppNames | None = None) -> dict[str, str]:
    """Every application's name, made distinct: two identifiers of one name keep theirs in brackets."""
    names = {app: app_name(language, app, configured) for app in apps}
    shared = Counter(names.values())
    return {app: name if shared[name] == 1 or name == app else f"{name} ({app})" for app, name in names.items()}


# -- time zones ---------------------------------------------------------------------------------

# The zones of French platforms, in words: (French, English).
ZONES = {
    "Europe/Paris": ("heure de Paris", "Paris time"),
    "America/Guadeloupe": ("heure de la Guadeloupe", "Guadeloupe time"),
    "America/Martinique": ("heure de la Martinique", "Martinique time"),
    "America/Cayenne": ("heure de la Guyane", "French Guiana time"),
    "Indian/Reunion": ("heure de La Réunion", "Réunion time"),
    "Indian/Mayotte": ("heure de Mayotte", "Mayotte time"),
    "Pacific/Noumea": ("heure de la Nouvelle-Calédonie", "New Caledonia time"),
    "Pacific/Tahiti": ("heure de Tahiti", "Tahiti time"),
    "America/Miquelon": ("heure de Saint-Pierre-et-Miquelon", "Saint Pierre and Miquelon time"),
    "UTC": ("temps universel (UTC)", "UTC"),
}


def zone_words(language: str, zone: str) -> str:
    """A time zone as a reader says it: "heure de Paris" / "Paris time"; else its city
    ("America/New_York": "heure de New York")."""
    if zone in ZONES:
        return ZONES[zone][0 if language == "fr" else 1]
    city = zone.rsplit("/", 1)[-1].replace("_", " ")
    return f"heure de {city}" if language == "fr" else f"{city} time"


# -- the opening sentences ----------------------------------------------------------------------

STABLE_BELOW = 0.005  # a change under 0.5 % is "level" (it would read 0 %)


def _level(ratio: float) -> bool:
    return abs(ratio) < STABLE_BELOW or f"{abs(ratio) * 100:.0f}" == "0"


def _count(language: str, value: float, singular: str, plural: str) -> str:
    return f"{number(language, value)} {singular if value == 1 else plural}"


def _trend(language: str, current: float, before: float | None, since: str | None) -> str:
    """ ", en hausse de 8 % sur octobre" / ", up 8% on October"; "" when nothing to compare with."""
    if before is None or before == 0:
        return ""
    ratio = (current - before) / before
    on = f" sur {since}" if since and language == "fr" else (f" on {since}" if since else "")
    if _level(ratio):
        if language == "fr":
            return f", au même niveau qu'en {since}" if since else ", au même niveau"
        return f", level with {since}" if since else ", level"
    size = percent(language, abs(ratio), 0)
    if language == "fr":
        return f", en {'hausse' if ratio > 0 else 'baisse'} de {size}{on}"
    return f", {'up' if ratio > 0 else 'down'} {size}{on}"


def _signed(language: str, ratio: float) -> str:
    return ("+" if ratio > 0 else "−") + percent(language, abs(ratio), 0)


def lead(
    language: str,
    month: str,
    previous_month: str,
    now: Mapping[str, float | None],
    before: Mapping[str, float | None],
    profile_changes: Mapping[str, float],
    top_app: tuple[str, int, int] | None,
) -> str:
    """Two or three sentences on the month: connections and visitors with their change on the
    previous month, the profiles whose visitors rose and fell most, the most opened application.
    ``now`` / ``before``: the summary's figures (None: withheld or not comparable, then nothing is
    said of it); ``profile_changes``: profile name -> change of its visitors (a ratio);
    ``top_app``: (name, openings, all openings)."""
    fr = language == "fr"
    connections = now.get("connections") or 0
    sentences = []
    if not connections:
        sentences.append(
            f"En {month}, aucune connexion n'a été enregistrée." if fr else f"In {month}, no login was recorded."
        )
    else:
        first = (f"En {month}, " if fr else f"In {month}, ") + _count(
            language, connections, *(("connexion", "connexions") if fr else ("connection", "connections"))
        )
        first += _trend(language, connections, before.get("connections"), previous_month)
        visitors = now.get("visitors")
        if visitors is not None:
            first += " ; " if fr else "; "
            first += _count(language, visitors, *(("visiteur", "visiteurs") if fr else ("visitor", "visitors")))
            first += _trend(language, visitors, before.get("visitors"), None)
        sentences.append(first + ".")
    rising = {name: change for name, change in profile_changes.items() if change > 0 and not _level(change)}
    falling = {name: change for name, change in profile_changes.items() if change < 0 and not _level(change)}
    parts = []
    if rising:
        name = max(rising, key=lambda n: rising[n])  # the first of equals, in the caller's order
        parts.append(
            ("la plus forte hausse des visiteurs : " if fr else "the largest rise in visitors: ")
            + f"{name} ({_signed(language, rising[name])})"
        )
    if falling:
        name = min(falling, key=lambda n: falling[n])
        parts.append(
            ("la plus forte baisse : " if fr else "the largest fall: ") + f"{name} ({_signed(language, falling[name])})"
        )
    if parts:
        sentences.append(
            ("Parmi les profils, " if fr else "Among profiles, ") + (" ; " if fr else "; ").join(parts) + "."
        )
    if top_app is not None and top_app[1] > 0 and top_app[2] > 0:
        name, openings, total = top_app
        share = percent(language, openings / total, 0)
        if fr:
            sentences.append(
                f"Application la plus ouverte : {name} ({_count(language, openings, 'ouverture', 'ouvertures')}, "
                f"{share} du total)."
            )
        else:
            sentences.append(
                f"Most opened application: {name} ({_count(language, openings, 'opening', 'openings')}, "
                f"{share} of all)."
            )
    return " ".join(sentences)
