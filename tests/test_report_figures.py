"""The monthly reports' figures on hostile data: every CSV cell of a month equals a recount from the raw
rows in plain Python, and each figure the exporter publishes for that closed period (``once --now`` at
the month's end) equals its cell; compared months the source does not wholly cover are "—" (an empty
CSV cell), never 0; months that make no sense are refused with one line; the output is all or nothing.

The source begins on Wednesday 7 October 2025 at 08:00 (Paris): October 2025 is partly covered,
September 2025 and before not at all. October 2026 is the autumn DST month (745 hours). People are
attached to several establishments, with another profile in each; accounts are created, and
activated, after the month under test."""

from __future__ import annotations

import csv
import fcntl
import io
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from random import Random
from zoneinfo import ZoneInfo

import pytest

from ent_exporter import cli
from ent_exporter.engine import clock as clocks
from tests.support import REPO, canonical_database, insert_report_rows, parse, run_cli, write_config

pytestmark = pytest.mark.time_sensitive

PARIS = ZoneInfo("Europe/Paris")
MICROSECOND = timedelta(microseconds=1)
STRUCTURES = [("0690001A", "Collège Ampère", "college"), ("0690002B", "Lycée du Parc", "lycee")]
IDS = ["0690001A", "0690002B", "0690003C"]  # the last one: in accounts only
PROFILES = ["Teacher", "Student", "Student", "Relative", None, ""]
APPS = ["exercizer", "blog", "cahier-de-textes", None, ""]
FIRST = datetime(2025, 10, 7, 8, 0, tzinfo=PARIS).astimezone(UTC)  # the source's first connection
KEYS = ("connections", "visitors", "visits_per_visitor", "app_openings", "activated_accounts")
SUMMARY = (*KEYS, "activation_ratio", "inactive_30d")


def paris(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=PARIS, fold=fold).astimezone(UTC)


