"""Concurrent scrapers: latency percentiles and throughput of a /metrics endpoint."""
from __future__ import annotations

import http.client
import statistics
import threading
import time
from dataclasses import dataclass


@dataclass
class ScrapeStats:
    scrapers: int
    scrapes: int
    p50_ms: float
    p99_ms: float
    per_second: float
    bytes: int


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def wait_ready(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=max(5.0, timeout))
            try:
                connection.request("GET", "/metrics")
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    return
            finally:
                connection.close()
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing answers on port {port}")


def measure(port: int, scrapers: int = 20, scrapes_each: int = 25, gzip: bool = True,
            timeout: float = 600) -> ScrapeStats:
    """Each scraper sends its scrapes back to back on its own keep-alive connection, asking for
    gzip as Prometheus does (``gzip=False``: the plain text). Latency is until the last byte of
    the body is received; decompressing it is the scraper's business."""
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    latencies: list[float] = []
    sizes: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(scrapers + 1)

    def scraper() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        mine = []
        body = b""
        start.wait()
        try:
            for _ in range(scrapes_each):
                began = time.perf_counter()
                connection.request("GET", "/metrics", headers=headers)
                response = connection.getresponse()
                body = response.read()
                mine.append(time.perf_counter() - began)
                if response.status != 200:
                    raise RuntimeError(f"/metrics answered {response.status}")
        except BaseException as error:  # reported by measure()
            with lock:
                errors.append(error)
        finally:
            connection.close()
        with lock:
            latencies.extend(mine)
            sizes.append(len(body))

    threads = [threading.Thread(target=scraper) for _ in range(scrapers)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{len(errors)} scraper(s) failed: {errors[0]!r}")
    return ScrapeStats(
        scrapers=scrapers,
        scrapes=len(latencies),
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        per_second=len(latencies) / elapsed,
        bytes=max(sizes),
    )
