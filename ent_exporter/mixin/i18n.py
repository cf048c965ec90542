"""The dashboards' languages: one table, French beside English.

The ``dashboards/*.py`` sources are written once, in English (the queries, the layout, the
thresholds); the generator writes each dashboard once per language from that one model,
replacing its words with this table's (titles, descriptions, legends, column names, value
mappings such as the weekday names, units, link titles) and nothing else. So the French and
English dashboards have the same panels and the same queries by construction, and a test
checks it. A text shown to users with no entry in the table stops the generator: nothing
English is left in a French dashboard by accident.

French (``fr``) is the default: its dashboards keep the plain uids (``ent-overview``) and are
the ones provisioning installs unless told otherwise; English ones get ``-en``
(``ent-overview-en``). Each dashboard is tagged with its language, and its link to the other ENT
dashboards asks for that tag too.

A family's words are the indicator catalogue's (``ent_exporter.catalogue``): every family's English
title and help, with their French (``title_fr``, ``meaning_fr``), are in the table, so a dashboard
text equal to one of them gets the catalogue's French; the hand-written part (``HAND_FR``) has the
rest and repeats none of them.
"""

from __future__ import annotations

import re
from typing import Any

from ent_exporter import catalogue

LANGUAGES = ("fr", "en")
UID_SUFFIX = {"fr": "", "en": "-en"}

# Keys whose (string) value is text shown to a user: it must be in the table (or hold no word).
TEXT_KEYS = {
    "title",
    "description",
    "legendFormat",
    "label",
    "text",
    "alias",
    "axisLabel",
    "noValue",
    "tooltip",
    "titleFormat",
    "textFormat",
}
# Keys whose value names a field that may have been renamed: translated when the table has it.
NAME_KEYS = {"field", "displayName", "targetField"}
# Words shown inside a query (a label_replace constant).
EXPR_TEXT = {"fr": {'"Whole platform"': '"Toute la plateforme"'}}
WORD = re.compile(r"[A-Za-zÀ-ÿ]{2,}")
TEMPLATE = re.compile(r"\{\{[^}]*\}\}|\$\{[^}]*\}|\$\w+")


class Untranslated(Exception):
    """Texts with no entry in the table for the language."""


def needs_words(text: str) -> bool:
    """Whether a text says something in a language (templates, numbers and symbols do not)."""
    return bool(WORD.search(TEMPLATE.sub(" ", text)))


def localize(data: dict, lang: str, uids: dict[str, str]) -> dict:
    """The dashboard model ``data`` (built in English) in ``lang``: its words from the table, its uid and
    the uids of the dashboards it links to with the language's suffix. Raises Untranslated listing
    every text the table lacks."""
    table = TABLES[lang]
    missing: list[str] = []
    used: set[str] = set()

    def text(value: str, strict: bool) -> str:
        if lang == "en":
            return value
        if value in table:
            used.add(value)
            return table[value]
        if strict and needs_words(value):
            missing.append(value)
        return value

    def url(value: str) -> str:
        for uid in sorted(uids.values(), key=len, reverse=True):
            value = value.replace(f"/d/{uid}?", f"/d/{uid}{UID_SUFFIX[lang]}?")
        return re.sub(
            r"\$\{__data\.fields\.([^}]+)\}", lambda m: f"${{__data.fields.{text(m.group(1), False)}}}", value
        )

    def walk(node, parent_key: str = ""):
        if isinstance(node, list):
            return [walk(item, parent_key) for item in node]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if isinstance(value, str):
                if key == "text" and parent_key == "current":
                    value = text(value, strict=False)  # a variable's current selection: "All"
                elif key in TEXT_KEYS:
                    value = text(value, strict=True)
                elif key in NAME_KEYS:
                    value = text(value, strict=False)
                elif key == "value" and node.get("id") == "displayName":
                    value = text(value, strict=True)
                elif key == "options" and parent_key == "matcher" and node.get("id") == "byName":
                    value = text(value, strict=False)
                elif key == "name" and parent_key == "annotation":
                    value = text(value, strict=True)
                elif key == "unit" and value.startswith("suffix:"):
                    value = "suffix:" + text(value[len("suffix:") :].strip(), strict=True)
                elif key == "url":
                    value = url(value)
                elif key == "expr" and lang in EXPR_TEXT:
                    for english, local in EXPR_TEXT[lang].items():
                        value = value.replace(english, local)
                elif key == "uid" and parent_key == "dashboard":
                    value = value + UID_SUFFIX[lang]
                out[key] = value
            elif key == "tags" and isinstance(value, list) and "ent" in value:
                # The dashboard and its "ENT dashboards" link carry the language: with both installed,
                # the link lists the dashboards of its own language.
                out[key] = [*value, lang]
            elif key == "text" and parent_key == "current" and isinstance(value, list):
                out[key] = [text(item, strict=False) for item in value]
            elif key == "renameByName" and isinstance(value, dict):
                out[key] = {name: text(shown, strict=True) for name, shown in value.items()}
            elif key == "list" and parent_key == "annotations":
                out[key] = [walk(item, "annotation") for item in value]
            else:
                out[key] = walk(value, key)
        return out

    result = walk(data, "dashboard")
    if missing:
        raise Untranslated(list(dict.fromkeys(missing)))
    USED.setdefault(lang, set()).update(used)
    return result


USED: dict[str, set[str]] = {}  # the table's entries the last generation used (a test finds stale ones)


# -- French -------------------------------------------------------------------------------------
# English (as the sources write it) → French. A description says in one sentence what the number
# means; titles name no metric. Texts built from config.py values (thresholds, durations) are
# written out: changing such a value stops the generator until its French is updated here. A metric
# family's title or help is not written here: its French is the catalogue's (beside the family).

WEEKDAYS_FR = {
    "Monday": "lundi",
    "Tuesday": "mardi",
    "Wednesday": "mercredi",
    "Thursday": "jeudi",
    "Friday": "vendredi",
    "Saturday": "samedi",
    "Sunday": "dimanche",
}

COMMON_FR = {
    # dashboards' frame: links, variables, annotations
    "Annotations & Alerts": "Annotations et alertes",
    "ENT alerts firing": "Alertes ENT en cours",
    "collector {{collector}} failed": "le collecteur {{collector}} a échoué",
    "{{instance}}: ent_exporter_collector_failures_total moved": "{{instance}} : une exécution a échoué",
    "ENT dashboards": "Tableaux de bord ENT",
    "Data source": "Source de données",
    "The Prometheus holding the ENT exporter's metrics.": "Le Prometheus qui contient les mesures de l'ENT.",
    "Exporter": "Exportateur",
    'The ENT exporter (one per platform) whose figures are shown. "All" adds the platforms up: they have different '
    "users.": "L'exportateur (un par plateforme) dont les chiffres sont affichés ; « Tous » additionne les "
    "plateformes, qui n'ont pas les mêmes utilisateurs.",
    "Structure": "Établissement",
    'The establishment (UAI). "All" shows the platform-wide figures (structure="all"), which are not the sum of the '
    "structures: a user attached to two structures counts once.": "L'établissement (UAI) ; « Tous » montre les chiffres de toute la plateforme, où une personne rattachée à "
    "deux établissements ne compte qu'une fois.",
    "Profiles as the platform names them (Teacher, Student, Relative, Personnel, Guest, unknown).": "Les profils, sous les noms que leur donne la plateforme "
    "(enseignants, élèves, parents, personnels, invités, profil inconnu).",
    "Profile": "Profil",
    "Teachers": "Enseignants",
    "Students": "Élèves",
    "Parents": "Parents",
    "Staff": "Personnels",
    "Guests": "Invités",
    "Unknown profile": "Profil inconnu",
    "Application": "Application",
    "Applications": "Applications",
    "Connector": "Connecteur",
    "Platform": "Plateforme",
    "Kind": "Type",
    # a variable's "All" (Grafana shows the current selection's text)
    "All": "Tous",
    # units: a custom unit's suffix
    "d": "j",
    "h": "h",
    "calls/s": "appels/s",
    "No data": "Aucune donnée",
    "no calls": "aucun appel",
    # comparisons
    "This period": "Cette période",
    "Previous period": "Période précédente",
    "Change": "Évolution",
    "A year earlier": "Un an plus tôt",
    "Change in a year": "Évolution sur un an",
    "Now": "Aujourd'hui",
    "At the start of the period": "Au début de la période",
    "A year ago": "Il y a un an",
    "Previous month (whole)": "Mois précédent (entier)",
    "Same date a year earlier": "Même date un an plus tôt",
    "Compared with the previous period and a year earlier": "Comparé à la période précédente et à l'année dernière",
    **WEEKDAYS_FR,
}

