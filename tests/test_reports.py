"""Monthly reports: every figure equals a recount from the raw rows in plain Python (Europe/Paris
months, DST months included), the PDF renders with poppler's pdftoppm, the CSVs parse, each
structure's files hold its own figures only, bad input is one line with exit 2, and the daemon's
job writes the closed month."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from random import Random
from zoneinfo import ZoneInfo

import pytest

from ent_exporter.app import make_source
from ent_exporter.config import parse_config
from ent_exporter.engine import clock as clocks
from ent_exporter.engine.collector import Cadence
from ent_exporter.engine.schedule import Schedule
from ent_exporter.reports import labels
from ent_exporter.reports.figures import TOTAL, Month, build_reports, month_figures
from ent_exporter.reports.job import ReportJob
from ent_exporter.reports.settings import ReportsConfig
from tests.support import canonical_database, insert_report_rows, run_cli, write_config

pytestmark = pytest.mark.time_sensitive

PARIS = ZoneInfo("Europe/Paris")
MICROSECOND = timedelta(microseconds=1)
STRUCTURES = [
    ("0750001A", "Collège Jean Moulin", "college"),
    ("0750002B", "Lycée Victor Hugo", "lycee"),
    ("0750003C", "École du Centre", None),
]
STRUCTURE_IDS = ["0750001A", "0750002B", "0750003C", "0759999Z"]  # the last one: in accounts only
PROFILES = ["Teacher", "Student", "Student", "Relative", "Personnel", None, ""]
APPS = ["pronote", "messagerie", "agenda", "moodle", "blog", None, ""]
# March 2026 (spring DST: 743 hours) and October 2026 (autumn DST: 745 hours), and a plain month.
MONTHS = ["2026-03", "2026-10", "2026-06"]


def paris(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=PARIS, fold=fold).astimezone(UTC)


def month_bounds(text: str) -> tuple[datetime, datetime]:
    year, month = map(int, text.split("-"))
    following = (year + month // 12, month % 12 + 1)
    return paris(year, month, 1), paris(*following, 1)


def shift(text: str, months: int) -> str:
    year, month = map(int, text.split("-"))
    index = year * 12 + month - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


class Rows:
    def __init__(self) -> None:
        self.accounts: list[tuple] = []  # user, structure, profile, created, activated
        self.logins: list[tuple] = []  # user, profile, occurred_at
        self.apps: list[tuple] = []  # user, profile, app, occurred_at


def generate(seed: int = 15) -> Rows:
    """Accounts and events from February 2025 to November 2026, with every case the definitions turn on:
    users in two structures (with another profile and state in the second), users without an account,
    events without a user, NULL and empty profiles and apps, accounts activated during and after the
    months under test, and events on each month's first and last microsecond and in the DST hours."""
    rng = Random(seed)
    rows = Rows()
    profiles_of: dict[str, list] = defaultdict(list)

    def anytime(start: datetime, end: datetime) -> datetime:
        return start + timedelta(seconds=rng.randrange(int((end - start).total_seconds())))

    for number in range(60):
        user = f"u{number:02d}"
        profile = rng.choice(PROFILES)
        created = anytime(paris(2024, 6, 1), paris(2026, 9, 1))
        fate = rng.random()
        activated = None if fate < 0.2 else (anytime(created, paris(2026, 12, 1)))
        for structure in rng.sample(STRUCTURE_IDS, 2 if number % 5 == 0 else 1):
            if number % 10 == 0:
                profile, activated = rng.choice(PROFILES), rng.choice([None, activated])
            rows.accounts.append((user, structure, profile, created, activated))
            profiles_of[user].append(profile)
    # A user with two profiles in the same structure: two accounts there, one person.
    rows.accounts += [
        ("u-both", "0750001A", "Teacher", paris(2025, 1, 1), paris(2025, 1, 2)),
        ("u-both", "0750001A", "Relative", paris(2025, 1, 1), None),
    ]
    profiles_of["u-both"] += ["Teacher", "Relative"]
    # Activated exactly at the end of October 2026: not activated as of its last instant.
    rows.accounts.append(("u-edge", "0750002B", "Student", paris(2025, 1, 1), paris(2026, 11, 1)))
    profiles_of["u-edge"].append("Student")
    members = sorted(profiles_of)
    strangers = ["guest-1", "guest-2", "guest-3"]  # no account: structure "unknown"

    def event(moment: datetime) -> None:
        user = rng.choice(members * 4 + strangers + [None])
        profile = rng.choice(profiles_of[user]) if user in profiles_of and rng.random() < 0.8 else rng.choice(PROFILES)
        rows.logins.append((user, profile, moment))
        if rng.random() < 0.7:
            rows.apps.append((user, profile, rng.choice(APPS), moment + timedelta(seconds=rng.randrange(600))))

    for _ in range(5000):
        event(anytime(paris(2025, 2, 1), paris(2026, 11, 20)))
    for text in {m for month in MONTHS for m in (month, shift(month, -1), shift(month, -12))}:
        start, end = month_bounds(text)
        for moment in (
            start,
            start - MICROSECOND,
            end - MICROSECOND,
            end,
            end - timedelta(days=30),
            end - timedelta(days=30) - MICROSECOND,
            end - timedelta(days=90),
        ):
            for _ in range(2):
                event(moment)
    for moment in (
        paris(2026, 3, 29, 1, 59, 59),
        paris(2026, 3, 29, 3, 0),
        paris(2026, 10, 25, 2, 30),
        paris(2026, 10, 25, 2, 30, fold=1),
        paris(2026, 10, 25, 1, 59),
        paris(2026, 10, 25, 3, 0),
    ):
        for _ in range(3):
            event(moment)
    rows.logins.append(("u00", "Teacher", paris(2026, 10, 31, 23, 59)))  # a login on the month's last day
    rng.shuffle(rows.logins)
    return rows


