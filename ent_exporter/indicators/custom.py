"""Indicators an administrator declares in the configuration (``custom:``), without Python.

Each entry of ``custom:`` becomes one collector (named ``custom_<metric>``) with one metric
family, run by the same runtime as the collector classes: read-only transaction, statement
timeout, result persisted with the state and published atomically, cardinality guard and
``privacy.min_count`` (when the entry says ``counts_people``) applied by the exposition.

The statement is PostgreSQL over the contract's views, written with placeholders:
``{accounts}``, ``{login_events}``, ... (the schema-qualified relation), ``{now}`` (the run's
instant, a timestamptz) and ``{timezone}`` (the platform's, a text). Its result has one
column per declared label, named like it, and a column ``value`` (a number); rows whose value
is NULL are left out, NULL or empty label values become ``unknown``. A gauge is the result as
it is. A counter is incremental: the entry names its event relation (``events``) and its
watermark (``event_id`` or ``occurred_at``, as for the built-in counters), the statement reads
``{events}``, which stands for the events not counted yet (``(SELECT ...) AS events``: do not
alias it), and returns counts per label values; the runtime adds them up across runs.

What is checked when the configuration is loaded (no database needed): the metric and label
names, one statement that is a plain SELECT (no INSERT/UPDATE/DELETE/MERGE, not even in a
WITH, no SELECT INTO, no FOR UPDATE) and that calls no function of FORBIDDEN_FUNCTIONS
(set_config, pg_sleep, lo_*, dblink, ...), placeholders that exist, the result's columns (named
labels + value, when the statement names them, which it must), and no label taken straight
from a column that identifies a person (``user_id``, ...). ``check-config --connect`` also has
the database plan the statement. Everything else (what a label holds, that counts are
additive) is the administrator's responsibility, as docs/custom-indicators.md says.
"""

from __future__ import annotations

import fnmatch
import re
import string
from collections.abc import Iterable
from datetime import UTC
from typing import Any, ClassVar, Literal, cast

from psycopg import sql
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ent_exporter.aggregation.incremental import EventCounter
from ent_exporter.aggregation.periods import zone_name
from ent_exporter.engine.collector import (
    Cadence,
    Collector,
    Context,
    Family,
    Kind,
    LabelValues,
    Result,
    Samples,
    UntrustedSQL,
    Value,
    label,
)

PREFIX = "custom:"
METRIC_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Suffixes Prometheus gives a meaning to (histograms, summaries) or that only counters carry.
RESERVED_SUFFIXES = ("_bucket", "_count", "_sum", "_created")
RESERVED_LABELS = {"le", "quantile", "value", "job", "instance"}
# Columns of the contract (or of a platform) that identify a person: never a label.
IDENTIFYING_COLUMNS = {
    "user_id",
    "userid",
    "login",
    "username",
    "email",
    "mail",
    "firstname",
    "lastname",
    "first_name",
    "last_name",
    "display_name",
    "displayname",
    "name_of_user",
}
VALUE_COLUMN = "value"
MAX_LABELS = 8
# Relations a statement may name (the contract's core and its optional relations).
RELATIONS = (
    "structures",
    "accounts",
    "login_events",
    "app_access_events",
    "connector_events",
    "course_progress",
    "account_feeds",
    "user_classes",
)
EVENTS_ALIAS = "events"

