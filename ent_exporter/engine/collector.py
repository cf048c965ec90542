"""The collector contract: what a collector declares and what it returns.

A collector is a small declarative class: its ``cadence``, the metric ``families``
it publishes, and one ``collect(ctx)`` method that computes their samples from the
source views. The runtime (``exporter/``) schedules it, persists its state and
result atomically, and renders the exposition; a collector never talks HTTP.

Defining a concrete subclass registers it: adding an indicator is adding a class.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from operator import itemgetter
from typing import Any, ClassVar, Protocol

from psycopg import sql


class Cadence(str, enum.Enum):
    """How often a collector's query may run, with its default cron schedule and jitter. What is in force
    (a configured cron) is an ``engine.schedule.Schedule``, whose period comes from its cron."""

    INSTANT = "instant"
    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"

    @property
    def default_schedule(self) -> str:
        return _DEFAULT_SCHEDULES[self]

    @property
    def default_jitter_seconds(self) -> int:
        return _JITTER_SECONDS[self]


_DEFAULT_SCHEDULES = {
    Cadence.INSTANT: "* * * * *",
    Cadence.HOURLY: "5 * * * *",
    Cadence.DAILY: "15 2 * * *",
    Cadence.WEEKLY: "15 3 * * mon",
    Cadence.MONTHLY: "15 4 1 * *",
}
_JITTER_SECONDS = {
    Cadence.INSTANT: 5,
    Cadence.HOURLY: 60,
    Cadence.DAILY: 300,
    Cadence.WEEKLY: 300,
    Cadence.MONTHLY: 300,
}


class Kind(str, enum.Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"
    # A distribution that can go down (e.g. logins per user over 30 days). The text
    # format has no such type: it is exposed as a histogram with _bucket/_count/_sum.
    GAUGE_HISTOGRAM = "gaugehistogram"


# A family's unit (Family.unit): "" for plain counts and numbers, else the base unit its name ends with
# (_seconds, _ratio, _bytes; "timestamp" for a Unix time in seconds) or "boolean" for a 0/1 state.
UNITS = ("", "seconds", "timestamp", "ratio", "bytes", "boolean")


@dataclass(frozen=True)
class Family:
    """One metric family: its full exposed name, type, help and label names, and its entry of the
    indicator catalogue (unit, titles, French meaning) that the metric reference, the dashboards' French
    and the reports' words derive from."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()  # upper bounds, +Inf implied; histograms only
    # Whether series can be summed when the cardinality guard folds rare label values
    # into "other" (counts can; ratios and averages cannot, their folded series are dropped).
    additive: bool = True
    # Whether values count people: privacy.min_count then withholds small counts and those a difference
    # would give back (ent_exporter.engine.privacy).
    counts_people: bool = False
    # A ratio or an average of these people-counting families: a series of it is not published when a
    # count it is made of, with the same label values, is withheld (privacy.min_count).
    privacy_follows: tuple[str, ...] = ()
    # A label whose values are nested thresholds (numbers; each value's people include those of the
    # larger ones, as ``days`` of inactive accounts): privacy.min_count protects the people between two
    # thresholds, as it does a histogram's buckets.
    nested: str | None = None
    # A heavy breakdown (series budget, see README "Series budget"): unless the configuration's
    # ``breakdowns`` enables it, each structure but "all" publishes, instead of its full breakdown,
    # one marginal per label named here: that label "all", summed over its values (families that
    # count people or are not additive, such as ratios: their own "all" series, people and ratios
    # are never summed). structure="all" stays whole.
    structure_marginals: tuple[str, ...] = ()
    # The ``breakdowns`` key that publishes the full breakdown for every structure.
    breakdown_option: str | None = None
    # The catalogue: ``help`` is the English one-sentence meaning (the exposition's HELP); these say the rest.
    unit: str = ""  # one of UNITS
    meaning_fr: str = ""  # the French of help: one sentence a head of establishment understands
    title_en: str = ""  # a few words naming the figure (a panel or report title), no metric name
    title_fr: str = ""

    def marginal_positions(self) -> tuple[int, tuple[int, ...]]:
        """(position of structure, positions of structure_marginals) in the family's label values."""
        return self.labels.index("structure"), tuple(self.labels.index(name) for name in self.structure_marginals)

    def whole_in(self, breakdowns: frozenset[str] | None) -> bool:
        """Whether this family is published whole with these enabled breakdowns (None: all whole)."""
        return not self.structure_marginals or breakdowns is None or self.breakdown_option in breakdowns

    def __post_init__(self) -> None:
        if self.kind is Kind.COUNTER and not self.name.endswith("_total"):
            raise ValueError(f"counter {self.name} must end with _total")
        if (self.kind in (Kind.HISTOGRAM, Kind.GAUGE_HISTOGRAM)) != bool(self.buckets):
            raise ValueError(f"{self.name}: buckets go with histogram kinds only")
        if self.unit not in UNITS:
            raise ValueError(f"{self.name}: unit {self.unit!r} is not one of {UNITS}")