def insert(dsn: str, rows: Rows) -> None:
    insert_report_rows(dsn, STRUCTURES, rows)


# -- the truth, from the raw rows -----------------------------------------------------------------


def fold(value) -> str:
    return value if value else "unknown"


def recount(rows: Rows, text: str) -> dict[str, dict]:
    """Every structure's (and "all"'s) figures of a month, counted in Python."""
    start, end = month_bounds(text)
    attached: dict[str, set] = defaultdict(set)
    for user, structure, *_ in rows.accounts:
        attached[user].add(fold(structure))

    def structures_of(user) -> set:
        return (attached.get(user) or {"unknown"}) | {"all"}

    out: dict[str, dict] = defaultdict(
        lambda: {
            "connections": 0,
            "per_day": Counter(),
            "by_hour": Counter(),
            "logins": Counter(),
            "with_user": Counter(),
            "visitors": defaultdict(set),
            "apps": Counter(),
            "app_people": defaultdict(set),
            "accounts": {},
        }
    )
    for user, profile, moment in rows.logins:
        if not start <= moment < end:
            continue
        local = moment.astimezone(PARIS)
        for structure in structures_of(user):
            entry = out[structure]
            entry["connections"] += 1
            entry["per_day"][local.date()] += 1
            entry["by_hour"][(local.isoweekday(), local.hour)] += 1
            entry["logins"][fold(profile)] += 1
            if user is not None:
                entry["with_user"][fold(profile)] += 1
                entry["visitors"][fold(profile)].add(user)
                entry["visitors"][TOTAL].add(user)
    for user, _profile, app, moment in rows.apps:
        if start <= moment < end:
            for structure in structures_of(user):
                out[structure]["apps"][fold(app)] += 1
                if user is not None:
                    out[structure]["app_people"][fold(app)].add(user)

    # Accounts as of the month's last instant; inactive: no login in [end - N days, end).
    def last_login(user) -> datetime | None:
        moments = [m for u, _p, m in rows.logins if u == user and end - timedelta(days=90) <= m < end]
        return max(moments) if moments else None

    people: dict[tuple, dict[str, bool]] = defaultdict(dict)  # (structure, profile) -> user -> activated
    attachments: dict[tuple, list[bool]] = defaultdict(list)
    for user, structure, profile, created, activated_at in rows.accounts:
        activated = activated_at is not None and activated_at < end
        if not (created is None or created < end or activated):
            continue  # created after the month: not an account of it
        for key in ((fold(structure), fold(profile)), (fold(structure), TOTAL), ("all", fold(profile)), ("all", TOTAL)):
            people[key][user] = people[key].get(user, False) or activated
        attachments[(fold(structure), fold(profile))].append(activated)
    for (structure, profile), users in people.items():
        if structure != "all" and profile != TOTAL:
            states = attachments[(structure, profile)]
            activated, pending = sum(states), len(states) - sum(states)
        else:
            activated = sum(users.values())
            pending = len(users) - activated
        inactive = {}
        for days in (30, 90):
            inactive[days] = sum(
                1
                for user, active in users.items()
                if active and (last_login(user) is None or last_login(user) < end - timedelta(days=days))
            )
        out[structure]["accounts"][profile] = (activated, pending, inactive[30], inactive[90])
    return out