def bounds(text: str) -> tuple[datetime, datetime]:
    year, month = map(int, text.split("-"))
    return paris(year, month, 1), paris(year + month // 12, month % 12 + 1, 1)


class Rows:
    def __init__(self) -> None:
        self.accounts: list[tuple] = []  # user, structure, profile, created, activated
        self.logins: list[tuple] = []  # user, profile, occurred_at
        self.apps: list[tuple] = []  # user, profile, app, occurred_at


def generate(seed: int = 24) -> Rows:
    rng = Random(seed)
    rows = Rows()
    profiles_of: dict[str, list] = defaultdict(list)

    def anytime(start: datetime, end: datetime) -> datetime:
        return start + timedelta(seconds=rng.randrange(int((end - start).total_seconds())))

    for number in range(45):
        user = f"p{number:02d}"
        created = anytime(paris(2025, 6, 1), paris(2026, 10, 20))
        activated = None if number % 4 == 0 else anytime(created, paris(2026, 12, 1))
        for structure in rng.sample(IDS, 2 if number % 3 == 0 else 1):  # a third in two establishments
            profile = rng.choice(PROFILES)
            rows.accounts.append((user, structure, profile, created, rng.choice([activated, activated, None])))
            profiles_of[user].append(profile)
    # Created, and activated, after October 2026: not accounts of October, whatever they do in November.
    for number in range(6):
        user = f"late{number}"
        created = paris(2026, 11, 1) + timedelta(days=number, hours=3)
        rows.accounts.append(
            (user, IDS[number % 2], "Student", created, created + timedelta(hours=1) if number % 2 else None)
        )
        profiles_of[user].append("Student")
    # Created at the month's very end (counted) and just after it (not), activated exactly at the end (pending).
    rows.accounts += [
        ("edge-in", "0690001A", "Teacher", paris(2026, 11, 1) - MICROSECOND, None),
        ("edge-out", "0690001A", "Teacher", paris(2026, 11, 1), None),
        ("edge-act", "0690002B", "Relative", paris(2025, 11, 1), paris(2026, 11, 1)),
    ]
    profiles_of["edge-in"].append("Teacher")
    members = sorted(profiles_of)
    strangers = ["nobody-1", "nobody-2"]  # no account: structure "unknown"

    def event(moment: datetime) -> None:
        user = rng.choice(members * 3 + strangers + [None])
        profile = rng.choice(profiles_of[user]) if user in profiles_of and rng.random() < 0.85 else rng.choice(PROFILES)
        rows.logins.append((user, profile, moment))
        if rng.random() < 0.6:
            rows.apps.append((user, profile, rng.choice(APPS), moment + timedelta(seconds=rng.randrange(900))))

    rows.logins.append(("p01", "Teacher", FIRST))  # the first connection of the source
    for _ in range(3000):
        event(anytime(FIRST + timedelta(minutes=1), paris(2026, 11, 25)))
    for text in ("2025-11", "2026-09", "2026-10", "2026-11"):
        start, _end = bounds(text)
        for moment in (start - MICROSECOND, start, start + MICROSECOND):
            event(moment)
    end = paris(2026, 11, 1)
    for moment in (end - timedelta(days=30), end - timedelta(days=30) - MICROSECOND, end - timedelta(days=90)):
        for _ in range(3):
            event(moment)
    for moment in (paris(2026, 10, 25, 2, 30), paris(2026, 10, 25, 2, 30, fold=1), paris(2026, 10, 25, 3, 0)):
        for _ in range(3):
            event(moment)
    rng.shuffle(rows.logins)
    return rows


def insert(dsn: str, rows: Rows) -> None:
    insert_report_rows(dsn, STRUCTURES, rows)


# -- the truth, from the raw rows ----------------------------------------------------------------------


def fold(value) -> str:
    return value if value else "unknown"


def recount(rows: Rows, text: str, as_of: datetime | None = None) -> dict[str, dict]:
    """Each structure's (and "all"'s) figures of a month in plain Python: events in [start, end) (end: the
    month's end, or just after ``as_of``), accounts as of the last instant (created and activated by then),
    inactive: no login in the 30 (90) days up to that instant."""
    start, end = bounds(text)
    if as_of is not None:
        end = min(end, as_of + MICROSECOND)
    instant = end - MICROSECOND
    structures_of: dict[str, set] = defaultdict(set)
    for user, structure, *_ in rows.accounts:
        structures_of[user].add(fold(structure))

    def attributed(user) -> set:
        return (structures_of.get(user) or {"unknown"}) | {"all"}

    out: dict[str, dict] = defaultdict(
        lambda: {
            "per_day": Counter(),
            "by_hour": Counter(),
            "logins": Counter(),  # per profile, every login
            "visits": Counter(),  # per profile and "all", logins with a user
            "visitors": defaultdict(set),  # per profile and "all"
            "apps": Counter(),
            "app_people": defaultdict(set),
            "accounts": {},
        }
    )
    for user, profile, moment in rows.logins:
        if start <= moment < end:
            local = moment.astimezone(PARIS)
            for structure in attributed(user):
                entry = out[structure]
                entry["per_day"][local.date()] += 1
                entry["by_hour"][(local.isoweekday(), local.hour)] += 1
                entry["logins"][fold(profile)] += 1
                if user is not None:
                    for key in (fold(profile), "all"):
                        entry["visits"][key] += 1
                        entry["visitors"][key].add(user)
    for user, _profile, app, moment in rows.apps:
        if start <= moment < end:
            for structure in attributed(user):
                out[structure]["apps"][fold(app)] += 1
                if user is not None:
                    out[structure]["app_people"][fold(app)].add(user)
    last_login: dict[str, datetime] = {}
    for user, _profile, moment in rows.logins:
        if user is not None and moment <= instant and (user not in last_login or moment > last_login[user]):
            last_login[user] = moment
    people: dict[tuple, dict[str, bool]] = defaultdict(dict)
    attachments: dict[tuple, list[bool]] = defaultdict(list)
    for user, structure, profile, created, activated_at in rows.accounts:
        activated = activated_at is not None and activated_at <= instant
        if not (activated or created <= instant):
            continue
        s, p = fold(structure), fold(profile)
        for key in ((s, p), (s, "all"), ("all", p), ("all", "all")):
            people[key][user] = people[key].get(user, False) or activated
        attachments[(s, p)].append(activated)
    for (structure, profile), users in people.items():
        if structure != "all" and profile != "all":
            activated = sum(attachments[(structure, profile)])
            pending = len(attachments[(structure, profile)]) - activated
        else:
            activated = sum(users.values())
            pending = len(users) - activated
        inactive = [
            sum(
                1
                for user, active in users.items()
                if active and (user not in last_login or last_login[user] <= instant - timedelta(days=days))
            )
            for days in (30, 90)
        ]
        out[structure]["accounts"][profile] = (activated, pending, *inactive)
    return out


def headline(entry: dict | None) -> dict[str, float]:
    if entry is None:
        return {**dict.fromkeys(SUMMARY, 0), "visits_per_visitor": 0.0, "activation_ratio": 0.0}
    activated, pending, inactive_30, _ = entry["accounts"].get("all", (0, 0, 0, 0))
    visitors = len(entry["visitors"]["all"])
    return {
        "connections": sum(entry["logins"].values()),
        "visitors": visitors,
        "visits_per_visitor": entry["visits"]["all"] / visitors if visitors else 0.0,
        "app_openings": sum(entry["apps"].values()),
        "activated_accounts": activated,
        "activation_ratio": activated / (activated + pending) if activated + pending else 0.0,
        "inactive_30d": inactive_30,
    }


def cell(value) -> str:
    """A CSV cell as the reports write one: integers as such, ratios rounded to 6 decimals."""
    return str(round(value, 6)) if isinstance(value, float) else str(value)


def change(key: str, now: float, before: float) -> str:
    if key == "activation_ratio":
        return cell(round((now - before) * 100, 2))
    return "" if before == 0 else cell(round((now - before) / before * 100, 2))


def expected_csvs(rows: Rows, text: str, structure: str, compared: dict[str, bool]) -> dict[str, list[list[str]]]:
    """Every CSV of one structure's report, cell by cell, rows in the reports' order."""
    truth = recount(rows, text)
    entry = truth[structure]
    year, month = map(int, text.split("-"))
    before_text = f"{year - (month == 1)}-{(month - 2) % 12 + 1:02d}"
    year_text = f"{year - 1}-{month:02d}"
    others = {
        "previous": recount(rows, before_text).get(structure),
        "year_before": recount(rows, year_text).get(structure),
    }
    now = headline(entry)
    summary = [["indicator", "value", "previous_month", "change_previous_month", "same_month_last_year",
                "change_same_month_last_year"]]  # fmt: skip
    for key in SUMMARY:
        line = [key, cell(now[key])]
        for which in ("previous", "year_before"):
            other = headline(others[which])
            line += [cell(other[key]), change(key, now[key], other[key])] if compared[which] else ["", ""]
        summary.append(line)
    start, end = bounds(text)
    days = [start.astimezone(PARIS).date() + timedelta(days=n) for n in range(31)]
    days = [d for d in days if d.month == month]
    per_day = [["date", "connections"]] + [[d.isoformat(), str(entry["per_day"][d])] for d in days]
    grid = [["weekday", "hour", "connections"]] + [
        [str(w), str(h), str(entry["by_hour"][(w, h)])] for w in range(1, 8) for h in range(24)
    ]
    profiles = set(entry["logins"]) | set(entry["visitors"]) - {"all"}
    visitors = [["profile", "visitors", "connections", "visits_per_visitor"]]
    for profile in sorted(profiles, key=lambda p: (-len(entry["visitors"][p]), p)) + ["all"]:
        people = len(entry["visitors"][profile])
        logins = sum(entry["logins"].values()) if profile == "all" else entry["logins"][profile]
        visitors.append([profile, str(people), str(logins), cell(entry["visits"][profile] / people if people else 0.0)])
    # The applications of this month and of the compared months (a month not compared is not read).
    catalogue = set(entry["apps"])
    for which in ("previous", "year_before"):
        catalogue |= set((others[which] or {"apps": {}})["apps"]) if compared[which] else set()
    apps = [["app", "openings", "people", "openings_previous_month", "openings_same_month_last_year"]]
    for app in sorted(catalogue, key=lambda a: (-entry["apps"][a], a)):
        line = [app, str(entry["apps"][app]), str(len(entry["app_people"][app]))]
        for which in ("previous", "year_before"):
            line.append(str((others[which] or {"apps": Counter()})["apps"][app]) if compared[which] else "")
        apps.append(line)
    accounts = [["profile", "activated", "pending", "activation_ratio", "inactive_30d", "inactive_90d"]]
    states = entry["accounts"]
    for profile in sorted((p for p in states if p != "all"), key=lambda p: (-(states[p][0] + states[p][1]), p)) + [
        "all"
    ]:
        activated, pending, inactive_30, inactive_90 = states[profile]
        ratio = activated / (activated + pending) if activated + pending else 0.0
        accounts.append([profile, str(activated), str(pending), cell(ratio), str(inactive_30), str(inactive_90)])
    return {
        "summary": summary,
        "connections_per_day": per_day,
        "visitors_by_profile": visitors,
        "applications": apps,
        "logins_by_hour": grid,
        "accounts_by_profile": accounts,
    }


def read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text())))


