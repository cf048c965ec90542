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


def body(port: int, gzip: bool = True, timeout: float = 600) -> bytes:
    """One scrape's body as served (gzipped if asked)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"} if gzip else {})
        return connection.getresponse().read()
    finally:
        connection.close()


def _scraper(port: int, scrapes: int, headers: dict, timeout: float, barrier, results) -> None:
    """One scraper: its own process and keep-alive connection, scrapes back to back."""
    latencies: list[float] = []
    size = 0
    error = None
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        # Connected before the clock starts, as a Prometheus server's keep-alive connection is: the
        # latencies are those of scrapes, not of connection set-ups (one per scraper and round).
        connection.request("GET", "/metrics", headers=headers)
        connection.getresponse().read()
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


def measure(
    port: int, scrapers: int = 20, scrapes_each: int = 25, gzip: bool = True, timeout: float = 600
) -> ScrapeStats:
    """``scrapers`` concurrent scrapers, each a process of its own (as independent Prometheus servers
    are: no scraper waits for another's interpreter lock) on its own keep-alive connection, sending
    its scrapes back to back. They ask for gzip as Prometheus does (``gzip=False``: the plain text).
    Latency is until the last byte of the body is received; decompressing it is the scraper's business."""
    return _stats(scrapers, *_round(port, scrapers, scrapes_each, gzip, timeout))


def interleaved(
    ports: dict[str, int],
    scrapers: int = 20,
    scrapes_each: int = 50,
    rounds: int = 5,
    gzip: bool = True,
    timeout: float = 600,
) -> dict[str, ScrapeStats]:
    """The same scrapers against several servers in turn, ``rounds`` times (``scrapes_each`` split over the
    rounds): each server's latencies are pooled over rounds spread across the same minutes, so a burst of
    other work on the machine weighs on every server alike (what a ratio between them needs)."""
    pooled: dict[str, tuple[list[float], float, int]] = {name: ([], 0.0, 0) for name in ports}
    each = max(1, scrapes_each // rounds)
    for _ in range(rounds):
        for name, port in ports.items():
            latencies, elapsed, size = _round(port, scrapers, each, gzip, timeout)
            before = pooled[name]
            pooled[name] = (before[0] + latencies, before[1] + elapsed, max(before[2], size))
    return {name: _stats(scrapers, *pooled[name]) for name in ports}


def _round(port: int, scrapers: int, scrapes_each: int, gzip: bool, timeout: float) -> tuple[list[float], float, int]:
    """One round of ``scrapers`` concurrent scrapers: every latency, the elapsed time and the body size."""
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(scrapers + 1)
    results = context.Queue()
    processes = [
        context.Process(target=_scraper, args=(port, scrapes_each, headers, timeout, barrier, results), daemon=True)
        for _ in range(scrapers)
    ]
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
    return [latency for mine, _, _ in outcomes for latency in mine], elapsed, max(size for _, size, _ in outcomes)


def _stats(scrapers: int, latencies: list[float], elapsed: float, size: int) -> ScrapeStats:
    return ScrapeStats(
        scrapers=scrapers,
        scrapes=len(latencies),
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        per_second=len(latencies) / elapsed,
        bytes=size,
    )
