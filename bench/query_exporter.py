"""query-exporter (a generic SQL exporter) run as a real process on the same database.

It gets the queries that give the same counters as ent-exporter's instant collectors
(logins, app accesses, account activations, connector calls and their duration buckets,
attributed to structures the same way). A generic exporter has no watermark: each cycle
counts the whole tables again. The queries are given no ``interval``, so query-exporter runs
them at each scrape of its /metrics: one scrape is one cycle, and the scrape returns when
the cycle is over.
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

# query-exporter 5.x needs Python >= 3.12, so it lives in a virtualenv of its own.
PYTHON_CANDIDATES = ("python3.13", "python3.12")
PACKAGE = "query-exporter==5.2.2"
DRIVER = "psycopg2-binary"
DEFAULT_VENV = Path(__file__).resolve().parent / ".venv-query-exporter"

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
ACTIVATIONS = """
SELECT coalesce(nullif(structure_id, ''), 'unknown') AS structure, coalesce(nullif(profile, ''), 'unknown') AS profile,
       count(*) AS ent_account_activations_total
FROM ent.accounts WHERE activated_at <= now() GROUP BY 1, 2
UNION ALL
SELECT 'all', coalesce(nullif(profile, ''), 'unknown'), count(DISTINCT user_id)
FROM ent.accounts WHERE activated_at <= now() GROUP BY 2
"""
CONNECTORS = """
SELECT coalesce(nullif(connector, ''), 'unknown') AS connector,
       CASE WHEN success THEN 'success' ELSE 'failure' END AS outcome,
       count(*) AS ent_connector_requests_total
FROM ent.connector_events GROUP BY 1, 2
"""
BUCKETS_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# One scan, every bucket counted, then one row per bucket (le label).
CONNECTOR_DURATIONS = """
SELECT c.connector, v.le, v.calls AS ent_connector_request_duration_seconds_bucket
FROM (
    SELECT coalesce(nullif(connector, ''), 'unknown') AS connector, {filters}, count(duration_ms) AS b_inf
    FROM ent.connector_events GROUP BY 1
) c CROSS JOIN LATERAL (VALUES {values}, ('+Inf', c.b_inf)) AS v(le, calls)
""".format(
    filters=", ".join(
        f"count(*) FILTER (WHERE duration_ms <= {b * 1000.0}) AS b{i}" for i, b in enumerate(BUCKETS_SECONDS)
    ),
    values=", ".join(f"('{float(b)}', c.b{i})" for i, b in enumerate(BUCKETS_SECONDS)),
)
QUERIES = (
    ("logins", "ent_logins_total", ["structure", "profile"], LOGINS),
    ("app_accesses", "ent_app_accesses_total", ["structure", "profile", "app"], APP_ACCESSES),
    ("account_activations", "ent_account_activations_total", ["structure", "profile"], ACTIVATIONS),
    ("connectors", "ent_connector_requests_total", ["connector", "outcome"], CONNECTORS),
    ("connector_durations", "ent_connector_request_duration_seconds_bucket", ["connector", "le"], CONNECTOR_DURATIONS),
)


def find_python() -> str:
    """A Python >= 3.12 that runs: python3.13 / python3.12 on the PATH, else one installed by pyenv."""
    candidates = [path for path in map(shutil.which, PYTHON_CANDIDATES) if path]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += [str(v / "bin" / "python") for v in sorted(pyenv.glob("3.1[2-9]*"), reverse=True)]
    for candidate in candidates:
        check = subprocess.run(
            [candidate, "-c", "import sys, venv; sys.exit(sys.version_info < (3, 12))"], capture_output=True
        )
        if check.returncode == 0:  # a pyenv shim of a version that is not selected fails here
            return candidate
    raise SystemExit("query-exporter needs Python >= 3.12: install one (e.g. pyenv install 3.12) and rerun")


def ensure_installed(venv: Path = DEFAULT_VENV) -> Path:
    """Creates the virtualenv with query-exporter and a PostgreSQL driver (pip, from the package
    index); returns the executable. An existing virtualenv is reused."""
    executable = venv / "bin" / "query-exporter"
    if not executable.exists():
        print(f"bench: installing {PACKAGE} into {venv}", file=sys.stderr)
        subprocess.run([find_python(), "-m", "venv", "--clear", str(venv)], check=True)
        pip = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", PACKAGE, DRIVER],
            capture_output=True,
            text=True,
        )
        if pip.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            raise RuntimeError(f"pip could not install {PACKAGE}:\n{pip.stdout[-3000:]}{pip.stderr[-3000:]}")
    return executable


def version(executable: Path) -> str:
    result = subprocess.run([str(executable), "--version"], capture_output=True, text=True)
    return result.stdout.strip().split()[-1] if result.returncode == 0 else "?"


def write_config(path: Path, dsn: str) -> Path:
    """``dsn``: a libpq URI (postgresql://role@/database?host=/socket/dir), given to SQLAlchemy with the
    psycopg2 driver installed beside query-exporter."""
    dsn = dsn.replace("postgresql://", "postgresql+psycopg2://", 1)
    metrics = {
        metric: {"type": "gauge", "description": f"{name}, recounted at each cycle", "labels": labels}
        for name, metric, labels, _ in QUERIES
    }
    queries = {name: {"databases": ["ent"], "metrics": [metric], "sql": query} for name, metric, _, query in QUERIES}
    config = {"databases": {"ent": {"dsn": dsn}}, "metrics": metrics, "queries": queries}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start(executable: Path, config: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [str(executable), "--config", str(config), "--port", str(port), "--host", "127.0.0.1", "-L", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=sys.stderr,
    )


def cycle(port: int, timeout: float = 3600) -> tuple[float, str]:
    """One scrape, hence one cycle of every query; returns its duration in seconds and the body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        began = time.perf_counter()
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        body = response.read().decode()
        elapsed = time.perf_counter() - began
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"query-exporter answered {response.status}: {body[:500]}")
    return elapsed, body


def wait_ready(process: subprocess.Popen, port: int, timeout: float = 60) -> None:
    """Waits until the port accepts connections (without scraping, which would run a cycle)."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"query-exporter exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"query-exporter does not listen on {port}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
