"""Runs collectors: one run = query, persist, publish; plus the exporter's own metrics."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, cast

import psycopg

from ent_exporter.engine import clock as clocks
from ent_exporter.engine import journal as journals
from ent_exporter.engine import memory
from ent_exporter.engine.collector import (
    INVALID_MEASUREMENTS,
    Cadence,
    Collector,
    Context,
    Family,
    HistogramValue,
    Kind,
    LabelValues,
    Report,
    RunRefused,
    Samples,
    SourceUnavailable,
    decode_samples,
    encode_samples,
)
from ent_exporter.engine.exposition import Exposition
from ent_exporter.engine.schedule import Schedule, default_schedules
from ent_exporter.engine.state import StateStore, StoredResult

log = logging.getLogger(__name__)

SELF_PUBLISHER = "exporter"
LAST_SUCCESS = Family(
    "ent_exporter_collector_last_success_timestamp_seconds",
    Kind.GAUGE,
    "Unix time of the collector's last complete run.",
    ("collector",),
    unit="timestamp",
    title_en="Collector's last success",
    title_fr="Dernier succès du collecteur",
    meaning_fr="Date et heure de la dernière exécution complète du collecteur.",
)
DURATION = Family(
    "ent_exporter_collector_duration_seconds",
    Kind.GAUGE,
    "Duration of the collector's last run, successful or not.",
    ("collector",),
    unit="seconds",
    title_en="Run duration",
    title_fr="Durée d'exécution",
    meaning_fr="Durée de la dernière exécution du collecteur, réussie ou non.",
)
FAILURES = Family(
    "ent_exporter_collector_failures_total",
    Kind.COUNTER,
    "Runs of the collector that failed (database unreachable, query error or timeout).",
    ("collector",),
    title_en="Collector failures",
    title_fr="Échecs des collecteurs",
    meaning_fr="Exécutions du collecteur qui ont échoué (base injoignable, erreur de requête ou délai dépassé).",
)
CADENCE = Family(
    "ent_exporter_collector_cadence_seconds",
    Kind.GAUGE,
    "Longest time between two scheduled runs of the collector: its schedule's period (a configured cron included).",
    ("collector", "cadence"),
    unit="seconds",
    title_en="Collector cadence",
    title_fr="Rythme du collecteur",
    meaning_fr="Plus long intervalle entre deux exécutions prévues du collecteur : la période de sa planification"
    " (cron configuré compris).",
)
SOURCE_UP = Family(
    "ent_exporter_source_up",
    Kind.GAUGE,
    "1 if the last attempt to reach the source database succeeded, else 0.",
    unit="boolean",
    title_en="Source database",
    title_fr="Base de la plateforme",
    meaning_fr="1 si la dernière tentative de connexion à la base de la plateforme a réussi, 0 sinon.",
)
SERIES = Family(
    "ent_exporter_series",
    Kind.GAUGE,
    "Series currently exported, per metric family.",
    ("family",),
    title_en="Series exported",
    title_fr="Séries publiées",
    meaning_fr="Séries publiées en ce moment, par famille de mesures.",
)
FOLDED = Family(
    "ent_exporter_folded_series_total",
    Kind.COUNTER,
    'Series folded into label value "other" by the cardinality guard, summed over publications.',
    ("family",),
    title_en="Folded series",
    title_fr="Séries regroupées",
    meaning_fr="Séries regroupées sous la valeur « other » par le garde-fou de cardinalité, cumulées sur les"
    " publications.",
)
LATE_EVENTS = Family(
    "ent_exporter_late_events_total",
    Kind.COUNTER,
    "Events whose transaction committed after events with higher ids or later times: counted (within the"
    " late-commit limit) or missed (after it, not in the counters).",
    ("collector", "outcome"),
    title_en="Late events",
    title_fr="Événements tardifs",
    meaning_fr="Événements dont la transaction a été validée après celle d'événements aux identifiants plus grands ou"
    " aux dates plus récentes : comptés (dans la limite de validation tardive) ou manqués (au-delà, absents des"
    " compteurs).",
)
LATE_GAPS = Family(
    "ent_exporter_late_commit_gaps",
    Kind.GAUGE,
    "Ranges of missing event ids below the watermark, watched for late commits.",
    ("collector",),
    title_en="Watched event id gaps",
    title_fr="Trous d'identifiants surveillés",
    meaning_fr="Plages d'identifiants d'événements manquants en deçà du dernier identifiant traité, surveillées au cas"
    " où leur transaction serait validée en retard.",
)
INVALID = INVALID_MEASUREMENTS
CUMULATIVE = (Kind.COUNTER, Kind.HISTOGRAM)
# What a run moved (samples, times of change), for the state's journal; None: unknown (no earlier result).
Moved = tuple[journals.Delta, journals.Delta] | None
# What a restored state of the wrong shape makes its collector raise (a type, a key, a length).
_SHAPE_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError)


def _track_changes(
    collector: Collector, before: Samples | None, after: Samples, changed_at: dict[str, Any], now: float
) -> tuple[dict[str, dict[LabelValues, float]], Moved]:
    """When each cumulative series last moved: {family: {label values: unix time}}; and what moved in
    this run, for the state's journal: per cumulative family, the series whose value or time changed and
    those gone (as journal deltas of the samples and of the times).

    One comparison per series, the rest C-level dict and set work on the label tuples of ``after``
    as they are (no copy per series); the earlier times are copied, never changed in place."""
    tracked: dict[str, dict[LabelValues, float]] = {}
    moved_samples, moved_times = journals.Delta(), journals.Delta()
    for family in collector.families:
        if family.kind not in CUMULATIVE:
            continue
        series = after.get(family.name, {})
        previous_values = (before or {}).get(family.name, {})
        times = _times(changed_at.get(family.name), copy=True)  # (the earlier times are not changed in place)
        get = previous_values.get
        fresh = [key for key, value in series.items() if get(key) != value] if before is not None else []
        if before is not None and times.keys() == previous_values.keys():
            # As every minute: the times are those of the last values' series, so the series new since are
            # among those that moved, and none is gone unless the counts say so (no whole-set operations).
            gone = (
                []
                if len(series) == len(previous_values) + sum(key not in times for key in fresh)
                else list(previous_values.keys() - series.keys())
            )
            stale, now_moved, keys = gone, fresh, fresh
        else:
            stale = list(times.keys() - series.keys())  # the times of series gone
            now_moved = list((series.keys() - times.keys()).union(fresh))  # new series (or no history), and moved
            keys = list(set(now_moved).union(series.keys() - previous_values.keys()))
            gone = list(previous_values.keys() - series.keys())
        for key in stale:
            del times[key]
        times.update(dict.fromkeys(now_moved, now))
        tracked[family.name] = times
        if before is not None:
            moved_samples.changed[family.name] = [(key, _encoded(series[key])) for key in keys]
            moved_times.changed[family.name] = (
                [(key, now) for key in keys] if keys is now_moved else [(key, times[key]) for key in keys]
            )
            moved_samples.gone[family.name] = gone
            moved_times.gone[family.name] = stale
    return tracked, (moved_samples, moved_times) if before is not None else None


def _times(entries: Any, *, copy: bool = False) -> dict[LabelValues, float]:
    """A family's times of change as {label values: unix time}: the runtime's own dict (``copy``: a new
    one), or the (label values, time) pairs of a restored result (tuples: dict() takes them as they are)."""
    if not entries:
        return {}
    if isinstance(entries, dict):
        return dict(entries) if copy else entries
    return dict(entries) if type(entries[0][0]) is tuple else {tuple(labels): moved for labels, moved in entries}


def _copy(samples: Samples) -> Samples:
    """Samples no later change to the given ones can reach (float values: C-level dict copies)."""
    return {
        name: {
            key: HistogramValue(list(value.buckets), value.count, value.sum)
            for key, value in cast("dict[LabelValues, HistogramValue]", series).items()  # (checked: histograms)
        }
        if series and isinstance(next(iter(series.values())), HistogramValue)
        else dict(series)
        for name, series in samples.items()
    }


def _published_moves(moved: Moved, samples: Samples, active: Samples) -> dict[str, list[LabelValues]]:
    """The series new or changed of each family published as the collector gave it, with none gone:
    what the exposition re-renders without comparing every series (see Exposition.publish)."""
    if moved is None:
        return {}
    changed, gone = moved[0].changed, moved[0].gone
    return {
        name: [key for key, _ in pairs]
        for name, pairs in changed.items()
        if not gone.get(name) and active.get(name) is samples.get(name)
    }


def _encoded(value: Any) -> Any:
    return vars(value) if isinstance(value, HistogramValue) else value  # as encode_samples writes it


def _released(stored: StoredResult) -> StoredResult:
    """What the runtime keeps of a result whose state is on disk only: its time of success (state None:
    read the state directory at the next run)."""
    return StoredResult(
        samples={}, state=None, last_success=stored.last_success, complete=stored.complete, ran_at=stored.ran_at
    )


SELF_FAMILIES = (LAST_SUCCESS, DURATION, FAILURES, CADENCE, SOURCE_UP, SERIES, FOLDED, LATE_EVENTS, LATE_GAPS, INVALID)


class Runtime:
    """Holds the collectors, their state and the exposition; ``run`` is what the scheduler calls."""

    def __init__(
        self,
        collectors: Iterable[Collector],
        source: Any,
        exposition_policy: Any = None,
        *,
        store: StateStore | None = None,
        zone: tzinfo = UTC,
        settle: timedelta = timedelta(0),
        chunk_size: int = 500_000,
        idle_series_retention: timedelta = timedelta(days=90),
        clock: clocks.Clock | None = None,
        late_commit_limit: timedelta = timedelta(hours=1),
        schedules: Mapping[Cadence, Schedule] | None = None,
    ) -> None:
        self.late_commit_limit = late_commit_limit
        self.collectors = {collector.name: collector for collector in collectors}
        # "Now" for a run given no instant, for the time of a success and for staleness: the machine's
        # time in production, a pinned or shifted one in tests and the demo (ent_exporter.engine.clock).
        self.clock = clock or clocks.default()
        self.source = source
        self.store = store
        self.zone = zone
        self.settle = settle
        self.chunk_size = chunk_size
        self.idle_series_retention = idle_series_retention
        # The schedules in force (the configuration's crons): staleness, readiness and retries follow them.
        in_force = {**default_schedules(zone), **(schedules or {})}
        self.schedules = {name: in_force[collector.cadence] for name, collector in self.collectors.items()}
        families = [family for collector in self.collectors.values() for family in collector.families]
        kwargs = {} if exposition_policy is None else {"policy": exposition_policy}
        self.exposition = Exposition([*families, *SELF_FAMILIES], **kwargs)
        self._stored: dict[str, StoredResult] = {}
        self._last_samples: dict[str, Samples] = {}
        self._restored: set[str] = set()  # restored from the store, not run since (their state not proven usable)
        self._locks = {name: threading.Lock() for name in self.collectors}
        self._self_lock = threading.Lock()
        self._last_success: dict[str, float] = {}
        self._durations: dict[str, float] = {}
        self._failures: dict[str, float] = {name: 0.0 for name in self.collectors}
        self.consecutive_failures: dict[str, int] = {name: 0 for name in self.collectors}
        self._source_up: float | None = None
        # Set on shutdown: a run that the closing pool interrupts is not a failure worth a line.
        self.stopping = threading.Event()
        self._reports: dict[str, Report] = {}  # collector -> what its last saved state reports

    # -- start-up --------------------------------------------------------------------
    def restore(self) -> None:
        """Publishes every persisted result at once, so a restart serves the last values immediately."""
        updates: dict[str, Samples] = {}
        for name, collector in self.collectors.items():
            # A collector whose state stays on disk between runs, and that reports nothing from its state,
            # is restored without parsing its state (the window collectors' per-day aggregates).
            kept = self._kept_between_runs(collector)
            light = not kept and type(collector).report is Collector.report
            stored = (
                self.store.load(name, with_state=not light, journal=kept, families=collector.families)
                if self.store
                else None
            )
            if stored is None:
                continue
            try:
                report = collector.report({} if light or stored.state is None else stored.state)
                samples = decode_samples(collector.families, stored.samples)
                # Idle series are filtered as of the restored run's own instant, not the clock: a restart
                # serves exactly what that run published (its next run filters as of its own instant).
                as_of = stored.ran_at if stored.ran_at is not None else self.clock.time()
                active = self._active(collector, samples, stored.changed_at, as_of)
            except _SHAPE_ERRORS as error:  # a state its collector cannot read: counted again, like a garbage file
                log.warning(
                    "%s: ignoring its state %s (the wrong shape: %r): starts from scratch",
                    name,
                    self.store.path(name) if self.store else "",
                    error,
                )
                continue
            self._stored[name] = stored if kept else _released(stored)
            self._restored.add(name)
            self._reports[name] = report
            if stored.last_success is not None:
                self._last_success[name] = stored.last_success
            if kept:  # what the first run's changes are found against (not decoded a second time then)
                self._last_samples[name] = samples
            updates[name] = active
        if updates:
            self.exposition.publish(updates)
        self._publish_self()
        memory.freeze_long_lived()  # what was just restored lives as long as the process

    def is_stale(self, name: str, now: float | None = None) -> bool:
        """True when the last success is older than the period of the collector's schedule (or there is none)."""
        last = self._last_success.get(name)
        now = self.clock.time() if now is None else now
        return last is None or now - last >= self.schedules[name].period.total_seconds()

    def is_overdue(self, name: str, now: float | None = None) -> bool:
        """Stale beyond what a healthy schedule explains: the cadence, plus a margin for the jitter,
        the run itself and a retry (a tenth of the cadence, between 1 minute and 1 hour)."""
        last = self._last_success.get(name)
        now = self.clock.time() if now is None else now
        period = self.schedules[name].period.total_seconds()
        return last is None or now - last > period + min(max(60.0, period / 10), 3600.0)

    @property
    def source_up(self) -> bool | None:
        """Whether the database answered the last attempt to reach it (None before any attempt)."""
        return None if self._source_up is None else self._source_up == 1.0

    # -- one run ---------------------------------------------------------------------
    def run(self, name: str, now: datetime | None = None) -> bool:
        """Runs one collector once; returns whether it succeeded. Overlapping calls are skipped."""
        lock = self._locks[name]
        if not lock.acquire(blocking=False):
            log.info("%s: previous run still going, skipping this one", name)
            return True
        try:
            # In UTC: arithmetic on aware datetimes of a DST zone is wall-clock arithmetic.
            return self._run(name, (now or self.clock.now()).astimezone(UTC))
        finally:
            if self.collectors[name].cadence is not Cadence.INSTANT:  # (an instant cycle frees little)
                memory.trim()  # what the run freed goes back to the system (glibc; a no-op elsewhere)
            lock.release()

    def _run(self, name: str, now: datetime) -> bool:
        collector = self.collectors[name]
        context = Context(
            source=self.source,
            now=now,
            timezone=self.zone,
            state=self._state_for_run(name),
            settle=self.settle,
            chunk_size=self.chunk_size,
            late_commit_limit=self.late_commit_limit,
            checkpoint=lambda samples, state: self._save(name, samples, state, now, complete=False),
            breakdowns=self.exposition.policy.breakdowns,
            peer_state=self.state,
        )
        started = time.monotonic()
        try:
            result = collector.collect(context)
        except SourceUnavailable as error:
            self._failed(name, started, f"database unreachable: {error}", source_up=False)
            return False
        except psycopg.Error as error:
            # A query error or a statement timeout: the database answered, this collector failed.
            self._failed(name, started, f"query failed: {str(error).strip()}", source_up=True)
            return False
        except RunRefused as error:
            log.error("%s: %s", name, error)
            self._failed(name, started, "refused, see the error above", source_up=True)
            return False
        except _SHAPE_ERRORS as error:
            if name in self._restored:
                # The first run since a restore found its stored state of the wrong shape (the store checks
                # the file's shape, only the collector knows its state's): counted again from scratch.
                self._restored.discard(name)
                self._stored.pop(name, None)
                self._last_samples.pop(name, None)
                log.warning(
                    "%s: its state %s cannot be used (the wrong shape: %r): the next run starts from scratch",
                    name,
                    self.store.path(name) if self.store else "",
                    error,
                )
            elif not self.stopping.is_set():
                log.exception("%s: collector raised", name)
            self._failed(name, started, "collector raised", source_up=None)
            return False
        except Exception:
            if not self.stopping.is_set():
                log.exception("%s: collector raised", name)
            self._failed(name, started, "collector raised", source_up=None)
            return False
        self._restored.discard(name)
        # The state the run started from goes before the result is saved and published: what of it the new
        # state keeps (a window collector's closed days) it shares, the rest (the users' old encoding, the
        # days that left the window) is freed, not held beside the new result.
        del context
        self._save(name, result.samples, result.state, now, complete=True)
        succeeded = self._stored[name].last_success  # the time of success the complete save wrote
        assert succeeded is not None
        with self._self_lock:
            self._durations[name] = time.monotonic() - started
            self._last_success[name] = succeeded
            self._source_up = 1.0
            self.consecutive_failures[name] = 0
        self._publish_self()
        log.debug("%s: ran in %.3f s", name, self._durations[name])
        return True

    def _save(self, name: str, samples: Samples, state: dict[str, Any], now: datetime, *, complete: bool) -> None:
        """Persists, then publishes: what is served has always been written to disk first."""
        collector = self.collectors[name]
        previous = self._stored.get(name)
        before = self._last_samples.get(name)
        if before is None and previous is not None:  # first run since a restart
            before = decode_samples(collector.families, previous.samples)
        changed_at, moved = _track_changes(
            collector, before, samples, previous.changed_at if previous else {}, now.timestamp()
        )
        last_success: float | None
        if complete:
            last_success = self.clock.time()
        else:
            last_success = self._last_success.get(name)
        stored = StoredResult(
            encode_samples(samples), state, last_success, complete, changed_at, ran_at=now.timestamp()
        )
        kept = self._kept_between_runs(collector)
        if self.store is not None:
            # A result kept in memory runs every minute or so: what moved goes to the state's journal.
            self.store.save(name, stored, journal=kept, moved=moved, since=previous)
        self._stored[name] = stored if kept else _released(stored)
        if kept:
            # A copy: a collector may go on adding to the dicts it gave at a checkpoint, and what moved
            # next time is found against the values saved now.
            self._last_samples[name] = _copy(samples)
        with self._self_lock:
            self._reports[name] = collector.report(state)
        active = self._active(collector, samples, changed_at, now.timestamp())
        self.exposition.publish(
            {name: active},
            {name: _published_moves(moved, samples, active)},
            frequent=collector.cadence is Cadence.INSTANT,
        )

    # -- what a collector's last run left (for tools and tests; read only) ------------------
    def state(self, name: str) -> dict[str, Any] | None:
        """The collector's state as its last run saved it (None: no run yet); read back from the state
        directory for a collector whose state is not held in memory between runs."""
        stored = self._stored_result(name, with_samples=False)
        return None if stored is None else stored.state

    def samples(self, name: str) -> Samples | None:
        """The samples of the collector's last saved result, decoded (None: no result yet)."""
        if name in self._last_samples:
            return self._last_samples[name]
        stored = self._stored_result(name)
        return None if stored is None else decode_samples(self.collectors[name].families, stored.samples)

    def holds_in_memory(self, name: str) -> bool:
        """Whether the collector's last state and samples are held in memory between runs (counters), rather
        than in the state directory only (the window collectors' per-day aggregates)."""
        stored = self._stored.get(name)
        return name in self._last_samples or (stored is not None and stored.state is not None)

    def _stored_result(self, name: str, *, with_samples: bool = True) -> StoredResult | None:
        """The collector's last stored result, read back from the state directory if it was released
        (``with_samples=False``: its state alone, when that is all that is wanted)."""
        stored = self._stored.get(name)
        if stored is not None and stored.state is None:  # released: only with a store (see _kept_between_runs)
            assert self.store is not None
            return self.store.load(name, families=self.collectors[name].families, with_samples=with_samples)
        return stored

    def _state_for_run(self, name: str) -> dict[str, Any]:
        """The state a run starts from: a copy of the one held in memory (a counter's), or the one read back
        from the state directory (a window collector's), its own, with nothing else of that result (its
        samples are not read: what the run computes replaces them), so that the run holds no second result."""
        stored = self._stored.get(name)
        if stored is not None and stored.state is not None:
            return dict(stored.state)
        loaded = self._stored_result(name, with_samples=False)
        return loaded.state if loaded is not None and loaded.state is not None else {}

    def _kept_between_runs(self, collector: Collector) -> bool:
        """Whether a collector's stored result (samples, state) stays in memory between its runs.

        Cumulative families need their last values at every run (what moved, and when). The others
        (the window gauges) are recomputed from their state alone, which is read back from the state
        directory when they run: the per-day aggregates of the window collectors then take memory for
        the length of a run, not for the life of the process (what is served is in the exposition)."""
        return self.store is None or any(family.kind in CUMULATIVE for family in collector.families)

    def _active(self, collector: Collector, samples: Samples, changed_at: dict[str, Any], now: float) -> Samples:
        """Cumulative series that have not moved for the retention period stop being exported
        (a structure that closed, an application withdrawn); they come back if they move again."""
        horizon = now - self.idle_series_retention.total_seconds()
        active: Samples = {}
        for family in collector.families:
            series = samples.get(family.name, {})
            if family.kind in CUMULATIVE:
                times = _times(changed_at.get(family.name))
                # (most minutes nothing is idle: one C-level min() says so)
                idle = (
                    {key for key, moved in times.items() if moved < horizon}
                    if times and min(times.values()) < horizon
                    else set()
                )
                if idle:
                    series = {key: value for key, value in series.items() if key not in idle}
            active[family.name] = series
        return active

    def _failed(self, name: str, started: float, reason: str, source_up: bool | None) -> None:
        if self.stopping.is_set():  # the pool closed under the run: a shutdown, not a failure
            log.debug("%s: run interrupted by the shutdown (%s)", name, reason)
            return
        with self._self_lock:
            self._durations[name] = time.monotonic() - started
            self._failures[name] += 1
            self.consecutive_failures[name] += 1
            if source_up is not None:
                self._source_up = 1.0 if source_up else 0.0
        log.warning("%s: run failed (%s); last values are still served", name, reason)
        self._publish_self()

    # -- the exporter's own metrics -------------------------------------------------
    def _publish_self(self) -> None:
        with self._self_lock:
            samples: Samples = {
                LAST_SUCCESS.name: {(n,): t for n, t in self._last_success.items()},
                DURATION.name: {(n,): d for n, d in self._durations.items()},
                FAILURES.name: {(n,): f for n, f in self._failures.items()},
                CADENCE.name: {(n, s.cadence.value): s.period.total_seconds() for n, s in self.schedules.items()},
                SOURCE_UP.name: {} if self._source_up is None else {(): self._source_up},
            }
        samples[SERIES.name] = {
            (family,): float(count)
            for family, count in self.exposition.series_counts().items()
            if family not in {f.name for f in SELF_FAMILIES}
        }
        # Every family, 0 until the guard folds something: a counter that exists from the start.
        folded = self.exposition.folded_totals()
        samples[FOLDED.name] = {
            (family.name,): folded.get(family.name, 0.0)
            for collector in self.collectors.values()
            for family in collector.families
        }
        with self._self_lock:
            reports = dict(self._reports)
        samples[LATE_EVENTS.name] = {
            (name, outcome): count for name, report in reports.items() for outcome, count in report.late_events.items()
        }
        samples[LATE_GAPS.name] = {
            (name,): report.late_commit_gaps for name, report in reports.items() if report.late_commit_gaps is not None
        }
        samples[INVALID.name] = {key: count for report in reports.values() for key, count in report.invalid.items()}
        self.exposition.publish({SELF_PUBLISHER: samples})

    def run_all(self, now: datetime | None = None) -> bool:
        """Runs every collector once, in name order; True if all succeeded."""
        return all([self.run(name, now) for name in sorted(self.collectors)])