@dataclass
class HistogramValue:
    """Cumulative counts per bucket bound (same order as Family.buckets), total count and sum."""

    buckets: list[float]
    count: float
    sum: float

    def add(self, other: HistogramValue) -> None:
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets)]
        self.count += other.count
        self.sum += other.sum


LabelValues = tuple[str, ...]
Value = float | HistogramValue
# family name -> label values (in Family.labels order) -> value
Samples = dict[str, dict[LabelValues, Value]]


class SourceUnavailable(Exception):
    """The database cannot be reached (as opposed to a query that failed)."""


class RunRefused(Exception):
    """A collector refuses to publish what the source holds (its message says why and what to change):
    the run fails with one ERROR line, no traceback."""


class UntrustedSQL(sql.SQL):
    """A statement the exporter did not write (a ``custom:`` indicator's): a source gives it no trust it
    gives its own (ent_exporter.sources.postgres re-asserts the session's bounds after it)."""


class Source(Protocol):
    """Read-only access to the contract's relations (see ent_exporter.sources.postgres): what indicators
    and reports use of a source."""

    @property
    def schema(self) -> str:
        """The schema holding the contract's relations."""
        ...

    @property
    def relations(self) -> Mapping[str, sql.Composable]:
        """Each contract relation's schema-qualified name ({"accounts": ent.accounts, ...})."""
        ...

    def fetch(
        self,
        query: sql.SQL,
        params: Mapping[str, Any] | Sequence[Any] | None = None,
        **placeholders: str | sql.Composable,
    ) -> list[tuple[Any, ...]]:
        """Runs one statement and returns its rows.

        ``{name}`` placeholders in the query are filled with the schema-qualified contract
        relation of that name (``{accounts}``, ``{login_events}``, ...). A keyword given as a
        string aliases a relation (``events="login_events"`` fills ``{events}``); one given as
        an ``sql.Composable`` is inserted as is.
        """
        ...

    def snapshot(self) -> AbstractContextManager[Source, bool | None]:
        """A source whose statements all see one snapshot of the database (REPEATABLE READ, read only),
        for the statements of one run that must agree (a count and the gaps it leaves)."""
        ...


@dataclass
class Context:
    """Everything one run of a collector gets from the runtime."""

    source: Source
    now: datetime  # timezone-aware; the instant "as of" which the collector computes
    timezone: tzinfo  # the platform's calendar (periods, hours of day)
    state: dict[str, Any]  # what this collector returned as state last time ({} at first)
    settle: timedelta = timedelta(0)  # how old an event must be before it is counted
    chunk_size: int = 500_000  # at most this many event ids read per statement
    # How long a transaction may stay open and still have its events counted (see README, "Guarantees").
    late_commit_limit: timedelta = timedelta(hours=1)
    # Persists partial progress (samples + state) atomically, so a long first run
    # survives a restart without reading anything twice.
    checkpoint: Callable[[Samples, dict[str, Any]], None] = lambda samples, state: None
    # The heavy breakdowns the configuration publishes whole (Family.breakdown_option names; None:
    # every one): a counter under the series budget may count its published shape only.
    breakdowns: frozenset[str] | None = None
    # Another collector's state as its last run saved it, by name (None: none), to read only: what one
    # collector already keeps, another combines instead of reading its window again (the previous
    # month's visitors come from the hourly visitors' days).
    peer_state: Callable[[str], Mapping[str, Any] | None] = lambda name: None


@dataclass
class Result:
    samples: Samples
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    """What a collector tells about its own work, published as the exporter's self-metrics.

    Totals are cumulative and kept in the collector's state, so they survive restarts with
    the counters they go with."""

    late_events: dict[str, float] = field(default_factory=dict)  # outcome (counted/missed) -> events
    late_commit_gaps: float | None = None  # ranges of missing ids watched for late commits
    invalid: dict[tuple[str, str], float] = field(default_factory=dict)  # (family, reason) -> measurements


def encode_samples(samples: Samples) -> dict[str, list[Any]]:
    """Samples as JSON-able data: per family, a list of (label values, value).

    The label values are the samples' own key tuples (JSON writes them as lists): nothing is
    copied per series, and what the runtime keeps of a saved result shares its label strings
    with the collector's samples."""
    return {
        name: [(labels, vars(value)) for labels, value in series.items()]
        if series and isinstance(next(iter(series.values())), HistogramValue)
        else list(series.items())
        for name, series in samples.items()
    }