def as_figures(entry) -> dict:
    """A StructureMonth in the recount's shape (zeros dropped)."""
    return {
        "connections": entry.connections,
        "per_day": Counter({d: n for d, n in entry.per_day.items() if n}),
        "by_hour": Counter({k: n for k, n in entry.by_hour.items() if n}),
        "logins": Counter({p: f.connections for p, f in entry.profiles.items() if p != TOTAL}),
        "with_user": Counter(
            {p: f.visitor_connections for p, f in entry.profiles.items() if p != TOTAL and f.visitor_connections}
        ),
        "visitors": {p: f.visitors for p, f in entry.profiles.items() if f.visitors},
        "apps": Counter({a: n for a, (n, _) in entry.apps.items()}),
        "app_people": {a: p for a, (_, p) in entry.apps.items() if p},
        "accounts": {p: (a.activated, a.pending, a.inactive[30], a.inactive[90]) for p, a in entry.accounts.items()},
    }


def truth_shape(entry) -> dict:
    return {
        "connections": entry["connections"],
        "per_day": entry["per_day"],
        "by_hour": entry["by_hour"],
        "logins": entry["logins"],
        "with_user": entry["with_user"],
        "visitors": {p: len(users) for p, users in entry["visitors"].items()},
        "apps": entry["apps"],
        "app_people": {a: len(users) for a, users in entry["app_people"].items()},
        "accounts": entry["accounts"],
    }


@pytest.fixture(scope="module")
def data(pg_server):
    dsn = canonical_database(pg_server, "reports_test")
    rows = generate()
    insert(dsn, rows)
    return dsn, rows


@pytest.fixture(scope="module")
def source(data):
    config = parse_config({"source": {"dsn": data[0]}}, "test")
    source = make_source(config)
    source.wait_ready()
    yield source
    source.close()


# -- figures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", MONTHS + ["2025-03", "2025-10"])
def test_month_figures_equal_a_recount_from_the_raw_rows(data, source, text):
    _dsn, rows = data
    figures = month_figures(source, Month.parse(text, PARIS))
    truth = recount(rows, text)
    assert set(figures) == set(truth), "structures with something to count"
    for structure in truth:
        assert as_figures(figures[structure]) == truth_shape(truth[structure]), structure
    # Every day of the month (743 h in March, 745 h in October: still 31 days) and all 168 cells.
    for entry in figures.values():
        assert len(entry.per_day) == len(Month.parse(text, PARIS).days)
        assert len(entry.by_hour) == 168
    if text == "2026-03":  # 02:00-02:59 does not exist on 29 March
        assert figures["all"].by_hour[(7, 2)] == truth["all"]["by_hour"][(7, 2)]
    if text == "2026-10":  # 02:30 happened twice on 25 October: both count in hour 2 of that Sunday
        assert truth["all"]["by_hour"][(7, 2)] >= 6


def test_a_month_without_any_event_is_all_zeros(data, source):
    """Before the data begins: no login nor opening; the accounts that existed are still counted."""
    _dsn, rows = data
    figures = month_figures(source, Month.parse("2024-01", PARIS))
    assert all(not entry.connections and not entry.apps and not entry.profiles for entry in figures.values())
    truth = recount(rows, "2024-01")
    assert {s: as_figures(e)["accounts"] for s, e in figures.items()} == {s: e["accounts"] for s, e in truth.items()}
    (report,) = build_reports(source, Month.parse("2024-01", PARIS), ["all"])
    assert report.current.connections == 0 and set(report.current.per_day.values()) == {0}


def test_month_boundaries_are_local_and_dst_months_have_their_true_length():
    march, october = Month.parse("2026-03", PARIS), Month.parse("2026-10", PARIS)
    assert march.start == datetime(2026, 2, 28, 23, tzinfo=UTC) and march.end == datetime(2026, 3, 31, 22, tzinfo=UTC)
    assert (march.end - march.start) == timedelta(hours=31 * 24 - 1)
    assert (october.end - october.start) == timedelta(hours=31 * 24 + 1)
    assert str(march.shift(-12)) == "2025-03" and str(Month.parse("2026-01", PARIS).shift(-1)) == "2025-12"


COMPARED_UNREAD = ("per_day", "by_hour", "app_people")