# Functions a statement may not call, by what they do: the read-only transaction, its timeout and
# the reset of each connection (ent_exporter.sources.postgres) stop most of them at run time, the
# role made by init-source the rest; refusing them at load says so before anything runs. Names
# (exact, or a prefix ending with "*") are compared whatever their schema or case.
FORBIDDEN_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "changes the session's settings": ("set_config",),
    "waits on the server": ("pg_sleep*",),
    "reads or writes large objects": ("lo_*", "loread", "lowrite"),
    "connects to another database": ("dblink*",),
    "reads the server's files": (
        "pg_read_file",
        "pg_read_binary_file",
        "pg_ls_*",
        "pg_stat_file",
        "pg_file_*",
        "pg_logdir_ls",
    ),
    "acts on the server or other sessions": (
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_signal_backend",
        "pg_reload_conf",
        "pg_rotate_logfile*",
        "pg_promote",
        "pg_switch_wal",
        "pg_create_restore_point",
        "pg_backup_*",
        "pg_start_backup",
        "pg_stop_backup",
        "pg_wal_replay_*",
        "pg_log_backend_memory_contexts",
        "pg_log_standby_snapshot",
        "pg_notify",
        "pg_stat_reset*",
        "pg_stat_statements_reset",
        "*replication_slot*",
        "pg_replication_origin_*",
        "pg_logical_*",
        "pg_import_system_collations",
        "pg_nextoid",
        "binary_upgrade_*",
    ),
    "takes a lock": ("pg_advisory_*", "pg_try_advisory_*"),
    "uses transaction ids": ("txid_*", "pg_current_xact_id*"),
    "changes a sequence": ("nextval", "setval"),
    "writes to the database": (
        "brin_summarize_*",
        "brin_desummarize_range",
        "gin_clean_pending_list",
        "pg_restore_*_stats",
        "pg_clear_*_stats",
        "pg_set_*_stats",
    ),
    "runs SQL given as text, which no check sees": (
        "query_to_xml*",
        "cursor_to_xml*",
        "table_to_xml*",
        "schema_to_xml*",
        "database_to_xml*",
        "ts_stat",
        "ts_rewrite",
    ),
}
# Statements other than SELECT, named as written (the parser's node names otherwise).
STATEMENT_NAMES = {
    "VariableShowStmt": "SHOW",
    "TransactionStmt": "a transaction command",
    "CopyStmt": "COPY",
    "DoStmt": "DO",
    "CallStmt": "CALL",
    "LockStmt": "LOCK",
    "ExecuteStmt": "EXECUTE",
    "PrepareStmt": "PREPARE",
    "DeclareCursorStmt": "DECLARE",
    "ListenStmt": "LISTEN",
    "NotifyStmt": "NOTIFY",
}


def forbidden_function(name: str) -> str | None:
    """What the function ``name`` (unqualified) does that a custom statement may not, or None."""
    name = name.lower()
    for reason, patterns in FORBIDDEN_FUNCTIONS.items():
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
            return reason
    return None