OVERVIEW_FR = {
    "ENT overview": "ENT vue d'ensemble",
    "The seven indicators of the ODE statistics application (connections, unique visitors, visits per visitor, most "
    "used application, daily peak hour, weekly peak day, activated accounts) for a structure or the whole platform, "
    "and by profile.": "Les sept indicateurs de l'application de statistiques de l'ENT (connexions, visiteurs uniques, visites par "
    "visiteur, application la plus utilisée, heure et jour de pointe, comptes activés) pour un établissement ou "
    "toute la plateforme, et par profil.",
    "The seven indicators (period: the time picker; visitors: calendar month)": "Les sept indicateurs (période : celle choisie en haut à droite ; visiteurs : mois calendaire)",
    "Successful logins (connections) during the period of the time picker, for the selected structure and profiles. "
    "Source: ent_logins_total (counted every minute).": "Nombre de connexions réussies pendant la période choisie, pour l'établissement et les profils choisis.",
    "Establishment details": "Détail de l'établissement",
    "Distinct users with at least one login in the current calendar month (to date), with the previous closed month "
    'beside it, over every profile: a user who logged in under two profiles is one visitor (profile="all"; the '
    'profile filter does not apply, see "Visitors by profile"). Calendar periods, not the time picker: refreshed '
    "every hour (previous month: monthly).": "Nombre de personnes qui se sont connectées au moins une fois depuis le début du mois (et le mois précédent "
    "entier), chaque personne comptée une fois quel que soit son profil.",
    "Month to date": "Mois en cours",
    "Previous month": "Mois précédent",
    "Logins divided by unique visitors in the current calendar month (to date), and in the previous closed month, "
    "over every profile (each person once; the profile filter does not apply).": "Nombre moyen de connexions par visiteur depuis le début du mois (et le mois précédent entier).",
    "The application opened most often during the period, with its number of openings. Source: "
    "ent_app_accesses_total.": "L'application la plus ouverte pendant la période, avec son nombre d'ouvertures.",
    "Applications: ${__field.labels.app}": "Applications : ${__field.labels.app}",
    "Most used application": "Application la plus utilisée",
    "The hour of the day (platform timezone) with the most logins over the last 28 days (recomputed weekly). The "
    "value is the number of logins in that hour over the 28 days. ent_logins_by_hour has no profile label, so this "
    "indicator follows the structure only (the profile filter does not apply).": "L'heure de la journée qui a compté le plus de connexions sur les 28 derniers jours (tous profils, "
    "recalculée chaque semaine).",
    "Hour × weekday heatmap": "Carte jour × heure",
    "Daily peak hour": "Heure de pointe",
    "The day of the week with the most logins over the last 28 days (recomputed weekly). ent_logins_by_hour has no "
    "profile label, so this indicator follows the structure only (the profile filter does not apply).": "Le jour de la semaine qui a compté le plus de connexions sur les 28 derniers jours (tous profils, "
    "recalculé chaque semaine).",
    "Weekly peak day": "Jour de pointe",
    "People whose account has passed its activation date (computed daily), over every profile: each person once "
    '(profile="all"; over "All" structures too). The profile filter does not apply.': "Nombre de personnes dont le compte est activé, chaque personne comptée une fois (calculé chaque jour).",
    "Activation funnel": "Entonnoir d'activation",
    "Activated accounts": "Comptes activés",
    "Connections in the period beside the period just before it (same length) and the same period a year earlier, "
    "with the change in percent.": "Connexions de la période, à côté de la période précédente de même durée et de la même période un an plus "
    "tôt, avec l'évolution en pourcentage.",
    "Connections compared": "Connexions comparées",
    "Visitors of the month to date beside the whole previous month and the month to date a year earlier (same date), "
    "with the change over the year; each person once.": "Visiteurs depuis le début du mois, à côté du mois précédent entier et du même début de mois un an plus tôt, "
    "avec l'évolution sur un an.",
    "Unique visitors compared": "Visiteurs uniques comparés",
    "Logins per visitor in the month to date beside the whole previous month and the month to date a year earlier "
    "(same date), with the change over the year.": "Connexions par visiteur depuis le début du mois, à côté du mois précédent entier et du même début de mois "
    "un an plus tôt, avec l'évolution sur un an.",
    "Visits per visitor compared": "Visites par visiteur comparées",
    "Activated people now beside their number at the start of the period and a year ago, with the change in "
    "percent; each person once.": "Personnes au compte activé aujourd'hui, au début de la période et il y a un an, avec l'évolution en "
    "pourcentage.",
    "Activated accounts compared": "Comptes activés comparés",
    "By profile": "Par profil",
    "Successful logins during the period of the time picker, per profile.": "Nombre de connexions réussies pendant la période, par profil.",
    "Connections by profile": "Connexions par profil",
    "Per profile: unique visitors of the current month (to date) and of the previous closed month, and visits per "
    "visitor this month. Per establishment, visits per visitor by profile are opt-in (series budget: "
    "breakdowns.visits_per_visitor_by_profile_per_structure): without it that column is empty for an "
    'establishment ("All" always has it), and its visits per visitor over every profile are the "Visits per '
    'visitor" figure above.': "Par profil, les visiteurs du mois en cours et du mois précédent et le nombre de visites par visiteur. "
    "Par établissement, les visites par visiteur de chaque profil sont en option (budget de séries de "
    "l'exportateur) : sans elle, cette colonne est vide pour un établissement (« Tous » l'a toujours), et ses visites par visiteur, tous profils confondus, sont le "
    "chiffre « Visites par visiteur » ci-dessus.",
    "Visitors by profile": "Visiteurs par profil",
    "For each profile, the application opened most often during the period and its openings.": "Pour chaque profil, l'application la plus ouverte pendant la période et son nombre d'ouvertures.",
    "Applications: ${__data.fields.app}": "Applications : ${__data.fields.app}",
    "Most used application by profile": "Application la plus utilisée par profil",
    "Openings": "Ouvertures",
    "Accounts whose activation date has passed, per profile (daily).": "Nombre de comptes activés, par profil (calculé chaque jour).",
    "Activated accounts by profile": "Comptes activés par profil",
    "Activated accounts divided by all accounts, per profile (daily). Red below 50 %, yellow below 80 %.": "Part des comptes qui sont activés, par profil (rouge sous 50 %, jaune sous 80 %).",
    "Activation ratio by profile": "Taux d'activation par profil",
    "Distinct users with a login today and in the current ISO week (to date), per profile (hourly).": "Nombre de personnes connectées aujourd'hui et depuis le début de la semaine, par profil.",
    "{{profile}} today": "{{profile}} aujourd'hui",
    "{{profile}} this week": "{{profile}} cette semaine",
    "Unique visitors today and this week by profile": "Visiteurs du jour et de la semaine par profil",
    "Each structure (code and name) with its unique visitors of the current month to date over every profile (each "
    "person once) and its activated people (daily). Click a row to open it in the Establishment dashboard. "
    "Structures do not add up to the platform: a user attached to two counts in both.": "Chaque établissement avec ses visiteurs du mois en cours et ses comptes activés ; un clic ouvre son "
    "tableau de bord.",
    "Open ${__data.fields.structure} in ENT establishment": "Ouvrir ${__data.fields.structure} dans ENT établissement",
    "Code": "Code UAI",
    "Name": "Nom",
    "Visitors this month": "Visiteurs ce mois-ci",
    "Activated people": "Comptes activés",
    "Over the period": "Sur la période",
    "Successful logins per day (each bar: the 24 hours before the daily history rule's last hourly value at its "
    "time, midnight UTC), stacked by profile: one sample per series a day, so a year stays cheap. At ranges under "
    "a day, one bar.": "Nombre de connexions réussies par jour, empilées par profil.",
    "logins per day": "connexions par jour",
    "Connections per day by profile": "Connexions par jour et par profil",
    "Distinct users (over every profile, each person once) with a login in the current day, ISO week and month (to "
    "date), refreshed hourly: each line climbs through its period and drops when the next one starts. The profile "
    "filter does not apply.": "Nombre de personnes connectées depuis le début du jour, de la semaine et du mois, mis à jour chaque heure.",
    "visitors": "visiteurs",
    "Unique visitors: day, week and month to date": "Visiteurs uniques : jour, semaine et mois en cours",
    "Today": "Aujourd'hui",
    "This week": "Cette semaine",
    "This month": "Ce mois-ci",
    "Accounts activated per day (each bar: the 24 hours before the daily history rule's last hourly value at "
    "its time, midnight UTC), stacked by profile.": "Nombre de comptes activés par jour, empilés par profil.",
    "activations per day": "activations par jour",
    "Account activations per day by profile": "Activations de comptes par jour et par profil",
    "Application openings per day (each bar: the 24 hours before the daily history rule's last hourly value "
    "at its time, midnight UTC), stacked by profile.": "Nombre d'ouvertures d'applications par jour, empilées par profil.",
    "openings per day": "ouvertures par jour",
    "Application openings per day by profile": "Ouvertures d'applications par jour et par profil",
}

