"""The window collectors' cost: one set-based statement per run (plus, for the families that count
people, one read of the structures and profiles known from accounts), and the statements that
read login_events reach only their time window through the occurred_at index (EXPLAIN, a few
thousand rows over three years). The collectors that keep per-day aggregates (hourly visitors,
activity, heatmap: ent_exporter.aggregation.days) count a window from an empty state one local day per
statement; tests/test_window_aggregates.py shows that later runs read only the new events.
Light checks: the performance work lives elsewhere."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from random import Random
from typing import Any

import psycopg
import pytest
from psycopg import sql

from ent_exporter.aggregation.days import PARTS
from ent_exporter.aggregation.known import KNOWN_PAIRS
from ent_exporter.engine.collector import Context
from ent_exporter.indicators.accounts import AccountsCollector
from ent_exporter.indicators.activity import ActivityCollector
from ent_exporter.indicators.heatmap import LoginHeatmapCollector
from ent_exporter.indicators.structures import StructureInfoCollector
from ent_exporter.indicators.visitors import CurrentPeriodVisitorsCollector, PreviousMonthVisitorsCollector
from ent_exporter.sources.postgres import PostgresSource
from tests.ent_rows import PARIS, EntRows, insert, paris

NOW = paris(2026, 11, 18, 15, 0)
ALL = (
    CurrentPeriodVisitorsCollector,
    PreviousMonthVisitorsCollector,
    AccountsCollector,
    ActivityCollector,
    LoginHeatmapCollector,
    StructureInfoCollector,
)
READ_LOGINS = (CurrentPeriodVisitorsCollector, PreviousMonthVisitorsCollector, ActivityCollector, LoginHeatmapCollector)
# Those publish 0 for every structure and profile of accounts: one more statement, the same for all.
ZERO_FILLED = READ_LOGINS
# Those keep per-day aggregates: from an empty state, one statement per local day of the window
# (and its partial first day), and one read of each user's structures (or activated accounts).
DAY_AGGREGATED = (CurrentPeriodVisitorsCollector, ActivityCollector, LoginHeatmapCollector)


class RecordingSource:
    """Passes statements on to the real source and remembers them."""

    def __init__(self, source: PostgresSource) -> None:
        self.source = source
        self.statements: list[tuple[sql.Composable, Any]] = []

        self.schema, self.relations = source.schema, source.relations

    def fetch(self, query, params=None, **placeholders):
        self.statements.append((self.source.compose(query, **placeholders), params))
        return self.source.fetch(query, params, **placeholders)

    @contextlib.contextmanager
    def snapshot(self):  # (recorded one statement at a time: the plans are what is compared)
        yield self


def three_years_of_logins() -> EntRows:
    rng = Random(7)
    rows = EntRows(structures=[(f"S{n}", f"Structure {n}", "college") for n in range(20)])
    start = NOW - timedelta(days=3 * 365)
    for number in range(600):
        created = start + timedelta(days=rng.randrange(300))
        rows.accounts.append((f"u{number}", f"S{number % 20}", "Student", created, created + timedelta(days=2)))
    for _ in range(6000):
        moment = start + timedelta(seconds=rng.randrange(3 * 365 * 86400))
        rows.logins.append((f"u{rng.randrange(660)}", "Student", moment))
    return rows


@pytest.fixture
def recorded(source_dsn):
    """Each collector's statements of one run as of NOW, the known-pairs read set apart, and a
    connection to EXPLAIN them."""
    insert(source_dsn, three_years_of_logins())
    statements, known_reads = {}, {}
    with PostgresSource(source_dsn) as source:
        known = source.compose(KNOWN_PAIRS).as_string(None)
        for collector in ALL:
            recording = RecordingSource(source)
            collector().collect(Context(source=recording, now=NOW, timezone=PARIS, state={}))
            statements[collector] = [(s, p) for s, p in recording.statements if s.as_string(None) != known]
            known_reads[collector] = len(recording.statements) - len(statements[collector])
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        yield statements, known_reads, conn


def scans_of(plan: dict, relation: str) -> list[dict]:
    """Every plan node reading ``relation``, with the bitmap index scans under a bitmap heap scan."""
    found = []
    if plan.get("Relation Name") == relation:
        found.append(plan)
    for child in plan.get("Plans", []):
        found += scans_of(child, relation)
    return found


def index_conditions(node: dict) -> str:
    conditions = [node.get("Index Cond", ""), node.get("Recheck Cond", "")]
    for child in node.get("Plans", []):
        conditions.append(index_conditions(child))
    return " ".join(conditions)


def test_one_statement_per_run(recorded):
    statements, known_reads, _conn = recorded
    assert {collector.name: len(ran) for collector, ran in statements.items() if collector not in DAY_AGGREGATED} == {
        collector.name: 1 for collector in ALL if collector not in DAY_AGGREGATED
    }
    # The families that count people read the known structures and profiles once more per run.
    assert {collector.name: reads for collector, reads in known_reads.items()} == {
        collector.name: 1 if collector in ZERO_FILLED else 0 for collector in ALL
    }


@pytest.mark.parametrize("collector", READ_LOGINS, ids=lambda c: c.name)
def test_login_events_are_read_through_the_occurred_at_index(recorded, collector):
    statements, _known_reads, conn = recorded
    scans = []
    for statement, params in statements[collector]:
        plan = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + statement, params).fetchone()[0][0]["Plan"]
        scans += scans_of(plan, "login_events")
        if collector in DAY_AGGREGATED and "since" in (params or {}):  # one local day at most per statement
            assert params["until"] - params["since"] <= timedelta(hours=25), params
    assert scans, statements[collector]
    for scan in scans:
        # An index or bitmap scan whose condition is the window: never the whole relation.
        assert scan["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan"), scan
        assert "occurred_at >=" in index_conditions(scan) or "occurred_at >" in index_conditions(scan), scan
        assert "occurred_at <" in index_conditions(scan), scan


def reads_of_accounts(statements: list, conn) -> list:
    """The statements whose plan reads accounts (none of them reads login_events)."""
    reading = []
    for statement, params in statements:
        plan = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + statement, params).fetchone()[0][0]["Plan"]
        if scans_of(plan, "accounts"):
            reading.append(statement)
            assert not scans_of(plan, "login_events"), plan
    return reading


def test_attribution_reads_each_users_structures_once_per_run(recorded, source_dsn):
    """Visitors and heatmap combine per-day aggregates of user numbers: each user's structures come
    from one read of accounts per run (the structures' names, then the attachments), not from a
    look-up per user and day. A first run, which counts its whole window, reads the attachments in
    PARTS disjoint parts of the users (one part's bytes in memory at a time); the next runs in one."""
    statements, _known_reads, conn = recorded
    for collector in (CurrentPeriodVisitorsCollector, LoginHeatmapCollector):
        assert len(reads_of_accounts(statements[collector], conn)) == 1 + PARTS
        with PostgresSource(source_dsn) as source:
            first = collector().collect(Context(source=source, now=NOW, timezone=PARIS, state={}))
            recording = RecordingSource(source)
            collector().collect(
                Context(source=recording, now=NOW + timedelta(hours=1), timezone=PARIS, state=first.state)
            )
        regular = [
            (s, p) for s, p in recording.statements if s.as_string(None) != source.compose(KNOWN_PAIRS).as_string(None)
        ]
        assert len(reads_of_accounts(regular, conn)) == 1 + 1, collector.name


def test_with_many_users_the_regular_runs_read_the_attachments_in_parts_too(source_dsn, monkeypatch):
    """With many users (more than PART_USERS per part), a regular run reads the attachments in parts, up to
    PARTS as a first run does (one part's bytes in memory at a time), with the figures of one read."""
    from ent_exporter.aggregation import days

    insert(source_dsn, three_years_of_logins())
    with PostgresSource(source_dsn) as source:
        for collector in (CurrentPeriodVisitorsCollector, LoginHeatmapCollector):
            first = collector().collect(Context(source=source, now=NOW, timezone=PARIS, state={}))
            later = Context(source=source, now=NOW + timedelta(hours=1), timezone=PARIS, state=dict(first.state))
            once = collector().collect(later)
            monkeypatch.setattr(days, "PART_USERS", 1)
            recording = RecordingSource(source)
            later = Context(source=recording, now=NOW + timedelta(hours=1), timezone=PARIS, state=dict(first.state))
            apart = collector().collect(later)
            monkeypatch.undo()
            with psycopg.connect(source_dsn) as conn:
                regular = [
                    (s, p)
                    for s, p in recording.statements
                    if s.as_string(None) != source.compose(KNOWN_PAIRS).as_string(None)
                ]
                assert len(reads_of_accounts(regular, conn)) == 1 + days.PARTS, collector.name
            assert apart.samples == once.samples, collector.name