# -- fixtures --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(pg_server):
    dsn = canonical_database(pg_server, "report_figures_test")
    rows = generate()
    insert(dsn, rows)
    return dsn, rows


@pytest.fixture(scope="module")
def config(data, tmp_path_factory):
    directory = tmp_path_factory.mktemp("figures")
    # Every profile's visits per visitor per structure, so each CSV cell has its series.
    return write_config(
        directory / "config.yml", data[0], breakdowns={"visits_per_visitor_by_profile_per_structure": True}
    )


def report(config: Path, out: Path, month: str, *args: str, timeout: float = 600):
    return run_cli("report", "--config", str(config), "--month", month, "--out", str(out), *args, timeout=timeout)


@pytest.fixture(scope="module")
def october(config, tmp_path_factory):
    out = tmp_path_factory.mktemp("october") / "out"
    result = report(config, out, "2026-10", "--format", "csv")
    assert result.returncode == 0, result.stderr
    return out


# -- every CSV cell -------------------------------------------------------------------------------------


def test_every_csv_cell_of_a_dst_month_equals_a_recount_from_the_raw_rows(data, october):
    _dsn, rows = data
    assert sorted(p.name for p in october.iterdir()) == sorted([*IDS, "all"])
    for structure in [*IDS, "all"]:
        expected = expected_csvs(rows, "2026-10", structure, {"previous": True, "year_before": False})
        for key, table in expected.items():
            assert read_csv(october / structure / f"2026-10-{key}.csv") == table, (structure, key)
    # What the hostile rows are for: accounts created after the month are not pending in it.
    truth = recount(rows, "2026-10")
    created_later = sum(1 for _u, _s, _p, created, _a in rows.accounts if created >= paris(2026, 11, 1))
    everything = len({user for user, *_ in rows.accounts})
    activated, pending = truth["all"]["accounts"]["all"][:2]
    assert created_later == 7 and activated + pending == everything - 7
    # The second 02:30 of 25 October is in hour 2 of that Sunday, with the first.
    assert truth["all"]["by_hour"][(7, 2)] >= 6