class Settings(BaseModel):
    """One entry of ``custom:``."""

    model_config = ConfigDict(extra="forbid")

    metric: str = Field(description="the exposed name, e.g. ent_custom_teachers_without_class")
    type: Literal["gauge", "counter"] = Field(description="gauge: the statement's result; counter: incremental")
    help: str = Field(min_length=1, description="the family's help text")
    labels: list[str] = Field(default_factory=list, description="label names, one result column each")
    sql: str = Field(min_length=1, description="one SELECT over the contract's views ({accounts}, ...)")
    cadence: Cadence = Field(default=Cadence.DAILY, description="how often the statement runs")
    counts_people: bool = Field(False, description="privacy.min_count applies to its values")
    additive: bool = Field(True, description="false for ratios and averages: the cardinality guard drops them")
    events: Literal["login_events", "app_access_events", "connector_events"] | None = Field(
        default=None, description="counters: the event relation counted, which {events} stands for"
    )
    watermark: Literal["event_id", "occurred_at"] | None = Field(
        default=None, description="counters: how new rows are found, by id or by time"
    )

    @field_validator("metric")
    @classmethod
    def _metric_name(cls, value: str) -> str:
        if not METRIC_NAME.match(value):
            raise ValueError(
                f"{value!r} is not a Prometheus metric name ([a-zA-Z_][a-zA-Z0-9_]*, no colon: "
                "colons are for recording rules)"
            )
        if value.startswith("ent_exporter_"):
            raise ValueError(f"{value!r}: the prefix ent_exporter_ is the exporter's own metrics")
        if value.endswith(RESERVED_SUFFIXES):
            raise ValueError(f"{value!r}: names ending in {', '.join(RESERVED_SUFFIXES)} have a meaning in Prometheus")
        return value

    @field_validator("labels")
    @classmethod
    def _label_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not LABEL_NAME.match(name) or name.startswith("__"):
                raise ValueError(f"{name!r} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)")
            if name in RESERVED_LABELS:
                raise ValueError(f"{name!r} is reserved (by Prometheus or for the value column)")
            if name.lower() in IDENTIFYING_COLUMNS:
                raise ValueError(f"{name!r} would identify a person: nothing that identifies a person is exported")
        duplicates = sorted({name for name in value if value.count(name) > 1})
        if duplicates:
            raise ValueError(f"label(s) {', '.join(duplicates)} given twice")
        if len(value) > MAX_LABELS:
            raise ValueError(f"at most {MAX_LABELS} labels")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.type == "counter":
            if not self.metric.endswith("_total"):
                raise ValueError(f"metric: a counter's name ends with _total ({self.metric}_total?)")
            if self.events is None or self.watermark is None:
                raise ValueError(
                    "events: a counter is incremental: give its event relation (events:) and watermark "
                    "(watermark: event_id or occurred_at), or declare it type: gauge"
                )
        else:
            if self.metric.endswith("_total"):
                raise ValueError("metric: _total is for counters; a gauge's name does not end with it")
            if self.events is not None or self.watermark is not None:
                raise ValueError("events: events and watermark go with type: counter only")
        problem = check_statement(self)
        if problem:
            raise ValueError(f"sql: {problem}")
        return self

    @property
    def collector_name(self) -> str:
        return PREFIX + self.metric

    def family(self) -> Family:
        return Family(
            self.metric,
            Kind.COUNTER if self.type == "counter" else Kind.GAUGE,
            self.help,
            tuple(self.labels),
            additive=self.additive,
            counts_people=self.counts_people,
        )


# -- the statement ----------------------------------------------------------------------


def placeholders_of(text: str) -> list[str]:
    """The ``{name}`` fields of the statement (``{{``/``}}`` are literal braces)."""
    names = []
    for _literal, field_name, format_spec, conversion in string.Formatter().parse(text):
        if field_name is None:
            continue
        if format_spec or conversion or not field_name.isidentifier():
            raise ValueError(f"{{{field_name}}} is not a placeholder (write {{{{ and }}}} for literal braces)")
        names.append(field_name)
    return names


def allowed_placeholders(settings: Settings) -> set[str]:
    return set(RELATIONS) | {"now", "timezone"} | ({"events"} if settings.type == "counter" else set())


