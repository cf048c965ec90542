"""query-exporter (a generic SQL exporter) run as a real process on the same database.

It gets the queries that give the same counters as ent-exporter's instant collectors. A
generic exporter has no watermark: each interval it counts the whole table again.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

# query-exporter 5.x needs Python >= 3.12, so it lives in a virtualenv of its own.
PYTHON_CANDIDATES = ("python3.13", "python3.12")

LOGINS = """
SELECT coalesce(a.structure_id, 'unknown') AS structure, coalesce(nullif(e.profile, ''), 'unknown') AS profile,
       count(*) AS ent_logins_total
FROM ent.login_events e
LEFT JOIN (SELECT DISTINCT user_id, structure_id FROM ent.accounts) a ON a.user_id = e.user_id
GROUP BY 1, 2
UNION ALL
SELECT 'all', coalesce(nullif(profile, ''), 'unknown'), count(*) FROM ent.login_events GROUP BY 2
"""
APP_ACCESSES = """
SELECT coalesce(a.structure_id, 'unknown') AS structure, coalesce(nullif(e.profile, ''), 'unknown') AS profile,
       coalesce(nullif(e.app, ''), 'unknown') AS app, count(*) AS ent_app_accesses_total
FROM ent.app_access_events e
LEFT JOIN (SELECT DISTINCT user_id, structure_id FROM ent.accounts) a ON a.user_id = e.user_id
GROUP BY 1, 2, 3
UNION ALL
SELECT 'all', coalesce(nullif(profile, ''), 'unknown'), coalesce(nullif(app, ''), 'unknown'), count(*)
FROM ent.app_access_events GROUP BY 2, 3
"""
CONNECTORS = """
SELECT connector, CASE WHEN success THEN 'success' ELSE 'failure' END AS outcome,
       count(*) AS ent_connector_requests_total
FROM ent.connector_events GROUP BY 1, 2
"""


def find_python() -> str:
    for name in PYTHON_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for version in sorted(pyenv.glob("3.1[2-9]*"), reverse=True):
        if (version / "bin" / "python").exists():
            return str(version / "bin" / "python")
    raise SystemExit("query-exporter needs Python >= 3.12: install one (e.g. pyenv install 3.12) and rerun")


def ensure_installed(venv: Path) -> Path:
    """Creates the virtualenv with query-exporter and a PostgreSQL driver; returns the executable."""
    executable = venv / "bin" / "query-exporter"
    if not executable.exists():
        subprocess.run([find_python(), "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "query-exporter", "psycopg2-binary"], check=True)
    return executable


def version(executable: Path) -> str:
    result = subprocess.run([str(executable), "--version"], capture_output=True, text=True)
    return result.stdout.strip().split()[-1] if result.returncode == 0 else "?"


def write_config(path: Path, dsn: str, interval_seconds: int) -> Path:
    metrics = {
        "ent_logins_total": {"type": "gauge", "description": "logins", "labels": ["structure", "profile"]},
        "ent_app_accesses_total": {"type": "gauge", "description": "accesses",
                                   "labels": ["structure", "profile", "app"]},
        "ent_connector_requests_total": {"type": "gauge", "description": "calls", "labels": ["connector", "outcome"]},
    }
    queries = {
        name: {"interval": interval_seconds, "databases": ["ent"], "metrics": [metric], "sql": sql}
        for name, metric, sql in (
            ("logins", "ent_logins_total", LOGINS),
            ("app_accesses", "ent_app_accesses_total", APP_ACCESSES),
            ("connectors", "ent_connector_requests_total", CONNECTORS),
        )
    }
    path.write_text(yaml.safe_dump({"databases": {"ent": {"dsn": dsn}}, "metrics": metrics, "queries": queries}))
    return path


def start(executable: Path, config: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [str(executable), "--config", str(config), "--port", str(port), "--host", "127.0.0.1", "-L", "warning"],
        stdout=subprocess.DEVNULL, stderr=sys.stderr,
    )


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    time.sleep(0.2)