def once(config: Path, now: str) -> dict:
    result = run_cli("once", "--config", str(config), "--now", now, timeout=300)
    assert result.returncode == 0, result.stderr
    return parse(result.stdout)


def by_labels(samples: dict, name: str, *fixed: tuple[str, str]) -> dict[tuple, float]:
    """{(structure, profile, rest...): value} of one family's samples with the ``fixed`` labels."""
    out = {}
    for labels, value in samples.get(name, {}).items():
        found = dict(labels)
        if all(found.get(k) == v for k, v in fixed):
            rest = tuple(v for k, v in labels if k not in ("structure", "profile", *dict(fixed)))
            out[(found["structure"], found["profile"], *rest)] = value
    return out


def test_each_figure_is_what_the_exporter_publishes_for_that_closed_period(config, october):
    """`once --now` at the first instant of November: the previous month's visitors; at October's last
    instant: the accounts, their activation ratio, the inactive accounts. Each equals its CSV cell."""
    after = once(config, "2026-11-01T00:00:00+01:00")
    visitors = by_labels(after, "ent_unique_visitors", ("period", "previous_month"))
    visits = by_labels(after, "ent_visits_per_visitor", ("period", "previous_month"))
    end = once(config, "2026-10-31T23:59:59.999999+01:00")
    accounts = by_labels(end, "ent_accounts")
    ratio = by_labels(end, "ent_account_activation_ratio")
    inactive = by_labels(end, "ent_inactive_accounts")
    compared = 0
    for structure in [*IDS, "all"]:
        rows = read_csv(october / structure / "2026-10-visitors_by_profile.csv")[1:]
        for profile, people, _logins, per_visitor in rows:
            assert float(people) == visitors.get((structure, profile), 0.0), (structure, profile)
            if (structure, profile) in visits:
                assert float(per_visitor) == pytest.approx(visits[(structure, profile)], abs=1e-6)
                compared += 1
        rows = read_csv(october / structure / "2026-10-accounts_by_profile.csv")[1:]
        assert {(structure, r[0]) for r in rows} == {(s, p) for s, p, _state in accounts if s == structure}
        for profile, activated, pending, activation, inactive_30, inactive_90 in rows:
            assert float(activated) == accounts[(structure, profile, "activated")]
            assert float(pending) == accounts[(structure, profile, "pending")]
            assert float(activation) == pytest.approx(ratio[(structure, profile)], abs=1e-6)
            assert float(inactive_30) == inactive[(structure, profile, "30")], (structure, profile)
            assert float(inactive_90) == inactive[(structure, profile, "90")], (structure, profile)
        summary = {r[0]: r for r in read_csv(october / structure / "2026-10-summary.csv")[1:]}
        assert float(summary["visitors"][1]) == visitors[(structure, "all")]
        assert float(summary["visits_per_visitor"][1]) == pytest.approx(visits[(structure, "all")], abs=1e-6)
        assert float(summary["activated_accounts"][1]) == accounts[(structure, "all", "activated")]
        assert float(summary["activation_ratio"][1]) == pytest.approx(ratio[(structure, "all")], abs=1e-6)
        assert float(summary["inactive_30d"][1]) == inactive[(structure, "all", "30")]
    assert compared > 10


