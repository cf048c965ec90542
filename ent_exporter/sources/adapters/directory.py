"""import-directory: the Edifice directory (Neo4j), exported as CSV, into the tables the views join.

One row per attachment of a user to a structure, with a header naming the columns (any
order, extra columns ignored):

    user_id, structure_id, structure_name, structure_kind, profile, created_at, activated

Both an APOC CSV export and ``cypher-shell --format plain`` output are accepted: values
may be quoted, spaces after commas are skipped, ``NULL`` or an empty value is missing.
The import replaces the previous one in a single transaction: the exporter sees either
the old directory or the new one, never a mix, and is never blocked while it runs.
Attachments present in the file but not in the tables are added, those gone are deleted.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import psycopg
from psycopg import sql

from ent_exporter.engine import clock as clocks
from ent_exporter.sources.adapters.plan import AdapterError, checked_name

COLUMNS = (
    "user_id",
    "structure_id",
    "structure_name",
    "structure_kind",
    "profile",
    "created_at",
    "activated",
    "classes",
)
CLASS_SEPARATOR = ";"  # classes: the names of the user's classes in that structure, joined with ";"
REQUIRED = ("user_id", "structure_id")
TRUE = {"true", "t", "1", "yes", "y"}
FALSE = {"false", "f", "0", "no", "n", ""}


@dataclass
class Directory:
    structures: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # id -> (name, kind)
    attachments: dict[tuple[str, str], tuple[str | None, datetime | None, bool]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # why rows were left out (or read otherwise), with their line
    rows_read: int = 0  # data lines (blank lines aside)
    rows_rejected: int = 0  # lines left out: no user_id or structure_id
    rows_repeated: int = 0  # lines left out: an attachment already read from the file
    classes: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (user, structure) -> class names

    @property
    def rows_imported(self) -> int:
        return len(self.attachments)


def _value(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    return None if text == "" or text.upper() == "NULL" else text


def parse_time(text: str) -> datetime:
    """An ISO 8601 date and time (Neo4j's ``created``), or unix time in seconds or milliseconds."""
    if text.lstrip("-").isdigit():
        number = int(text)
        return datetime.fromtimestamp(number / 1000 if abs(number) > 10**11 else number, UTC)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_directory(stream: IO[str]) -> Directory:
    # cypher-shell escapes quotes with a backslash, APOC doubles them: both are read.
    reader = csv.reader(stream, skipinitialspace=True, escapechar="\\")
    try:
        header = [name.strip().strip('"').lower() for name in next(reader)]
    except StopIteration:
        raise AdapterError("the directory file is empty (expected a header line naming the columns)") from None
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise AdapterError(
            f"the directory file has no column {', '.join(missing)} (header: {', '.join(header)});"
            f" expected columns: {', '.join(COLUMNS)}"
        )
    position = {name: header.index(name) for name in COLUMNS if name in header}
    directory = Directory()
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        directory.rows_read += 1
        get = {name: _value(row[i]) if i < len(row) else None for name, i in position.items()}
        user, structure = get["user_id"], get["structure_id"]
        if user is None or structure is None:
            directory.skipped.append(f"line {line}: no user_id or structure_id")
            directory.rows_rejected += 1
            continue
        if (user, structure) in directory.attachments:
            directory.rows_repeated += 1  # the last line of an attachment wins
        created = None
        if (created_at := get.get("created_at")) is not None:
            try:
                created = parse_time(created_at)
            except ValueError:
                directory.skipped.append(
                    f"line {line}: created_at {get['created_at']!r} is not a date (kept, without it)"
                )
        activated_text = (get.get("activated") or "").lower()
        if activated_text not in TRUE | FALSE:
            directory.skipped.append(f"line {line}: activated {get['activated']!r} is not a boolean (read as false)")
        name, kind = get.get("structure_name"), get.get("structure_kind")
        known = directory.structures.get(structure)
        if known is None or (known[0] == structure and name):
            directory.structures[structure] = (name or structure, kind)
        directory.attachments[(user, structure)] = (get.get("profile"), created, activated_text in TRUE)
        names = {name.strip().strip('"') for name in (get.get("classes") or "").strip("[]").split(CLASS_SEPARATOR)}
        if names - {""}:
            directory.classes[(user, structure)] = names - {""}
        else:
            directory.classes.pop((user, structure), None)
    return directory


FEED = "directory"
RECORD_RUN = """
    INSERT INTO {feed_runs} (feed, started_at, finished_at, success, rows_read, rows_imported, rows_rejected,
                             rows_skipped, message)
    VALUES (%(feed)s, %(started_at)s, clock_timestamp(), %(success)s, %(read)s, %(imported)s, %(rejected)s,
            %(skipped)s, %(message)s)
"""


def import_directory(
    conn: psycopg.Connection, source: str | Path, directory_schema: str = "ent_directory", log=print, feed: str = FEED
) -> Directory:
    """Replaces the imported directory with the content of ``source`` (a path, or ``-`` for stdin),
    and records the run in the directory's feed_runs (read by the exporter as ``account_feeds``):
    a successful run in the same transaction as the new directory, a failed one on its own."""
    checked_name(directory_schema, "directory schema")
    started = clocks.SYSTEM.now()
    feed_runs = sql.Identifier(directory_schema, "feed_runs")
    parsed: list[Directory] = []  # the file as read, when it could be: its counts go with a failure too
    try:
        return _import(conn, source, directory_schema, log, feed_runs, feed, started, parsed)
    except (AdapterError, psycopg.Error) as error:
        _record(
            conn,
            feed_runs,
            feed,
            started,
            parsed[0] if parsed else None,
            False,
            str(error).strip().splitlines()[0],
            log,
        )
        raise


def _record(
    conn: psycopg.Connection,
    feed_runs: sql.Identifier,
    feed: str,
    started: datetime,
    directory: Directory | None,
    success: bool,
    message: str | None,
    log,
) -> None:
    """One row of feed_runs; where init-source has not created the table yet, a note instead."""
    counts: dict[str, int | None] = {"read": None, "imported": None, "rejected": None, "skipped": None}
    if directory is not None:
        counts = {
            "read": directory.rows_read,
            "imported": directory.rows_imported if success else 0,
            "rejected": directory.rows_rejected,
            "skipped": directory.rows_repeated,
        }
    try:
        with conn.transaction():
            conn.execute(
                sql.SQL(RECORD_RUN).format(feed_runs=feed_runs),
                {"feed": feed, "started_at": started, "success": success, "message": message, **counts},
            )
    except psycopg.errors.UndefinedTable:
        log(
            f"note: no table {feed_runs.as_string(None)}: this run is not recorded for the exporter"
            " (run ent-exporter init-source --platform edifice again)"
        )


def _import(
    conn: psycopg.Connection,
    source: str | Path,
    directory_schema: str,
    log,
    feed_runs: sql.Identifier,
    feed: str,
    started: datetime,
    parsed: list[Directory],
) -> Directory:
    if str(source) == "-":
        directory = read_directory(sys.stdin)
    else:
        try:
            with open(source, newline="", encoding="utf-8-sig") as stream:
                directory = read_directory(stream)
        except OSError as error:
            raise AdapterError(f"{source}: cannot read the directory file ({error.strerror})") from None
    parsed.append(directory)
    if not directory.attachments:
        raise AdapterError(f"{source}: no attachment in the file: nothing imported (the previous import is kept)")
    structures = sql.Identifier(directory_schema, "structures")
    attachments = sql.Identifier(directory_schema, "attachments")
    try:
        with conn.transaction():
            _replace(conn, structures, attachments, directory, sql.Identifier(directory_schema, "user_classes"))
            # In the same transaction: the exporter never sees the new directory without its run.
            _record(conn, feed_runs, feed, started, directory, True, None, log)
    except psycopg.errors.UndefinedTable:
        raise AdapterError(
            f"no table {directory_schema}.structures or .attachments: run"
            " ent-exporter init-source --platform edifice first"
        ) from None
    for reason in directory.skipped[:20]:
        log(f"{source}: {reason}")
    if len(directory.skipped) > 20:
        log(f"{source}: ... and {len(directory.skipped) - 20} more")
    log(
        f"{source}: imported {len(directory.structures)} structures and {len(directory.attachments)} attachments"
        f" into {directory_schema} ({directory.rows_read} lines read, {directory.rows_rejected} rejected,"
        f" {directory.rows_repeated} repeated)"
    )
    return directory


# The new directory is copied into temporary tables, then merged: rows that did not change
# are not rewritten, rows that are gone are deleted, and an attachment keeps the time it
# was first imported (the activation date of last resort, which must not move). Readers
# keep seeing the previous directory until the transaction commits.
MERGE_STATEMENTS = (
    "CREATE TEMPORARY TABLE incoming_structures (structure_id text PRIMARY KEY, name text NOT NULL, kind text)"
    " ON COMMIT DROP",
    "CREATE TEMPORARY TABLE incoming_attachments (user_id text, structure_id text, profile text,"
    " created_at timestamptz, activated boolean, PRIMARY KEY (user_id, structure_id)) ON COMMIT DROP",
    "CREATE TEMPORARY TABLE incoming_classes (user_id text, structure_id text, class_name text,"
    " PRIMARY KEY (user_id, structure_id, class_name)) ON COMMIT DROP",
)
MERGE_CLASSES = """
    INSERT INTO {user_classes} (user_id, structure_id, class_name)
    SELECT user_id, structure_id, class_name FROM incoming_classes
    ON CONFLICT DO NOTHING
"""
MERGE_STRUCTURES = """
    INSERT INTO {structures} AS s (structure_id, name, kind)
    SELECT structure_id, name, kind FROM incoming_structures
    ON CONFLICT (structure_id) DO UPDATE SET name = excluded.name, kind = excluded.kind
    WHERE (s.name, s.kind) IS DISTINCT FROM (excluded.name, excluded.kind)
"""
MERGE_ATTACHMENTS = """
    INSERT INTO {attachments} AS a (user_id, structure_id, profile, created_at, activated)
    SELECT user_id, structure_id, profile, created_at, activated FROM incoming_attachments
    ON CONFLICT (user_id, structure_id) DO UPDATE
    SET profile = excluded.profile, created_at = excluded.created_at, activated = excluded.activated
    WHERE (a.profile, a.created_at, a.activated) IS DISTINCT FROM (excluded.profile, excluded.created_at, excluded.activated)
"""
DELETE_GONE = """
    DELETE FROM {table} AS t
    WHERE NOT EXISTS (SELECT 1 FROM {incoming} AS i WHERE {match})
"""


def _replace(
    conn: psycopg.Connection,
    structures: sql.Identifier,
    attachments: sql.Identifier,
    directory: Directory,
    user_classes: sql.Identifier,
) -> None:
    for statement in MERGE_STATEMENTS:
        conn.execute(statement)
    with conn.cursor().copy("COPY incoming_structures (structure_id, name, kind) FROM STDIN") as copy:
        for structure, (name, kind) in directory.structures.items():
            copy.write_row((structure, name, kind))
    with conn.cursor().copy(
        "COPY incoming_attachments (user_id, structure_id, profile, created_at, activated) FROM STDIN"
    ) as copy:
        for (user, structure), (profile, created, activated) in directory.attachments.items():
            copy.write_row((user, structure, profile, created, activated))
    conn.execute(sql.SQL(MERGE_STRUCTURES).format(structures=structures))
    conn.execute(sql.SQL(MERGE_ATTACHMENTS).format(attachments=attachments))
    conn.execute(
        sql.SQL(DELETE_GONE).format(
            table=attachments,
            incoming=sql.Identifier("incoming_attachments"),
            match=sql.SQL("i.user_id = t.user_id AND i.structure_id = t.structure_id"),
        )
    )
    conn.execute(
        sql.SQL(DELETE_GONE).format(
            table=structures,
            incoming=sql.Identifier("incoming_structures"),
            match=sql.SQL("i.structure_id = t.structure_id"),
        )
    )
    # Classes (the export's optional "classes" column): the user_classes table of init-source; an
    # installation from before it has none, and imports without classes.
    with conn.cursor().copy("COPY incoming_classes (user_id, structure_id, class_name) FROM STDIN") as copy:
        for (user, structure), names in directory.classes.items():
            for name in sorted(names):
                copy.write_row((user, structure, name))
    try:
        with conn.transaction():
            conn.execute(sql.SQL(MERGE_CLASSES).format(user_classes=user_classes))
            conn.execute(
                sql.SQL(DELETE_GONE).format(
                    table=user_classes,
                    incoming=sql.Identifier("incoming_classes"),
                    match=sql.SQL(
                        "i.user_id = t.user_id AND i.structure_id = t.structure_id AND i.class_name = t.class_name"
                    ),
                )
            )
    except psycopg.errors.UndefinedTable:
        pass