def test_reports_compare_with_the_previous_month_and_the_same_month_a_year_before(data, source):
    _dsn, rows = data
    reports = {r.structure.structure_id: r for r in build_reports(source, Month.parse("2026-03", PARIS))}
    assert set(reports) == set(STRUCTURE_IDS) | {"all"}
    for structure, report in reports.items():
        for attribute, text in (("current", "2026-03"), ("previous", "2026-02"), ("year_before", "2025-03")):
            truth = recount(rows, text).get(structure)
            figures = getattr(report, attribute)
            assert figures.connections == (truth["connections"] if truth else 0), (structure, attribute)
            assert figures.total.visitors == (len(truth["visitors"][TOTAL]) if truth else 0)
            if attribute != "current" and truth:
                # A compared month is read for its totals only (every one equal to the recount's), not
                # for its days, hours and people per application, which a report does not show.
                shown = {k: v for k, v in as_figures(figures).items() if k not in COMPARED_UNREAD}
                assert shown == {k: v for k, v in truth_shape(truth).items() if k not in COMPARED_UNREAD}
                assert not any(as_figures(figures)[k] for k in COMPARED_UNREAD), (structure, attribute)
        # The catalogue of applications: every app of the three months, 0 when not opened this month.
        seen = set()
        for text in ("2026-03", "2026-02", "2025-03"):
            seen |= set((recount(rows, text).get(structure) or {"apps": {}})["apps"])
        assert set(report.apps) == seen


def test_every_language_has_every_word():
    for table in (labels.INDICATORS, labels.TEXT, labels.PROFILES):
        assert set(table["fr"]) == set(table["en"])
    assert labels.WEEKDAYS["fr"][0] == "lundi" and len(labels.MONTHS["fr"]) == 12
    assert labels.percent("fr", 0.125) == "12,5\u202f%" and labels.number("fr", 12345) == "12\u202f345"
    assert (
        labels.change("fr", 110, 100) == "+10,0\u202f%" and labels.change("fr", 0.5, 0.6, rate=True) == "−10,0\u202fpts"
    )
    assert labels.change("en", 5, 0) == "—"


def test_a_figure_that_is_one_familys_has_the_catalogues_title():
    """The report says "Connexions" where the dashboards do: the title declared beside ent_logins_total."""
    for language in labels.LANGUAGES:
        for key, family in labels.FAMILIES.items():
            assert labels.indicator(language, key)[0] == labels.title(language, family)
            assert labels.indicator(language, key)[0] == (family.title_fr if language == "fr" else family.title_en)
    assert labels.FAMILIES["connections"].name == "ent_logins_total"
    assert labels.indicator("fr", "connections")[0] == "Connexions"
    assert labels.text("fr", "visits_per_visitor") == labels.indicator("fr", "visits_per_visitor")[0]


# -- the files ---------------------------------------------------------------------------------------


def pdftoppm() -> str:
    path = shutil.which("pdftoppm")
    if path is None:
        pytest.fail(
            "pdftoppm is not installed: the Debian package poppler-utils (the README's test command installs it)"
        )
    return path


