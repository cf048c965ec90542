"""A real Prometheus (Debian's ``prometheus``) scraping an exporter for a while: what the series
cost the server that stores them. Reports its head series (prometheus_tsdb_head_series) and its
resident memory (process_resident_memory_bytes, peak over the run) read from its own metrics."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass
class PrometheusCost:
    seconds: float
    scrape_interval: float
    head_series: int
    exporter_series: int  # series of the scraped job (scrape_samples_scraped of its last scrape)
    peak_rss_mb: float
    last_rss_mb: float
    scrape_duration_s: float


def _query(port: int, expr: str) -> float | None:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=30) as response:
        result = json.load(response)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def measure(
    target_port: int, workdir: Path, prometheus_port: int, seconds: float, interval: float = 15.0, timeout: float = 14.0
) -> PrometheusCost:
    executable = shutil.which("prometheus")
    if executable is None:
        raise RuntimeError("prometheus is not installed (Debian package prometheus)")
    directory = workdir / f"prometheus-{target_port}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    (directory / "prometheus.yml").write_text(
        f"global:\n  scrape_interval: {int(interval)}s\n  scrape_timeout: {int(timeout)}s\n"
        "scrape_configs:\n"
        f"  - job_name: exporter\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
        f"  - job_name: prometheus\n    scrape_interval: 5s\n    scrape_timeout: 5s\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{prometheus_port}']\n"
    )
    log = open(directory / "prometheus.log", "w")
    process = subprocess.Popen(
        [
            executable,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _query(prometheus_port, "up")
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(
                        "prometheus did not start: " + (directory / "prometheus.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.5)
        began = time.monotonic()
        peak = 0.0
        while time.monotonic() - began < seconds:
            time.sleep(5)
            rss = _query(prometheus_port, 'process_resident_memory_bytes{job="prometheus"}')
            if rss:
                peak = max(peak, rss)
        # The head series are read from Prometheus' own scrape (every 5 s): wait, bounded, until that
        # scrape has seen the exporter's series (a loaded machine may ingest its first scrape late).
        exporter_series, head_series = 0, 0
        settled = time.monotonic() + 60
        while time.monotonic() < settled:
            exporter_series = int(_query(prometheus_port, 'scrape_samples_scraped{job="exporter"}') or 0)
            head_series = int(_query(prometheus_port, 'prometheus_tsdb_head_series{job="prometheus"}') or 0)
            if exporter_series and head_series > exporter_series:
                break
            time.sleep(1)
        last = _query(prometheus_port, 'process_resident_memory_bytes{job="prometheus"}') or 0.0
        return PrometheusCost(
            seconds=time.monotonic() - began,
            scrape_interval=interval,
            head_series=head_series,
            exporter_series=exporter_series,
            peak_rss_mb=max(peak, last) / 1024 / 1024,
            last_rss_mb=last / 1024 / 1024,
            scrape_duration_s=_query(prometheus_port, 'scrape_duration_seconds{job="exporter"}') or 0.0,
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        shutil.rmtree(directory, ignore_errors=True)
