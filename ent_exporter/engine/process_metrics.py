"""The exporter's own process metrics (``process_*``: CPU, memory, file descriptors, start time), as
prometheus-client's ProcessCollector reads them from /proc, published into the exposition.

Scrapes stay pre-rendered: a background thread reads the collector every few seconds and
publishes its values like any other publisher (a family is re-rendered only when a value
changed). On a system without /proc (not Linux) the collector yields nothing and nothing is
published.
"""

from __future__ import annotations

import logging
import threading

from prometheus_client.process_collector import ProcessCollector

from ent_exporter.engine.collector import Family, Kind, Samples
from ent_exporter.engine.exposition import Exposition

log = logging.getLogger(__name__)

PUBLISHER = "process"
REFRESH_SECONDS = 5.0
FAMILIES = (
    Family(
        "process_cpu_seconds_total",
        Kind.COUNTER,
        "Total user and system CPU time spent in seconds.",
        unit="seconds",
        title_en="CPU time",
        title_fr="Temps processeur",
        meaning_fr="Temps processeur consommé par le processus (utilisateur et système), en secondes.",
    ),
    Family(
        "process_virtual_memory_bytes",
        Kind.GAUGE,
        "Virtual memory size in bytes.",
        unit="bytes",
        title_en="Virtual memory",
        title_fr="Mémoire virtuelle",
        meaning_fr="Taille de la mémoire virtuelle du processus, en octets.",
    ),
    Family(
        "process_resident_memory_bytes",
        Kind.GAUGE,
        "Resident memory size in bytes.",
        unit="bytes",
        title_en="Resident memory",
        title_fr="Mémoire résidente",
        meaning_fr="Taille de la mémoire résidente du processus, en octets.",
    ),
    Family(
        "process_start_time_seconds",
        Kind.GAUGE,
        "Start time of the process since unix epoch in seconds.",
        unit="timestamp",
        title_en="Process start time",
        title_fr="Démarrage du processus",
        meaning_fr="Date et heure de démarrage du processus.",
    ),
    Family(
        "process_open_fds",
        Kind.GAUGE,
        "Number of open file descriptors.",
        title_en="Open file descriptors",
        title_fr="Descripteurs de fichiers ouverts",
        meaning_fr="Nombre de descripteurs de fichiers ouverts par le processus.",
    ),
    Family(
        "process_max_fds",
        Kind.GAUGE,
        "Maximum number of open file descriptors.",
        title_en="File descriptor limit",
        title_fr="Limite de descripteurs de fichiers",
        meaning_fr="Nombre maximal de descripteurs de fichiers que le processus peut ouvrir.",
    ),
)
_NAMES = {family.name for family in FAMILIES}


def read(collector: ProcessCollector | None = None) -> Samples:
    """The process families ProcessCollector gives now, as samples (names as exposed)."""
    collector = collector or ProcessCollector(registry=None)
    samples: Samples = {}
    for metric in collector.collect():
        for sample in metric.samples:
            if sample.name in _NAMES:
                samples[sample.name] = {(): float(sample.value)}
    return samples


class ProcessPublisher:
    """Publishes ``read()`` at start and every ``interval`` seconds until stopped."""

    def __init__(self, exposition: Exposition, interval: float = REFRESH_SECONDS) -> None:
        self.exposition = exposition
        self.interval = interval
        self.collector = ProcessCollector(registry=None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        exposition.declare(FAMILIES)
        self.refresh()

    def refresh(self) -> None:
        try:
            self.exposition.publish({PUBLISHER: read(self.collector)})
        except Exception:  # never let a /proc oddity take the exporter down
            log.debug("process metrics not read", exc_info=True)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="process-metrics")
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
