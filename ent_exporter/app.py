"""Wiring: from a validated Config to a running exporter (or a one-off run)."""

from __future__ import annotations

import errno
import logging
import signal
import socket
import tempfile
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ent_exporter import extras, indicators
from ent_exporter.config import Config, ConfigError
from ent_exporter.engine import clock as clocks
from ent_exporter.engine import memory
from ent_exporter.engine.collector import Cadence, Collector, Family, Kind
from ent_exporter.engine.exposition import Exposition, Policy
from ent_exporter.engine.files import Directory
from ent_exporter.engine.process_metrics import ProcessPublisher
from ent_exporter.engine.runtime import Runtime
from ent_exporter.engine.scheduler import CollectorScheduler
from ent_exporter.engine.state import StateStore
from ent_exporter.probes.runner import STATE_DIRECTORY, ProbeRunner
from ent_exporter.sources.postgres import PostgresSource
from ent_exporter.web.config import WebConfig
from ent_exporter.web.server import MetricsServer

if TYPE_CHECKING:
    from ent_exporter.reports.job import ReportJob  # (imported when the config has reports: matplotlib)

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The exporter cannot start (port in use, unusable state directory): one line for the user, exit 2."""


def enabled_collectors(config: Config, origin: str = "configuration") -> list[Collector]:
    available = indicators.discover()
    unknown = sorted(
        set(config.collectors.disabled) - set(available) - {entry.collector_name for entry in config.custom}
    )
    if unknown:
        raise ConfigError(
            f"{origin}: invalid configuration\n  collectors.disabled: unknown collector(s) {', '.join(unknown)}"
            f" (known: {', '.join(sorted(available))})"
        )
    opt_in = {name for name, cls in available.items() if cls.opt_in}
    wrong = sorted(set(config.collectors.enabled) - opt_in)
    if wrong:
        raise ConfigError(
            f"{origin}: invalid configuration\n  collectors.enabled: {', '.join(wrong)} "
            f"{'is not an opt-in collector' if len(wrong) == 1 else 'are not opt-in collectors'}"
            f" (opt-in: {', '.join(sorted(opt_in)) or 'none'}; the others run unless disabled)"
        )
    built_in = [
        cls()
        for name, cls in sorted(available.items())
        if name not in config.collectors.disabled and (not cls.opt_in or name in config.collectors.enabled)
    ]
    return built_in + custom_collectors(config, origin, available)


def custom_collectors(config: Config, origin: str, available: dict[str, type[Collector]]) -> list[Collector]:
    """The indicators of ``custom:``, one collector each; a metric name a built-in family has, or that one
    of its series names would give (``_total``, ``_bucket``, ...), is refused."""
    from ent_exporter.indicators import custom

    taken = built_in_names(available)
    for index, entry in enumerate(config.custom):
        for name in sorted(series_names(entry.family())):
            if name not in taken:
                continue
            family, owner = taken[name]
            clash = "is a built-in metric" if family == entry.metric else f"collides with the built-in metric {family}"
            raise ConfigError(
                f"{origin}: invalid configuration\n  custom.{index}.metric: {entry.metric} {clash} ({owner}):"
                " choose another name"
            )
    return [collector for collector in custom.build(config.custom) if collector.name not in config.collectors.disabled]


def series_names(family: Family) -> set[str]:
    """Every name a family takes in the exposition (its own, its samples', and OpenMetrics' for it)."""
    if family.kind is Kind.COUNTER:
        base = family.name.removesuffix("_total")
        return {base, f"{base}_total", f"{base}_created"}
    if family.kind is Kind.HISTOGRAM:
        return {family.name, *(f"{family.name}{suffix}" for suffix in ("_bucket", "_count", "_sum", "_created"))}
    if family.kind is Kind.GAUGE_HISTOGRAM:
        return {family.name, *(f"{family.name}{suffix}" for suffix in ("_bucket", "_gcount", "_gsum"))}
    return {family.name}


def built_in_names(available: dict[str, type[Collector]]) -> dict[str, tuple[str, str]]:
    """{name: (built-in family, what publishes it)} for every name a built-in family takes: every
    collector's (enabled or not), the probes', the process metrics' and the exporter's own."""
    from ent_exporter.engine import process_metrics, runtime
    from ent_exporter.probes import runner

    owners: list[tuple[str, Any]] = [
        *((f"collector {name}", family) for name, cls in sorted(available.items()) for family in cls.families),
        *(("probes", family) for family in runner.FAMILIES),
        *(("process metrics", family) for family in process_metrics.FAMILIES),
        *(("the exporter's own metrics", family) for family in runtime.SELF_FAMILIES),
    ]
    return {name: (family.name, owner) for owner, family in owners for name in series_names(family)}


def make_source(config: Config) -> PostgresSource:
    return PostgresSource(
        config.source.dsn or "",
        config.source.schema_name,
        statement_timeout_seconds=config.source.statement_timeout_seconds,
        connect_timeout_seconds=config.source.connect_timeout_seconds,
        max_connections=config.source.max_connections,
    )


def report_source(config: Config) -> PostgresSource:
    """A pool of its own for reports (REPORT_CONNECTIONS: a month's statements run side by side),
    with the reports' statement timeout (``reports.statement_timeout_seconds``, default 900 s)
    instead of the collectors'."""
    from ent_exporter.reports.settings import REPORT_CONNECTIONS, REPORT_STATEMENT_TIMEOUT_SECONDS

    timeout = config.reports.statement_timeout_seconds if config.reports else REPORT_STATEMENT_TIMEOUT_SECONDS
    return PostgresSource(
        config.source.dsn or "",
        config.source.schema_name,
        statement_timeout_seconds=timeout,
        connect_timeout_seconds=config.source.connect_timeout_seconds,
        max_connections=REPORT_CONNECTIONS,
    )


def make_runtime(
    config: Config,
    source: PostgresSource,
    *,
    persistent: bool,
    origin: str = "configuration",
    clock: clocks.Clock | None = None,
) -> Runtime:
    memory.tune()  # glibc: a fixed mmap threshold, large blocks go back to the system when freed
    return Runtime(
        enabled_collectors(config, origin),
        source,
        Policy(
            max_series_per_family=config.limits.max_series_per_family,
            privacy_min_count=config.privacy.min_count,
            breakdowns=config.breakdowns.enabled(),
        ),
        store=StateStore(config.state_dir) if persistent else None,
        zone=config.zone,
        settle=timedelta(seconds=config.source.settle_seconds),
        chunk_size=config.source.chunk_size,
        idle_series_retention=timedelta(days=config.limits.idle_series_days),
        clock=clock,
        late_commit_limit=timedelta(seconds=config.source.late_commit_limit_seconds),
        schedules={cadence: config.schedule(cadence) for cadence in Cadence},
    )


def check_writable_dir(directory: Path, key: str, origin: str) -> None:
    """Creates a directory the exporter writes to and proves it writable, or says in one line why it
    cannot be used, naming the configuration key."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise StartupError(f"{origin}: {key}: {directory} cannot be used ({error.strerror or error})") from None


def check_state_dir(directory: Path, origin: str) -> None:
    check_writable_dir(directory, "state_dir", origin)
    try:  # the directory the state store writes in: never a symbolic link (ent_exporter.engine.files)
        Directory.open(directory, "collectors").close()
    except OSError as error:
        raise StartupError(
            f"{origin}: state_dir: {error.filename} cannot be used ({error.strerror or error})"
        ) from None


def check_reports_dir(config: Config, origin: str) -> None:
    """The reports: section (when it is there): the [reports] extra, and its directory."""
    if config.reports is not None:
        extras.require("reports", f"{origin}: reports")
        check_writable_dir(config.reports.directory, "reports.directory", origin)


def listen_in_use(address: str, port: int) -> str | None:
    """Why ``address:port`` cannot be listened on right now, or None when it can (the socket is closed again)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((address, port))
    except OSError as error:
        return str(bind_error(address, port, error, "listen"))
    return None


def bind_error(address: str, port: int, error: OSError, key: str) -> StartupError:
    """A listening socket that could not be had, said the way an operator acts on it."""
    if error.errno == errno.EADDRINUSE:
        why = "the port is already in use (another exporter, or the demo, is running?)"
    elif error.errno == errno.EACCES:
        why = "permission denied (ports below 1024 need privileges)"
    elif error.errno == errno.EADDRNOTAVAIL:
        why = "no such address on this machine"
    else:
        why = error.strerror or str(error)
    return StartupError(f"{key}: cannot listen on {address}:{port}: {why}")


class Reloading:
    """SIGHUP for the daemons that serve probes (``Exporter``, ``ProbeExporter``): their probes and web
    configuration read again."""

    origin: str
    probes: ProbeRunner | None
    server: MetricsServer | None
    web: WebConfig | None
    web_config_file: Path | None
    probes_only: ClassVar[bool] = False  # the file is a probe exporter's (config.PROBE_KEYS)

    def __init__(
        self,
        config: Config,
        origin: str = "configuration",
        web: WebConfig | None = None,
        *,
        clock: clocks.Clock | None = None,
        web_config_file: Path | None = None,
    ) -> None:
        self.config = config
        self.origin = origin
        self.web = web
        self.web_config_file = web_config_file  # re-read on SIGHUP (reload_web)
        self.clock = clock or clocks.default()
        self.server = None
        self.probes = None
        self.process: ProcessPublisher | None = None
        self._state_lock: Directory | None = None

    def _hold_state_dir(self) -> None:
        """The state directory locked for this process until stop() or its end: two processes (serve or
        probe) on one state directory would overwrite each other's state files and journals, so the second
        one is refused at start, with a StartupError naming the key."""
        held = Directory.open(self.config.state_dir)
        if not held.lock():
            held.close()
            raise StartupError(
                f"{self.origin}: state_dir: {self.config.state_dir} is in use by another ent-exporter process"
                " (serve or probe); give each process a state directory of its own"
            )
        self._state_lock = held

    def _release_state_dir(self) -> None:
        if self._state_lock is not None:
            self._state_lock.close()
            self._state_lock = None

    def health(self) -> dict[str, Any]:
        raise NotImplementedError

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        raise NotImplementedError

    def _serve(self, exposition: Exposition) -> MetricsServer:
        """The probes and process metrics on ``exposition``, and the HTTP server of it on the configured
        listen address (not started; a StartupError names the address when it cannot be bound)."""
        self.probes = ProbeRunner(self.config.probes, exposition, state_dir=self.config.state_dir, wall=self.clock)
        # process_* (CPU, memory, fds): read every few seconds in the background, never on a scrape.
        self.process = ProcessPublisher(exposition)
        listen = self.config.listen
        try:
            return MetricsServer(
                listen.address,
                listen.port,
                exposition,
                self.health,
                self.readiness,
                web=self.web,
                read_timeout=listen.read_timeout_seconds,
                max_connections=listen.max_connections,
                max_untrusted_per_peer=listen.max_unauthenticated_per_peer,
            )
        except OSError as error:
            raise bind_error(listen.address, listen.port, error, f"{self.origin}: listen") from None

    def _scheme(self) -> str:
        return "https" if self.web is not None and self.web.ssl_context is not None else "http"

    def reload(self) -> None:
        """SIGHUP: the probes of the configuration file re-read (counters kept), then the web configuration."""
        self.reload_probes()
        self.reload_web()

    def reload_probes(self) -> None:
        """The configuration file read again for its probes: ``probes:`` applied, nothing else; an invalid
        file keeps the probes in use (an ERROR says why)."""
        from ent_exporter.config import load_config

        if self.probes is None:
            return
        try:
            config = load_config(self.origin, probes_only=self.probes_only)
        except ConfigError as error:
            log.error("SIGHUP: %s; the probes in use are kept", str(error).replace("\n  ", "; "))
            return
        log.info("SIGHUP: %s re-read for its probes: %s", self.origin, self.probes.reload(config.probes))

    def reload_web(self) -> None:
        """SIGHUP: the --web.config.file read again and applied to the connections that come next;
        an invalid file keeps the configuration in use (an ERROR says why)."""
        if self.web_config_file is None:
            log.info("SIGHUP: no --web.config.file to re-read")
            return
        from ent_exporter.web.config import changes, load_web_config

        try:
            web = load_web_config(self.web_config_file)
        except ConfigError as error:
            log.error("SIGHUP: %s; the web configuration in use is kept", str(error).replace("\n  ", "; "))
            return
        said = changes(self.web, web)
        if self.server is not None:
            self.server.reload(web)
        self.web = web
        log.info("SIGHUP: %s re-read: %s", self.web_config_file, "; ".join(said) or "no change")


class Exporter(Reloading):
    """The daemon: restored state served at once, collectors on their cadences, HTTP on top."""

    def __init__(
        self,
        config: Config,
        origin: str = "configuration",
        web: WebConfig | None = None,
        *,
        clock: clocks.Clock | None = None,
        web_config_file: Path | None = None,
    ) -> None:
        super().__init__(config, origin, web, clock=clock, web_config_file=web_config_file)
        self.source = make_source(config)
        self.runtime: Runtime | None = None
        self.scheduler: CollectorScheduler | None = None
        self.reports: ReportJob | None = None  # when the config has a reports: section

    def health(self) -> dict[str, Any]:
        """Liveness: the process serves (whatever the database does)."""
        runtime = self.runtime
        assert runtime is not None  # (the server answers once start() made the runtime)
        runs = self.scheduler.next_runs() if self.scheduler else {}
        return {
            "status": "ok",
            "collectors": {
                name: {
                    "cadence": collector.cadence.value,
                    "stale": runtime.is_stale(name),
                    "next_run": next_run.isoformat() if (next_run := runs.get(name)) else None,
                }
                for name, collector in runtime.collectors.items()
            },
        }

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Readiness: the database answered the last attempt and no collector is overdue."""
        runtime = self.runtime
        assert runtime is not None  # (the server answers once start() made the runtime)
        up = runtime.source_up
        overdue = sorted(name for name in runtime.collectors if runtime.is_overdue(name))
        ready = bool(up) and not overdue
        return ready, {
            "status": "ready" if ready else "not ready",
            "database": {True: "up", False: "down", None: "not reached yet"}[up],
            "stale_collectors": overdue,
        }

    def start(self) -> None:
        """Checks what can fail at start-up first (StartupError), then serves the restored state at once."""
        check_state_dir(self.config.state_dir, self.origin)
        check_reports_dir(self.config, self.origin)
        self._hold_state_dir()
        try:
            self._start()
        except BaseException:
            self._release_state_dir()
            raise

    def _start(self) -> None:
        self.runtime = make_runtime(self.config, self.source, persistent=True, origin=self.origin, clock=self.clock)
        # Active probes of the connectors (probes: in the config): their own threads, their own bounds.
        self.server = server = self._serve(self.runtime.exposition)
        probes, process = self.probes, self.process
        assert probes is not None and process is not None  # (_serve made them)
        self.runtime.restore()
        # The probes' counters and last results back from the state, then every probe once (each within
        # its timeout, all at once): the first scrape has their own results, no restart looks like a recovery.
        probes.restore()
        probes.run_all_once()
        server.start()
        self.source.open()
        self.scheduler = CollectorScheduler(
            self.runtime,
            retry_initial_seconds=self.config.retry.initial_seconds,
            retry_max_seconds=self.config.retry.max_seconds,
        )
        self._attach_reports()
        self.scheduler.start()
        probes.start()
        process.start()
        log.info("serving %s://%s:%d/metrics", self._scheme(), self.config.listen.address, server.port)

    def _attach_reports(self) -> None:
        """The monthly reports (reports: in the config), a job of their own on the collectors' scheduler."""
        if self.config.reports is None:
            return
        from ent_exporter.reports.job import ReportJob

        assert self.scheduler is not None  # (start() made it first)
        # Its own pool for the run, with the reports' statement timeout (a month's statements are long).
        self.reports = ReportJob(
            self.config.reports,
            lambda: report_source(self.config),
            self.config.zone,
            self.clock,
            self.config.privacy.min_count,
        )
        self.reports.attach(self.scheduler.scheduler, self.config.schedule(Cadence.MONTHLY))

    def stop(self) -> None:
        if self.process:
            self.process.stop()
        if self.probes:
            self.probes.stop()
        if self.runtime:
            self.runtime.stopping.set()  # runs cut short by the closing pool are not failures
        if self.scheduler:
            self.scheduler.shutdown()
        if self.server:
            self.server.stop()
        self.source.close()
        self._release_state_dir()


class ProbeExporter(Reloading):
    """``ent-exporter probe``: the probes of a probe exporter's file alone, on their own port with their own
    state (no database): the same metrics as the statistics exporter's probes, and the process metrics."""

    probes_only = True

    def __init__(
        self,
        config: Config,
        origin: str = "configuration",
        web: WebConfig | None = None,
        *,
        clock: clocks.Clock | None = None,
        web_config_file: Path | None = None,
    ) -> None:
        super().__init__(config, origin, web, clock=clock, web_config_file=web_config_file)
        self.exposition = Exposition([])

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "probes": len(self.probes.probes) if self.probes else 0}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready once every probe ran once (start() serves only then)."""
        return True, {"status": "ready"}

    def start(self) -> None:
        check_writable_dir(self.config.state_dir, "state_dir", self.origin)
        try:  # the probes' own directory (never a symbolic link, ent_exporter.engine.files)
            Directory.open(self.config.state_dir, STATE_DIRECTORY).close()
        except OSError as error:
            raise StartupError(
                f"{self.origin}: state_dir: {error.filename} cannot be used ({error.strerror or error})"
            ) from None
        self._hold_state_dir()
        try:
            self._start()
        except BaseException:
            self._release_state_dir()
            raise

    def _start(self) -> None:
        memory.tune()
        self.server = server = self._serve(self.exposition)
        probes, process = self.probes, self.process
        assert probes is not None and process is not None  # (_serve made them)
        # As the statistics exporter: counters back from the state, every probe once, then /metrics.
        probes.restore()
        probes.run_all_once()
        server.start()
        probes.start()
        process.start()
        log.info(
            "serving the probes only (%d) on %s://%s:%d/metrics",
            len(probes.probes),
            self._scheme(),
            self.config.listen.address,
            server.port,
        )

    def stop(self) -> None:
        if self.process:
            self.process.stop()
        if self.probes:
            self.probes.stop()
        if self.server:
            self.server.stop()
        self._release_state_dir()


def wait_for_termination(on_hangup: Callable[[], None] | None = None) -> None:
    """Blocks until SIGINT or SIGTERM; on SIGHUP, calls ``on_hangup`` (here, not in the handler)."""
    stop = threading.Event()
    hangup = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: hangup.set())  # (its default action ends the process)
    while not stop.wait(1 if on_hangup is None else 0.2):
        if hangup.is_set():
            hangup.clear()
            if on_hangup is not None:
                on_hangup()
