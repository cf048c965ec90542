"""The words and the layout of the monthly reports: application names (built in, configured, the
identifier last), the time zone in words, the opening sentences, the note on "profil inconnu";
the HTML report opened in a real headless Chromium (no console error, its tables equal the
CSVs), the PDF's pages rendered by poppler and measured (none but the last less than 60 % filled),
and charts drawn without matplotlib building or reading its font cache."""

from __future__ import annotations

import csv
import io
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from ent_exporter.config import ConfigError, parse_config
from ent_exporter.reports import labels
from tests.support import REPO, canonical_database, run_cli, write_config
from tests.test_reports import STRUCTURE_IDS, generate, insert, pdf_text, render_pages

pytestmark = pytest.mark.time_sensitive

MONTH = "2026-10"
CONFIGURED = {"blog": {"fr": "Journal de l'école", "en": "School journal"}, "agenda": "Emploi du temps"}


# -- words ------------------------------------------------------------------------------------------


def test_applications_have_their_platforms_names_the_configurations_first_the_identifier_last():
    assert labels.app_name("fr", "collaborative-wall") == "Mur collaboratif"
    # Edifice's modules as its events record them, and the contract's identifiers, are one application.
    assert labels.app_name("fr", "CollaborativeWall") == "Mur collaboratif"
    assert labels.app_name("en", "collaborative_wall") == "Collaborative wall"
    assert labels.app_name("fr", "exercizer") == "Exercices et évaluations"
    assert labels.app_name("fr", "cahier-de-textes") == "Cahier de textes"
    assert labels.app_name("fr", "actualites") == "Actualités"
    assert labels.app_name("fr", "Workspace") == "Espace documentaire"
    assert labels.app_name("fr", "timeline") == "Fil de nouveautés"
    assert labels.app_name("en", "conversation") == "Mail"
    assert labels.app_name("fr", "mod_assign") == "Devoir (Moodle)"
    assert labels.app_name("en", "mod_quiz") == "Quiz (Moodle)"
    assert labels.app_name("fr", "unknown") == "Application inconnue"
    # Not known: the identifier as found.
    assert labels.app_name("fr", "notre-appli-maison") == "notre-appli-maison"
    # Configured: one text, or one per language (the other language when one is missing), by
    # identifier as found or by the same key.
    configured = {"blog": {"fr": "Journal de l'école", "en": None}, "pronote": "PRONOTE", "Notre-Appli": "Maison"}
    assert labels.app_name("fr", "blog", configured) == "Journal de l'école"
    assert labels.app_name("en", "blog", configured) == "Journal de l'école"
    assert labels.app_name("en", "pronote", configured) == "PRONOTE"
    assert labels.app_name("fr", "notre_appli", configured) == "Maison"
    # Two identifiers of one name keep theirs, so that a table never shows two equal rows.
    assert labels.app_names("fr", ["messagerie", "zimbra", "blog"]) == {
        "messagerie": "Messagerie (messagerie)",
        "zimbra": "Messagerie (zimbra)",
        "blog": "Blog",
    }
    # Every application of the demo has a name in both languages.
    from ent_exporter.demo.data import APPS

    for app in APPS:
        for language in labels.LANGUAGES:
            assert labels.app_name(language, app) != app or app in ("blog", "moodle", "wiki", "forum", "pronote")


def test_the_time_zone_in_words():
    assert labels.zone_words("fr", "Europe/Paris") == "heure de Paris"
    assert labels.zone_words("en", "Europe/Paris") == "Paris time"
    assert labels.zone_words("fr", "Indian/Reunion") == "heure de La Réunion"
    assert labels.zone_words("fr", "America/Cayenne") == "heure de la Guyane"
    assert labels.zone_words("en", "Pacific/Noumea") == "New Caledonia time"
    assert labels.zone_words("fr", "America/New_York") == "heure de New York"
    assert labels.zone_words("en", "Europe/Brussels") == "Brussels time"