def render_pages(pdf: Path, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [pdftoppm(), "-png", "-r", "40", str(pdf), str(directory / "page")], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return sorted(directory.glob("page*.png"))


def pdf_text(pdf: Path) -> str:
    result = subprocess.run(
        [shutil.which("pdftotext") or "pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


@pytest.fixture(scope="module")
def october(data, tmp_path_factory):
    """`ent-exporter report` for October 2026 (autumn DST), every structure, every format."""
    dsn, rows = data
    directory = tmp_path_factory.mktemp("reports")
    config = write_config(directory / "config.yml", dsn)
    result = run_cli(
        "report", "--config", str(config), "--month", "2026-10", "--out", str(directory / "out"), timeout=600
    )
    assert result.returncode == 0, result.stderr
    return directory / "out", rows


def test_one_file_set_per_structure_named_by_its_code_and_one_for_the_platform(october):
    out, _rows = october
    assert sorted(p.name for p in out.iterdir()) == sorted([*STRUCTURE_IDS, "all"])
    for directory in out.iterdir():
        names = {p.name for p in directory.iterdir()}
        assert {"2026-10.pdf", "2026-10.html"} <= names
        assert {
            f"2026-10-{key}.csv"
            for key in (
                "summary",
                "connections_per_day",
                "visitors_by_profile",
                "applications",
                "logins_by_hour",
                "accounts_by_profile",
            )
        } <= names


def test_the_pdf_renders_page_by_page(october, tmp_path):
    out, _rows = october
    pdf = out / "0750001A" / "2026-10.pdf"
    pages = render_pages(pdf, tmp_path / "pages")
    assert 2 <= len(pages) <= 6, [p.name for p in pages]
    # Every page is the one its footer says ("k/N"), and N is the number of pages rendered.
    for number in range(1, len(pages) + 1):
        text = subprocess.run(
            [shutil.which("pdftotext"), "-f", str(number), "-l", str(number), str(pdf), "-"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        assert f"{number}/{len(pages)}" in text and "Collège Jean Moulin (0750001A)" in text
    from PIL import Image

    for page in pages:
        with Image.open(page) as image:
            width, height = image.size
            assert 0.69 < width / height < 0.72, "A4 portrait"
            # Not blank: a real page has ink on it.
            dark = sum(image.convert("L").histogram()[:128])
            assert dark > 200, page.name


def test_the_pdf_says_in_french_what_the_month_was_and_only_its_own_structure(october):
    out, _rows = october
    text = pdf_text(out / "0750001A" / "2026-10.pdf")
    assert "Rapport mensuel" in text and "octobre 2026" in text and "Collège Jean Moulin" in text
    assert "Connexions par jour" in text and "Taux d'activation" in text
    # A head of establishment gets their own figures: no other structure is named in their files.
    for other_id, other_name, _kind in STRUCTURES[1:]:
        for path in (out / "0750001A").iterdir():
            content = pdf_text(path) if path.suffix == ".pdf" else path.read_text()
            assert other_id not in content and other_name not in content, path.name


def test_the_csvs_parse_and_hold_the_recounted_figures(october):
    out, rows = october
    truth = recount(rows, "2026-10")
    for structure in [*STRUCTURE_IDS, "all"]:
        entry = truth.get(structure)
        directory = out / structure
        per_day = read_csv(directory / "2026-10-connections_per_day.csv")
        assert len(per_day) == 31
        assert {date.fromisoformat(r["date"]): int(r["connections"]) for r in per_day if int(r["connections"])} == dict(
            entry["per_day"]
        )
        grid = read_csv(directory / "2026-10-logins_by_hour.csv")
        assert len(grid) == 168
        assert {
            (int(r["weekday"]), int(r["hour"])): int(r["connections"]) for r in grid if int(r["connections"])
        } == dict(entry["by_hour"])
        visitors = {r["profile"]: r for r in read_csv(directory / "2026-10-visitors_by_profile.csv")}
        assert int(visitors["all"]["visitors"]) == len(entry["visitors"][TOTAL])
        for profile, users in entry["visitors"].items():
            if profile != TOTAL:
                assert int(visitors[profile]["visitors"]) == len(users)
                assert float(visitors[profile]["visits_per_visitor"]) == pytest.approx(
                    entry["with_user"][profile] / len(users), abs=1e-6
                )
        apps = {r["app"]: r for r in read_csv(directory / "2026-10-applications.csv")}
        assert {a: int(r["openings"]) for a, r in apps.items() if int(r["openings"])} == dict(entry["apps"])
        accounts = {r["profile"]: r for r in read_csv(directory / "2026-10-accounts_by_profile.csv")}
        for profile, (activated, pending, inactive_30, inactive_90) in entry["accounts"].items():
            row = accounts["all" if profile == TOTAL else profile]
            assert (int(row["activated"]), int(row["pending"]), int(row["inactive_30d"]), int(row["inactive_90d"])) == (
                activated,
                pending,
                inactive_30,
                inactive_90,
            ), (structure, profile)
        summary = {r["indicator"]: r for r in read_csv(directory / "2026-10-summary.csv")}
        before = recount(rows, "2026-09")[structure]
        assert int(summary["connections"]["value"]) == entry["connections"]
        assert int(summary["connections"]["previous_month"]) == before["connections"]
        assert float(summary["connections"]["change_previous_month"]) == pytest.approx(
            round((entry["connections"] - before["connections"]) / before["connections"] * 100, 2)
        )
        year = recount(rows, "2025-10")[structure]
        assert int(summary["visitors"]["same_month_last_year"]) == len(year["visitors"][TOTAL])


def test_the_html_is_one_self_contained_page(october):
    out, _rows = october
    page = (out / "all" / "2026-10.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and 'lang="fr"' in page
    assert page.count("data:image/png;base64,") == 5
    assert "Ensemble de la plateforme" in page and "lundi" in page


def test_english_on_demand_and_a_subset_of_structures(data, tmp_path):
    dsn, _rows = data
    config = write_config(tmp_path / "config.yml", dsn)
    result = run_cli(
        "report",
        "--config",
        str(config),
        "--month",
        "2026-03",
        "--structure",
        "0750002B",
        "--format",
        "csv,pdf",
        "--lang",
        "en",
        "--out",
        str(tmp_path / "out"),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["0750002B"]
    names = {p.name for p in (tmp_path / "out" / "0750002B").iterdir()}
    assert "2026-03.pdf" in names and "2026-03.html" not in names
    assert "Monthly ENT usage report" in pdf_text(tmp_path / "out" / "0750002B" / "2026-03.pdf")


def test_an_output_directory_that_cannot_be_written_is_one_line_and_exit_2(data, tmp_path):
    dsn, _rows = data
    config = write_config(tmp_path / "config.yml", dsn)
    (tmp_path / "file").write_text("not a directory")
    result = run_cli(
        "report",
        "--config",
        str(config),
        "--month",
        "2026-03",
        "--structure",
        "all",
        "--format",
        "csv",
        "--out",
        str(tmp_path / "file"),
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ent-exporter: report: --out: cannot write "), result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--month", "2026-13"], "--month: not a month of the form YYYY-MM: '2026-13'"),
        (["--month", "March"], "--month: not a month of the form YYYY-MM: 'March'"),
        (["--month", "2026-03", "--structure", "0750001A", "NOPE"], "--structure: unknown structure NOPE"),
        (["--month", "2026-03", "--format", "pdf,docx"], "--format: unknown format docx"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(data, tmp_path, args, message):
    dsn, _rows = data
    config = write_config(tmp_path / "config.yml", dsn)
    result = run_cli("report", "--config", str(config), "--out", str(tmp_path / "out"), *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


# -- the daemon's job --------------------------------------------------------------------------------


def test_the_reports_section_is_validated(data, tmp_path):
    dsn, _rows = data
    config = write_config(tmp_path / "config.yml", dsn, reports={"directory": "monthly", "formats": ["pdf", "odt"]})
    result = run_cli("check-config", "--config", str(config))
    assert result.returncode == 2
    assert "reports.formats.1" in result.stderr and str(config) in result.stderr
    config = write_config(tmp_path / "config.yml", dsn, reports={"directory": "monthly", "language": "fr"})
    from ent_exporter.config import load_config

    assert load_config(config).reports.directory == tmp_path / "monthly"
    # A directory that cannot be used is said at once, by check-config and at start-up: one line, exit 2.
    (tmp_path / "taken").write_text("a file")
    config = write_config(tmp_path / "config.yml", dsn, reports={"directory": "taken/monthly"})
    for command in ("check-config", "serve"):
        result = run_cli(command, "--config", str(config), timeout=60)
        assert result.returncode == 2, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert f"{config}: reports.directory: {tmp_path / 'taken' / 'monthly'} cannot be used" in line


def test_the_monthly_job_writes_the_closed_month_once(data, source, tmp_path):
    from apscheduler.schedulers.background import BackgroundScheduler

    settings = ReportsConfig(directory=tmp_path / "monthly", formats=["csv"], language="fr")
    now = paris(2026, 11, 1, 4, 15)  # the 1st, at the monthly cadence's default time
    job = ReportJob(settings, source, PARIS, clock=clocks.FixedClock(now))
    assert str(job.closed_month()) == "2026-10" and not job.done(job.closed_month())
    scheduler = BackgroundScheduler(timezone=PARIS)
    job.attach(scheduler, Schedule(Cadence.MONTHLY, "15 4 1 * *", 0, PARIS))
    (scheduled,) = scheduler.get_jobs()
    assert scheduled.next_run_time is not None  # the month is missing: due at once
    written = job.run()
    assert {p.parent.name for p in written} == set(STRUCTURE_IDS) | {"all"}
    assert job.done(job.closed_month())
    summary = read_csv(tmp_path / "monthly" / "all" / "2026-10-summary.csv")
    assert int(summary[0]["value"]) == recount(data[1], "2026-10")["all"]["connections"]
    scheduler = BackgroundScheduler(timezone=PARIS)
    job.attach(scheduler, Schedule(Cadence.MONTHLY, "15 4 1 * *", 0, PARIS))
    (scheduled,) = scheduler.get_jobs()
    # Already written: the next run is the crontab's (APScheduler computes it at start).
    assert getattr(scheduled, "next_run_time", None) is None


def test_privacy_min_count_withholds_what_a_difference_would_give_back(data, source, tmp_path):
    """privacy.min_count in the reports, by the metrics' rule: no shown people count of 1 to 4, alone or
    as a shown total (the platform, every profile) minus shown figures; a withheld count is "s" (an
    empty CSV cell), never a 0 that is not one, and so is a ratio made of it; events are kept."""
    from ent_exporter.reports import document

    _dsn, rows = data
    truth = recount(rows, "2026-10")
    month = Month.parse("2026-10", PARIS)
    plain = {r.structure.structure_id: r.current for r in build_reports(source, month)}
    hidden = {r.structure.structure_id: r.current for r in build_reports(source, month, min_count=5)}
    assert set(hidden) == set(plain) and "all" in hidden
    small = withheld = 0
    # What a reader sees: visitors per (structure, profile), None where withheld.
    shown: dict[tuple, int | None] = {}
    for structure, figures in hidden.items():
        assert figures.connections == plain[structure].connections == truth[structure]["connections"]
        for profile, visiting in figures.profiles.items():
            true = len(truth[structure]["visitors"][profile])
            small += 0 < true < 5
            if visiting.visitors_withheld:
                withheld += 1
                shown[(structure, profile)] = None
                assert visiting.visits_per_visitor is None
            else:
                assert visiting.visitors == true and true not in range(1, 5)
                shown[(structure, profile)] = true
                assert visiting.visits_per_visitor == plain[structure].profiles[profile].visits_per_visitor
        for profile, account in figures.accounts.items():
            for state in ("activated", "pending"):
                value = getattr(account, state)
                assert value not in range(1, 5)
                if state not in account.withheld:
                    assert value == getattr(plain[structure].accounts[profile], state)
            if {"activated", "pending"} & account.withheld:
                assert account.ratio is None
            else:
                assert account.ratio == plain[structure].accounts[profile].ratio
    assert small and withheld > small / 2
    # Differences: a structure's total minus its shown profiles, the platform minus the shown structures.
    for (structure, profile), value in shown.items():
        if value is None:
            continue
        if profile == TOTAL:
            parts = [v for (s, p), v in shown.items() if s == structure and p != TOTAL and v]
            assert value - sum(parts) not in range(1, 5), (structure, value, parts)
        if structure == "all":
            parts = [v for (s, p), v in shown.items() if p == profile and s != "all" and v]
            assert value - sum(parts) not in range(1, 5), (profile, value, parts)
    # In the document: "s" in the table, an empty CSV cell, a footnote that says why.
    structure, profile = next(k for k, v in shown.items() if v is None and k[1] != TOTAL)
    report = next(r for r in build_reports(source, month, [structure], min_count=5))
    built = document.build(report, "fr", datetime(2026, 11, 2, tzinfo=PARIS), min_count=5)
    section = next(s for s in built.sections if s.key == "visitors_by_profile")
    row = next(r for r in section.csv_rows if r[0] == profile)
    assert row[1] == "" and row[3] == ""
    assert any(r[1] == "s" and r[3] == "s" for r in section.rows)
    assert "Secret statistique" in built.footnote


def test_the_daemon_writes_the_closed_month_at_start_when_it_is_missing(data, tmp_path):
    """serve with a reports: section: the monthly job is on the daemon's scheduler, due at once when the
    closed month's reports are not there (a daemon that was down on the 1st)."""
    from ent_exporter.app import Exporter
    from ent_exporter.config import load_config
    from tests.support import free_port, wait_until

    dsn, rows = data
    config_path = write_config(
        tmp_path / "config.yml",
        dsn,
        listen={"address": "127.0.0.1", "port": free_port()},
        reports={"directory": "monthly", "formats": ["csv", "pdf"]},
        collectors={"disabled": ["app_accesses", "connectors", "login_heatmap"]},
    )
    now = paris(2026, 11, 3, 10, 0)
    exporter = Exporter(load_config(config_path), str(config_path), clock=clocks.FixedClock(now))
    exporter.start()
    try:
        platform = tmp_path / "monthly" / "all"
        # Published, and the staging directory removed (right after the files are moved into place).
        wait_until(
            lambda: (
                (platform / "2026-10.pdf").exists()
                and not any(p.name.startswith(".ent-exporter-") for p in (tmp_path / "monthly").iterdir())
            ),
            timeout=240,
            message="the platform's report",
        )
    finally:
        exporter.stop()
    assert {p.name for p in (tmp_path / "monthly").iterdir()} == set(STRUCTURE_IDS) | {"all"}
    summary = {r["indicator"]: r for r in read_csv(platform / "2026-10-summary.csv")}
    assert int(summary["connections"]["value"]) == recount(rows, "2026-10")["all"]["connections"]
    assert not (platform / "2026-10.html").exists()  # the configured formats only


# -- rendering in worker processes, statements side by side --------------------------------------


def _charts(html: str) -> tuple[str, list]:
    """The page without its charts, and its charts (PIL images)."""
    import base64
    import re

    from PIL import Image

    pattern = re.compile(r'src="data:image/png;base64,([^"]+)"')
    charts = [Image.open(io.BytesIO(base64.b64decode(data))).convert("L") for data in pattern.findall(html)]
    return pattern.sub('src=""', html), charts


def _same_picture(first, second) -> bool:
    """The same picture, seen at an eighth of its size: a chart laid out after others may stand a fraction of a
    pixel apart (ent_exporter.reports.plots keeps layouts), which moves anti-aliased edges; another text,
    font, bar or colour moves whole 8 × 8 blocks."""
    from PIL.Image import Resampling

    if first.size != second.size:
        return False
    small = (max(1, first.width // 8), max(1, first.height // 8))
    a, b = first.resize(small, resample=Resampling.BOX), second.resize(small, resample=Resampling.BOX)
    differences = [abs(x - y) for x, y in zip(a.tobytes(), b.tobytes(), strict=True)]
    return max(differences) <= 40 and sum(differences) / len(differences) <= 1.0


def test_worker_processes_write_the_same_files_and_an_error_in_any_leaves_nothing(data, source, tmp_path, monkeypatch):
    """Rendered by this process alone or with a worker process (ent_exporter.reports.rendering), the
    statements on one connection or two at once: the same files (the CSVs byte for byte, the page's
    and the PDF's text, the charts' pixels but a few anti-aliased ones).
    A report that cannot be rendered, whichever process has it, stops the run: nothing new is
    written, what was there is untouched."""
    from ent_exporter.reports import figures, rendering, write_reports

    month = Month.parse("2026-10", PARIS)
    produced = paris(2026, 11, 2, 9, 0)
    monkeypatch.setattr(rendering, "MIN_PER_PROCESS", 1)  # the few structures of the data: a worker too
    monkeypatch.setattr(rendering, "CHUNK", 1)
    alone = write_reports(source, month, tmp_path / "alone", produced=produced, processes=1)
    statements: list[int] = []
    build = figures.build_reports

    def counted(*args, **kwargs):
        statements.append(args[5] if len(args) > 5 else kwargs.get("connections", 1))
        return build(*args, **kwargs)

    monkeypatch.setattr(figures, "build_reports", counted)
    together = write_reports(source, month, tmp_path / "together", produced=produced, processes=2)
    assert statements == [2]  # the source's pool: two connections, the statements run two at once
    assert [p.relative_to(tmp_path / "alone") for p in alone] == [
        p.relative_to(tmp_path / "together") for p in together
    ]
    assert together[-1].parent.name == "all"  # in the order of the reports: the platform's last
    for first, second in zip(alone, together, strict=True):
        if first.suffix == ".pdf":
            assert pdf_text(first) == pdf_text(second), first.name
        elif first.suffix == ".html":
            (page, charts), (other_page, other_charts) = _charts(first.read_text()), _charts(second.read_text())
            assert page == other_page and len(charts) == len(other_charts) == 5, first.name
            assert all(map(_same_picture, charts, other_charts)), first.name
        else:
            assert first.read_bytes() == second.read_bytes(), first.name

    reports = build(source, month)
    for broken in (0, len(reports) - 1):  # the first chunk (a worker's), the last (this process's)
        spoiled = [*reports]
        spoiled[broken] = figures.Report(**{**vars(reports[broken]), "current": None})  # type: ignore[arg-type]
        monkeypatch.setattr(figures, "build_reports", lambda *args, spoiled=spoiled, **kwargs: spoiled)
        before = {p: p.read_bytes() for p in (tmp_path / "together").rglob("*") if p.is_file()}
        with pytest.raises(AttributeError):
            write_reports(source, month, tmp_path / "together", produced=paris(2026, 11, 3), processes=2)
        assert {p: p.read_bytes() for p in (tmp_path / "together").rglob("*") if p.is_file()} == before
        assert [p.name for p in (tmp_path / "together").iterdir() if p.name.startswith(".")] == []
