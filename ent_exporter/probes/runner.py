"""Runs the active probes of ``probes:``: each on its own interval, in its own thread, with a hard time bound.

A probe that hangs (a server that accepts the connection and says nothing) costs its
timeout and nothing else: the attempt runs in a worker thread that the probe's thread waits
for at most ``timeout_seconds``; past that the attempt counts as a timeout, and no new
attempt of that probe starts while the stuck one lingers. Other probes, the collectors
and the scrapes never wait for a probe. Counters are published through the exposition like any
collector's samples and saved in the state directory (``restore`` takes them back at start, with
the last success and certificate expiries, so that a restart neither resets a counter nor looks
like a recovery); the failure detail goes to the log once per change of state.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ent_exporter.probes as probe_kinds
from ent_exporter.engine import clock as clocks
from ent_exporter.engine.collector import Family, HistogramValue, Kind, Samples
from ent_exporter.engine.exposition import Exposition
from ent_exporter.engine.files import Directory
from ent_exporter.indicators.connectors import DURATION_BUCKETS_SECONDS
from ent_exporter.probes.base import (
    PHASES,
    REASONS,
    TIMEOUT,
    CheckResult,
    Phases,
    Probe,
    ProbeFailure,
    ProbeSettings,
    classify,
)

log = logging.getLogger(__name__)
# One line per request at INFO: a probe's outcome is logged here, once per change.
logging.getLogger("httpx").setLevel(logging.WARNING)

PUBLISHER = "probes"
# Probes talking to their targets at once, at most: each may hold up to its max_response_bytes, so the
# probes' memory stays bounded however many are configured. A probe waiting for a slot has not started.
MAX_IN_FLIGHT = 16
SUCCESS, FAILURE = "success", "failure"
# Each failure reason (the label value) in French, for the catalogue's meaning of FAILURES.
REASONS_FR = {
    "timeout": "délai dépassé",
    "refused": "connexion refusée",
    "dns": "DNS",
    "tls": "TLS",
    "auth": "authentification",
    "status": "statut inattendu",
    "content": "contenu inattendu",
    "too_large": "réponse trop grande",
    "error": "autre erreur",
}
PROBES = Family(
    "ent_connector_probes_total",
    Kind.COUNTER,
    "Active probes of the connector run by the exporter (probes: in its configuration), by outcome.",
    ("connector", "kind", "outcome"),
    title_en="Connector probes",
    title_fr="Sondes des connecteurs",
    meaning_fr="Sondes actives du connecteur lancées par l'exportateur (section probes de sa configuration), selon"
    " leur résultat.",
)
FAILURES = Family(
    "ent_connector_probe_failures_total",
    Kind.COUNTER,
    "Failed active probes of the connector, by reason: " + ", ".join(REASONS) + ".",
    ("connector", "kind", "reason"),
    title_en="Probe failures by reason",
    title_fr="Échecs des sondes par cause",
    meaning_fr="Sondes actives du connecteur qui ont échoué, par cause : "
    + ", ".join(REASONS_FR[r] if REASONS_FR[r].lower() == r else f"{REASONS_FR[r]} ({r})" for r in REASONS)
    + ".",
)
DURATION = Family(
    "ent_connector_probe_duration_seconds",
    Kind.HISTOGRAM,
    "Duration of the active probes of the connector, successful or not (a timeout counts its bound).",
    ("connector", "kind"),
    DURATION_BUCKETS_SECONDS,
    unit="seconds",
    title_en="Probe latency",
    title_fr="Temps de réponse des sondes",
    meaning_fr="Durée des sondes actives du connecteur, réussies ou non (une sonde expirée compte son délai maximal).",
)
UP = Family(
    "ent_connector_probe_success",
    Kind.GAUGE,
    "1 if the last active probe of the connector succeeded, else 0.",
    ("connector", "kind"),
    unit="boolean",
    title_en="Probe state",
    title_fr="État des sondes",
    meaning_fr="1 si la dernière sonde active du connecteur a réussi, 0 sinon.",
)
CERTIFICATE_EXPIRY = Family(
    "ent_connector_certificate_expiry_timestamp_seconds",
    Kind.GAUGE,
    "Unix time at which the TLS certificate chain the connector's probes last saw expires: the earliest notAfter"
    " of every certificate presented, leaf and intermediates (like blackbox_exporter's"
    " probe_ssl_earliest_cert_expiry), the soonest of its probes.",
    ("connector",),
    unit="timestamp",
    title_en="Certificate expiry",
    title_fr="Expiration des certificats",
    meaning_fr="Date d'expiration de la chaîne de certificats TLS que les sondes du connecteur ont vue en dernier :"
    " la plus proche des dates de fin de tous les certificats présentés, serveur et intermédiaires (la plus proche"
    " de ses sondes).",
)
LEAF_EXPIRY = Family(
    "ent_connector_leaf_certificate_expiry_timestamp_seconds",
    Kind.GAUGE,
    "Unix time at which the server's own TLS certificate (the leaf of the chain) the connector's probes last saw"
    " expires, the soonest of its probes; the chain's earliest is ent_connector_certificate_expiry_timestamp_seconds.",
    ("connector",),
    unit="timestamp",
    title_en="Server certificate expiry",
    title_fr="Expiration des certificats serveurs",
    meaning_fr="Date d'expiration du certificat TLS du serveur lui-même (la feuille de la chaîne) que les sondes du"
    " connecteur ont vu en dernier, la plus proche de ses sondes.",
)
LAST_RUN = Family(
    "ent_connector_probe_last_run_timestamp_seconds",
    Kind.GAUGE,
    "Unix time at which the probe last ended: after a restart, the success and certificate expiries restored from"
    " the state are this old until the probe runs again.",
    ("connector", "kind"),
    unit="timestamp",
    title_en="Last probe",
    title_fr="Dernière sonde",
    meaning_fr="Date à laquelle la sonde s'est terminée pour la dernière fois : après un redémarrage, l'état et les"
    " dates d'expiration repris de l'état enregistré ont cet âge jusqu'à la sonde suivante.",
)
# Finer than the probes' buckets: a bind on the same network takes a millisecond or two.
PHASE_BUCKETS_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PHASE_DURATION = Family(
    "ent_connector_probe_phase_duration_seconds",
    Kind.HISTOGRAM,
    "Duration of each phase of the successful active probes of the connector: resolve, connect, tls, request (the"
    " exchange: HTTP request and answer, LDAP bind and search, SMTP EHLO), processing (the exporter's own time).",
    ("connector", "kind", "phase"),
    PHASE_BUCKETS_SECONDS,
    unit="seconds",
    title_en="Probe phases",
    title_fr="Étapes des sondes",
    meaning_fr="Durée de chaque étape des sondes actives réussies du connecteur : résolution du nom (resolve), connexion"
    " (connect), négociation TLS (tls), échange avec le serveur (request : requête HTTP, bind et recherche LDAP, EHLO"
    " SMTP), temps propre de l'exportateur (processing).",
)
HTTP_STATUS = Family(
    "ent_connector_probe_http_status_code",
    Kind.GAUGE,
    "HTTP status code of the answer to the last HTTP probe of the connector, 0 when no answer came (like"
    " blackbox_exporter's probe_http_status_code).",
    ("connector", "kind"),
    additive=False,
    title_en="HTTP status",
    title_fr="Code de statut HTTP",
    meaning_fr="Code de statut HTTP de la réponse à la dernière sonde HTTP du connecteur, 0 si aucune réponse n'est"
    " venue.",
)
TLS_VERSION = Family(
    "ent_connector_probe_tls_version_info",
    Kind.GAUGE,
    "TLS version the connector's server agreed with the probe at its last handshake (always 1; the version label,"
    " spelt as blackbox_exporter's probe_tls_version_info: TLS 1.2, TLS 1.3).",
    ("connector", "kind", "version"),
    additive=False,
    title_en="TLS version",
    title_fr="Version de TLS",
    meaning_fr="Version de TLS que le serveur du connecteur a négociée avec la sonde lors de sa dernière négociation"
    " (toujours 1 ; la version dans le libellé version : TLS 1.2, TLS 1.3).",
)
FAMILIES = (
    PROBES,
    FAILURES,
    DURATION,
    UP,
    CERTIFICATE_EXPIRY,
    LEAF_EXPIRY,
    LAST_RUN,
    PHASE_DURATION,
    HTTP_STATUS,
    TLS_VERSION,
)

# The probes' state file, in its own directory under state_dir: the counters (so that they never go
# backwards across a restart), the last success and certificate expiries, and when each probe last ran.
STATE_DIRECTORY, STATE_FILE, STATE_VERSION = "probes", "probes.json", 1
SAVE_GAP_SECONDS = 1.0
# Each run starts after its interval plus a jitter drawn anew each time, up to this share of the
# interval (at most JITTER_MAX_SECONDS): probes never fall into step, and never run more often.
JITTER_SHARE, JITTER_MAX_SECONDS = 0.05, 2.0


def offset(key: str, interval: float) -> float:
    """Where in its interval a probe runs: stable (a hash of its connector and kind, the same at every
    start, like Prometheus' scrape offsets), spread evenly over [0, interval)."""
    return zlib.crc32(key.encode()) / 2**32 * interval


def jitter_bound(interval: float) -> float:
    return min(JITTER_SHARE * interval, JITTER_MAX_SECONDS)  # at most one write a second, whatever the number of probes


@dataclass
class _State:
    """What one probe has counted so far."""

    outcomes: dict[str, float] = field(default_factory=lambda: {SUCCESS: 0.0, FAILURE: 0.0})
    failures: dict[str, float] = field(default_factory=lambda: {reason: 0.0 for reason in REASONS})
    duration: HistogramValue = field(
        default_factory=lambda: HistogramValue([0.0] * len(DURATION_BUCKETS_SECONDS), 0.0, 0.0)
    )
    success: float | None = None
    certificate_expiry: float | None = None
    leaf_expiry: float | None = None
    last_run: float | None = None  # Unix time the last attempt ended (wall clock)
    http_status: float | None = None  # the last answer's HTTP status, 0 without an answer (HTTP kinds only)
    tls_version: str | None = None  # the version agreed at the last TLS handshake
    phases: dict[str, HistogramValue] = field(default_factory=dict)  # the phases seen so far
    reason: str | None = "never run"  # last failure reason, None after a success (to log changes only)
    attempt: threading.Thread | None = None  # the worker of the last attempt (may outlive its bound)
    attempt_started: float = 0.0

    def observe(self, seconds: float) -> None:
        self.duration = _observed(self.duration, DURATION_BUCKETS_SECONDS, seconds)

    def observe_phases(self, phases: dict[str, float], total: float) -> None:
        """One successful attempt's phases; processing is the total less the others."""
        measured = {phase: seconds for phase, seconds in phases.items() if phase in PHASES and phase != "processing"}
        measured["processing"] = max(0.0, total - sum(measured.values()))
        for phase, seconds in measured.items():
            empty = HistogramValue([0.0] * len(PHASE_BUCKETS_SECONDS), 0.0, 0.0)
            self.phases[phase] = _observed(self.phases.get(phase, empty), PHASE_BUCKETS_SECONDS, seconds)


def _observed(histogram: HistogramValue, bounds: tuple[float, ...], seconds: float) -> HistogramValue:
    return HistogramValue(
        [count + (1.0 if seconds <= bound else 0.0) for count, bound in zip(histogram.buckets, bounds)],
        histogram.count + 1.0,
        histogram.sum + seconds,
    )


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value < 0:
        raise ValueError(f"not a count: {value!r}")
    return float(value)


def _optional(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"not a number: {value!r}")
    return float(value)


def _histogram(stored: dict[str, Any], bounds: tuple[float, ...]) -> HistogramValue:
    buckets = [_number(count) for count in stored["buckets"]]
    if len(buckets) != len(bounds):
        raise ValueError("a histogram has other buckets")
    return HistogramValue(buckets, _number(stored["count"]), _number(stored["sum"]))


def _restore(state: _State, entry: dict[str, Any]) -> None:
    """One probe's stored values into its state (ValueError, KeyError or TypeError on a wrong shape)."""
    outcomes = {outcome: _number(entry["outcomes"][outcome]) for outcome in (SUCCESS, FAILURE)}
    # A reason the stored file does not know starts at 0; one this version no longer has is dropped.
    failures = {reason: _number(entry["failures"].get(reason, 0)) for reason in REASONS}
    duration = _histogram(entry["duration"], DURATION_BUCKETS_SECONDS)
    phases = {
        phase: _histogram(histogram, PHASE_BUCKETS_SECONDS)
        for phase, histogram in entry.get("phases", {}).items()
        if phase in PHASES
    }
    success = _optional(entry.get("success"))
    if success not in (None, 0.0, 1.0):
        raise ValueError(f"success is {success!r}")
    state.outcomes, state.failures = outcomes, failures
    state.duration = duration
    state.phases = phases
    state.success = success
    state.certificate_expiry = _optional(entry.get("certificate_expiry"))
    state.leaf_expiry = _optional(entry.get("leaf_expiry"))
    state.last_run = _optional(entry.get("last_run"))
    state.http_status = _optional(entry.get("http_status"))
    version = entry.get("tls_version")
    if version is not None and not (isinstance(version, str) and 0 < len(version) <= 16):
        raise ValueError(f"tls_version is {version!r}")
    state.tls_version = version
    state.reason = None if success == 1.0 else "restored"  # the first run's outcome is logged


def make_probe(settings: ProbeSettings | Probe) -> Probe:
    """The probe of one entry of ``probes:`` (a ready Probe is taken as is)."""
    return settings if isinstance(settings, Probe) else probe_kinds.kinds()[settings.kind](settings)


class ProbeRunner:
    """The probes of one configuration: ``start`` runs them, ``run_once`` runs one now (tests)."""

    families = FAMILIES

    def __init__(
        self,
        settings: Iterable[ProbeSettings | Probe],
        exposition: Exposition,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_in_flight: int = MAX_IN_FLIGHT,
        state_dir: Path | None = None,
        wall: clocks.Clock | None = None,
    ) -> None:
        self.probes = [make_probe(s) for s in settings]
        self.exposition = exposition
        self.clock = clock
        self.wall = wall or clocks.default()
        self.state_dir = state_dir
        self._dirty = threading.Event()
        self._saver: threading.Thread | None = None
        self._initial_done = False
        self.random = random.Random()  # the jitter's draws
        self._states = [_State() for _ in self.probes]
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self.max_in_flight = max_in_flight
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        exposition.declare(FAMILIES)
        for probe in self.probes:
            try:
                probe.prepare()
            except Exception as error:  # the probe's own attempt will say what is wrong, with its reason
                log.debug("%s: preparing failed: %s", probe.settings.connector, error)
        if self.probes:  # every counter at 0 from the start: the first failure is an increase
            self._publish()

    def _name(self, index: int) -> str:
        s = self.probes[index].settings
        return f"probe {index} ({s.kind} of connector {s.connector})"

    # -- the threads -------------------------------------------------------------------
    def start(self) -> None:
        self._stopping.clear()
        if self.state_dir is not None and self.probes:
            self._saver = threading.Thread(target=self._save_loop, daemon=True, name="probe-state")
            self._saver.start()
        for index, probe in enumerate(self.probes):
            thread = threading.Thread(
                target=self._loop,
                args=(index,),
                daemon=True,
                name=f"probe-{probe.settings.connector}-{probe.settings.kind}",
            )
            thread.start()
            self._threads.append(thread)
        if self.probes:
            log.info("%d connector probe(s) started", len(self.probes))

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
        if self._saver is not None:
            self._saver.join(timeout)
            self._saver = None
        self.save()

    def reload(self, settings: Iterable[ProbeSettings | Probe]) -> str:
        """SIGHUP: the probes of a new configuration in place of these. A probe with the same connector and
        kind keeps its counters and last values (its settings may change); a new one starts at 0; a
        removed one's series go. Returns what changed, for the log."""
        running = bool(self._threads)
        if running:  # each loop ends after its run in progress (bounded by its timeout)
            self._stopping.set()
            for thread in self._threads:
                thread.join()
            self._threads = []
            if self._saver is not None:
                self._saver.join()
                self._saver = None
        new = [make_probe(s) for s in settings]
        for probe in new:
            try:
                probe.prepare()
            except Exception as error:
                log.debug("%s: preparing failed: %s", probe.settings.connector, error)
        with self._lock:
            old = {self._key(probe): state for probe, state in zip(self.probes, self._states)}
            states = [old.get(self._key(probe)) or _State() for probe in new]
            added = [self._key(p) for p in new if self._key(p) not in old]
            kept = [self._key(p) for p in new if self._key(p) in old]
            removed = sorted(set(old) - {self._key(p) for p in new})
            self.probes, self._states = new, states
        self._publish()
        self.save()
        if running:
            self.start()
        return f"{len(kept)} probe(s) kept with their counters, added: {', '.join(added) or 'none'}, removed: " + (
            ", ".join(removed) or "none"
        )

    def run_all_once(self) -> list[CheckResult | ProbeFailure]:
        """Runs every probe once, all at once (within the in-flight bound), and waits for them: at start,
        before /metrics is served, so that its first scrape has every probe's own result."""
        outcomes: list[CheckResult | ProbeFailure | None] = [None] * len(self.probes)

        def one(index: int) -> None:
            try:
                outcomes[index] = self.run_once(index)
            except Exception:
                log.exception("%s: the probe runner failed", self._name(index))

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(self.probes))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self._initial_done = True
        self.save()
        return [o for o in outcomes if o is not None]

    # -- the state file ------------------------------------------------------------------
    @staticmethod
    def _key(probe: Probe) -> str:
        return f"{probe.settings.connector}/{probe.settings.kind}"

    def save(self) -> None:
        """Writes every probe's counters and last values (write-then-rename: old or new, never half)."""
        if self.state_dir is None or not self.probes:
            return
        with self._lock:
            probes = {
                self._key(probe): {
                    "outcomes": dict(state.outcomes),
                    "failures": dict(state.failures),
                    "duration": {
                        "buckets": list(state.duration.buckets),
                        "count": state.duration.count,
                        "sum": state.duration.sum,
                    },
                    "success": state.success,
                    "certificate_expiry": state.certificate_expiry,
                    "leaf_expiry": state.leaf_expiry,
                    "last_run": state.last_run,
                    "http_status": state.http_status,
                    "tls_version": state.tls_version,
                    "phases": {
                        phase: {"buckets": list(h.buckets), "count": h.count, "sum": h.sum}
                        for phase, h in state.phases.items()
                    },
                }
                for probe, state in zip(self.probes, self._states)
            }
        data = json.dumps({"version": STATE_VERSION, "probes": probes}, sort_keys=True).encode()
        try:
            with Directory.open(self.state_dir, STATE_DIRECTORY) as directory:
                directory.write(STATE_FILE, data, mode=0o600)
        except OSError as error:
            log.error("cannot save the probes' state in %s: %s", self.state_dir / STATE_DIRECTORY, error)

    def _save_loop(self) -> None:
        while not self._stopping.is_set():
            if self._dirty.wait(0.5):
                self._dirty.clear()
                self.save()
                self._stopping.wait(SAVE_GAP_SECONDS)

    def restore(self) -> int:
        """Takes the counters and last values of the state file back, for the probes still configured (by
        connector and kind); publishes them. A file that cannot be read is logged and ignored (the
        counters start again from 0, which rate() handles). Returns how many probes were restored."""
        if self.state_dir is None or not self.probes:
            return 0
        path = self.state_dir / STATE_DIRECTORY / STATE_FILE
        try:
            with Directory.open(self.state_dir, STATE_DIRECTORY) as directory:
                data = json.loads(directory.read(STATE_FILE))
            if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
                raise ValueError(f"not a version {STATE_VERSION} probes state")
            stored = data["probes"]
            restored = 0
            with self._lock:
                for probe, state in zip(self.probes, self._states):
                    entry = stored.get(self._key(probe))
                    if entry is not None:
                        _restore(state, entry)
                        restored += 1
        except FileNotFoundError:
            return 0
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            log.warning("ignoring the probes' state %s (%s): their counters start from 0", path, error)
            self._states = [_State() for _ in self.probes]
            return 0
        self._publish()
        if restored:
            log.info("restored the counters and last results of %d probe(s) from %s", restored, path)
        return restored

    def _loop(self, index: int) -> None:
        interval = self.probes[index].settings.interval_seconds
        # The first run at the probe's own offset in its interval (after run_all_once at start, one
        # interval later still): probes configured together do not run together.
        first = offset(self._key(self.probes[index]), interval)
        next_start = self.clock() + first + (interval if self._initial_done else 0.0)
        while not self._stopping.wait(max(0.0, next_start - self.clock())):
            # Start to start: never more often than the interval, however long a probe takes; a fresh
            # jitter each time keeps two probes from staying in step.
            next_start = self.clock() + interval + self.random.uniform(0.0, jitter_bound(interval))
            try:
                self.run_once(index)
            except Exception:  # the loop must survive anything a probe kind does
                log.exception("%s: the probe runner failed", self._name(index))

    # -- one probe -----------------------------------------------------------------------
    def run_once(self, index: int) -> CheckResult | ProbeFailure:
        """Runs probe ``index`` once, waiting at most its timeout; counts and publishes the outcome."""
        probe, state = self.probes[index], self._states[index]
        bound = probe.settings.timeout_seconds
        started = self.clock()
        if state.attempt is not None and state.attempt.is_alive():
            # The previous attempt is still stuck past its bound: no second one piles up behind it.
            # It gets one more bound to end; if it does not, this run counts as a timeout too.
            state.attempt.join(bound)
            if state.attempt.is_alive():
                stuck = ProbeFailure(
                    TIMEOUT,
                    f"the previous probe is still unanswered after {self.clock() - state.attempt_started:.0f} s",
                )
                self._record(index, stuck, bound)
                return stuck
        self._slots.acquire()  # released by the attempt when it ends, within its bound or not
        started = self.clock()
        box: list[CheckResult | ProbeFailure] = []

        def attempt() -> None:
            try:
                box.append(probe.check())
            except ProbeFailure as failure:
                box.append(failure)
            except Exception as error:  # a bug or an unexpected library error: still a bounded label
                box.append(classify(error))
            finally:
                self._slots.release()

        probe.phase = Phases()
        state.attempt = threading.Thread(target=attempt, daemon=True, name=f"probe-attempt-{index}")
        state.attempt_started = started
        state.attempt.start()
        state.attempt.join(bound)
        elapsed = self.clock() - started
        outcome = box[0] if box else ProbeFailure(TIMEOUT, f"no answer within {bound:g} s")
        # join() returns at the bound at the latest (give or take the scheduler): a timeout counts its bound.
        self._record(index, outcome, min(elapsed, bound), probe.phase.seconds if box else None)
        return outcome

    def _record(
        self,
        index: int,
        outcome: CheckResult | ProbeFailure,
        seconds: float,
        phases: dict[str, float] | None = None,
    ) -> None:
        state = self._states[index]
        ended = self.wall.time()
        learnt = outcome.learnt if isinstance(outcome, ProbeFailure) else outcome
        with self._lock:
            state.last_run = ended
            state.observe(seconds)
            if self.probes[index].reports_status:
                state.http_status = float(learnt.http_status) if learnt and learnt.http_status else 0.0
            if learnt is not None and learnt.tls_version is not None:
                state.tls_version = learnt.tls_version
            if isinstance(outcome, ProbeFailure):
                state.outcomes[FAILURE] += 1
                state.failures[outcome.reason] += 1
                state.success = 0.0
                reason = outcome.reason
            else:
                state.outcomes[SUCCESS] += 1
                if phases is not None:
                    state.observe_phases(phases, seconds)
                state.success = 1.0
                if outcome.certificate_expiry is not None:
                    state.certificate_expiry = outcome.certificate_expiry
                if outcome.leaf_expiry is not None:
                    state.leaf_expiry = outcome.leaf_expiry
                reason = None
            changed, state.reason = state.reason != reason, reason
        if changed:
            if reason is not None:
                log.warning("%s failed (%s): %s", self._name(index), reason, outcome.detail)  # type: ignore[union-attr]
            else:
                log.info("%s succeeded (in %.3f s)", self._name(index), seconds)
        self._publish()
        self._dirty.set()

    # -- the metrics ----------------------------------------------------------------------
    def samples(self) -> Samples:
        with self._lock:
            samples: Samples = {family.name: {} for family in FAMILIES}
            expiries: dict[str, float] = {}
            leaves: dict[str, float] = {}
            for probe, state in zip(self.probes, self._states):
                key = (probe.settings.connector, probe.settings.kind)
                for outcome, count in state.outcomes.items():
                    samples[PROBES.name][(*key, outcome)] = count
                for reason, count in state.failures.items():
                    samples[FAILURES.name][(*key, reason)] = count
                samples[DURATION.name][key] = HistogramValue(
                    list(state.duration.buckets), state.duration.count, state.duration.sum
                )
                if state.success is not None:
                    samples[UP.name][key] = state.success
                if state.last_run is not None:
                    samples[LAST_RUN.name][key] = state.last_run
                if state.http_status is not None:
                    samples[HTTP_STATUS.name][key] = state.http_status
                if state.tls_version is not None:
                    samples[TLS_VERSION.name][(*key, state.tls_version)] = 1.0
                for phase, histogram in state.phases.items():
                    samples[PHASE_DURATION.name][(*key, phase)] = HistogramValue(
                        list(histogram.buckets), histogram.count, histogram.sum
                    )
                connector = probe.settings.connector
                for soonest, when in ((expiries, state.certificate_expiry), (leaves, state.leaf_expiry)):
                    if when is not None:
                        soonest[connector] = min(soonest.get(connector, when), when)
            samples[CERTIFICATE_EXPIRY.name] = {(connector,): when for connector, when in expiries.items()}
            samples[LEAF_EXPIRY.name] = {(connector,): when for connector, when in leaves.items()}
        return samples

    def _publish(self) -> None:
        self.exposition.publish({PUBLISHER: self.samples()})
