"""Wiring: from a validated Config to a running exporter (or a one-off run)."""
from __future__ import annotations

import logging
import signal
import threading
from datetime import timedelta

import collectors
from collectors.base import Cadence, Collector

from .config import Config, ConfigError
from .exposition import Policy
from .runtime import Runtime
from .scheduler import CollectorScheduler
from .server import MetricsServer
from .source import PostgresSource
from .state import StateStore
from .webconfig import WebConfig

log = logging.getLogger(__name__)


def enabled_collectors(config: Config, origin: str = "configuration") -> list[Collector]:
    available = collectors.discover()
    unknown = sorted(set(config.collectors.disabled) - set(available))
    if unknown:
        raise ConfigError(
            f"{origin}: invalid configuration\n  collectors.disabled: unknown collector(s) {', '.join(unknown)}"
            f" (known: {', '.join(sorted(available))})"
        )
    return [cls() for name, cls in sorted(available.items()) if name not in config.collectors.disabled]


def make_source(config: Config) -> PostgresSource:
    return PostgresSource(
        config.source.dsn or "",
        config.source.schema_name,
        statement_timeout_seconds=config.source.statement_timeout_seconds,
        connect_timeout_seconds=config.source.connect_timeout_seconds,
        max_connections=config.source.max_connections,
    )


def make_runtime(config: Config, source: PostgresSource, *, persistent: bool, origin: str = "configuration") -> Runtime:
    return Runtime(
        enabled_collectors(config, origin),
        source,
        Policy(
            max_series_per_family=config.limits.max_series_per_family,
            privacy_min_count=config.privacy.min_count,
        ),
        store=StateStore(config.state_dir) if persistent else None,
        zone=config.zone,
        settle=timedelta(seconds=config.source.settle_seconds),
        chunk_size=config.source.chunk_size,
        idle_series_retention=timedelta(days=config.limits.idle_series_days),
        late_commit_limit=timedelta(seconds=config.source.late_commit_limit_seconds),
    )


class Exporter:
    """The daemon: restored state served at once, collectors on their cadences, HTTP on top."""

    def __init__(self, config: Config, origin: str = "configuration", web: WebConfig | None = None) -> None:
        self.config = config
        self.web = web
        self.source = make_source(config)
        self.runtime = make_runtime(config, self.source, persistent=True, origin=origin)
        self.scheduler: CollectorScheduler | None = None
        self.server: MetricsServer | None = None

    def health(self) -> dict:
        runs = self.scheduler.next_runs() if self.scheduler else {}
        return {
            "status": "ok",
            "collectors": {
                name: {
                    "cadence": collector.cadence.value,
                    "stale": self.runtime.is_stale(name),
                    "next_run": runs[name].isoformat() if runs.get(name) else None,
                }
                for name, collector in self.runtime.collectors.items()
            },
        }

    def start(self) -> None:
        self.runtime.restore()
        self.server = MetricsServer(
            self.config.listen.address, self.config.listen.port, self.runtime.exposition, self.health,
            web=self.web, read_timeout=self.config.listen.read_timeout_seconds,
            max_connections=self.config.listen.max_connections,
        )
        self.server.start()
        self.source.open()
        self.scheduler = CollectorScheduler(
            self.runtime,
            {cadence: self.config.schedule(cadence) for cadence in Cadence},
            self.config.zone,
            retry_initial_seconds=self.config.retry.initial_seconds,
            retry_max_seconds=self.config.retry.max_seconds,
        )
        self.scheduler.start()
        scheme = "https" if self.web is not None and self.web.ssl_context is not None else "http"
        log.info("serving %s://%s:%d/metrics", scheme, self.config.listen.address, self.server.port)

    def stop(self) -> None:
        if self.scheduler:
            self.scheduler.shutdown()
        if self.server:
            self.server.stop()
        self.source.close()


def wait_for_termination() -> None:
    """Blocks until SIGINT or SIGTERM."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(1):
        pass