ESTABLISHMENT_FR = {
    "ENT establishment": "ENT établissement",
    "One structure in depth: logins per hour, the hour × weekday heatmap, the activation funnel, inactive accounts, "
    "the login frequency distribution and application usage by profile.": "Un établissement en détail : connexions par heure, carte jour × heure, activation des comptes, comptes "
    "inactifs, fréquence de connexion et usage des applications par profil.",
    "Structure and accounts": "Établissement et comptes",
    'Name of the selected structure (from ent_structure_info), or the whole platform when "All" is selected.': "Le nom de l'établissement choisi, ou toute la plateforme.",
    "People whose account has passed its activation date (daily), over every profile: each person once "
    '(profile="all"); the profile filter does not apply (per profile: the bar gauges below).': "Nombre de personnes dont le compte est activé, chaque personne comptée une fois (calculé chaque jour).",
    "People with no activated account yet (no activation date, or one in the future), each person once over every "
    "profile (daily).": "Nombre de personnes dont le compte n'est pas encore activé (calculé chaque jour).",
    "Pending accounts": "Comptes en attente",
    "Activated people divided by all people with an account, each person once over every profile (daily). Red below "
    "50 %, yellow below 80 %.": "Part des personnes ayant un compte qui l'ont activé (rouge sous 50 %, jaune sous 80 %).",
    "Activated people who have not logged in for 30 days, each person once over every profile (daily).": "Nombre de personnes au compte activé qui ne se sont pas connectées depuis 30 jours.",
    "Inactive accounts (30 days)": "Comptes inactifs (30 jours)",
    "Activated people divided by all people with an account, now beside the start of the period and a year ago, "
    "with the change in percent.": "Taux d'activation aujourd'hui, au début de la période et il y a un an, avec l'évolution en pourcentage.",
    "Activation ratio compared": "Taux d'activation comparé",
    "Activated people without a login for 30 days, now beside the start of the period and a year ago, with the "
    "change in percent.": "Comptes inactifs depuis 30 jours aujourd'hui, au début de la période et il y a un an, avec l'évolution en "
    "pourcentage.",
    "Inactive accounts compared": "Comptes inactifs comparés",
    "Logins": "Connexions",
    "Successful logins per hour by profile: the raw counter's rate over Grafana's interval × 3600, so every login "
    "counts at any time range (a 5-minute recording rule would skip most of them at 7 days).": "Nombre de connexions réussies par heure, par profil.",
    "logins per hour": "connexions par heure",
    "logins/h": "connexions/h",
    "Logins per hour": "Connexions par heure",
    "Logins of the last 28 days (platform timezone) per hour of the day, all weekdays together (ent_logins_by_hour, "
    "recomputed weekly): one instant query, the daily profile of the structure. The profile filter does not apply: "
    "the metric has no profile label.": "Connexions des 28 derniers jours selon l'heure de la journée, tous jours et tous profils confondus.",
    "Logins by hour of day (last 28 days)": "Connexions par heure de la journée (28 derniers jours)",
    "The hour × weekday heatmap: logins of the last 28 days (platform timezone) per ISO weekday and hour of day, "
    "coloured on a continuous scale from the quietest cell (green) to the busiest (red) (ent_logins_by_hour, "
    "recomputed weekly). The profile filter does not apply: the metric has no profile label. Always the selected "
    "structure's own grid: per structure it is opt-in (series budget: breakdowns.logins_by_hour_per_structure); "
    "without it the panel says so and the structure's own hour-of-day profile is the bar chart beside (never the "
    "platform's grid under the structure's name).": "Connexions des 28 derniers jours par jour de la semaine et par "
    "heure, du plus calme (vert) au plus chargé (rouge), de l'établissement choisi. Par établissement, la grille "
    "est en option (budget de séries de l'exportateur) : sans elle, ce tableau le dit et le profil horaire de "
    "l'établissement est l'histogramme à côté.",
    "This establishment's grid is not published: its hours are in the bar chart beside": "Grille non publiée "
    "pour cet établissement : ses heures sont dans l'histogramme à côté",
    "Day": "Jour",
    "Activation and activity": "Activation et activité",
    "From all accounts to the users who actually log in: activated accounts, then those that logged in within 90 "
    "and 30 days (activated minus inactive). Each person once over every profile; daily.": "Des comptes existants aux personnes qui se connectent vraiment : comptes activés, puis connectés dans les "
    "90 et les 30 derniers jours.",
    "All accounts": "Tous les comptes",
    "Activated": "Activés",
    "Logged in within 90 days": "Connectés dans les 90 jours",
    "Logged in within 30 days": "Connectés dans les 30 jours",
    "Activated and pending people over time, each person once over every profile (daily).": "Nombre de comptes activés et en attente au fil du temps.",
    "Activated accounts whose user has not logged in for 30 or 90 days, per profile (daily).": "Comptes activés sans connexion depuis 30 ou 90 jours, par profil.",
    "{{profile}}, 30 days": "{{profile}}, 30 jours",
    "{{profile}}, 90 days": "{{profile}}, 90 jours",
    "Inactive accounts by profile": "Comptes inactifs par profil",
    "How many activated users logged in how often over the last 30 days: users per number of logins, each person "
    "once over every profile (ent_user_logins_30d, a gauge histogram, daily; its cumulative buckets are "
    "de-accumulated by the heatmap format).": "Nombre de personnes au compte activé selon leur nombre de connexions sur les 30 derniers jours.",
    "no login": "aucune connexion",
    "1 login": "1 connexion",
    "2 logins": "2 connexions",
    "3 to 5": "3 à 5",
    "6 to 10": "6 à 10",
    "11 to 20": "11 à 20",
    "21 to 50": "21 à 50",
    "more than 50": "plus de 50",
    "Average number of logins over the last 30 days per activated user, each person once over every profile (sum ÷ "
    "count of ent_user_logins_30d).": "Nombre moyen de connexions sur les 30 derniers jours par personne au compte activé.",
    "Logins per activated user (30 days)": "Connexions par compte activé (30 jours)",
    "Application openings during the period of the time picker, one row per application and one column per "
    "profile, sorted by total.": "Ouvertures de chaque application pendant la période, une colonne par profil.",
    "Applications: ${__data.fields.Application}": "Applications : ${__data.fields.Application}",
    "Application usage by profile": "Usage des applications par profil",
    "Total": "Total",
}

