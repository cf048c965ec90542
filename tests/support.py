"""Helpers shared by the tests: raw rows in, parsed exposition out, and the truth in plain Python."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from random import Random

import psycopg
import yaml
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql

REPO = Path(__file__).resolve().parent.parent


def require_binary(name: str) -> str:
    """The path of a binary of the Debian package prometheus (prometheus, promtool): a test that
    needs it fails, never skips, when it is missing."""
    import pytest

    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: install the Debian package `prometheus` "
            "(apt-get install prometheus; the README's test command does it)"
        )
    return path


def wait_until(predicate, timeout: float = 30, interval: float = 0.1, message: str = "condition"):
    """Polls until ``predicate`` returns something true (returned); OSError counts as not yet."""
    import time

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except OSError:
            pass
        time.sleep(interval)
    raise AssertionError(f"{message} not met within {timeout} s (last: {last!r})")


def prometheus_query(port: int, expr: str, at: float, timeout: float = 120) -> list[dict]:
    """The result of an instant query at ``at`` on the Prometheus listening on ``port``."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": at})
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())["data"]["result"]


@contextlib.contextmanager
def backfilled_prometheus(
    source: Path, tsdb: Path, ready: str, at: float, *, year_blocks: bool = False, wait: float = 120
) -> Iterator[int]:
    """A real Prometheus serving the samples of ``source`` (OpenMetrics with timestamps), backfilled into ``tsdb``
    with ``promtool tsdb create-blocks-from openmetrics``; yields its port once the query ``ready`` has a result
    at ``at``. ``year_blocks``: blocks of up to a year, not one per 2 hours of a long history."""
    blocks = ["--max-block-duration=8760h"] if year_blocks else []
    created = subprocess.run(
        [require_binary("promtool"), "tsdb", "create-blocks-from", "openmetrics", *blocks, str(source), str(tsdb)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    work = source.parent
    port = free_port()
    (work / "prometheus.yml").write_text("global: {}\n")
    prometheus = subprocess.Popen(
        [
            require_binary("prometheus"),
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={tsdb}",
            "--storage.tsdb.retention.time=100y",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=(work / "prometheus.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: prometheus_query(port, ready, at), wait, message=f"Prometheus serving {source.name}")
        yield port
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)


def canonical_database(server, name: str) -> str:
    """A database named ``name`` on the embedded ``server``, made anew, with the canonical tables; its DSN."""
    from ent_exporter.sources.tables import create_contract_tables

    with psycopg.connect(server.get_uri(), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = server.get_uri(name)
    with psycopg.connect(dsn) as conn:
        create_contract_tables(conn)
    return dsn


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Every heavy per-structure breakdown published whole (the series budget's opt-ins): for tests whose
# truth is the full breakdown per structure of ent_logins_by_hour, ent_app_accesses_total,
# ent_user_logins_30d or ent_visits_per_visitor.
FULL_BREAKDOWNS = {
    "logins_by_hour_per_structure": True,
    "app_accesses_by_profile_per_structure": True,
    "user_logins_30d_by_profile_per_structure": True,
    "visits_per_visitor_by_profile_per_structure": True,
}


def write_config(path: Path, dsn: str, **overrides) -> Path:
    """A config file for tests: no settle delay, everything else as given."""
    config = {"source": {"dsn": dsn, "settle_seconds": 0}, "state_dir": str(path.parent / "state")}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    path.write_text(yaml.safe_dump(config))
    return path


def run_cli(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ent_exporter.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        **kwargs,
    )


def parse(text: str) -> dict[str, dict[tuple, float]]:
    """Exposition text -> {sample name: {sorted label items: value}}."""
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.read().decode()


def series(samples: dict, name: str, **fixed: str) -> dict[tuple, float]:
    """The series of one sample name as {label values in name order...}: a compact view for asserts."""
    return {
        labels: value
        for labels, value in samples.get(name, {}).items()
        if all(dict(labels).get(k) == v for k, v in fixed.items())
    }


# -- raw rows -----------------------------------------------------------------------------

PROFILES = ["Student", "Relative", "Teacher", "Personnel", "Guest", None, ""]
APPS = ["pronote", "messagerie", "agenda", "moodle", None, ""]
CONNECTORS = ["ldap", "cas", "pronote", ""]
# Durations on and around the bucket bounds, to pin down "le" (less than or equal).
DURATIONS_MS = [None, 1.0, 50.0, 50.001, 100.0, 249.0, 250.0, 999.0, 1000.0, 2500.0, 7000.0, 10000.0, 15000.0]


@dataclass
class RawData:
    """Rows as inserted, so tests can compute every expected value without SQL."""

    accounts: list[tuple] = field(default_factory=list)  # user_id, structure_id, profile, created_at, activated_at
    logins: list[tuple] = field(default_factory=list)  # user_id, profile, occurred_at
    app_accesses: list[tuple] = field(default_factory=list)  # user_id, profile, app, occurred_at
    connector_calls: list[tuple] = field(
        default_factory=list
    )  # connector, structure_id, occurred_at, success, duration_ms


def make_accounts(rng: Random, users: int, structures: int, start: datetime) -> list[tuple]:
    rows = []
    for number in range(users):
        user = f"user-{number}"
        profile = rng.choice(PROFILES[:5])
        attachments = rng.sample(range(structures), 2 if number % 7 == 0 else 1)
        created = start - timedelta(days=rng.randint(1, 100))
        activated = None if number % 5 == 0 else created + timedelta(hours=rng.randint(0, 3000))
        for structure in attachments:
            rows.append((user, f"S{structure}", profile, created, activated))
    return rows


def make_events(rng: Random, count: int, users: int, start: datetime, span: timedelta) -> RawData:
    """Events in time order, from known users and from users without an account."""
    data = RawData()
    step = span / max(count, 1)
    for number in range(count):
        moment = start + step * number
        # ~10% of events come from users that have no account row
        user = f"user-{rng.randrange(int(users * 1.1))}"
        profile = rng.choice(PROFILES)
        data.logins.append((user, profile, moment))
        data.app_accesses.append((user, profile, rng.choice(APPS), moment))
        data.connector_calls.append(
            (rng.choice(CONNECTORS), f"S{rng.randrange(3)}", moment, rng.random() > 0.2, rng.choice(DURATIONS_MS))
        )
    return data


def insert(dsn: str, data: RawData) -> None:
    with psycopg.connect(dsn) as conn, conn.cursor() as cursor:
        if data.accounts:
            cursor.executemany(
                "INSERT INTO ent.accounts (user_id, structure_id, profile, created_at, activated_at)"
                " VALUES (%s, %s, %s, %s, %s)",
                data.accounts,
            )
        if data.logins:
            cursor.executemany(
                "INSERT INTO ent.login_events (user_id, profile, occurred_at) VALUES (%s, %s, %s)", data.logins
            )
        if data.app_accesses:
            cursor.executemany(
                "INSERT INTO ent.app_access_events (user_id, profile, app, occurred_at) VALUES (%s, %s, %s, %s)",
                data.app_accesses,
            )
        if data.connector_calls:
            cursor.executemany(
                "INSERT INTO ent.connector_events (connector, structure_id, occurred_at, success, duration_ms)"
                " VALUES (%s, %s, %s, %s, %s)",
                data.connector_calls,
            )


# -- the truth, from the raw rows ---------------------------------------------------------


def _label(value) -> str:
    return value if value else "unknown"


def attachments(accounts: Iterable[tuple]) -> dict[str, set[str]]:
    structures: dict[str, set[str]] = {}
    for user, structure, *_ in accounts:
        structures.setdefault(user, set()).add(_label(structure))
    return structures


def known_pairs(accounts: Iterable[tuple]) -> set[tuple[str, str]]:
    """(structure, profile) of every account and ("all", profile): the series born at 0."""
    pairs = {(_label(structure), _label(profile)) for _user, structure, profile, *_ in accounts}
    return pairs | {("all", profile) for _structure, profile in pairs}


def expected_event_counts(accounts: list[tuple], events: Iterable[tuple], with_app: bool) -> Counter:
    """{(structure, profile[, app]): count}, each event once per structure of its user plus once under "all".
    Logins (no app) also have a 0 for every known structure and profile."""
    structures_of = attachments(accounts)
    counts: Counter = Counter() if with_app else Counter({pair: 0 for pair in known_pairs(accounts)})
    for event in events:
        user, profile = event[0], _label(event[1])
        extra = (_label(event[2]),) if with_app else ()
        for structure in structures_of.get(user, {"unknown"}) | {"all"}:
            counts[(structure, profile, *extra)] += 1
    return counts


def expected_activations(accounts: list[tuple], upto: datetime) -> Counter:
    counts: Counter = Counter({pair: 0 for pair in known_pairs(accounts)})
    users_by_profile: dict[str, set[str]] = {}
    for user, structure, profile, _created, activated in accounts:
        if activated is not None and activated <= upto:
            counts[(_label(structure), _label(profile))] += 1
            users_by_profile.setdefault(_label(profile), set()).add(user)
    for profile, users in users_by_profile.items():
        counts[("all", profile)] = len(users)
    return counts


BUCKETS_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def expected_connector_samples(calls: Iterable[tuple]) -> dict[str, dict[tuple, float]]:
    """The connector families as parse() returns them (sample name -> sorted label items -> value)."""
    out: dict[str, dict[tuple, float]] = {}

    def add(name: str, labels: dict, value: float) -> None:
        key = tuple(sorted(labels.items()))
        out.setdefault(name, {})[key] = out.get(name, {}).get(key, 0.0) + value

    for connector, _structure, _moment, success, duration_ms in calls:
        connector = _label(connector)
        add("ent_connector_requests_total", {"connector": connector, "outcome": "success" if success else "failure"}, 1)
        base = "ent_connector_request_duration_seconds"
        for bound in BUCKETS_SECONDS:
            le = str(float(bound))
            hit = duration_ms is not None and duration_ms <= bound * 1000
            add(f"{base}_bucket", {"connector": connector, "le": le}, 1 if hit else 0)
        add(f"{base}_bucket", {"connector": connector, "le": "+Inf"}, 1 if duration_ms is not None else 0)
        add(f"{base}_count", {"connector": connector}, 1 if duration_ms is not None else 0)
        add(f"{base}_sum", {"connector": connector}, duration_ms / 1000 if duration_ms is not None else 0)
        for outcome in ("success", "failure"):  # both outcomes of a connector once seen
            add("ent_connector_requests_total", {"connector": connector, "outcome": outcome}, 0)
    return out


def as_samples(name: str, labels: tuple[str, ...], counts: Counter) -> dict[tuple, float]:
    return {tuple(sorted(zip(labels, key))): float(value) for key, value in counts.items()}


def copy_rows(cursor: psycopg.Cursor, schema: str, tables: Iterable[tuple[str, str, Iterable[tuple]]]) -> None:
    """Each (relation, columns, rows) of ``tables`` into ``schema``, by COPY."""
    for relation, columns, data in tables:
        with cursor.copy(f"COPY {schema}.{relation} ({columns}) FROM STDIN") as copy:
            for row in data:
                copy.write_row(row)


def insert_report_rows(dsn: str, structures: list[tuple], rows) -> None:
    """The reports' tests' rows (structures, then accounts, logins and application openings, by COPY)."""
    with psycopg.connect(dsn) as conn, conn.cursor() as cursor:
        cursor.executemany("INSERT INTO ent.structures VALUES (%s, %s, %s)", structures)
        copy_rows(
            cursor,
            "ent",
            [
                ("accounts", "user_id, structure_id, profile, created_at, activated_at", rows.accounts),
                ("login_events", "user_id, profile, occurred_at", rows.logins),
                ("app_access_events", "user_id, profile, app, occurred_at", rows.apps),
            ],
        )