# -- honest comparisons -----------------------------------------------------------------------------------


def test_months_the_source_does_not_wholly_cover_are_not_compared(data, config, tmp_path):
    """November 2025: the previous month is covered from the 7th only, the year before not at all: every
    compared cell is "—" in the HTML and empty in the CSV (never 0), and the report says since when."""
    _dsn, rows = data
    out = tmp_path / "out"
    result = report(config, out, "2025-11", "--format", "csv,html", "--structure", "0690001A", "all")
    assert result.returncode == 0, result.stderr
    for structure in ("0690001A", "all"):
        expected = expected_csvs(rows, "2025-11", structure, {"previous": False, "year_before": False})
        for key, table in expected.items():
            assert read_csv(out / structure / f"2025-11-{key}.csv") == table, (structure, key)
        summary = read_csv(out / structure / "2025-11-summary.csv")[1:]
        assert all(line[2:] == ["", "", "", ""] for line in summary)
        page = (out / structure / "2025-11.html").read_text()
        # The note is a paragraph of its own, below the period line (not joined to it).
        (notice,) = re.findall(r'<p class="notice">(.*?)</p>', page)
        assert notice.startswith("Données disponibles depuis le 7 octobre 2025 : "), notice
        (period,) = re.findall(r'<p class="note">(Produit le .*?)</p>', page)
        assert "disponibles" not in period and period.endswith("(heure de Paris)."), period
        table = page[page.index('<section id="summary">') : page.index("</section>")]
        cells = [re.findall(r"<td>(.*?)</td>", line) for line in re.findall(r"<tr>(.*?)</tr>", table)]
        body = [c for c in cells if c]
        assert len(body) == len(SUMMARY) and all(c[2:] == ["—"] * 4 for c in body), body
    # The month itself partly covered: reported, with the note; its previous month has no data at all.
    result = report(config, out, "2025-10", "--format", "csv,html", "--structure", "all")
    assert result.returncode == 0, result.stderr
    assert read_csv(out / "all" / "2025-10-connections_per_day.csv")[1][1] == "0"  # 1 October: before the data
    assert "Données disponibles depuis le 7 octobre 2025" in (out / "all" / "2025-10.html").read_text()
    assert all(line[2:] == ["", "", "", ""] for line in read_csv(out / "all" / "2025-10-summary.csv")[1:])