APPLICATIONS_FR = {
    "ENT applications": "ENT applications",
    "Application usage: openings per application over time, the top applications of each profile and each "
    "application's share.": "L'usage des applications : ouvertures par application au fil du temps, les plus utilisées par profil et "
    "la part de chacune.",
    "The period (time picker)": "La période (choisie en haut à droite)",
    "Applications opened during the period, for the selected structure, profiles and applications.": "Nombre d'ouvertures d'applications pendant la période, pour l'établissement, les profils et les "
    "applications choisis.",
    "Number of distinct applications opened at least once during the period.": "Nombre d'applications différentes ouvertes au moins une fois pendant la période.",
    "Applications used": "Applications utilisées",
    "Application openings divided by logins during the period (all applications): how many applications "
    "a connection opens on average, for the selected profiles where openings are published per profile. "
    "For an establishment whose openings are published over every profile (the default series budget; "
    "breakdowns.app_accesses_by_profile_per_structure publishes them per profile), the ratio is over "
    "every profile: openings and logins always cover the same people.": "Ouvertures d'applications divisées par les connexions de la période (toutes applications) : nombre moyen "
    "d'applications ouvertes par connexion, pour les profils choisis là où les ouvertures sont publiées par "
    "profil. Pour un établissement dont les ouvertures sont publiées tous profils confondus (budget de séries "
    "par défaut ; une option de l'exportateur les publie par profil), le rapport porte sur "
    "tous les profils : ouvertures et connexions couvrent toujours les mêmes personnes.",
    "Openings per connection": "Ouvertures par connexion",
    "The application opened most often during the period, with its openings.": "L'application la plus ouverte pendant la période, avec son nombre d'ouvertures.",
    "Application openings in the period beside the period just before it (same length) and the same period a year "
    "earlier, with the change in percent.": "Ouvertures d'applications de la période, à côté de la période précédente de même durée et de la même "
    "période un an plus tôt, avec l'évolution en pourcentage.",
    "Application openings compared": "Ouvertures d'applications comparées",
    "Over time": "Au fil du temps",
    "Application openings per hour (the raw counter's rate over Grafana's interval × 3600: every opening counts at "
    "any range), per application.": "Nombre d'ouvertures par heure, par application.",
    "openings per hour": "ouvertures par heure",
    "openings/h": "ouvertures/h",
    "Openings per application": "Ouvertures par application",
    "Application openings per day (each bar: the 24 hours before the daily history rule's last hourly value "
    "at its time, midnight UTC), per profile (selected applications), stacked.": "Nombre d'ouvertures d'applications par jour, empilées par profil.",
    "Openings per day by profile": "Ouvertures par jour et par profil",
    "Ranking and share": "Classement et parts",
    "For each profile, its five most opened applications during the period.": "Pour chaque profil, ses cinq applications les plus ouvertes pendant la période.",
    "Top applications by profile": "Applications les plus utilisées par profil",
    "Each application's share of the openings during the period.": "La part de chaque application dans les ouvertures de la période.",
    "Share of each application": "Part de chaque application",
    "Applications opened from the ENT.": "Les applications ouvertes depuis l'ENT.",
}

REGIONAL_FR = {
    "ENT regional": "ENT académie et territoire",
    "For regional authorities: establishments ranked by activation, activity per account, inactive accounts and "
    "visitors, filtered by kind; applications ranked by use with the under-used and unused ones.": "Pour le rectorat et la collectivité : les établissements classés par activation, activité par compte, "
    "comptes inactifs et visiteurs, par type ; les applications classées par usage, avec les peu et les non "
    "utilisées.",
    "Establishments that lead and lag (kind: the filter above)": "Établissements en tête et en retrait (type : le filtre en haut)",
    "The 10 establishments with the lowest activation ratio (activated people ÷ people with an account, daily).": "Les 10 établissements où la part des comptes activés est la plus faible.",
    "Open ${__field.labels.name} in ENT establishment": "Ouvrir ${__field.labels.name} dans ENT établissement",
    "Lowest activation ratio": "Taux d'activation les plus faibles",
    "The 10 establishments with the highest activation ratio (activated people ÷ people with an account, daily).": "Les 10 établissements où la part des comptes activés est la plus forte.",
    "Highest activation ratio": "Taux d'activation les plus élevés",
    "The 10 establishments with the lowest connections in the period per activated person (logins ÷ activated "
    "people).": "Les 10 établissements qui comptent le moins de connexions par compte activé pendant la période.",
    "Fewest connections per activated account": "Moins de connexions par compte activé",
    "The 10 establishments with the highest connections in the period per activated person (logins ÷ activated "
    "people).": "Les 10 établissements qui comptent le plus de connexions par compte activé pendant la période.",
    "Most connections per activated account": "Plus de connexions par compte activé",
    "The 10 establishments with the highest share of activated people without a login for 30 days.": "Les 10 établissements où la part des comptes activés sans connexion depuis 30 jours est la plus forte.",
    "Highest share of inactive accounts": "Part de comptes inactifs la plus forte",
    "The 10 establishments with the lowest share of activated people without a login for 30 days.": "Les 10 établissements où la part des comptes activés sans connexion depuis 30 jours est la plus faible.",
    "Lowest share of inactive accounts": "Part de comptes inactifs la plus faible",
    "The 10 establishments with the lowest visitors in the month to date (each person once).": "Les 10 établissements qui comptent le moins de visiteurs depuis le début du mois.",
    "Fewest visitors this month": "Moins de visiteurs ce mois-ci",
    "The 10 establishments with the highest visitors in the month to date (each person once).": "Les 10 établissements qui comptent le plus de visiteurs depuis le début du mois.",
    "Most visitors this month": "Plus de visiteurs ce mois-ci",
    "Every establishment": "Tous les établissements",
    "Every establishment of the chosen kinds with its four indicators; click a column to sort, a row to open the "
    "establishment.": "Chaque établissement des types choisis avec ses quatre indicateurs ; un clic sur une ligne l'ouvre.",
    "Connections per activated account": "Connexions par compte activé",
    "Share of inactive accounts": "Part de comptes inactifs",
    "Applications (the whole platform)": "Applications (toute la plateforme)",
    "Applications seen over the retention that nobody opened during the period.": "Nombre d'applications connues que personne n'a ouvertes pendant la période.",
    "Applications never opened in the period": "Applications jamais ouvertes sur la période",
    "Applications opened in the period but for less than 2 % of all openings.": "Nombre d'applications ouvertes pendant la période mais pour moins de 2 % des ouvertures.",
    "Under-used applications": "Applications peu utilisées",
    "Applications seen at least once over the retention.": "Nombre d'applications ouvertes au moins une fois sur toute la durée conservée.",
    "Applications in the catalogue": "Applications du catalogue",
    "Application openings in the period over the whole platform.": "Nombre d'ouvertures d'applications pendant la période sur toute la plateforme.",
    "Every application of the catalogue with its openings in the period and its share of all openings, least used "
    "first: red when nobody opened it, orange under 2 % (under-used).": "Chaque application du catalogue avec ses ouvertures et sa part de la période, les moins utilisées d'abord "
    "(rouge : jamais ouverte, orange : moins de 2 %).",
    "Applications by use": "Applications par usage",
    "Share of openings": "Part des ouvertures",
    "The 10 applications opened most often in the period.": "Les 10 applications les plus ouvertes pendant la période.",
    "Most used applications": "Applications les plus utilisées",
    'The platform (region or academy) in a federated setup; "All" shows every one.': "La plateforme (région ou académie) quand plusieurs sont réunies ; « Tous » les montre toutes.",
    "The kind of establishment (as the platform names it): the rankings show only these.": "Le type d'établissement (collège, lycée…) : les classements ne montrent que ceux-ci.",
}

