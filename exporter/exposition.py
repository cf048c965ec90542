"""The exposition: every collector's last samples, rendered once per change.

A scrape serves bytes rendered when a collector last published (plain and gzipped),
so it costs a memory copy, never a query or a render. Families are rendered one by
one with prometheus-client and cached, so a change re-renders only what changed.
Two collectors may publish into one family (e.g. the hourly and the monthly visitor
collectors): their series are merged under a single HELP/TYPE.
"""
from __future__ import annotations

import gzip
import logging
import threading
from dataclasses import dataclass, replace
from typing import Iterable, Mapping

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from collectors.base import Family, HistogramValue, Kind, LabelValues, Samples, Value

log = logging.getLogger(__name__)

OTHER = "other"


@dataclass(frozen=True)
class Policy:
    """What the exporter enforces on every family before publishing it."""

    max_series_per_family: int = 200_000
    privacy_min_count: int = 0


class _OneFamily:
    """The registry shape generate_latest wants, for a single metric family."""

    def __init__(self, metric: Metric) -> None:
        self.metric = metric

    def collect(self) -> Iterable[Metric]:
        yield self.metric


def to_metric(family: Family, series: Mapping[LabelValues, Value]) -> Metric:
    """A prometheus-client metric family holding the given series, sorted for stable output."""
    labels = list(family.labels)
    if family.kind is Kind.COUNTER:
        metric: Metric = CounterMetricFamily(family.name, family.help, labels=labels)
    elif family.kind is Kind.GAUGE:
        metric = GaugeMetricFamily(family.name, family.help, labels=labels)
    else:
        metric = HistogramMetricFamily(family.name, family.help, labels=labels)
    for label_values, value in sorted(series.items()):
        if isinstance(value, HistogramValue):
            buckets = [(floatToGoString(bound), count) for bound, count in zip(family.buckets, value.buckets)]
            buckets.append(("+Inf", value.count))
            metric.add_metric(list(label_values), buckets=buckets, sum_value=value.sum)
        else:
            metric.add_metric(list(label_values), value)
    return metric


def render_family(family: Family, series: Mapping[LabelValues, Value]) -> bytes:
    return generate_latest(_OneFamily(to_metric(family, series)))  # type: ignore[arg-type]


def _weight(value: Value) -> float:
    return value.count if isinstance(value, HistogramValue) else abs(value)


def _merge(a: Value, b: Value) -> Value:
    if isinstance(a, HistogramValue) and isinstance(b, HistogramValue):
        merged = HistogramValue(list(a.buckets), a.count, a.sum)
        merged.add(b)
        return merged
    return a + b  # type: ignore[operator]