def test_the_opening_sentences():
    now = {"connections": 12340, "visitors": 1020}
    before = {"connections": 11426, "visitors": 1052}
    top = ("Pronote", 4560, 12000)
    changes = {"Élèves": 0.15, "Parents": -0.12, "Enseignants": 0.02}
    assert labels.lead("fr", "novembre 2026", "octobre", now, before, changes, top) == (
        "En novembre 2026, 12\u202f340 connexions, en hausse de 8\u202f% sur octobre ; 1\u202f020 visiteurs, en "
        "baisse de 3\u202f%. Parmi les profils, la plus forte hausse des visiteurs : Élèves (+15\u202f%) ; la plus "
        "forte baisse : Parents (−12\u202f%). Application la plus ouverte : Pronote (4\u202f560 ouvertures, "
        "38\u202f% du total)."
    )
    assert labels.lead("en", "November 2026", "October", now, before, {"Students": 0.15}, top) == (
        "In November 2026, 12,340 connections, up 8% on October; 1,020 visitors, down 3%. Among profiles, "
        "the largest rise in visitors: Students (+15%). Most opened application: Pronote (4,560 openings, 38% of all)."
    )
    # Withheld visitors and a previous month that cannot be compared (None) are left unsaid; under
    # half a percent is "the same".
    assert labels.lead("fr", "mars 2026", "février", {"connections": 1, "visitors": None}, {}, {}, None) == (
        "En mars 2026, 1 connexion."
    )
    assert labels.lead(
        "fr",
        "mars 2026",
        "février",
        {"connections": 1000, "visitors": 10},
        {"connections": 1004, "visitors": None},
        {},
        None,
    ) == ("En mars 2026, 1\u202f000 connexions, au même niveau qu'en février ; 10 visiteurs.")
    assert labels.lead("en", "March 2026", "February", {"connections": 0}, {"connections": 50}, {}, None) == (
        "In March 2026, no login was recorded."
    )


def test_the_configurations_application_names_are_validated():
    config = parse_config(
        {"source": {"dsn": "postgresql:///x"}, "reports": {"directory": "r", "applications": CONFIGURED}}, "c.yml"
    )
    assert config.reports.app_names() == {
        "blog": {"fr": "Journal de l'école", "en": "School journal"},
        "agenda": {"fr": "Emploi du temps", "en": "Emploi du temps"},
    }
    for wrong, line in (
        ({"blog": {}}, "reports.applications.blog: give fr, en or both"),
        ({"blog": {"de": "Blog"}}, "reports.applications.blog.de: unknown key"),
        ({"blog": ""}, "reports.applications: blog: empty name"),
        ({"blog": 3}, "reports.applications: blog: a name, or fr: and en: names"),
    ):
        with pytest.raises(ConfigError) as error:
            parse_config(
                {"source": {"dsn": "postgresql:///x"}, "reports": {"directory": "r", "applications": wrong}}, "c.yml"
            )
        assert str(error.value).splitlines()[1:] == [f"  {line}"]


# -- the files ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reports(pg_server, tmp_path_factory):
    """`ent-exporter report` for October 2026 (autumn DST), every structure, every format, French; and
    one structure in English; the configuration names two applications."""
    dsn = canonical_database(pg_server, "report_rendering_test")
    rows = generate()
    insert(dsn, rows)
    directory = tmp_path_factory.mktemp("rendering")
    config = write_config(
        directory / "config.yml", dsn, reports={"directory": str(directory / "out"), "applications": CONFIGURED}
    )
    result = run_cli("report", "--config", str(config), "--month", MONTH, timeout=900)
    assert result.returncode == 0, result.stderr
    result = run_cli(
        "report", "--config", str(config), "--month", MONTH, "--structure", "0750001A", "--lang", "en",
        "--out", str(directory / "en"), timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return directory


def read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text())))


def test_the_pdf_speaks_plainly(reports):
    text = " ".join(pdf_text(reports / "out" / "0750001A" / f"{MONTH}.pdf").split())  # lines joined
    assert "(heure de Paris)" in text and "Europe/Paris" not in text
    assert "Journal de l'école" in text and "Messagerie" in text and "Application inconnue" in text
    assert "« Profil inconnu » : comptes ou connexions dont la plateforme n'a pas enregistré" in text
    # Page 1 opens with the month's sentence, its figures the summary's.
    summary = {row[0]: row for row in read_csv(reports / "out" / "0750001A" / f"{MONTH}-summary.csv")}
    connections = int(summary["connections"][1])
    expected = f"En octobre 2026, {labels.number('fr', connections)} connexions"
    first_page = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", str(reports / "out" / "0750001A" / f"{MONTH}.pdf"), "-"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert expected in " ".join(first_page.split())
    english = " ".join(pdf_text(reports / "en" / "0750001A" / f"{MONTH}.pdf").split())
    assert "(Paris time)" in english and "School journal" in english and "Unknown application" in english
    assert f"In October 2026, {connections:,} connections" in english
    assert "Day of the month" in english or "Connections per day" in english


