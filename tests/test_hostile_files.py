"""Files that cannot be redirected, and state files of the wrong shape.

A symbolic link planted where the exporter writes (a report, its old temporary name, a structure's
report directory, a state file, the state journal, the state's collectors directory) is either
replaced (the link itself, by the rename of a new file) or refused with a clear error; its target
is never written. A state file or journal line that is valid JSON of the wrong shape is logged and
recounted from scratch, to the value a recount of the raw rows gives."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random

import pytest

from ent_exporter.app import make_runtime, make_source
from ent_exporter.config import parse_config
from ent_exporter.engine.files import Directory, UnsafePath
from ent_exporter.engine.state import StateStore, StoredResult
from tests.support import (
    RawData,
    as_samples,
    expected_connector_samples,
    expected_event_counts,
    insert,
    make_accounts,
    make_events,
    parse,
    run_cli,
    write_config,
)

VICTIM = b"precious bytes, not the exporter's\n"


def victim(tmp_path: Path, name: str = "victim") -> Path:
    path = tmp_path / "elsewhere" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(VICTIM)
    return path


def result(value: float, watermark: int) -> StoredResult:
    return StoredResult(
        samples={"f": [(("a",), value)]},
        state={"watermark": watermark},
        last_success=100.0 + watermark,
        complete=True,
        changed_at={"f": [(("a",), 50.0 + watermark)]},
        ran_at=90.0 + watermark,
    )


def plain(stored: StoredResult | None) -> tuple | None:
    if stored is None:
        return None
    return (
        {f: [(tuple(k), v) for k, v in pairs] for f, pairs in stored.samples.items()},
        stored.state,
        stored.last_success,
    )


# -- the state directory ---------------------------------------------------------------------------


def test_a_symlink_at_a_state_files_name_is_not_read_and_is_replaced_by_the_next_save(tmp_path, caplog):
    target = victim(tmp_path)
    store = StateStore(tmp_path / "state")
    link = tmp_path / "state" / "collectors" / "c.json"
    link.symlink_to(target)
    with caplog.at_level(logging.WARNING):
        assert store.load("c") is None  # not the target's bytes: counted from scratch
    assert f"ignoring unreadable state {link} ({link}: a symbolic link, not followed)" in caplog.text
    store.save("c", result(3.0, 1))
    assert target.read_bytes() == VICTIM
    assert not link.is_symlink() and link.is_file()  # the rename replaced the link itself
    assert plain(StateStore(tmp_path / "state").load("c")) == ({"f": [(("a",), 3.0)]}, {"watermark": 1}, 101.0)


def test_a_symlink_at_the_journals_name_is_never_appended_through(tmp_path, caplog):
    """The save that would append writes the whole file instead (which removes the link): nothing lost."""
    target = victim(tmp_path)
    store = StateStore(tmp_path / "state")
    store.save("c", result(1.0, 1), journal=True)
    journal = tmp_path / "state" / "collectors" / "c.journal"
    journal.symlink_to(target)
    with caplog.at_level(logging.WARNING):
        store.save("c", result(2.0, 2), journal=True)
    assert target.read_bytes() == VICTIM
    assert f"cannot append to the state journal {journal} ({journal}: a symbolic link, not followed)" in caplog.text
    assert not journal.is_symlink() and not journal.exists()
    store.save("c", result(3.0, 3), journal=True)  # and the journal works again
    assert journal.is_file() and not journal.is_symlink()
    assert plain(StateStore(tmp_path / "state").load("c")) == ({"f": [(("a",), 3.0)]}, {"watermark": 3}, 103.0)


def test_a_symlinked_journal_is_not_replayed(tmp_path, caplog):
    """A journal planted as a link, even to lines that would follow the file, is ignored at load."""
    store = StateStore(tmp_path / "state")
    store.save("c", result(1.0, 1), journal=True)
    store.save("c", result(2.0, 2), journal=True)  # appended
    journal = tmp_path / "state" / "collectors" / "c.journal"
    lines = journal.read_bytes()
    moved = tmp_path / "elsewhere" / "lines"
    moved.parent.mkdir()
    moved.write_bytes(lines)
    journal.unlink()
    journal.symlink_to(moved)
    with caplog.at_level(logging.WARNING):
        loaded = StateStore(tmp_path / "state").load("c", journal=True)
    assert plain(loaded) == ({"f": [(("a",), 1.0)]}, {"watermark": 1}, 101.0)  # the file alone
    assert f"ignoring the state journal {journal} ({journal}: a symbolic link, not followed)" in caplog.text
    assert moved.read_bytes() == lines


def test_temporary_files_are_new_files_that_a_planted_link_cannot_be(tmp_path):
    """Temporary names are drawn at random and created with O_EXCL | O_NOFOLLOW: links planted at the
    names a writer used to use (.<name>.tmp) stay as they are, and their targets too."""
    target = victim(tmp_path)
    with Directory.open(tmp_path / "out", "S1") as directory:
        for name in (".c.json.tmp", ".c.tmp", ".report.csv.tmp"):
            (directory.path / name).symlink_to(target)
        directory.write("c.json", b"{}")
        directory.write("report.csv", b"a,b\n")
    assert target.read_bytes() == VICTIM
    assert (tmp_path / "out" / "S1" / "report.csv").read_bytes() == b"a,b\n"
    assert sorted(p.name for p in (tmp_path / "out" / "S1").iterdir()) == sorted(
        [".c.json.tmp", ".c.tmp", ".report.csv.tmp", "c.json", "report.csv"]
    )
    # A stale temporary file of the state store is removed at start, the link itself only.
    StateStore(tmp_path / "out2")
    (tmp_path / "out2" / "collectors" / ".c.json.0123.tmp").symlink_to(target)
    StateStore(tmp_path / "out2")
    assert not os.path.lexists(tmp_path / "out2" / "collectors" / ".c.json.0123.tmp")
    assert target.read_bytes() == VICTIM


def test_a_symlinked_collectors_directory_is_refused_in_one_line(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "collectors").symlink_to(elsewhere)
    with pytest.raises(UnsafePath) as raised:
        StateStore(tmp_path / "state")
    assert str(raised.value) == f"{tmp_path / 'state' / 'collectors'}: a symbolic link, not followed"
    config = write_config(tmp_path / "c.yml", "dbname=x")
    result = run_cli("check-config", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr == (
        f"ent-exporter: {config}: state_dir: {tmp_path / 'state' / 'collectors'} cannot be used"
        " (a symbolic link, not followed)\n"
    )
    assert list(elsewhere.iterdir()) == []


def test_a_symlinked_state_dir_itself_is_followed(tmp_path):
    """The configured directory may be a link (operators put state where the disk is)."""
    real = tmp_path / "disk"
    real.mkdir()
    (tmp_path / "state").symlink_to(real)
    StateStore(tmp_path / "state").save("c", result(1.0, 1))
    assert (real / "collectors" / "c.json").is_file()


# -- reports -----------------------------------------------------------------------------------------

NOVEMBER = datetime(2026, 11, 10, 9, tzinfo=UTC)


@pytest.fixture
def report_dsn(source_dsn):
    rng = Random(23)
    raw = RawData(accounts=[(f"u{n}", "0750001A", "Teacher", NOVEMBER - timedelta(days=9), None) for n in range(8)])
    raw.logins = [(f"u{rng.randrange(8)}", "Teacher", NOVEMBER + timedelta(minutes=n)) for n in range(40)]
    insert(source_dsn, raw)
    return source_dsn


def report(tmp_path: Path, dsn: str, out: Path) -> object:
    config = write_config(tmp_path / "c.yml", dsn, timezone="UTC")
    return run_cli(
        "report", "--config", str(config), "--month", "2026-11", "--structure", "0750001A", "--format", "csv",
        "--out", str(out),
    )  # fmt: skip


def test_a_symlink_at_a_reports_former_temporary_name_is_left_alone(report_dsn, tmp_path):
    target = victim(tmp_path)
    (tmp_path / "out" / "0750001A").mkdir(parents=True)
    planted = tmp_path / "out" / "0750001A" / ".2026-11-summary.csv.tmp"
    planted.symlink_to(target)
    done = report(tmp_path, report_dsn, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == VICTIM
    summary = tmp_path / "out" / "0750001A" / "2026-11-summary.csv"
    assert summary.is_file() and not summary.is_symlink()
    assert planted.is_symlink()
    assert not [p for p in (tmp_path / "out" / "0750001A").iterdir() if p.name.endswith(".tmp") and p != planted]


def test_a_symlink_at_a_reports_name_is_replaced_not_written_through(report_dsn, tmp_path):
    target = victim(tmp_path)
    (tmp_path / "out" / "0750001A").mkdir(parents=True)
    summary = tmp_path / "out" / "0750001A" / "2026-11-summary.csv"
    summary.symlink_to(target)
    done = report(tmp_path, report_dsn, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == VICTIM
    assert not summary.is_symlink()
    assert summary.read_text().splitlines()[1].startswith("connections,40,")  # the 40 logins of November


def test_a_symlinked_structure_directory_is_refused_in_one_line(report_dsn, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    target = victim(tmp_path, "2026-11-summary.csv")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "0750001A").symlink_to(elsewhere)
    done = report(tmp_path, report_dsn, tmp_path / "out")
    assert done.returncode == 2
    assert done.stderr == (
        f"ent-exporter: report: --out: cannot write {tmp_path / 'out' / '0750001A'} (a symbolic link, not followed)\n"
    )
    assert sorted(p.name for p in elsewhere.iterdir()) == ["2026-11-summary.csv"]
    assert target.read_bytes() == VICTIM


def test_a_symlinked_output_directory_itself_is_followed(report_dsn, tmp_path):
    (tmp_path / "disk").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "disk")
    done = report(tmp_path, report_dsn, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "disk" / "0750001A" / "2026-11-summary.csv").is_file()


# -- state files of the wrong shape --------------------------------------------------------------------

START = datetime(2026, 9, 1, 8, tzinfo=UTC)


def columns(stored: dict, family: str) -> dict:
    return stored["samples"][family]


SHAPES = {
    "a list": lambda d: [1, 2, 3],
    "a string": lambda d: "state",
    "a number": lambda d: 7,
    "samples a list": lambda d: {**d, "samples": []},
    "a family a list": lambda d: {**d, "samples": {"ent_logins_total": [1]}},
    "a label column too short": lambda d: {
        **d,
        "samples": {
            "ent_logins_total": {
                "labels": [c[:-1] for c in columns(d, "ent_logins_total")["labels"]],
                "values": columns(d, "ent_logins_total")["values"],
            }
        },
    },
    "a label missing": lambda d: {
        **d,
        "samples": {
            "ent_logins_total": {
                "labels": columns(d, "ent_logins_total")["labels"][:1],
                "values": columns(d, "ent_logins_total")["values"],
            }
        },
    },
    "a value a string": lambda d: {
        **d,
        "samples": {
            "ent_logins_total": {
                "labels": columns(d, "ent_logins_total")["labels"],
                "values": ["many"] * len(columns(d, "ent_logins_total")["values"]),
            }
        },
    },
    "last_success a string": lambda d: {**d, "last_success": "yesterday"},
    "complete missing": lambda d: {k: v for k, v in d.items() if k != "complete"},
    "changed_at times as strings": lambda d: {
        **d,
        "changed_at": {
            f: {"labels": t["labels"], "values": [str(v) for v in t["values"]]} for f, t in d["changed_at"].items()
        },
    },
    "state a list": lambda d: {**d, "state": [1, 2]},
    "the state's watermark a list": lambda d: {**d, "state": {**d["state"], "watermark": [1]}},
    "the state's gaps a number": lambda d: {**d, "state": {**d["state"], "gaps": 3}},
    "a histogram with a bucket too many": lambda d: {
        **d,
        "samples": {
            **d["samples"],
            "ent_connector_request_duration_seconds": {
                "labels": columns(d, "ent_connector_request_duration_seconds")["labels"],
                "values": [
                    {**v, "buckets": [*v["buckets"], v["count"]]}
                    for v in columns(d, "ent_connector_request_duration_seconds")["values"]
                ],
            },
        },
    },
    "a histogram a number": lambda d: {
        **d,
        "samples": {
            **d["samples"],
            "ent_connector_request_duration_seconds": {
                "labels": columns(d, "ent_connector_request_duration_seconds")["labels"],
                "values": [1.0] * len(columns(d, "ent_connector_request_duration_seconds")["values"]),
            },
        },
    },
}
CONNECTOR_SHAPES = {"a histogram with a bucket too many", "a histogram a number"}


@pytest.fixture
def counted(source_dsn, tmp_path):
    """Logins and connector calls, counted once into a state directory."""
    rng = Random(7)
    raw = RawData(accounts=make_accounts(rng, 30, 3, START))
    events = make_events(rng, 300, 30, START, timedelta(hours=3))
    raw.logins, raw.connector_calls = events.logins, events.connector_calls
    insert(source_dsn, raw)
    config = parse_config({"source": {"dsn": source_dsn, "settle_seconds": 0}, "state_dir": str(tmp_path)}, "t")
    with make_source(config) as source:
        runtime = make_runtime(config, source, persistent=True)
        runtime.restore()
        assert runtime.run("logins", START + timedelta(hours=4))
        assert runtime.run("connectors", START + timedelta(hours=4))
    return config, raw, rng


def logins_truth(raw: RawData) -> dict:
    return as_samples(
        "ent_logins_total", ("structure", "profile"), expected_event_counts(raw.accounts, raw.logins, False)
    )


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_state_file_of_the_wrong_shape_is_logged_and_recounted(counted, tmp_path, caplog, shape):
    config, raw, rng = counted
    collector = "connectors" if shape in CONNECTOR_SHAPES else "logins"
    path = tmp_path / "collectors" / f"{collector}.json"
    for journal in (tmp_path / "collectors").glob("*.journal"):
        journal.unlink()  # (the file alone holds the count)
    path.write_text(json.dumps(SHAPES[shape](json.loads(path.read_text()))))
    more = make_events(rng, 50, 30, START + timedelta(hours=5), timedelta(minutes=30))
    insert(source_dsn_of(config), more)
    raw.logins += more.logins
    raw.connector_calls += more.connector_calls
    with make_source(config) as source, caplog.at_level(logging.WARNING):
        runtime = make_runtime(config, source, persistent=True)
        runtime.restore()  # no traceback, whatever the shape
        for _ in range(2):  # a state its collector cannot use fails one run, the next counts from scratch
            if runtime.run(collector, START + timedelta(hours=6)):
                break
        else:
            pytest.fail(f"{collector} never recovered: {caplog.text}")
        samples = parse(runtime.exposition.body().decode())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        f" {path} (the wrong shape: " in w or f" {path} cannot be used (the wrong shape: " in w for w in warnings
    )
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    if collector == "logins":
        assert samples["ent_logins_total"] == logins_truth(raw)
    else:
        truth = expected_connector_samples(raw.connector_calls)
        for name in ("ent_connector_requests_total", "ent_connector_request_duration_seconds_bucket"):
            assert samples[name] == truth[name], name


def source_dsn_of(config) -> str:
    return config.source.dsn


def test_a_wrong_shape_the_store_sees_is_named_with_its_file(counted, tmp_path, caplog):
    config, raw, _rng = counted
    path = tmp_path / "collectors" / "logins.json"
    path.write_text(json.dumps([1, 2, 3]))
    with caplog.at_level(logging.WARNING):
        assert StateStore(tmp_path).load("logins") is None
    assert caplog.messages == [
        f"ignoring state {path} (the wrong shape: a list, not a mapping): logins starts from scratch"
    ]


def test_a_journal_line_of_the_wrong_shape_ends_the_journal_there(tmp_path, caplog):
    store = StateStore(tmp_path)
    store.save("c", result(1.0, 1), journal=True)
    store.save("c", result(2.0, 2), journal=True)
    journal = tmp_path / "collectors" / "c.journal"
    good = journal.read_bytes()
    bad = json.loads(good)
    bad.update(seq=3, samples={"f": {"labels": [["a"]], "values": ["three"]}})
    journal.write_bytes(good + json.dumps(bad).encode() + b"\n" + b'["not", "a", "line"]\n')
    with caplog.at_level(logging.WARNING):
        loaded = StateStore(tmp_path, clean=False).load("c", journal=True)
    assert plain(loaded) == ({"f": [(("a",), 2.0)]}, {"watermark": 2}, 102.0)
    assert caplog.messages == [
        f"state journal {journal}: save 3 has the wrong shape (samples.f: a value is a string): the saves"
        " before it are restored, the file is written whole next"
    ]


# -- a structure coded "all" ----------------------------------------------------------------------------


def test_a_structure_coded_all_is_said_by_check_config_connect_and_never_replaces_the_platforms_reports(
    report_dsn, tmp_path
):
    import psycopg

    (tmp_path / "out" / "all").mkdir(parents=True)
    platform = tmp_path / "out" / "all" / "2026-11-summary.csv"
    platform.write_bytes(VICTIM)
    assert report(tmp_path, report_dsn, tmp_path / "out").returncode == 0  # 0750001A's own, before the intruder
    with psycopg.connect(report_dsn) as conn:
        conn.execute(
            "INSERT INTO ent.accounts (user_id, structure_id, profile, created_at, activated_at)"
            " VALUES ('intruder', 'all', 'Teacher', %s, NULL)",
            (NOVEMBER,),
        )
    config = write_config(tmp_path / "c.yml", report_dsn, timezone="UTC")
    checked = run_cli("check-config", "--config", str(config), "--connect", timeout=60)
    assert checked.returncode == 1
    assert (
        f"{config}: source.schema: ent.accounts: a structure is coded 'all', the code of the platform-wide series"
        ' (structure="all"): its figures would merge into the platform\'s and its reports would take the'
        " platform's directory; give it another code in the source's views"
    ) in checked.stderr.splitlines()
    done = run_cli(
        "report", "--config", str(config), "--month", "2026-11", "--format", "csv", "--out", str(tmp_path / "out")
    )
    assert done.returncode == 2
    assert done.stderr == (
        "ent-exporter: report: a structure of the source is coded 'all', the platform's own code: its reports would"
        " replace the platform's; give it another code (check-config --connect says so too)\n"
    )
    assert platform.read_bytes() == VICTIM
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0750001A", "all"]
    # once refuses too: its platform-wide series would hold the intruder.
    now = "2026-12-01T00:05:00+00:00"
    refused = run_cli("once", "--config", str(config), "--now", now, timeout=120)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr == (
        f"ent-exporter: {config}: source.schema: ent.accounts: a structure is coded 'all', the code of the"
        ' platform-wide series (structure="all"): its figures would merge into the platform\'s and its reports'
        " would take the platform's directory; give it another code in the source's views\n"
    )


def test_the_daemon_refuses_a_structure_coded_all_every_day_in_one_error_line(report_dsn, caplog):
    """In the daemon, structure_info (daily) fails its run with one ERROR line, no traceback: the failure
    shows in ent_exporter_collector_failures_total and its alert, and the log says what to change."""
    import logging

    import psycopg

    from ent_exporter.app import make_runtime, make_source
    from ent_exporter.config import parse_config

    with psycopg.connect(report_dsn) as conn:
        conn.execute("INSERT INTO ent.structures (structure_id, name, kind) VALUES ('all', 'Intrus', 'college')")
    config = parse_config({"source": {"dsn": report_dsn}}, "c.yml")
    source = make_source(config)
    runtime = make_runtime(config, source, persistent=False)
    source.wait_ready()
    try:
        with caplog.at_level(logging.WARNING):
            assert runtime.run("structure_info", datetime(2026, 12, 1, tzinfo=UTC)) is False
    finally:
        source.close()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "structure_info: a structure is coded 'all' in the source's structures, the code of the platform-wide"
        " series: its figures merge into the platform's; give it another code in the source's views"
    ]
    assert all(r.exc_info is None for r in caplog.records)
    assert 'ent_exporter_collector_failures_total{collector="structure_info"} 1.0' in runtime.exposition.body().decode()
