"""Runs the active probes of ``probes:``: each on its own interval, in its own thread, with a hard time bound.

A probe that hangs (a server that accepts the connection and says nothing) costs its
timeout and nothing else: the attempt runs in a worker thread that the probe's thread waits
for at most ``timeout_seconds``; past that the attempt counts as a timeout, and no new
attempt of that probe starts while the stuck one lingers. Other probes, the collectors
and the scrapes never wait for a probe. Counters live in memory (a restart resets them,
which Prometheus' rate() handles) and are published through the exposition like any
collector's samples; the failure detail goes to the log once per change of state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import ent_exporter.probes as probe_kinds
from ent_exporter.engine.collector import Family, HistogramValue, Kind, Samples
from ent_exporter.engine.exposition import Exposition
from ent_exporter.indicators.connectors import DURATION_BUCKETS_SECONDS
from ent_exporter.probes.base import REASONS, TIMEOUT, CheckResult, Probe, ProbeFailure, ProbeSettings, classify

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
FAMILIES = (PROBES, FAILURES, DURATION, UP, CERTIFICATE_EXPIRY, LEAF_EXPIRY)


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
    reason: str | None = "never run"  # last failure reason, None after a success (to log changes only)
    attempt: threading.Thread | None = None  # the worker of the last attempt (may outlive its bound)
    attempt_started: float = 0.0

    def observe(self, seconds: float) -> None:
        self.duration = HistogramValue(
            [
                count + (1.0 if seconds <= bound else 0.0)
                for count, bound in zip(self.duration.buckets, DURATION_BUCKETS_SECONDS)
            ],
            self.duration.count + 1.0,
            self.duration.sum + seconds,
        )


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
    ) -> None:
        self.probes = [make_probe(s) for s in settings]
        self.exposition = exposition
        self.clock = clock
        self._states = [_State() for _ in self.probes]
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self.max_in_flight = max_in_flight
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        exposition.declare(FAMILIES)
        if self.probes:  # every counter at 0 from the start: the first failure is an increase
            self._publish()

    def _name(self, index: int) -> str:
        s = self.probes[index].settings
        return f"probe {index} ({s.kind} of connector {s.connector})"

    # -- the threads -------------------------------------------------------------------
    def start(self) -> None:
        self._stopping.clear()
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

    def _loop(self, index: int) -> None:
        interval = self.probes[index].settings.interval_seconds
        next_start = self.clock()
        while not self._stopping.wait(max(0.0, next_start - self.clock())):
            # Start to start: never more often than the interval, however long a probe takes.
            next_start = self.clock() + interval
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

        state.attempt = threading.Thread(target=attempt, daemon=True, name=f"probe-attempt-{index}")
        state.attempt_started = started
        state.attempt.start()
        state.attempt.join(bound)
        elapsed = self.clock() - started
        outcome = box[0] if box else ProbeFailure(TIMEOUT, f"no answer within {bound:g} s")
        # join() returns at the bound at the latest (give or take the scheduler): a timeout counts its bound.
        self._record(index, outcome, min(elapsed, bound))
        return outcome

    def _record(self, index: int, outcome: CheckResult | ProbeFailure, seconds: float) -> None:
        state = self._states[index]
        with self._lock:
            state.observe(seconds)
            if isinstance(outcome, ProbeFailure):
                state.outcomes[FAILURE] += 1
                state.failures[outcome.reason] += 1
                state.success = 0.0
                reason = outcome.reason
            else:
                state.outcomes[SUCCESS] += 1
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
                connector = probe.settings.connector
                for soonest, when in ((expiries, state.certificate_expiry), (leaves, state.leaf_expiry)):
                    if when is not None:
                        soonest[connector] = min(soonest.get(connector, when), when)
            samples[CERTIFICATE_EXPIRY.name] = {(connector,): when for connector, when in expiries.items()}
            samples[LEAF_EXPIRY.name] = {(connector,): when for connector, when in leaves.items()}
        return samples

    def _publish(self) -> None:
        self.exposition.publish({PUBLISHER: self.samples()})