def check_statement(settings: Settings) -> str | None:
    """Why the statement cannot be run as this indicator, or None: checked without a database."""
    try:
        names = placeholders_of(settings.sql)
    except ValueError as error:
        return str(error)
    unknown = sorted(set(names) - allowed_placeholders(settings))
    if unknown:
        return (
            f"unknown placeholder(s) {', '.join('{' + n + '}' for n in unknown)} (known: "
            f"{', '.join('{' + n + '}' for n in sorted(allowed_placeholders(settings)))})"
        )
    if settings.type == "counter" and "events" not in names:
        return "a counter's statement reads its new events from {events}"
    # Parse the statement with PostgreSQL's own parser (pglast), placeholders filled with stand-ins.
    import pglast
    from pglast import ast
    from pglast.visitors import Visitor

    stand_ins = {name: f"ent.{name}" for name in RELATIONS}
    stand_ins.update(now="now()", timezone="'UTC'", events=f"(SELECT 1) AS {EVENTS_ALIAS}")
    try:
        statements = pglast.parse_sql(settings.sql.format(**stand_ins))
    except pglast.parser.ParseError as error:
        hint = " ({events} stands for (SELECT ...) AS events: do not alias it)" if settings.type == "counter" else ""
        return f"not valid PostgreSQL: {error}{hint}"
    if len(statements) != 1:
        return f"one statement expected, found {len(statements)}"
    statement = statements[0].stmt
    if not isinstance(statement, ast.SelectStmt):
        kind = type(statement).__name__
        named = STATEMENT_NAMES.get(kind, kind.removesuffix("Stmt").upper())
        if isinstance(statement, ast.VariableSetStmt):
            resets = statement.kind is not None and statement.kind.name.startswith("VAR_RESET")
            named = "RESET" if resets else "SET"
        return f"a SELECT (or WITH ... SELECT) is expected, not {named}"

    writes: list[str] = []
    calls: dict[str, tuple[int, str]] = {}  # forbidden function -> (where in the text, what it does)

    class _Writes(Visitor):
        def visit(self, ancestors, node):
            if isinstance(node, (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)):
                writes.append(type(node).__name__.removesuffix("Stmt").upper())
            elif isinstance(node, ast.SelectStmt) and (node.intoClause is not None or node.lockingClause):
                writes.append("SELECT INTO" if node.intoClause is not None else "FOR UPDATE/SHARE")
            elif isinstance(node, ast.FuncCall):
                assert node.funcname is not None  # (a call names its function)
                name = node.funcname[-1].sval
                reason, where = forbidden_function(name), node.location or 0
                if reason is not None and (name not in calls or where < calls[name][0]):
                    calls[name] = (where, reason)

    _Writes()(statement)
    if writes:
        return f"read-only statements only: found {', '.join(sorted(set(writes)))}"
    if calls:
        listed = ", ".join(f"{name}() ({reason})" for name, (_, reason) in sorted(calls.items(), key=lambda c: c[1]))
        return f"{listed} {'is' if len(calls) == 1 else 'are'} not allowed in a custom statement"
    columns = result_columns(statement)
    wanted = [*settings.labels, VALUE_COLUMN]
    unnamed = [str(position) for position, (name, _) in enumerate(columns, 1) if name is None]
    if unnamed:
        return (
            f"name every column of the result with AS (column(s) {', '.join(unnamed)}; no *): "
            f"it must give {', '.join(wanted)}"
        )
    names = [name for name, _ in columns if name is not None]  # (every one: checked above)
    missing = [name for name in wanted if name not in names]
    extra = [name for name in names if name not in wanted]
    if missing or extra or len(names) != len(set(names)):
        said = []
        if missing:
            said.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            said.append(f"column(s) {', '.join(extra)} are not labels")
        if len(names) != len(set(names)):
            said.append("a column name is given twice")
        return f"the result must have the columns {', '.join(wanted)} (labels and value): {'; '.join(said)}"
    for name, source_column in columns:
        if name != VALUE_COLUMN and source_column and source_column.lower() in IDENTIFYING_COLUMNS:
            return f"label {name} is the column {source_column}, which identifies a person"
    return None


def result_columns(statement: Any) -> list[tuple[str | None, str | None]]:
    """(output name, column it comes straight from) of each result column, as PostgreSQL names them;
    name None when it cannot be known without the database (*, an unnamed expression)."""
    from pglast import ast

    while statement.op is not None and statement.op.name != "SETOP_NONE":  # UNION ...: the left one names
        statement = statement.larg
    if statement.valuesLists:
        return [(f"column{i}", None) for i in range(1, len(statement.valuesLists[0]) + 1)]
    columns = []
    for target in statement.targetList or ():
        value = target.val
        while isinstance(value, ast.TypeCast):
            value = value.arg
        source = None
        if isinstance(value, ast.ColumnRef):
            assert value.fields is not None  # (a column reference names at least its column)
            last = value.fields[-1]
            source = None if isinstance(last, ast.A_Star) else last.sval
        implicit = source
        if implicit is None and isinstance(value, ast.FuncCall):
            assert value.funcname is not None  # (a call names its function)
            implicit = value.funcname[-1].sval
        columns.append((target.name or implicit, source))
    return columns