_PROBED = (
    "Probes: the exporter's own checks of the connector (probes: in its configuration), every 30 s by default, "
    "on every platform; one account and one path, not every user's. "
)
_ALERTS = (
    "Alerts: ENTConnectorFailureRatioHigh, ENTConnectorFailureRatioHighLowTraffic, ENTConnectorSilent, "
    "ENTConnectorLatencyHigh (platform-reported traffic: failure ratio above 10 %, no call where there usually "
    "are, p95 above 2.5 s); ENTConnectorProbeFailing, ENTConnectorProbesUnreliable, "
    "ENTConnectorCertificateExpiring, ENTConnectorCertificateExpiryImminent (probes: failing for 1m, more than "
    "20 % failed over 15m, certificate expiring within 14 / 3 days); runbook: prometheus/RUNBOOK.md."
)
_PLATFORM = (
    "Platform-reported: the calls the platform itself recorded (connector_events), real users' traffic; "
    "empty where the platform records no connector calls. "
)

CONNECTORS_FR = {
    "ENT connectors": "ENT connecteurs",
    "Connector health for on-call: alert state, request rate, success ratio, failures, latency quantiles and latency "
    "heatmap per connector (LDAP, CAS, SAML, Pronote, the GAR...) as the platform recorded its users' calls "
    "(platform-reported), and the exporter's own active probes: state, failures by reason, latency, certificate "
    "expiry (probes).": "L'état des connecteurs pour l'astreinte : alertes, appels, taux de succès, échecs et temps de réponse tels "
    "que la plateforme les enregistre, et les sondes de l'exportateur (état, échecs par cause, temps de réponse, "
    "expiration des certificats).",
    "Per connector: Firing when one of its alerts fires, Pending when one is about to, OK otherwise. "
    + _ALERTS: "Par connecteur : « En alerte » quand une de ses alertes se déclenche, « En attente » juste avant, « OK » "
    "sinon (alertes et procédures : prometheus/RUNBOOK.md).",
    "OK": "OK",
    "Pending": "En attente",
    "Firing": "En alerte",
    "Alert state": "État des alertes",
    "Per connector: successful calls ÷ all calls over the last 5 minutes (recording rule "
    "connector:ent_connector_requests:success_ratio_rate5m). Red below 90 %: the failure alert's threshold. A "
    'connector without a call in 5 minutes says "no calls", not a ratio.': "Par connecteur, la part des appels réussis sur les 5 dernières minutes (rouge sous 90 %, le seuil de "
    "l'alerte).",
    "Success ratio (5 min)": "Taux de succès (5 min)",
    "Probes: the exporter's own checks": "Sondes : les vérifications de l'exportateur",
    _PROBED + "Up when the last probe succeeded, Down when it failed (ent_connector_probe_success), per connector and "
    "kind. 1m down pages (ENTConnectorProbeFailing).": "Par connecteur et type de sonde, « Disponible » si la dernière vérification a réussi, « Indisponible » "
    "sinon (alerte au bout d'une minute).",
    "Down": "Indisponible",
    "Up": "Disponible",
    _PROBED + "Time left before the TLS certificate the connector's probes see expires "
    "(ent_connector_certificate_expiry_timestamp_seconds; the soonest of the connector's probes). Orange under 14 "
    "days, red under 3: the alerts' thresholds. Connectors probed without TLS have no bar.": "Temps restant avant l'expiration du certificat TLS de chaque connecteur (orange sous 14 jours, rouge sous "
    "3).",
    _PROBED + "Failed probes ÷ all probes during the period of the time picker, per connector and kind (from the "
    "counters: no failure between two scrapes is lost).": "Part des vérifications échouées pendant la période, par connecteur et type de sonde.",
    "Probe failure ratio in the period": "Taux d'échec des sondes sur la période",
    _PROBED
    + "When each probe was up (green) or down (red).": "Quand chaque sonde a trouvé son connecteur disponible (vert) ou non (rouge).",
    "Probe state over time": "État des sondes au fil du temps",
    _PROBED + "Failed probes per reason (timeout, refused, dns, tls, auth, status, content, too_large, error; "
    "the runbook says what each means), per connector. The exporter's log has the detail of each change.": "Nombre de vérifications échouées par cause (délai dépassé, refus, DNS, TLS, authentification, statut, "
    "contenu, réponse trop volumineuse, erreur), par connecteur.",
    "failed probes per interval": "sondes échouées par intervalle",
    _PROBED + "Mean duration of the probes over the interval, per connector and kind "
    "(ent_connector_probe_duration_seconds); a probe that times out counts its timeout.": "Durée moyenne des vérifications, par connecteur et type de sonde.",
    "Platform-reported traffic and errors": "Appels et erreurs enregistrés par la plateforme",
    _PLATFORM + "Calls per second through each connector, successful and failed, averaged over Grafana's interval "
    "from the raw counter (every call counts at any range).": "Nombre d'appels par seconde à chaque connecteur, réussis et échoués, tels que la plateforme les enregistre.",
    "calls per second": "appels par seconde",
    "Request rate by outcome": "Appels par résultat",
    "Failed calls ÷ all calls over Grafana's interval, per connector, from the raw counters. Intervals with fewer "
    "than 2 calls a minute are not drawn, as the alert ignores them; the red line is the alert threshold (10 % for "
    "5m).": "Part des appels échoués, par connecteur, masquée quand il y a moins de 2 appels par minute (la ligne rouge "
    "est le seuil de l'alerte, 10 %).",
    "Failure ratio": "Taux d'échec",
    "Failed calls per second, per connector, from the raw counter (0 when it has none).": "Nombre d'appels échoués par seconde, par connecteur.",
    "failures per second": "échecs par seconde",
    "Failed calls": "Appels échoués",
    "When each connector's alerts were pending (orange) or firing (red). "
    + _ALERTS: "Quand les alertes de chaque connecteur étaient en attente (orange) ou déclenchées (rouge).",
    "Alert state over time": "État des alertes au fil du temps",
    "Platform-reported latency": "Temps de réponse enregistrés par la plateforme",
    "Quantiles of the call duration over Grafana's interval, from the raw histogram. Intervals with fewer than 2 "
    "calls a minute are not drawn (one slow call at night is not a p95). The red line is the p95 alert threshold "
    "(2.5 s for 15m).": "Durée des appels que 50, 95 et 99 % d'entre eux ne dépassent pas (la ligne rouge est le seuil de "
    "l'alerte, 2,5 s).",
    "Latency p50 / p95 / p99": "Temps de réponse p50 / p95 / p99",
    "Calls per second in each duration bucket of ent_connector_request_duration_seconds (selected connectors): the "
    "upper bound of the bucket on the y axis. Timeouts pile up in the top buckets.": "Nombre d'appels par seconde selon leur durée (axe vertical), pour les connecteurs choisis.",
    "Latency heatmap": "Carte des temps de réponse",
    'Current p95 call duration per connector (5 minutes); red above the alert threshold (2.5 s). "no calls" when a '
    "connector had none.": "Durée que 95 % des appels des 5 dernières minutes ne dépassent pas, par connecteur (rouge au-dessus de "
    "2,5 s).",
    "p95 latency now": "Temps de réponse p95 actuel",
    "Calls through each connector during the period of the time picker.": "Nombre d'appels à chaque connecteur pendant la période.",
    "Calls in the period": "Appels sur la période",
    "Connectors: authentication (LDAP, CAS, SAML) and integrations (Pronote, the GAR...), platform-reported or "
    "probed by the exporter.": "Les connecteurs : authentification (LDAP, CAS, SAML) et services liés (Pronote, le GAR…).",
}

