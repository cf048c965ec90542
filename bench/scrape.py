"""Concurrent scrapers: latency percentiles and throughput of a /metrics endpoint."""
from __future__ import annotations

import http.client
import multiprocessing
import statistics
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


def _scraper(port: int, scrapes: int, headers: dict, timeout: float, barrier, results) -> None:
    """One scraper: its own process and keep-alive connection, scrapes back to back."""
    latencies: list[float] = []
    size = 0
    error = None
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        barrier.wait()
        for _ in range(scrapes):
            began = time.perf_counter()
            connection.request("GET", "/metrics", headers=headers)
            response = connection.getresponse()
            body = response.read()
            latencies.append(time.perf_counter() - began)
            size = len(body)
            if response.status != 200:
                raise RuntimeError(f"/metrics answered {response.status}")
    except BaseException as failure:  # reported by measure()
        error = repr(failure)
    finally:
        connection.close()
    results.put((latencies, size, error))


def measure(port: int, scrapers: int = 20, scrapes_each: int = 25, gzip: bool = True,
            timeout: float = 600) -> ScrapeStats:
    """``scrapers`` concurrent scrapers, each a process of its own (as independent Prometheus servers
    are: no scraper waits for another's interpreter lock) on its own keep-alive connection, sending
    its scrapes back to back. They ask for gzip as Prometheus does (``gzip=False``: the plain text).
    Latency is until the last byte of the body is received; decompressing it is the scraper's business."""
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(scrapers + 1)
    results = context.Queue()
    processes = [context.Process(target=_scraper, args=(port, scrapes_each, headers, timeout, barrier, results),
                                 daemon=True) for _ in range(scrapers)]
    for process in processes:
        process.start()
    barrier.wait(timeout=120)
    began = time.perf_counter()
    outcomes = [results.get(timeout=timeout * scrapes_each + 60) for _ in processes]
    elapsed = time.perf_counter() - began
    for process in processes:
        process.join(timeout=30)
    errors = [error for _, _, error in outcomes if error]
    if errors:
        raise RuntimeError(f"{len(errors)} scraper(s) failed: {errors[0]}")
    latencies = [latency for mine, _, _ in outcomes for latency in mine]
    return ScrapeStats(
        scrapers=scrapers,
        scrapes=len(latencies),
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        per_second=len(latencies) / elapsed,
        bytes=max(size for _, size, _ in outcomes),
    )