def fold_rare_values(family: Family, series: dict[LabelValues, Value], cap: int) -> tuple[dict[LabelValues, Value], int]:
    """Folds the rarest values of the most diverse labels into "other" until at most ``cap`` series remain.

    Returns the folded series and how many series were folded away. Non-additive
    families (ratios) lose their folded series instead of summing them meaninglessly.
    """
    folded_away = 0
    folded_positions: set[int] = set()
    while len(series) > cap:
        candidates = [i for i in range(len(family.labels)) if i not in folded_positions]
        if not candidates:
            break
        position = max(candidates, key=lambda i: len({key[i] for key in series}))
        folded_positions.add(position)
        weights: dict[str, float] = {}
        for key, value in series.items():
            weights[key[position]] = weights.get(key[position], 0.0) + _weight(value)
        distinct = len(weights)
        # Keep as many of the most used values as the cap allows, leaving room for "other".
        keep_count = max(1, (distinct * cap) // len(series) - 1)
        kept = set(sorted(weights, key=lambda v: (-weights[v], v))[:keep_count])
        result: dict[LabelValues, Value] = {}
        for key, value in series.items():
            if key[position] in kept:
                result[key] = _merge(result[key], value) if key in result else value
            elif family.additive:
                other = key[:position] + (OTHER,) + key[position + 1:]
                result[other] = _merge(result[other], value) if other in result else value
        folded_away += len(series) - len(result)
        series = result
    if len(series) > cap:
        # Every label already folded: keep the heaviest series rather than grow without bound.
        heaviest = sorted(series, key=lambda k: (-_weight(series[k]), k))[:cap]
        folded_away += len(series) - cap
        series = {key: series[key] for key in heaviest}
    return series, folded_away


def apply_privacy(family: Family, series: dict[LabelValues, Value], min_count: int) -> dict[LabelValues, Value]:
    if not (family.counts_people and min_count > 0):
        return series
    return {
        key: (0.0 if isinstance(value, float | int) and 0 < value < min_count else value)
        for key, value in series.items()
    }


class Exposition:
    """Thread-safe holder of the rendered /metrics body."""

    def __init__(self, families: Iterable[Family], policy: Policy = Policy()) -> None:
        self.policy = policy
        declared: dict[str, Family] = {}
        for family in families:
            if declared.setdefault(family.name, family) != family:
                raise ValueError(f"family {family.name} is declared twice, differently")
        self._families = {name: self._published_form(family) for name, family in declared.items()}
        self._samples: dict[str, dict[str, dict[LabelValues, Value]]] = {}  # family -> publisher -> series
        self._rendered: dict[str, tuple[bytes, bytes]] = {}  # family -> (text, gzip member)
        self._series_counts: dict[str, int] = {}
        self._folded_totals: dict[str, float] = {}
        self._lock = threading.Lock()
        self._body = b""
        self._gzipped = gzip.compress(b"")
        self.renders = 0  # how many times a body was built (scrapes never build one)

    def _published_form(self, family: Family) -> Family:
        if family.counts_people and self.policy.privacy_min_count > 0:
            note = f" Counts below {self.policy.privacy_min_count} are published as 0 (privacy.min_count)."
            return replace(family, help=family.help + note)
        return family

    @property
    def families(self) -> dict[str, Family]:
        return dict(self._families)

    def publish(self, updates: Mapping[str, Samples]) -> None:
        """For each publisher, replaces its series of the families it gives; re-renders those families once."""
        with self._lock:
            changed = set()
            for publisher, samples in updates.items():
                for name, series in samples.items():
                    if name not in self._families:
                        raise KeyError(f"{publisher} published undeclared family {name}")
                    self._samples.setdefault(name, {})[publisher] = dict(series)
                    changed.add(name)
            for name in sorted(changed):
                self._render(name)
            self._rebuild()

    def _render(self, name: str) -> None:
        family = self._families[name]
        merged: dict[LabelValues, Value] = {}
        for series in self._samples.get(name, {}).values():
            merged.update(series)
        merged = apply_privacy(family, merged, self.policy.privacy_min_count)
        if len(merged) > self.policy.max_series_per_family:
            merged, folded = fold_rare_values(family, merged, self.policy.max_series_per_family)
            if name not in self._folded_totals:
                log.warning(
                    "%s: more than %d series; the rarest label values are folded into %r "
                    "(see ent_exporter_folded_series_total)", name, self.policy.max_series_per_family, OTHER,
                )
            self._folded_totals[name] = self._folded_totals.get(name, 0.0) + folded
        self._series_counts[name] = len(merged)
        text = render_family(family, merged) if merged else b""
        self._rendered[name] = (text, gzip.compress(text, compresslevel=6) if text else b"")

    def _rebuild(self) -> None:
        # Concatenated gzip members form one valid gzip stream (RFC 1952), so each
        # family is compressed once, when it changes, not the whole body every time.
        names = sorted(self._rendered)
        self._body = b"".join(self._rendered[name][0] for name in names)
        self._gzipped = b"".join(self._rendered[name][1] for name in names) or gzip.compress(b"")
        self.renders += 1

    def series_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._series_counts)

    def folded_totals(self) -> dict[str, float]:
        with self._lock:
            return dict(self._folded_totals)

    def body(self, gzipped: bool = False) -> bytes:
        # A reference swap under the GIL: no lock needed to read a consistent body.
        return self._gzipped if gzipped else self._body
