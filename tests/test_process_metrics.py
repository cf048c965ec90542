"""The exporter publishes prometheus-client's process metrics (process_*) for the health dashboard,
refreshed in the background: a scrape still only copies a pre-rendered body."""

from __future__ import annotations

import os
import time

from prometheus_client.process_collector import ProcessCollector

from ent_exporter.engine.exposition import Exposition
from ent_exporter.engine.process_metrics import FAMILIES, ProcessPublisher, read
from tests.support import parse


def test_process_families_are_published_with_the_values_of_proc():
    exposition = Exposition([])
    publisher = ProcessPublisher(exposition, interval=0.05)
    samples = parse(exposition.body().decode())
    assert {family.name for family in FAMILIES} <= set(samples)
    # The same figures prometheus-client's own collector gives for this process.
    direct = {s.name: s.value for m in ProcessCollector(registry=None).collect() for s in m.samples}
    assert samples["process_start_time_seconds"][()] == direct["process_start_time_seconds"]
    assert samples["process_max_fds"][()] == direct["process_max_fds"]
    assert samples["process_resident_memory_bytes"][()] > 1e6
    # Refreshed in the background: CPU time spent after the first read shows up without a scrape rendering.
    before = samples["process_cpu_seconds_total"][()]
    publisher.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            sum(i * i for i in range(200_000))  # burn some CPU
            if parse(exposition.body().decode())["process_cpu_seconds_total"][()] > before:
                break
        else:
            raise AssertionError("process_cpu_seconds_total never moved")
    finally:
        publisher.stop()
    renders = exposition.renders
    for _ in range(20):
        exposition.body()
    assert exposition.renders == renders


def test_read_gives_nothing_without_proc(monkeypatch):
    collector = ProcessCollector(registry=None, proc="/nonexistent-proc-" + str(os.getpid()))
    assert read(collector) == {}