def test_the_note_says_since_when_in_english_too(config, tmp_path):
    out = tmp_path / "out"
    result = report(config, out, "2026-10", "--format", "html", "--structure", "all", "--lang", "en")
    assert result.returncode == 0, result.stderr
    page = (out / "all" / "2026-10.html").read_text()
    # September 2026 compared; October 2025 (from the 7th only) not: the note says why.
    assert "Data available since 7 October 2025: a month they do not wholly cover is not compared" in page


# -- months that make sense -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "month, message",
    [
        ("1999-01", "month 1999-01 is before the source's data, which begins on 2025-10-07: nothing to report"),
        ("2025-09", "month 2025-09 is before the source's data, which begins on 2025-10-07: nothing to report"),
        ("2999-01", "month 2999-01 has not begun (it is "),
    ],
)
def test_a_month_before_the_data_or_in_the_future_is_one_line_and_exit_2(config, tmp_path, month, message):
    out = tmp_path / "out"
    result = report(config, out, month, timeout=120)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"ent-exporter: report: {message}"), line
    assert not out.exists() or not any(out.iterdir())


def in_process(now: datetime, *args: str) -> int:
    """``ent-exporter report`` in this process, with the default clock pinned at ``now``."""
    previous = clocks.use(clocks.FixedClock(now))
    try:
        return cli.main(["report", *args])
    finally:
        clocks.use(previous)


def test_the_current_month_needs_partial_and_is_then_provisional(data, config, tmp_path, capsys):
    """On 6 November 2026 at 10:00: November is refused without --partial; with it, the report is as of
    that instant (events up to it, accounts as of it), says "provisoire, au 6 novembre 2026" on every page
    and does not compare its flows with whole months."""
    _dsn, rows = data
    now = paris(2026, 11, 6, 10, 0)
    out = tmp_path / "out"
    common = ["--config", str(config), "--month", "2026-11", "--out", str(out), "--structure", "0690001A", "all"]
    assert in_process(now, *common) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        "ent-exporter: report: month 2026-11 is not over (it ends on 2026-11-30 in Europe/Paris):"
        " --partial writes a provisional report as of now"
    )
    assert not out.exists() or not any(out.iterdir())
    assert in_process(now, *common, "--partial", "--format", "csv,pdf") == 0, capsys.readouterr().err
    truth = recount(rows, "2026-11", as_of=now)
    for structure in ("0690001A", "all"):
        entry = truth[structure]
        per_day = read_csv(out / structure / "2026-11-connections_per_day.csv")[1:]
        assert [d for d, _ in per_day] == [date(2026, 11, day).isoformat() for day in range(1, 7)]
        assert {date.fromisoformat(d): int(n) for d, n in per_day} == {
            date(2026, 11, day): entry["per_day"][date(2026, 11, day)] for day in range(1, 7)
        }
        summary = {r[0]: r for r in read_csv(out / structure / "2026-11-summary.csv")[1:]}
        now_figures = headline(entry)
        # October 2026 and November 2025 (the data begin on 7 October 2025): both wholly covered.
        for column, text in ((2, "2026-10"), (4, "2025-11")):
            before = headline(recount(rows, text)[structure])
            for key in SUMMARY:
                assert summary[key][1] == cell(now_figures[key]), (structure, key)
                assert summary[key][column] == cell(before[key]), (structure, key, text)
                flows = key in ("connections", "visitors", "visits_per_visitor", "app_openings")
                # A provisional month's flows are not compared with whole months; stocks are.
                expected = "" if flows else change(key, now_figures[key], before[key])
                assert summary[key][column + 1] == expected, (structure, key, text)
        accounts = {r[0]: r for r in read_csv(out / structure / "2026-11-accounts_by_profile.csv")[1:]}
        for profile, (activated, pending, inactive_30, inactive_90) in entry["accounts"].items():
            assert accounts[profile][1:3] == [str(activated), str(pending)], (structure, profile)
            assert accounts[profile][4:] == [str(inactive_30), str(inactive_90)], (structure, profile)
    from tests.test_reports import pdf_text

    pages = [page for page in pdf_text(out / "all" / "2026-11.pdf").split("\f") if page.strip()]
    assert len(pages) >= 2 and all("provisoire, au 6 novembre 2026" in page for page in pages)
    # Page 1: the period line, then the note on lines of its own (not joined to the period's).
    lines = [line.strip() for line in pages[0].splitlines() if line.strip()]
    period = next(i for i, line in enumerate(lines) if line.startswith("Produit le "))
    note = next(
        i for i, line in enumerate(lines) if line.startswith("Mois en cours : chiffres provisoires au 6 novembre")
    )
    assert period < note and "Mois en cours" not in " ".join(lines[period:note]), lines[: note + 1]