EXPORTER_FR = {
    "ENT exporter health": "ENT santé de l'exportateur",
    "Is the exporter working: collectors' last success age against their cadence, run durations, failures, access "
    "to the source database, scrapes and series counts.": "L'exportateur fonctionne-t-il : fraîcheur des collecteurs, durées, échecs, accès à la base de la "
    "plateforme, collectes par Prometheus et nombre de séries.",
    'Whether Prometheus\' last scrape of the exporter succeeded (up{job="ent-exporter", instance=~"$instance"}). '
    "Alert: ENTExporterDown.": "Si la dernière collecte de l'exportateur par Prometheus a réussi.",
    "Exporter scraped": "Exportateur collecté",
    "Whether the exporter's last attempt to reach the platform's PostgreSQL succeeded (ent_exporter_source_up). "
    "Alert: ENTSourceDatabaseDown.": "Si la dernière connexion de l'exportateur à la base de la plateforme a réussi.",
    "Collectors whose last success is older than their cadence plus a tenth of it (1 min to 1 h), or that failed "
    "and never succeeded: what ENTCollectorStale alerts on, before its delay.": "Nombre de collecteurs en retard sur leur rythme (ou qui n'ont jamais réussi).",
    "Stale collectors": "Collecteurs en retard",
    "Failed collector runs during the period of the time picker (database unreachable, query error or timeout).": "Nombre d'exécutions de collecteurs échouées pendant la période.",
    "Series currently exported by the exporter, all metric families together (ent_exporter_series).": "Nombre de séries publiées par l'exportateur.",
    'Series folded into label value "other" by the cardinality guard during the period '
    "(ent_exporter_folded_series_total): anything above 0 means a family hit limits.max_series_per_family.": "Nombre de séries regroupées sous « Autres » faute de place pendant la période (0 attendu).",
    "Collectors": "Collecteurs",
    "Per collector: time since its last success divided by its cadence (1 minute, 1 hour, 1 day, 1 week or 31 days). "
    "Below 1 is on time; yellow from 1 (the next run is due), red from 1.1 (a tenth late: about where "
    "ENTCollectorStale fires; the margin is clamped to 1 min to 1 h).": "Par collecteur, le temps écoulé depuis son dernier succès rapporté à son rythme (sous 1 : à l'heure).",
    "× cadence": "× rythme",
    "Last success age, in cadences": "Âge du dernier succès, en rythmes",
    "Per collector: hours since its last complete run (log scale: cadences go from a minute to a month).": "Par collecteur, le temps écoulé depuis sa dernière exécution réussie.",
    "Time since last success": "Temps depuis le dernier succès",
    "Per collector: duration of its last run, successful or not (ent_exporter_collector_duration_seconds).": "Par collecteur, la durée de sa dernière exécution.",
    "Per collector: failed runs in each interval (increase of ent_exporter_collector_failures_total over the "
    "interval, at least a minute): the bars add up to the failures of the period.": "Par collecteur, le nombre d'exécutions échouées dans chaque intervalle.",
    "failed runs per interval": "échecs par intervalle",
    "The exporter's process": "Le processus de l'exportateur",
    "CPU time the exporter's process uses per second (1 = one core), from prometheus-client's process collector "
    "(process_cpu_seconds_total). Collector runs show as short peaks.": "Temps processeur utilisé par l'exportateur par seconde (1 = un cœur).",
    "CPU": "Processeur",
    "Resident memory of the exporter's process (process_resident_memory_bytes): it holds the last result of every "
    "collector and their rendered text.": "Mémoire occupée par le processus de l'exportateur.",
    "Memory": "Mémoire",
    "File descriptors the process has open (process_open_fds) against its limit (process_max_fds, right): database "
    "connections, scrapes and the state files.": "Nombre de fichiers et connexions ouverts par le processus, et sa limite.",
    "open {{instance}}": "ouverts {{instance}}",
    "limit {{instance}}": "limite {{instance}}",
    "Time since the exporter's process started (process_start_time_seconds): a recent restart explains counters "
    "starting over in the probes (in memory) and collectors running at start-up.": "Temps écoulé depuis le démarrage du processus de l'exportateur.",
    "Uptime": "Durée de fonctionnement",
    "Source, scrapes and series": "Base, collectes et séries",
    "Up (green) or down (red) over time: the exporter's access to its database (ent_exporter_source_up) and "
    "Prometheus' scrape of the exporter (up).": "Disponibilité (vert) ou non (rouge) de la base pour l'exportateur et de l'exportateur pour Prometheus.",
    "source database {{instance}}": "base de la plateforme {{instance}}",
    "scrape {{instance}}": "collecte {{instance}}",
    "Source database and scrape": "Base et collecte",
    "How long Prometheus takes to scrape the exporter (scrape_duration_seconds): a scrape only copies a pre-rendered "
    "body, so this stays small whatever the database size.": "Durée d'une collecte de l'exportateur par Prometheus.",
    "Scrape duration": "Durée de collecte",
    "Series currently exported per metric family (ent_exporter_series): where the cardinality is.": "Nombre de séries publiées par famille de mesures.",
    "Series per family": "Séries par famille",
    "Samples in each scrape of the exporter (scrape_samples_scraped), and series folded by the cardinality guard "
    "per interval (right axis: should stay at 0).": "Nombre de valeurs par collecte, et séries regroupées par intervalle (axe de droite, 0 attendu).",
    "samples per scrape": "valeurs par collecte",
    "folded series": "séries regroupées",
    "Samples per scrape and folded series": "Valeurs par collecte et séries regroupées",
}