def ink_fraction(page: Path) -> float:
    """How far down the page the content goes, as a fraction of the space between the top margin
    and the footer: the last row with a dark pixel above the footer (poppler's rendering)."""
    with Image.open(page) as image:
        grey = image.convert("L")
        width, height = grey.size
        top, bottom = round(height * 15 / 297), round(height * (297 - 15) / 297)  # margins; the footer below
        pixels = grey.load()
        last = top
        for y in range(top, bottom):
            if any(pixels[x, y] < 200 for x in range(width)):
                last = y
        return (last - top) / (bottom - top)


@pytest.mark.parametrize("structure", [*STRUCTURE_IDS, "all"])
def test_no_page_but_the_last_is_half_empty(reports, structure, tmp_path):
    pages = render_pages(reports / "out" / structure / f"{MONTH}.pdf", tmp_path / "pages")
    fractions = [ink_fraction(page) for page in pages]
    assert all(fraction >= 0.6 for fraction in fractions[:-1]), fractions
    assert fractions[-1] > 0.05, fractions


# -- the HTML in a real browser ---------------------------------------------------------------------


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("chromium is not installed: the Debian package chromium (the README's test command installs it)")


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe:
    NUL-terminated JSON messages, commands on its fd 3, answers and events on its fd 4)."""

    def __init__(self, profile: Path) -> None:
        to_browser, self._commands = os.pipe()
        self._answers, from_browser = os.pipe()
        command = (
            f"exec {chromium()} --headless --no-sandbox --disable-gpu --no-first-run --disable-extensions"
            f" --remote-debugging-pipe --user-data-dir={profile} about:blank 3<&{to_browser} 4>&{from_browser}"
        )
        self.process = subprocess.Popen(
            ["bash", "-c", command],
            pass_fds=(to_browser, from_browser),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        answer = self.wait(lambda m: m.get("id") == self._next, timeout)
        assert "error" not in answer, (method, answer)
        return answer.get("result", {})

    def wait(self, wanted, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                if wanted(message):
                    return message
            left = deadline - time.monotonic()
            assert left > 0, "no answer from chromium"
            ready, _, _ = select.select([self._answers], [], [], left)
            if ready:
                chunk = os.read(self._answers, 1 << 20)
                assert chunk, "chromium closed its pipe"
                self._buffer += chunk

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=20)
        except AssertionError:
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        os.close(self._answers)


TABLES = """JSON.stringify({
  images: Array.from(document.images).map(i => i.complete && i.naturalWidth > 0),
  sections: Array.from(document.querySelectorAll("section")).map(s => ({
    id: s.id,
    rows: Array.from(s.querySelectorAll("tr")).map(tr => Array.from(tr.children).map(c => c.textContent))
  }))
})"""


def open_page(browser: Browser, path: Path) -> tuple[dict, list[dict]]:
    """The page's tables and images, and the errors the browser reported while loading it."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Runtime", "Log", "Page"):
        browser.send(f"{domain}.enable", session=session)
    seen = len(browser.events)
    browser.send("Page.navigate", {"url": path.as_uri()}, session=session)
    browser.wait(lambda m: m.get("method") == "Page.loadEventFired" and m.get("sessionId") == session)
    result = browser.send("Runtime.evaluate", {"expression": TABLES, "returnByValue": True}, session=session)
    errors = [
        event
        for event in browser.events[seen:]
        if event.get("sessionId") == session
        and (
            event["method"] == "Runtime.exceptionThrown"
            or (event["method"] == "Runtime.consoleAPICalled" and event["params"]["type"] in ("error", "assert"))
            or (event["method"] == "Log.entryAdded" and event["params"]["entry"]["level"] == "error")
        )
    ]
    browser.send("Target.closeTarget", {"targetId": target})
    return json.loads(result["result"]["value"]), errors


def shown(cell: str) -> float | None:
    """A displayed figure as a number: "1 234" 1234, "12,5 %" 12.5, "−3,0 pts" -3.0, "s" and "—" None."""
    text = cell.replace("\u202f", "").replace("\xa0", "").replace(" ", "").replace("−", "-").replace("±", "")
    if text in ("s", "—"):
        return None
    return float(text.removesuffix("%").removesuffix("pts").replace(",", "."))


def raw(cell: str) -> float | None:
    return None if cell == "" else float(cell)


# Which displayed column is which CSV column, and how the CSV's value is shown: "n" as is (integers
# and 2 decimals), "%" a ratio in percent with 1 decimal, "Δ" a change in percent or points, 1 decimal.
COLUMNS = {
    "summary": [(1, 1, "n"), (2, 2, "n"), (3, 3, "Δ"), (4, 4, "n"), (5, 5, "Δ")],
    "connections_per_day": [(1, 1, "n")],
    "visitors_by_profile": [(1, 1, "n"), (2, 2, "n"), (3, 3, "n")],
    "applications": [(1, 1, "n"), (2, 2, "n"), (3, 3, "n")],
    "logins_by_hour": [(1, 1, "n"), (2, 2, "n")],
    "accounts_by_profile": [(1, 1, "n"), (2, 2, "n"), (3, 3, "%"), (4, 4, "n"), (5, 5, "n")],
}