# -- all or nothing ---------------------------------------------------------------------------------------


def snapshot(top: Path) -> dict[str, bytes | None]:
    """Every path under ``top`` (hidden ones included): a file's bytes, None for a directory."""
    return {str(path.relative_to(top)): None if path.is_dir() else path.read_bytes() for path in sorted(top.rglob("*"))}


def test_an_error_leaves_nothing_new_and_existing_reports_untouched(config, tmp_path):
    """`all` is a file under --out: exit 2 with one line before anything is written, no new file or
    directory anywhere (no staging directory left), the existing reports byte-identical."""
    out = tmp_path / "out"
    result = report(config, out, "2026-09", "--format", "csv", "--structure", "0690001A")
    assert result.returncode == 0, result.stderr
    (out / "all").write_text("not a directory\n")
    before = snapshot(out)
    result = report(config, out, "2026-10", "--format", "csv,html")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line == f"ent-exporter: report: --out: cannot write {out / 'all'} (not a directory)"
    assert snapshot(out) == before


def test_a_failure_while_moving_into_place_puts_everything_back(config, tmp_path):
    """The files of the first structures are moved (one of them replacing an older report), then a file
    of the third cannot be replaced (a non-empty directory holds its name): the moved files are put
    back or removed, the directories created are removed, the old report is byte-identical."""
    out = tmp_path / "out"
    result = report(config, out, "2026-10", "--format", "csv", "--structure", "0690002B")
    assert result.returncode == 0, result.stderr
    (out / "0690002B" / "2026-10-summary.csv").write_text("an older report\n")
    obstacle = out / "0690003C" / "2026-10-summary.csv"
    obstacle.mkdir(parents=True)
    (obstacle / "keep").write_text("x")
    before = snapshot(out)
    result = report(config, out, "2026-10", "--format", "csv")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"ent-exporter: report: --out: cannot write {obstacle} ("), line
    assert snapshot(out) == before
    assert not (out / "0690001A").exists() and not (out / "all").exists()


def test_a_killed_runs_staging_directory_is_removed_by_the_next_run(config, tmp_path):
    """`ent-exporter report` killed (SIGKILL) while it writes leaves its staging directory; the next run in
    that output directory removes it once it is old (here: aged by hand) and not locked. A staging
    directory a running process holds (locked), a recent one, and a symbolic link named like one are left."""
    out = tmp_path / "out"
    command = [sys.executable, "-m", "ent_exporter.cli", "report", "--config", str(config), "--month", "2025-11"]
    killed = subprocess.Popen([*command, "--out", str(out)], cwd=REPO, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (out.is_dir() and [p for p in out.iterdir() if p.name.startswith(".ent-exporter-2025-11-")]):
        assert killed.poll() is None and time.monotonic() < deadline, "no staging directory seen"
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    killed.stderr.close()  # type: ignore[union-attr]
    (left,) = [p for p in out.iterdir() if p.name.startswith(".ent-exporter-")]
    os.utime(left, (0, 0))  # made long before the next run (1970)
    busy = out / ".ent-exporter-2025-11-busy"
    busy.mkdir()
    os.utime(busy, (0, 0))
    fresh = out / ".ent-exporter-2025-11-fresh"
    fresh.mkdir()
    os.utime(fresh, (4102444800, 4102444800))  # 2100: newer than the next run's own
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "kept").write_text("kept")
    (out / ".ent-exporter-link").symlink_to(elsewhere)
    held = os.open(busy, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a running report holds its own
        result = report(config, out, "2025-11", "--format", "csv", "--structure", "all")
        assert result.returncode == 0, result.stderr
    finally:
        os.close(held)
    assert not left.exists()
    assert busy.is_dir() and fresh.is_dir() and (elsewhere / "kept").read_text() == "kept"
    assert sorted(p.name for p in out.iterdir()) == sorted(["all", busy.name, fresh.name, ".ent-exporter-link"])
    assert (out / "all" / "2025-11-summary.csv").is_file()