# Issue 16's dashboards and rows: learning progress, classes, account feeds.
ISSUE16_FR = {
    "Per class of an establishment (opt-in: the class collectors): visitors, activated and inactive accounts. Small counts may be published as 0 (privacy.min_count).": "Par classe d'un établissement (collecteurs de classes, sur option) : visiteurs, comptes activés et inactifs. Les petits effectifs peuvent être publiés à 0 (confidentialité).",
    "Classes of the establishment with members (ent_class_accounts).": "Classes de l'établissement qui ont des membres.",
    "Classes": "Classes",
    'Members of the selected classes with a login today (ent_class_unique_visitors, period="day"); a person in two classes counts in each.': "Membres des classes choisies qui se sont connectés aujourd'hui ; une personne dans deux classes compte dans chacune.",
    "Members who logged in today": "Membres connectés aujourd'hui",
    "Members of the selected classes whose account in the establishment is activated, over all members.": "Part des membres des classes choisies dont le compte dans l'établissement est activé.",
    "Activated members of the selected classes without a login in the last 30 days.": "Membres activés des classes choisies sans connexion depuis 30 jours.",
    "Inactive for 30 days": "Inactifs depuis 30 jours",
    "Per class": "Par classe",
    "Members of each class with a login since the start of the month (month to date).": "Membres de chaque classe connectés depuis le début du mois.",
    "Visitors this month, per class": "Visiteurs du mois, par classe",
    "Share of each class's members whose account is activated (lowest first).": "Part des membres de chaque classe dont le compte est activé (la plus faible en premier).",
    "Activated accounts, per class": "Comptes activés, par classe",
    "Members of each class with a login today, through the day (the count starts again at midnight).": "Membres de chaque classe connectés aujourd'hui, au fil de la journée (le compte repart de zéro à minuit).",
    "Visitors today, per class": "Visiteurs du jour, par classe",
    "Activated members of each class without a login in the last 30 days.": "Membres activés de chaque classe sans connexion depuis 30 jours.",
    "Inactive for 30 days, per class": "Inactifs depuis 30 jours, par classe",
    "Class": "Classe",
    "The establishment's classes (from the directory: Edifice's export, Moodle's cohorts). Empty where the source has no classes or the class collectors are not enabled.": "Les classes de l'établissement (annuaire : export Edifice, cohortes Moodle). Vide si la source n'a pas de classes ou si les collecteurs de classes ne sont pas activés.",
    "ENT classes": "ENT classes",
    "Learning progress (Moodle): enrolled people, course completions, the completion ratio, activity completions and badges, per establishment and per course.": "Progression des apprentissages (Moodle) : personnes inscrites, cours achevés, taux d'achèvement, activités achevées et badges, par établissement et par cours.",
    "Now (read daily)": "Maintenant (lu chaque jour)",
    'People enrolled in at least one course of the selected structure ("All": of the platform, each person once), ent_course_enrolled_users.': "Personnes inscrites à au moins un cours de la structure choisie (« Tous » : de la plateforme, chaque personne une fois).",
    "Enrolled people who completed at least one course (ent_course_completed_users).": "Personnes inscrites qui ont achevé au moins un cours.",
    "Completed enrolments divided by enrolments (a person in a course is one enrolment), per exporter (platform): "
    "ratios of two platforms are not added.": "Inscriptions achevées divisées par les inscriptions (une personne "
    "dans un cours est une inscription), par exportateur (plateforme) : les taux de deux plateformes ne "
    "s'additionnent pas.",
    "Activity completion records of the enrolled people, every state (complete, passed, failed).": "Activités achevées par les personnes inscrites, tous états confondus (achevée, réussie, échouée).",
    "Course badges held by the enrolled people (ent_course_badges_issued).": "Badges de cours détenus par les personnes inscrites.",
    "Enrolled people and people who completed a course, day after day.": "Personnes inscrites et personnes ayant achevé un cours, jour après jour.",
    "people": "personnes",
    "enrolled": "inscrites",
    "completed": "achevé",
    "Enrolled and completed": "Inscrites et ayant achevé",
    "Activity completions by state: complete, passed (pass grade), failed (fail grade).": "Activités achevées par état : achevée, réussie (note de réussite), échouée (note d'échec).",
    "Activity completions by state": "Activités achevées par état",
    "Structures and courses": "Structures et cours",
    "Each structure's completion ratio (completed enrolments ÷ enrolments), lowest first.": "Taux d'achèvement de chaque structure (inscriptions achevées ÷ inscriptions), le plus faible en premier.",
    "Completion ratio per structure": "Taux d'achèvement par structure",
    'Per course (only with the opt-in collector course_progress_by_course in collectors.enabled; the cardinality guard may fold rare courses into "other"): enrolled people, people who completed it, its completion ratio.': "Par cours (seulement avec le collecteur optionnel par cours ; les cours rares peuvent être regroupés sous « Autres ») : personnes inscrites, personnes l'ayant achevé, taux d'achèvement.",
    "Courses of the structure": "Cours de la structure",
    "Course": "Cours",
    "Enrolled": "Inscrites",
    "Completed": "Ont achevé",
    "Badges": "Badges",
    "ENT learning progress": "ENT progression des apprentissages",
    "Account feeds": "Flux de comptes",
    "Per account feed (the directory import; Moodle's user and enrolment synchronisation tasks): time since its last successful run. Red from 26 hours, where ENTAccountFeedOverdue fires.": "Par flux de comptes (import de l'annuaire ; tâches de synchronisation des utilisateurs et inscriptions de Moodle) : temps écoulé depuis sa dernière exécution réussie. Rouge à partir de 26 heures, quand l'alerte se déclenche.",
    "Time since each feed's last success": "Temps depuis le dernier succès de chaque flux",
    "Per feed: whether its last run succeeded (ent_account_feed_last_run_success). Alert: ENTAccountFeedFailed.": "Par flux : sa dernière exécution a-t-elle réussi ?",
    "Failed": "Échec",
    "Succeeded": "Réussite",
    "Last run succeeded": "Dernière exécution réussie",
    "Per feed, its last run: when it ended, its duration, and its rows: read, imported, rejected (invalid) and skipped (repeated). Alert ENTAccountFeedRejecting above 5 % rejected.": "Par flux, sa dernière exécution : fin, durée et lignes lues, importées, rejetées (invalides) et ignorées (en double). Alerte au-delà de 5 % de lignes rejetées.",
    "Last run of each feed": "Dernière exécution de chaque flux",
    "Feed": "Flux",
    "Last run ended": "Fin de la dernière exécution",
    "Duration": "Durée",
    "Read": "Lues",
    "Imported": "Importées",
    "Rejected": "Rejetées",
    "Skipped": "Ignorées",
}

HAND_FR = {
    **COMMON_FR,
    **OVERVIEW_FR,
    **ESTABLISHMENT_FR,
    **APPLICATIONS_FR,
    **REGIONAL_FR,
    **CONNECTORS_FR,
    **EXPORTER_FR,
    **ISSUE16_FR,
}
# The catalogue's pairs: family titles and helps (tests/test_dashboards.py checks that HAND_FR repeats none).
CATALOGUE_FR = catalogue.french()
FR = {**HAND_FR, **CATALOGUE_FR}
TABLES: dict[str, dict[str, str]] = {"fr": FR, "en": {}}


# -- label values --------------------------------------------------------------------------------
# A legend ({{outcome}}) or a table column (a label the query groups by) shows the label's values as
# the exporter writes them: identifiers, English. Each value a user may see is named here in each
# language, from where the value is defined when it has words there (probe reasons, metric families);
# the generator adds, per language, an override renaming each (legends) or a value mapping (table cells).


def _collector_names() -> dict[str, str]:
    return {
        "account_activations": "activations de comptes",
        "account_feeds": "flux de comptes",
        "accounts": "comptes",
        "activity": "activité",
        "app_accesses": "ouvertures d'applications",
        "class_accounts": "comptes des classes",
        "class_visitors": "visiteurs des classes",
        "connectors": "connecteurs",
        "course_progress": "progression des cours",
        "course_progress_by_course": "progression par cours",
        "login_heatmap": "carte des connexions",
        "logins": "connexions",
        "structure_info": "établissements",
        "visitors": "visiteurs",
        "visitors_previous_month": "visiteurs du mois précédent",
        "visitors_month_a_year_earlier": "visiteurs du mois en cours un an plus tôt",
    }