def agrees(displayed: str, stored: str, kind: str, indicator: str) -> bool:
    seen, value = shown(displayed), raw(stored)
    if seen is None or value is None:
        return seen is None and value is None
    if kind == "%" or (kind == "n" and indicator == "activation_ratio"):
        return abs(seen - value * 100) <= 0.05 + 1e-9
    if kind == "Δ":
        return abs(seen - value) <= 0.05 + 1e-9
    return abs(seen - value) <= 0.005 + 1e-9


def test_the_html_in_a_real_browser_has_no_error_and_the_csvs_figures(reports, tmp_path):
    browser = Browser(tmp_path / "profile")
    try:
        for structure in ("0750001A", "all"):
            directory = reports / "out" / structure
            page, errors = open_page(browser, directory / f"{MONTH}.html")
            assert errors == [], errors
            assert page["images"] == [True] * 5  # every chart decodes
            sections = {section["id"]: section["rows"] for section in page["sections"]}
            assert set(sections) == set(COLUMNS)
            for key, columns in COLUMNS.items():
                header, *rows = sections[key]
                stored = read_csv(directory / f"{MONTH}-{key}.csv")[1:]
                assert len(rows) == len(stored), key
                for displayed, row in zip(rows, stored):
                    for shown_at, stored_at, kind in columns:
                        assert agrees(displayed[shown_at], row[stored_at], kind, row[0]), (
                            structure,
                            key,
                            displayed,
                            row,
                        )
            # The rows are the CSVs' rows in the same order, named for a reader.
            apps = [row[0] for row in read_csv(directory / f"{MONTH}-applications.csv")[1:]]
            names = [row[0] for row in sections["applications"][1:]]
            assert dict(zip(apps, names))["blog"] == "Journal de l'école"
            assert dict(zip(apps, names))["agenda"] == "Emploi du temps"
            assert dict(zip(apps, names))["messagerie"] == "Messagerie"
            assert dict(zip(apps, names))["unknown"] == "Application inconnue"
            days = [row[0] for row in read_csv(directory / f"{MONTH}-connections_per_day.csv")[1:]]
            assert [row[0].split()[-1] for row in sections["connections_per_day"][1:]] == [
                str(int(day[-2:])) for day in days
            ]
    finally:
        browser.close()


# -- fonts -----------------------------------------------------------------------------------------

SYNTHETIC_REPORT = """
import json, sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from ent_exporter.reports.figures import Month, ProfileFigures, Report, Structure, empty

month = Month(2026, 11, ZoneInfo("Europe/Paris"))
current = empty("0750001A", month)
current.per_day = {day: day.day for day in month.days}
current.connections = sum(current.per_day.values())
current.profiles["Student"] = ProfileFigures(12, 40, 40)
current.apps["collaborative-wall"] = (30, 9)
report = Report(
    Structure("0750001A", "Collège", "college"), month, current, empty("0750001A", month.shift(-1)),
    empty("0750001A", month.shift(-12)), ["collaborative-wall"],
)
from ent_exporter.reports import document, output, plots

doc = document.build(report, "fr", datetime(2026, 12, 2, tzinfo=UTC))
charts = plots.charts(report, "fr", doc.app_names)
pdf = output.pdf_bytes(doc, charts)
import matplotlib
import matplotlib.font_manager as fm

data = Path(matplotlib.get_data_path()).resolve()
print(json.dumps({
    "pdf": pdf[:5].decode(),
    "fonts": sorted({
        str(Path(f.fname).resolve().relative_to(data)) if Path(f.fname).resolve().is_relative_to(data) else f.fname
        for f in fm.fontManager.ttflist
    }),
    "charts": len(charts),
}))
"""