# -- the collectors ------------------------------------------------------------------------


def _escaped(text: str) -> str:
    """The administrator's text with psycopg's parameter marks neutralised (LIKE 'a%' stays as written)."""
    return text.replace("%", "%%")


def _wrapped(settings: Settings, inner: str) -> sql.SQL:
    """The statement as the collector runs it: its columns by name, in label order, typed (a label
    is text, the value a double precision: a value that is not a number fails the run, loudly).
    Label names are checked identifiers: quoting them is all they need."""
    columns = ", ".join([f'("{name}")::text' for name in settings.labels] + [f'("{VALUE_COLUMN}")::double precision'])
    return UntrustedSQL(f'SELECT {columns}\nFROM (\n{inner}\n) AS custom\nWHERE "{VALUE_COLUMN}" IS NOT NULL')


class CustomGauge(Collector):
    """A gauge declared in ``custom:``: its statement's result, as it is, at each run."""

    abstract = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = settings.collector_name  # type: ignore[misc]
        self.cadence = settings.cadence  # type: ignore[misc]
        self.families = (settings.family(),)  # type: ignore[misc]
        self.query = _wrapped(settings, _escaped(settings.sql))

    def collect(self, ctx: Context) -> Result:
        rows = ctx.source.fetch(self.query, {}, **time_placeholders(ctx))
        return Result({self.families[0].name: cast("dict[LabelValues, Value]", to_series(rows))})


class CustomCounter(EventCounter):
    """A counter declared in ``custom:``: its statement over the new events of ``{events}``, added up."""

    abstract = True
    events: ClassVar[str]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = settings.collector_name  # type: ignore[misc]
        self.cadence = settings.cadence  # type: ignore[misc]
        self.families = (settings.family(),)  # type: ignore[misc]
        assert settings.events is not None and settings.watermark is not None  # (a counter's: validated)
        self.events = settings.events  # type: ignore[misc]
        self.watermark = settings.watermark  # type: ignore[misc]
        # {events}: the relation (or the incremental machinery's time slice) cut to the id range
        # (after, upto]; by time, every row of the slice has id 0 and the range is (-1, 0].
        window = f"(SELECT * FROM {{events}} WHERE event_id > %(after)s AND event_id <= %(upto)s) AS {EVENTS_ALIAS}"
        self.delta_query = _wrapped(settings, _escaped(settings.sql).replace("{events}", window))  # type: ignore[misc]
        self._ctx: Context | None = None

    def collect(self, ctx: Context) -> Result:
        self._ctx = ctx
        try:
            return super().collect(ctx)
        finally:
            self._ctx = None

    def placeholders(self) -> dict[str, sql.Composable]:
        return time_placeholders(self._ctx) if self._ctx else {}

    def accumulate(self, totals: Samples, rows: Iterable[tuple]) -> None:
        series = cast("dict[LabelValues, float]", totals.setdefault(self.families[0].name, {}))  # (a counter's)
        for key, value in to_series(rows).items():
            series[key] = series.get(key, 0.0) + value


def time_placeholders(ctx: Context) -> dict[str, sql.Composable]:
    now = ctx.now.astimezone(UTC)
    return {"now": sql.Literal(now), "timezone": sql.Literal(zone_name(ctx.timezone))}


def to_series(rows: Iterable[tuple[Any, ...]]) -> dict[LabelValues, float]:
    series: dict[LabelValues, float] = {}
    for *labels, value in rows:
        key = tuple(label(v) for v in labels)
        # Two rows with the same labels (NULL and '' both read unknown): their values add up.
        series[key] = series.get(key, 0.0) + float(value)
    return series


def build(entries: Iterable[Settings]) -> list[CustomCounter | CustomGauge]:
    """One collector per ``custom:`` entry."""
    return [CustomCounter(entry) if entry.type == "counter" else CustomGauge(entry) for entry in entries]