def decode_samples(families: Iterable[Family], stored: Mapping[str, list[Any]]) -> Samples:
    """The inverse of encode_samples, for the given families (others are ignored)."""
    samples: Samples = {}
    for family in families:
        histogram = family.kind in (Kind.HISTOGRAM, Kind.GAUGE_HISTOGRAM)
        pairs = stored.get(family.name, [])
        if not histogram and _tuples_and_floats(pairs):
            # What encode_samples gave in this process, or a restore's tuples: a C-level dict().
            samples[family.name] = dict(pairs)
            continue
        samples[family.name] = {
            tuple(labels): HistogramValue(**value) if histogram else float(value) for labels, value in pairs
        }
    return samples


def _tuples_and_floats(pairs: list[Any]) -> bool:
    """Whether every pair is a (tuple, float) tuple (checked with C loops)."""
    return (
        bool(pairs)
        and set(map(type, pairs)) == {tuple}
        and set(map(type, map(itemgetter(0), pairs))) == {tuple}
        and set(map(type, map(itemgetter(1), pairs))) == {float}
    )


_REGISTRY: dict[str, type[Collector]] = {}


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Collector:
    """Base of every collector. Subclasses set ``cadence`` and ``families`` and implement ``collect``.

    A subclass that sets ``abstract = True`` in its body is a building block, not registered.
    """

    abstract: ClassVar[bool] = True
    # An opt-in collector runs only when named in the configuration's collectors.enabled
    # (a breakdown whose cardinality an administrator chooses to pay for, e.g. per course).
    opt_in: ClassVar[bool] = False
    name: ClassVar[str]
    cadence: ClassVar[Cadence]
    families: ClassVar[tuple[Family, ...]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("abstract", False):
            return
        cls.abstract = False
        if "name" not in cls.__dict__:
            cls.name = _snake_case(cls.__name__).removesuffix("_collector")
        for attribute in ("cadence", "families"):
            if not hasattr(cls, attribute):
                raise TypeError(f"collector {cls.__qualname__} must declare {attribute}")
        previous = _REGISTRY.get(cls.name)
        if previous is not None and previous.__qualname__ != cls.__qualname__:
            raise TypeError(f"two collectors named {cls.name}: {previous.__qualname__} and {cls.__qualname__}")
        _REGISTRY[cls.name] = cls

    def collect(self, ctx: Context) -> Result:
        raise NotImplementedError

    def report(self, state: Mapping[str, Any]) -> Report:
        """The self-metrics of a state this collector returned (none by default)."""
        return Report()

    def family(self, name: str) -> Family:
        for family in self.families:
            if family.name == name:
                return family
        raise KeyError(name)


def registered() -> dict[str, type[Collector]]:
    """Every registered collector class by name (import collectors first: see collectors.discover)."""
    return dict(_REGISTRY)


UNKNOWN = "unknown"
ALL_STRUCTURES = "all"
ALL_PROFILES = "all"  # people counts: each person once over every profile


def marginal_keys(key: tuple[Any, ...], positions: Sequence[int]) -> Iterable[tuple[Any, ...]]:
    """The series budget's marginals a series falls in (key: its label values, or a row of them and a
    count): one per position, that label "all"."""
    if len(positions) == 1:  # (the budget's usual shape, on the instant cycle's path: no generator)
        return (key[: positions[0]] + ("all",) + key[positions[0] + 1 :],)
    return (key[:position] + ("all",) + key[position + 1 :] for position in positions)


def label(value: Any) -> str:
    """A label value as found, with NULL or empty folded into ``unknown`` (never dropped).

    The one rule for every label value: the exposition applies it to every series it publishes
    (ent_exporter.engine.exposition); SQL that builds label values writes it as
    ``coalesce(nullif(x, ''), 'unknown')``."""
    if value is None:
        return UNKNOWN
    text = str(value)
    return text if text else UNKNOWN


# Measurements a collector leaves out because they are invalid, per family and reason: kept in
# the collector's totals (so they persist with the counters) and published by the runtime.
INVALID_MEASUREMENTS = Family(
    "ent_exporter_invalid_measurements_total",
    Kind.COUNTER,
    "Measurements left out of a family because they are invalid (NaN, infinite, negative or absurd"
    " durations, NULL outcomes), per family and reason.",
    ("family", "reason"),
    title_en="Invalid measurements",
    title_fr="Mesures invalides",
    meaning_fr="Mesures écartées d'une famille parce qu'invalides (valeurs non numériques, infinies, durées négatives"
    " ou absurdes, résultats absents), par famille et par raison.",
)