def test_charts_need_no_font_cache(tmp_path):
    """A first report on a machine (an empty matplotlib directory, as in a container) builds no font
    cache: nothing is written there, and the charts use only matplotlib's own fonts."""
    config = tmp_path / "mplconfig"
    config.mkdir()
    environment = {**os.environ, "MPLCONFIGDIR": str(config), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, "-c", SYNTHETIC_REPORT],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=environment,
    )
    assert result.returncode == 0, result.stderr
    assert "font cache" not in result.stderr and "findfont" not in result.stderr, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["pdf"] == "%PDF-" and out["charts"] == 5
    assert "fonts/ttf/DejaVuSans.ttf" in out["fonts"] and "fonts/ttf/DejaVuSans-Bold.ttf" in out["fonts"]
    assert all(not Path(font).is_absolute() for font in out["fonts"]), out["fonts"]  # no system font scanned
    assert [p.name for p in config.rglob("*")] == []  # no fontlist-*.json written (nor anything else)
    assert not (tmp_path / "cache").exists()


def _synthetic(factor: int):
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from ent_exporter.reports import document
    from ent_exporter.reports.figures import AccountFigures, Month, ProfileFigures, Report, Structure, empty

    month = Month(2026, 11, ZoneInfo("Europe/Paris"))
    current = empty("0750001A", month)
    current.per_day = {day: day.day * factor for day in month.days}
    current.by_hour = {(w, h): (w * h) % 97 * factor for w, h in current.by_hour}
    current.connections = sum(current.per_day.values())
    current.profiles["Student"] = ProfileFigures(12 * factor, 40 * factor, 40 * factor)
    current.profiles["Teacher"] = ProfileFigures(3 * factor, 9 * factor, 9 * factor)
    current.apps = {"collaborative-wall": (30 * factor, 9), "pronote": (7 * factor**2, 5)}
    current.accounts["Student"] = AccountFigures(activated=50 * factor, pending=7)
    report = Report(
        Structure("0750001A", "Collège", "college"), month, current, empty("0750001A", month.shift(-1)),
        empty("0750001A", month.shift(-12)), sorted(current.apps, key=lambda app: -current.apps[app][0]),
    )  # fmt: skip
    return report, document.build(report, "fr", datetime(2026, 12, 2, tzinfo=UTC)).app_names


def test_a_kept_layout_draws_the_chart_a_new_layout_draws():
    """plots keeps each chart's layout per set of texts (ent_exporter.reports.plots._Chart.png): a chart
    drawn again on a kept layout, after other reports laid it out otherwise, is the chart laid out anew."""
    from ent_exporter.reports import plots

    first, second = _synthetic(3), _synthetic(1000)  # other numbers, other tick labels: other layouts
    plots._LAID_OUT.clear()
    anew = plots.charts(*first[:1], "fr", first[1])
    plots.charts(second[0], "fr", second[1])
    kept = plots.charts(first[0], "fr", first[1])  # on the layouts kept for the first
    layouts = {key[0]: len(chart.__dict__.get("layouts", {})) for key, chart in plots._LAID_OUT.items()}
    assert layouts == dict.fromkeys(layouts, 2), layouts
    for key in plots.CHARTS:
        assert kept[key] == anew[key], key
        assert Image.open(io.BytesIO(kept[key])).size == Image.open(io.BytesIO(anew[key])).size


def test_tied_profiles_are_charted_in_the_tables_order_whatever_order_the_rows_came_in():
    """Two profiles with as many visitors (or accounts): the charts list them as the tables do, most first and
    ties by profile, from the top; the same pixels whichever order the statements' rows built the figures in
    (two connections at once give other orders than one)."""
    from zoneinfo import ZoneInfo

    from ent_exporter.reports import plots
    from ent_exporter.reports.figures import AccountFigures, Month, ProfileFigures, Report, Structure, empty

    month = Month(2026, 10, ZoneInfo("Europe/Paris"))
    counts = {"Teacher": 6, "Relative": 6, "Student": 14, "Personnel": 5}

    def report(order: list[str]) -> Report:
        current = empty("0750001A", month)
        current.profiles = {p: ProfileFigures(counts[p], counts[p], counts[p]) for p in order}
        current.accounts = {p: AccountFigures(counts[p], 1) for p in order}
        return Report(
            Structure("0750001A", "Collège", "college"),
            month,
            current,
            empty("0750001A", month.shift(-1)),
            empty("0750001A", month.shift(-12)),
            [],
        )

    one, other = report(list(counts)), report(list(reversed(counts)))
    bottom_up = ["Personnel", "Teacher", "Relative", "Student"]  # top down: Student, Relative, Teacher, Personnel
    assert plots._profiles_shown(one) == plots._profiles_shown(other) == bottom_up
    assert plots._account_profiles(one) == plots._account_profiles(other) == bottom_up
    assert plots.visitors_by_profile(one, "fr") == plots.visitors_by_profile(other, "fr")
    assert plots.activation_by_profile(one, "fr") == plots.activation_by_profile(other, "fr")