def label_words() -> dict[str, dict[str, dict[str, str]]]:
    """{label: {value: {language: shown}}} for every label value a dashboard may show."""
    from ent_exporter.engine.collector import Cadence
    from ent_exporter.mixin.panels import PROFILE_NAMES
    from ent_exporter.probes.runner import REASONS_FR

    def both(pairs: dict[str, tuple[str, str]]) -> dict[str, dict[str, str]]:
        return {value: {"en": en, "fr": fr} for value, (en, fr) in pairs.items()}

    cadences_fr = {
        Cadence.INSTANT: "chaque minute",
        Cadence.HOURLY: "chaque heure",
        Cadence.DAILY: "chaque jour",
        Cadence.WEEKLY: "chaque semaine",
        Cadence.MONTHLY: "chaque mois",
    }
    cadences_en = {
        Cadence.INSTANT: "every minute",
        Cadence.HOURLY: "hourly",
        Cadence.DAILY: "daily",
        Cadence.WEEKLY: "weekly",
        Cadence.MONTHLY: "monthly",
    }
    return {
        "profile": both(
            {
                **{value: (shown, COMMON_FR[shown]) for value, shown in PROFILE_NAMES.items()},
                "all": ("All profiles", "Tous les profils"),
            }
        ),
        "outcome": both(
            {
                "success": ("succeeded", "réussis"),
                "failure": ("failed", "échoués"),
                "read": ("read", "lues"),
                "imported": ("imported", "importées"),
                "rejected": ("rejected", "rejetées"),
                "skipped": ("skipped", "ignorées"),
            }
        ),
        "reason": both({reason: (reason.replace("_", " "), fr) for reason, fr in REASONS_FR.items()}),
        "cadence": both({c.value: (cadences_en[c], cadences_fr[c]) for c in Cadence}),
        "collector": both({name: (name.replace("_", " "), fr) for name, fr in _collector_names().items()}),
        "state": both(
            {
                "activated": ("Activated", "Activés"),
                "pending": ("Pending", "En attente"),
                "complete": ("complete", "achevée"),
                "passed": ("passed", "réussie"),
                "failed": ("failed", "échouée"),
            }
        ),
        "period": both(
            {
                "day": ("Today", "Aujourd'hui"),
                "week": ("This week", "Cette semaine"),
                "month": ("This month", "Ce mois-ci"),
            }
        ),
        "family": both({f.name: (f.title_en, f.title_fr) for f in catalogue.families() if f.title_en and f.title_fr}),
        "structure": both(
            {"all": ("Whole platform", "Toute la plateforme"), "other": ("Other structures", "Autres établissements")}
        ),
        "app": both({"other": ("Other applications", "Autres applications")}),
        "course": both({"other": ("Other courses", "Autres cours")}),
        "class": both({"other": ("Other classes", "Autres classes")}),
    }


_LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")
# A label whose values depend on the family: (label, family prefix) → its values there.
_SCOPES = {
    ("state", "ent_accounts"): {"activated", "pending"},
    ("state", "ent_course_activity_completions"): {"complete", "passed", "failed"},
    ("outcome", "ent_connector_"): {"success", "failure"},
    ("outcome", "ent_account_feed_last_run_rows"): {"read", "imported", "rejected", "skipped"},
}


def _values(words: dict, label: str, expr: str) -> dict[str, dict[str, str]]:
    """The values of ``label`` a query reading ``expr`` may show, with their names."""
    for (scoped, family), values in _SCOPES.items():
        if scoped == label and family in expr:
            return {value: shown for value, shown in words[label].items() if value in values}
    return words.get(label, {})


def name_label_values(data: dict, lang: str) -> dict:
    """Adds to every panel of the dashboard ``data`` (already in ``lang``) the names, in ``lang``, of the label
    values it shows: an override per value for legends ({{outcome}} → "réussis"; the other labels of the
    legend kept: ``${__field.labels.connector} réussis``), a value mapping on the column for tables. A value
    already renamed by the panel (an override on its exact name) keeps its name."""
    words = label_words()
    stack = list(data.get("panels", []))
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        if panel.get("type") == "row":
            continue
        config = panel.setdefault("fieldConfig", {"defaults": {}, "overrides": []})
        overrides = config.setdefault("overrides", [])
        named = {o["matcher"].get("options") for o in overrides if o["matcher"].get("id") == "byName"}
        added: list[dict] = []
        for target in panel.get("targets", []):
            if target.get("format") == "table" or panel.get("type") == "table":
                added += _column_mappings(panel, target, words, lang, {o["matcher"].get("options") for o in added})
                continue
            legend = target.get("legendFormat", "")
            for label in _LEGEND_LABEL.findall(legend):
                for value, shown in _values(words, label, target.get("expr", "")).items():
                    pattern = _legend_pattern(legend, label, value)
                    if pattern in {o["matcher"]["options"] for o in added} or (
                        _LEGEND_LABEL.fullmatch(legend) and value in named
                    ):
                        continue
                    display = _legend_display(legend, label, shown[lang])
                    added.append(
                        {
                            "matcher": {"id": "byRegexp", "options": pattern},
                            "properties": [{"id": "displayName", "value": display}],
                        }
                    )
        overrides.extend(added)
    return data


def _legend_display(legend: str, label: str, shown: str) -> str:
    """The legend with ``label`` named ``shown`` and its other labels as Grafana fills them in."""

    def field(match: re.Match) -> str:
        return shown if match.group(1) == label else "${__field.labels." + match.group(1) + "}"

    return _LEGEND_LABEL.sub(field, legend)


def _legend_pattern(legend: str, label: str, value: str) -> str:
    parts = []
    last = 0
    for match in _LEGEND_LABEL.finditer(legend):
        parts.append(re.escape(legend[last : match.start()]))
        parts.append(re.escape(value) if match.group(1) == label else "(.*)")
        last = match.end()
    parts.append(re.escape(legend[last:]))
    return "".join(parts)


def _column_mappings(panel: dict, target: dict, words: dict, lang: str, done: set) -> list[dict]:
    """Value mappings naming the label values of a table's label columns (in their shown name, after the
    panel's organize renames)."""
    renames: dict[str, str] = {}
    headers = set()  # labels whose values become column headers (a groupingToMatrix's column field)
    for transformation in panel.get("transformations", []):
        renames.update(transformation.get("options", {}).get("renameByName", {}))
        if transformation.get("id") == "groupingToMatrix":
            headers.add(transformation["options"].get("columnField"))
    named = {
        o["matcher"].get("options") for o in panel["fieldConfig"]["overrides"] if o["matcher"].get("id") == "byName"
    }
    out = []
    for group in re.findall(r"\bby\s*\(([^)]*)\)", target.get("expr", "")):
        for label in (name.strip() for name in group.split(",")):
            column = renames.get(label, label)
            if label not in words or column in done:
                continue
            done.add(column)
            if label in headers:
                out += [
                    {
                        "matcher": {"id": "byName", "options": value},
                        "properties": [{"id": "displayName", "value": shown[lang]}],
                    }
                    for value, shown in _values(words, label, target.get("expr", "")).items()
                    if value not in named
                ]
                continue
            values = _values(words, label, target.get("expr", ""))
            options = {
                value: {"text": shown[lang], "index": index} for index, (value, shown) in enumerate(values.items())
            }
            out.append(
                {
                    "matcher": {"id": "byName", "options": column},
                    "properties": [{"id": "mappings", "value": [{"type": "value", "options": options}]}],
                }
            )
    return out
